package sqlite

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

// getSchedule reads a schedule in the writer's transaction.
func (tx *wtx) getSchedule(tenant, name string) (*job.Schedule, error) {
	s, err := rowscan.Schedule(tx.w.queryRow(`SELECT `+scheduleCols+` FROM schedules WHERE tenant = ? AND name = ?`, tenant, name))
	if isNoRows(err) {
		return nil, fmt.Errorf("sqlite: schedule %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get schedule", err)
	}
	return s, nil
}

// PutSchedule implements [store.Store].
func (s *Store) PutSchedule(ctx context.Context, sch *job.Schedule) (*job.Schedule, bool, error) {
	var out *job.Schedule
	var created bool
	err := s.w.do(ctx, func(tx *wtx) error {
		var n job.Schedule
		old, err := tx.getSchedule(sch.Tenant, sch.Name)
		if errors.Is(err, store.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		n, created = store.PutScheduleRecord(old, sch)
		if _, err := tx.w.exec(`INSERT INTO schedules (`+scheduleCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant, name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, spec = excluded.spec,
			overlap = excluded.overlap, paused = excluded.paused, version = excluded.version, next_run_at = excluded.next_run_at,
			updated_at = excluded.updated_at`,
			n.Tenant, n.Name, n.Cron, n.Timezone, rowscan.ScheduleSpec(&n), n.Overlap, n.Paused, n.Version, t2i(n.NextRunAt),
			t2i(n.LastRunAt), n.LastJobID, n.Skipped, t2i(n.LastSkippedAt), t2i(n.CreatedAt), t2i(n.UpdatedAt)); err != nil {
			return unavailable("put schedule", err)
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
	sch, err := rowscan.Schedule(s.rdb.QueryRowContext(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE tenant = ? AND name = ?`, tenant, name))
	if isNoRows(err) {
		return nil, fmt.Errorf("sqlite: schedule %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get schedule", err)
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
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+scheduleCols+` FROM schedules
		WHERE (?1 = '' OR tenant = ?1) AND (?2 = '' OR (tenant, name) > (?3, ?4))
		ORDER BY tenant, name LIMIT ?5`, p.Tenant, after, aTenant, aName, limit+1)
	if err != nil {
		return nil, "", unavailable("list schedules", err)
	}
	defer rows.Close()
	var out []*job.Schedule
	for rows.Next() {
		sch, err := rowscan.Schedule(rows)
		if err != nil {
			return nil, "", unavailable("list schedules", err)
		}
		out = append(out, sch)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable("list schedules", err)
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
	return s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`DELETE FROM schedules WHERE tenant = ? AND name = ?`, tenant, name)
		if err != nil {
			return unavailable("delete schedule", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: schedule %s: %w", name, store.ErrNotFound)
		}
		return nil
	})
}

// SetSchedulePaused implements [store.Store].
func (s *Store) SetSchedulePaused(ctx context.Context, p *store.PauseScheduleParams) (*job.Schedule, error) {
	var out *job.Schedule
	err := s.w.do(ctx, func(tx *wtx) error {
		sch, err := tx.getSchedule(p.Tenant, p.Name)
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
		if _, err := tx.w.exec(`UPDATE schedules SET paused = ?, version = ?, next_run_at = ?, updated_at = ? WHERE tenant = ? AND name = ?`,
			sch.Paused, sch.Version, t2i(sch.NextRunAt), t2i(sch.UpdatedAt), p.Tenant, p.Name); err != nil {
			return unavailable("pause schedule", err)
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
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+scheduleCols+` FROM schedules
		WHERE paused = 0 AND next_run_at > 0 AND next_run_at <= ? ORDER BY next_run_at LIMIT ?`, t2i(now), limit)
	if err != nil {
		return nil, time.Time{}, unavailable("due schedules", err)
	}
	defer rows.Close()
	var out []*job.Schedule
	for rows.Next() {
		sch, err := rowscan.Schedule(rows)
		if err != nil {
			return nil, time.Time{}, unavailable("due schedules", err)
		}
		out = append(out, sch)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, unavailable("due schedules", err)
	}
	var next int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(min(next_run_at), 0) FROM schedules
		WHERE paused = 0 AND next_run_at > ?`, t2i(now)).Scan(&next); err != nil {
		return nil, time.Time{}, unavailable("due schedules", err)
	}
	return out, i2t(next), nil
}

// FireSchedule implements [store.Store].
func (s *Store) FireSchedule(ctx context.Context, p *store.FireScheduleParams) (store.FireResult, error) {
	var out store.FireResult
	err := s.w.do(ctx, func(tx *wtx) error {
		out = store.FireResult{}
		sch, err := tx.getSchedule(p.Tenant, p.Name)
		if err != nil {
			return err
		}
		manual := p.Tick.IsZero()
		switch {
		case manual && sch.Paused:
			return fmt.Errorf("sqlite: schedule %s is paused: %w", p.Name, store.ErrConflict)
		case sch.Version != p.Version:
			return nil // changed since the caller read it
		case !manual && (sch.Paused || !sch.NextRunAt.Equal(p.Tick)):
			return nil // fired by another caller
		}
		if !manual && sch.Overlap == job.OverlapSkip && sch.LastJobID != "" {
			var state string
			err := tx.w.queryRow(`SELECT state FROM jobs WHERE id = ?`, sch.LastJobID).Scan(&state)
			if err != nil && !isNoRows(err) {
				return unavailable("fire schedule", err)
			}
			if err == nil && !gantry.State(state).Terminal() {
				sch.NextRunAt, sch.Skipped, sch.LastSkippedAt = p.Next, sch.Skipped+1, p.Now
				if _, err := tx.w.exec(`UPDATE schedules SET next_run_at = ?, skipped = ?, last_skipped_at = ? WHERE tenant = ? AND name = ?`,
					t2i(sch.NextRunAt), sch.Skipped, t2i(sch.LastSkippedAt), p.Tenant, p.Name); err != nil {
					return unavailable("fire schedule", err)
				}
				out = store.FireResult{Skipped: true, Schedule: sch}
				return nil
			}
		}
		res, err := tx.insertJobs(p.Now, []*job.Job{p.Job})
		if err != nil {
			return err
		}
		if !manual {
			sch.NextRunAt = p.Next
		}
		sch.LastRunAt, sch.LastJobID = p.Now, res[0].Job.ID
		if _, err := tx.w.exec(`UPDATE schedules SET next_run_at = ?, last_run_at = ?, last_job_id = ? WHERE tenant = ? AND name = ?`,
			t2i(sch.NextRunAt), t2i(sch.LastRunAt), sch.LastJobID, p.Tenant, p.Name); err != nil {
			return unavailable("fire schedule", err)
		}
		out = store.FireResult{Fired: true, Job: res[0].Job, Created: res[0].Created, Schedule: sch}
		return nil
	})
	if err != nil {
		return store.FireResult{}, err
	}
	return out, nil
}
