package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// resRow is a reservation's stored row.
type resRow = rowscan.ReservationRow

// lockReservation reads a name's row, creating it (free) if the name was
// never acquired, and locks it for the transaction.
func (t *ptx) lockReservation(tenant, name string) (r resRow, err error) {
	if _, err := t.exec(`INSERT INTO reservations (tenant, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenant, name); err != nil {
		return r, err
	}
	err = t.queryRow(`SELECT holder, token, acquired_at, expires_at FROM reservations WHERE tenant = $1 AND name = $2 FOR UPDATE`, tenant, name).
		Scan(&r.Holder, &r.Token, &r.Acquired, &r.Expires)
	return r, err
}

// AcquireReservation implements [store.Store].
func (s *Store) AcquireReservation(ctx context.Context, p *store.AcquireReservationParams) (*job.Reservation, error) {
	if err := store.CheckReservation(p.Name, p.Holder, p.TTL, true); err != nil {
		return nil, fmt.Errorf("postgres: acquire reservation: %w", err)
	}
	now, exp := t2i(p.Now), t2i(p.Now.Add(p.TTL))
	var out *job.Reservation
	err := s.write(ctx, "acquire reservation", func(t *ptx) error {
		out = nil
		cur, err := t.lockReservation(p.Tenant, p.Name)
		if err != nil {
			return err
		}
		if cur.Held(now) {
			if cur.Holder != p.Holder {
				return fmt.Errorf("postgres: reservation %s: %w", p.Name, &store.HeldError{Holder: cur.Holder, ExpiresAt: i2t(cur.Expires)})
			}
			if _, err := t.exec(`UPDATE reservations SET expires_at = $1 WHERE tenant = $2 AND name = $3`, exp, p.Tenant, p.Name); err != nil {
				return err
			}
			cur.Expires = exp
			out = cur.Record(p.Tenant, p.Name, now)
			return nil
		}
		if cur.Holder != "" {
			if _, err := t.exec(`UPDATE reservation_history SET ended = $1, ended_at = $2 WHERE tenant = $3 AND name = $4 AND token = $5`,
				job.ReservationExpired, cur.Expires, p.Tenant, p.Name, cur.Token); err != nil {
				return err
			}
		}
		var token int64
		if err := t.queryRow(`SELECT nextval('lease_token')`).Scan(&token); err != nil {
			return err
		}
		next := resRow{Holder: p.Holder, Token: token, Acquired: now, Expires: exp}
		if _, err := t.exec(`UPDATE reservations SET holder = $3, token = $4, acquired_at = $5, expires_at = $6 WHERE tenant = $1 AND name = $2`,
			p.Tenant, p.Name, next.Holder, next.Token, next.Acquired, next.Expires); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO reservation_history (tenant, name, token, holder, acquired_at) VALUES ($1, $2, $3, $4, $5)`,
			p.Tenant, p.Name, next.Token, next.Holder, next.Acquired); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM reservation_history WHERE tenant = $1 AND name = $2 AND token < (
			SELECT min(token) FROM (SELECT token FROM reservation_history WHERE tenant = $1 AND name = $2 ORDER BY token DESC LIMIT $3) AS recent)`,
			p.Tenant, p.Name, job.ReservationHistoryLen); err != nil {
			return err
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
		return nil, fmt.Errorf("postgres: renew reservation: %w", err)
	}
	now, exp := t2i(p.Now), t2i(p.Now.Add(p.TTL))
	var out *job.Reservation
	err := s.write(ctx, "renew reservation", func(t *ptx) error {
		out = nil
		var acquired int64
		err := t.queryRow(`UPDATE reservations SET expires_at = $1 WHERE tenant = $2 AND name = $3 AND holder = $4 AND token = $5 AND expires_at > $6
			RETURNING acquired_at`, exp, p.Tenant, p.Name, p.Holder, p.Token, now).Scan(&acquired)
		if isNoRows(err) {
			return fmt.Errorf("postgres: reservation %s: not held by %s with token %d: %w", p.Name, p.Holder, p.Token, store.ErrConflict)
		}
		if err != nil {
			return err
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
		return fmt.Errorf("postgres: release reservation: %w", err)
	}
	now := t2i(p.Now)
	return s.write(ctx, "release reservation", func(t *ptx) error {
		tag, err := t.exec(`UPDATE reservations SET holder = '', token = 0, acquired_at = 0, expires_at = 0
			WHERE tenant = $1 AND name = $2 AND holder = $3 AND token = $4 AND expires_at > $5`, p.Tenant, p.Name, p.Holder, p.Token, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: reservation %s: not held by %s with token %d: %w", p.Name, p.Holder, p.Token, store.ErrConflict)
		}
		if _, err := t.exec(`UPDATE reservation_history SET ended = $1, ended_at = $2 WHERE tenant = $3 AND name = $4 AND token = $5`,
			job.ReservationReleased, now, p.Tenant, p.Name, p.Token); err != nil {
			return err
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
	rows, err := s.pool.Query(ctx, `SELECT r.Holder, r.Token, r.acquired_at, r.expires_at,
		h.holder, h.token, h.acquired_at, h.ended_at, h.ended
		FROM reservations r LEFT JOIN reservation_history h ON h.tenant = r.tenant AND h.name = r.name
		WHERE r.tenant = $1 AND r.name = $2 ORDER BY h.token DESC LIMIT $3`, tenant, name, job.ReservationHistoryLen)
	if err != nil {
		return nil, s.wrap("get reservation", err)
	}
	defer rows.Close()
	var out *job.Reservation
	n := t2i(now)
	for rows.Next() {
		var r resRow
		var hHolder, hEnded pgtype.Text
		var hToken, hAcquired, hEndedAt pgtype.Int8
		if err := rows.Scan(&r.Holder, &r.Token, &r.Acquired, &r.Expires, &hHolder, &hToken, &hAcquired, &hEndedAt, &hEnded); err != nil {
			return nil, s.wrap("get reservation", err)
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
		return nil, s.wrap("get reservation", err)
	}
	if out == nil {
		return nil, fmt.Errorf("postgres: reservation %s: %w", name, store.ErrNotFound)
	}
	return out, nil
}

// ListReservations implements [store.Store].
func (s *Store) ListReservations(ctx context.Context, tenant string, now time.Time) ([]*job.Reservation, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT tenant, name, holder, token, acquired_at, expires_at FROM reservations
		WHERE $1 = '' OR tenant = $1 ORDER BY tenant, name`, tenant)
	if err != nil {
		return nil, s.wrap("list reservations", err)
	}
	defer rows.Close()
	var out []*job.Reservation
	for rows.Next() {
		var t, name string
		var r resRow
		if err := rows.Scan(&t, &name, &r.Holder, &r.Token, &r.Acquired, &r.Expires); err != nil {
			return nil, s.wrap("list reservations", err)
		}
		out = append(out, r.Record(t, name, t2i(now)))
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list reservations", err)
	}
	return out, nil
}
