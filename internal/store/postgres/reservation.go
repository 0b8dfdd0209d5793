package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// resRow is a reservation's stored row.
type resRow struct {
	holder            string
	token             int64
	acquired, expires int64
}

// held reports whether the row is a grant still unexpired at now.
func (r *resRow) held(now int64) bool { return r.holder != "" && r.expires > now }

func (r *resRow) record(tenant, name string, now int64) *job.Reservation {
	res := &job.Reservation{Tenant: tenant, Name: name}
	if r.held(now) {
		res.Holder, res.Token, res.AcquiredAt, res.ExpiresAt = r.holder, r.token, i2t(r.acquired), i2t(r.expires)
	}
	return res
}

// lockReservation reads a name's row, creating it (free) if the name was
// never acquired, and locks it for the transaction.
func (t *ptx) lockReservation(tenant, name string) (r resRow, err error) {
	if _, err := t.exec(`INSERT INTO reservations (tenant, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenant, name); err != nil {
		return r, err
	}
	err = t.queryRow(`SELECT holder, token, acquired_at, expires_at FROM reservations WHERE tenant = $1 AND name = $2 FOR UPDATE`, tenant, name).
		Scan(&r.holder, &r.token, &r.acquired, &r.expires)
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
		if cur.held(now) {
			if cur.holder != p.Holder {
				return fmt.Errorf("postgres: reservation %s: %w", p.Name, &store.HeldError{Holder: cur.holder, ExpiresAt: i2t(cur.expires)})
			}
			if _, err := t.exec(`UPDATE reservations SET expires_at = $1 WHERE tenant = $2 AND name = $3`, exp, p.Tenant, p.Name); err != nil {
				return err
			}
			cur.expires = exp
			out = cur.record(p.Tenant, p.Name, now)
			return nil
		}
		if cur.holder != "" {
			if _, err := t.exec(`UPDATE reservation_history SET ended = $1, ended_at = $2 WHERE tenant = $3 AND name = $4 AND token = $5`,
				job.ReservationExpired, cur.expires, p.Tenant, p.Name, cur.token); err != nil {
				return err
			}
		}
		var token int64
		if err := t.queryRow(`SELECT nextval('lease_token')`).Scan(&token); err != nil {
			return err
		}
		next := resRow{holder: p.Holder, token: token, acquired: now, expires: exp}
		if _, err := t.exec(`UPDATE reservations SET holder = $3, token = $4, acquired_at = $5, expires_at = $6 WHERE tenant = $1 AND name = $2`,
			p.Tenant, p.Name, next.holder, next.token, next.acquired, next.expires); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO reservation_history (tenant, name, token, holder, acquired_at) VALUES ($1, $2, $3, $4, $5)`,
			p.Tenant, p.Name, next.token, next.holder, next.acquired); err != nil {
			return err
		}
		if _, err := t.exec(`DELETE FROM reservation_history WHERE tenant = $1 AND name = $2 AND token < (
			SELECT min(token) FROM (SELECT token FROM reservation_history WHERE tenant = $1 AND name = $2 ORDER BY token DESC LIMIT $3) AS recent)`,
			p.Tenant, p.Name, job.ReservationHistoryLen); err != nil {
			return err
		}
		out = next.record(p.Tenant, p.Name, now)
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
		r := resRow{holder: p.Holder, token: p.Token, acquired: acquired, expires: exp}
		out = r.record(p.Tenant, p.Name, now)
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
	rows, err := s.pool.Query(ctx, `SELECT r.holder, r.token, r.acquired_at, r.expires_at,
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
		if err := rows.Scan(&r.holder, &r.token, &r.acquired, &r.expires, &hHolder, &hToken, &hAcquired, &hEndedAt, &hEnded); err != nil {
			return nil, s.wrap("get reservation", err)
		}
		if out == nil {
			out = r.record(tenant, name, n)
			out.History = []job.ReservationEntry{}
		}
		if !hToken.Valid {
			continue
		}
		e := job.ReservationEntry{Holder: hHolder.String, Token: hToken.Int64, AcquiredAt: i2t(hAcquired.Int64),
			EndedAt: i2t(hEndedAt.Int64), Ended: hEnded.String}
		if e.Ended == "" {
			// The current grant: its expiry is the row's.
			if r.token == e.Token && r.held(n) {
				e.Ended = job.ReservationHeld
			} else {
				e.Ended, e.EndedAt = job.ReservationExpired, i2t(r.expires)
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
		if err := rows.Scan(&t, &name, &r.holder, &r.token, &r.acquired, &r.expires); err != nil {
			return nil, s.wrap("list reservations", err)
		}
		out = append(out, r.record(t, name, t2i(now)))
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list reservations", err)
	}
	return out, nil
}
