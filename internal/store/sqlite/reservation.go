package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// resRow is a reservation's stored row.
type resRow = rowscan.ReservationRow

// loadReservation reads a name's row in the writer's transaction; found is
// false if the name was never acquired.
func (tx *wtx) loadReservation(tenant, name string) (r resRow, found bool, err error) {
	err = tx.w.queryRow(`SELECT holder, token, acquired_at, expires_at FROM reservations WHERE tenant = ? AND name = ?`, tenant, name).
		Scan(&r.Holder, &r.Token, &r.Acquired, &r.Expires)
	if isNoRows(err) {
		return r, false, nil
	}
	return r, err == nil, err
}

// AcquireReservation implements [store.Store].
func (s *Store) AcquireReservation(ctx context.Context, p *store.AcquireReservationParams) (*job.Reservation, error) {
	if err := store.CheckReservation(p.Name, p.Holder, p.TTL, true); err != nil {
		return nil, fmt.Errorf("sqlite: acquire reservation: %w", err)
	}
	now, exp := t2i(p.Now), t2i(p.Now.Add(p.TTL))
	var out *job.Reservation
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil
		cur, found, err := tx.loadReservation(p.Tenant, p.Name)
		if err != nil {
			return unavailable("acquire reservation", err)
		}
		if found && cur.Held(now) {
			if cur.Holder != p.Holder {
				return fmt.Errorf("sqlite: reservation %s: %w", p.Name, &store.HeldError{Holder: cur.Holder, ExpiresAt: i2t(cur.Expires)})
			}
			if _, err := tx.w.exec(`UPDATE reservations SET expires_at = ? WHERE tenant = ? AND name = ?`, exp, p.Tenant, p.Name); err != nil {
				return unavailable("acquire reservation", err)
			}
			cur.Expires = exp
			out = cur.Record(p.Tenant, p.Name, now)
			return nil
		}
		if found && cur.Holder != "" {
			if _, err := tx.w.exec(`UPDATE reservation_history SET ended = ?, ended_at = ? WHERE tenant = ? AND name = ? AND token = ?`,
				job.ReservationExpired, cur.Expires, p.Tenant, p.Name, cur.Token); err != nil {
				return unavailable("acquire reservation", err)
			}
		}
		next := resRow{Holder: p.Holder, Token: tx.nextToken(), Acquired: now, Expires: exp}
		if _, err := tx.w.exec(`INSERT INTO reservations (tenant, name, holder, token, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, name) DO UPDATE SET holder = excluded.holder, token = excluded.token,
			acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
			p.Tenant, p.Name, next.Holder, next.Token, next.Acquired, next.Expires); err != nil {
			return unavailable("acquire reservation", err)
		}
		if _, err := tx.w.exec(`INSERT INTO reservation_history (tenant, name, token, holder, acquired_at) VALUES (?, ?, ?, ?, ?)`,
			p.Tenant, p.Name, next.Token, next.Holder, next.Acquired); err != nil {
			return unavailable("acquire reservation", err)
		}
		if _, err := tx.w.exec(`DELETE FROM reservation_history WHERE tenant = ?1 AND name = ?2 AND token < (
			SELECT min(token) FROM (SELECT token FROM reservation_history WHERE tenant = ?1 AND name = ?2 ORDER BY token DESC LIMIT ?3))`,
			p.Tenant, p.Name, job.ReservationHistoryLen); err != nil {
			return unavailable("acquire reservation", err)
		}
		out = next.Record(p.Tenant, p.Name, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RenewReservation implements [store.Store].
func (s *Store) RenewReservation(ctx context.Context, p *store.RenewReservationParams) (*job.Reservation, error) {
	if err := store.CheckReservation(p.Name, p.Holder, p.TTL, true); err != nil {
		return nil, fmt.Errorf("sqlite: renew reservation: %w", err)
	}
	now, exp := t2i(p.Now), t2i(p.Now.Add(p.TTL))
	var out *job.Reservation
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil
		var acquired int64
		err := tx.w.queryRow(`UPDATE reservations SET expires_at = ? WHERE tenant = ? AND name = ? AND holder = ? AND token = ? AND expires_at > ?
			RETURNING acquired_at`, exp, p.Tenant, p.Name, p.Holder, p.Token, now).Scan(&acquired)
		if isNoRows(err) {
			return fmt.Errorf("sqlite: reservation %s: not held by %s with token %d: %w", p.Name, p.Holder, p.Token, store.ErrConflict)
		}
		if err != nil {
			return unavailable("renew reservation", err)
		}
		r := resRow{Holder: p.Holder, Token: p.Token, Acquired: acquired, Expires: exp}
		out = r.Record(p.Tenant, p.Name, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReleaseReservation implements [store.Store].
func (s *Store) ReleaseReservation(ctx context.Context, p *store.ReleaseReservationParams) error {
	if err := store.CheckReservation(p.Name, p.Holder, 0, false); err != nil {
		return fmt.Errorf("sqlite: release reservation: %w", err)
	}
	now := t2i(p.Now)
	return s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`UPDATE reservations SET holder = '', token = 0, acquired_at = 0, expires_at = 0
			WHERE tenant = ? AND name = ? AND holder = ? AND token = ? AND expires_at > ?`, p.Tenant, p.Name, p.Holder, p.Token, now)
		if err != nil {
			return unavailable("release reservation", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: reservation %s: not held by %s with token %d: %w", p.Name, p.Holder, p.Token, store.ErrConflict)
		}
		if _, err := tx.w.exec(`UPDATE reservation_history SET ended = ?, ended_at = ? WHERE tenant = ? AND name = ? AND token = ?`,
			job.ReservationReleased, now, p.Tenant, p.Name, p.Token); err != nil {
			return unavailable("release reservation", err)
		}
		return nil
	})
}

// GetReservation implements [store.Store]. One statement reads the row and
// its history, so both come from one snapshot.
func (s *Store) GetReservation(ctx context.Context, tenant, name string, now time.Time) (*job.Reservation, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT r.Holder, r.Token, r.acquired_at, r.expires_at,
		h.holder, h.token, h.acquired_at, h.ended_at, h.ended
		FROM reservations r LEFT JOIN reservation_history h ON h.tenant = r.tenant AND h.name = r.name
		WHERE r.tenant = ? AND r.name = ? ORDER BY h.token DESC LIMIT ?`, tenant, name, job.ReservationHistoryLen)
	if err != nil {
		return nil, unavailable("get reservation", err)
	}
	defer rows.Close()
	var out *job.Reservation
	n := t2i(now)
	for rows.Next() {
		var r resRow
		var hHolder, hEnded sql.NullString
		var hToken, hAcquired, hEndedAt sql.NullInt64
		if err := rows.Scan(&r.Holder, &r.Token, &r.Acquired, &r.Expires, &hHolder, &hToken, &hAcquired, &hEndedAt, &hEnded); err != nil {
			return nil, unavailable("get reservation", err)
		}
		if out == nil {
			out = r.Record(tenant, name, n)
			out.History = []job.ReservationEntry{}
		}
		if !hToken.Valid {
			continue
		}
		e := job.ReservationEntry{Holder: hHolder.String, Token: hToken.Int64, AcquiredAt: i2t(hAcquired.Int64),
			EndedAt: i2t(hEndedAt.Int64), Ended: hEnded.String}
		if e.Ended == "" {
			// The current grant: its expiry is the row's.
			if r.Token == e.Token && r.Held(n) {
				e.Ended = job.ReservationHeld
			} else {
				e.Ended, e.EndedAt = job.ReservationExpired, i2t(r.Expires)
			}
		}
		out.History = append(out.History, e)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("get reservation", err)
	}
	if out == nil {
		return nil, fmt.Errorf("sqlite: reservation %s: %w", name, store.ErrNotFound)
	}
	return out, nil
}

// ListReservations implements [store.Store].
func (s *Store) ListReservations(ctx context.Context, tenant string, now time.Time) ([]*job.Reservation, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT tenant, name, holder, token, acquired_at, expires_at FROM reservations
		WHERE ?1 = '' OR tenant = ?1 ORDER BY tenant, name`, tenant)
	if err != nil {
		return nil, unavailable("list reservations", err)
	}
	defer rows.Close()
	var out []*job.Reservation
	for rows.Next() {
		var t, name string
		var r resRow
		if err := rows.Scan(&t, &name, &r.Holder, &r.Token, &r.Acquired, &r.Expires); err != nil {
			return nil, unavailable("list reservations", err)
		}
		out = append(out, r.Record(t, name, t2i(now)))
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list reservations", err)
	}
	return out, nil
}
