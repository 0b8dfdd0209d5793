package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

const scheduleCols = rowscan.ScheduleCols

// getSchedule reads and locks a schedule in the transaction.
func (t *ptx) getSchedule(tenant, name string) (*job.Schedule, error) {
	s, err := rowscan.Schedule(t.queryRow(`SELECT `+scheduleCols+` FROM schedules WHERE tenant = $1 AND name = $2 FOR UPDATE`, tenant, name))
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: schedule %s: %w", name, store.ErrNotFound)
	}
	return s, err
}

// PutSchedule implements [store.Store].
func (s *Store) PutSchedule(ctx context.Context, sch *job.Schedule) (*job.Schedule, bool, error) {
	var out *job.Schedule
	var created bool
	err := s.write(ctx, "put schedule", func(t *ptx) error {
		var n job.Schedule
		// Serialize puts of one name, including its first.
		if _, err := t.exec(`SELECT pg_advisory_xact_lock(hashtextextended('schedule' || chr(1) || $1 || chr(1) || $2, 0))`, sch.Tenant, sch.Name); err != nil {
			return err
		}
		old, err := t.getSchedule(sch.Tenant, sch.Name)
		if errors.Is(err, store.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		n, created = store.PutScheduleRecord(old, sch)
		if _, err := t.exec(`INSERT INTO schedules (`+scheduleCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
			ON CONFLICT (tenant, name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, spec = excluded.spec,
			overlap = excluded.overlap, paused = excluded.paused, version = excluded.version, next_run_at = excluded.next_run_at,
			updated_at = excluded.updated_at`,
			n.Tenant, n.Name, n.Cron, n.Timezone, rowscan.ScheduleSpec(&n), n.Overlap, n.Paused, n.Version, t2i(n.NextRunAt),
			t2i(n.LastRunAt), n.LastJobID, n.Skipped, t2i(n.LastSkippedAt), t2i(n.CreatedAt), t2i(n.UpdatedAt)); err != nil {
			return err
		}
		out = &n
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, created, nil
}

// GetSchedule implements [store.Store].
func (s *Store) GetSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	sch, err := rowscan.Schedule(s.pool.QueryRow(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE tenant = $1 AND name = $2`, tenant, name))
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: schedule %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("get schedule", err)
	}
	return sch, nil
}

// ListSchedules implements [store.Store].
func (s *Store) ListSchedules(ctx context.Context, p *store.ListSchedulesParams) ([]*job.Schedule, string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, "", err
	}
	after, err := rowscan.ParseCursor(p.Cursor, "s:")
	if err != nil {
		return nil, "", err
	}
	limit := rowscan.PageSize(p.Limit)
	aTenant, aName, _ := strings.Cut(after, "/")
	rows, err := s.pool.Query(ctx, `SELECT `+scheduleCols+` FROM schedules
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR (tenant, name) > ($3::text COLLATE "C", $4::text COLLATE "C"))
		ORDER BY tenant, name LIMIT $5`, p.Tenant, after, aTenant, aName, limit+1)
	if err != nil {
		return nil, "", s.wrap("list schedules", err)
	}
	defer rows.Close()
	var out []*job.Schedule
	for rows.Next() {
		sch, err := rowscan.Schedule(rows)
		if err != nil {
			return nil, "", s.wrap("list schedules", err)
		}
		out = append(out, sch)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.wrap("list schedules", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rowscan.Cursor("s:", rowscan.ScheduleCursorKey(out[limit-1]))
	}
	return out, next, nil
}

// DeleteSchedule implements [store.Store].
func (s *Store) DeleteSchedule(ctx context.Context, tenant, name string) error {
	return s.write(ctx, "delete schedule", func(t *ptx) error {
		tag, err := t.exec(`DELETE FROM schedules WHERE tenant = $1 AND name = $2`, tenant, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: schedule %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

// SetSchedulePaused implements [store.Store].
func (s *Store) SetSchedulePaused(ctx context.Context, p *store.PauseScheduleParams) (*job.Schedule, error) {
	var out *job.Schedule
	err := s.write(ctx, "pause schedule", func(t *ptx) error {
		sch, err := t.getSchedule(p.Tenant, p.Name)
		if err != nil {
			return err
		}
		if sch.Paused == p.Paused {
			out = sch
			return nil
		}
		sch.Paused, sch.Version, sch.UpdatedAt = p.Paused, sch.Version+1, p.Now
		sch.NextRunAt = time.Time{}
		if !p.Paused {
			sch.NextRunAt = p.NextRunAt
		}
		if _, err := t.exec(`UPDATE schedules SET paused = $1, version = $2, next_run_at = $3, updated_at = $4 WHERE tenant = $5 AND name = $6`,
			sch.Paused, sch.Version, t2i(sch.NextRunAt), t2i(sch.UpdatedAt), p.Tenant, p.Name); err != nil {
			return err
		}
		out = sch
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DueSchedules implements [store.Store].
func (s *Store) DueSchedules(ctx context.Context, now time.Time, limit int) ([]*job.Schedule, time.Time, error) {
	if err := s.checkOpen(); err != nil {
		return nil, time.Time{}, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+scheduleCols+` FROM schedules
		WHERE NOT paused AND next_run_at > 0 AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2`, t2i(now), limit)
	if err != nil {
		return nil, time.Time{}, s.wrap("due schedules", err)
	}
	defer rows.Close()
	var out []*job.Schedule
	for rows.Next() {
		sch, err := rowscan.Schedule(rows)
		if err != nil {
			return nil, time.Time{}, s.wrap("due schedules", err)
		}
		out = append(out, sch)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, s.wrap("due schedules", err)
	}
	var next int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(min(next_run_at), 0) FROM schedules
		WHERE NOT paused AND next_run_at > $1`, t2i(now)).Scan(&next); err != nil {
		return nil, time.Time{}, s.wrap("due schedules", err)
	}
	return out, i2t(next), nil
}

// FireSchedule implements [store.Store]. The schedule's row lock makes
// concurrent fires of one tick wait for each other; the later one then
// reads the moved next_run_at and is lost.
func (s *Store) FireSchedule(ctx context.Context, p *store.FireScheduleParams) (store.FireResult, error) {
	var out store.FireResult
	err := s.write(ctx, "fire schedule", func(t *ptx) error {
		out = store.FireResult{}
		sch, err := t.getSchedule(p.Tenant, p.Name)
		if err != nil {
			return err
		}
		manual := p.Tick.IsZero()
		switch {
		case manual && sch.Paused:
			return fmt.Errorf("postgres: schedule %s is paused: %w", p.Name, store.ErrConflict)
		case sch.Version != p.Version:
			return nil // changed since the caller read it
		case !manual && (sch.Paused || !sch.NextRunAt.Equal(p.Tick)):
			return nil // fired by another caller
		}
		if !manual && sch.Overlap == job.OverlapSkip && job.ValidID(sch.LastJobID) {
			// Finished jobs live in jobs_done: a job still in jobs that is
			// not terminal is running (or waiting to).
			var state string
			err := t.queryRow(`SELECT state FROM jobs WHERE id = $1`, sch.LastJobID).Scan(&state)
			if err != nil && !isNoRows(err) {
				return err
			}
			if err == nil && !gantry.State(state).Terminal() {
				sch.NextRunAt, sch.Skipped, sch.LastSkippedAt = p.Next, sch.Skipped+1, p.Now
				if _, err := t.exec(`UPDATE schedules SET next_run_at = $1, skipped = $2, last_skipped_at = $3 WHERE tenant = $4 AND name = $5`,
					t2i(sch.NextRunAt), sch.Skipped, t2i(sch.LastSkippedAt), p.Tenant, p.Name); err != nil {
					return err
				}
				out = store.FireResult{Skipped: true, Schedule: sch}
				return nil
			}
		}
		res, err := t.insertJobs(p.Now, []*job.Job{p.Job})
		if err != nil {
			return err
		}
		if !manual {
			sch.NextRunAt = p.Next
		}
		sch.LastRunAt, sch.LastJobID = p.Now, res[0].Job.ID
		if _, err := t.exec(`UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_job_id = $3 WHERE tenant = $4 AND name = $5`,
			t2i(sch.NextRunAt), t2i(sch.LastRunAt), sch.LastJobID, p.Tenant, p.Name); err != nil {
			return err
		}
		out = store.FireResult{Fired: true, Job: res[0].Job, Created: res[0].Created, Schedule: sch}
		return nil
	})
	if err != nil {
		return store.FireResult{}, err
	}
	return out, nil
}
