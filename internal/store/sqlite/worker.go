package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

const workerCols = rowscan.WorkerCols

var scanWorker = rowscan.Worker

// RegisterWorker implements [store.Store].
func (s *Store) RegisterWorker(ctx context.Context, w *job.Worker) error {
	if w.State == "" {
		w.State = job.WorkerActive
	}
	seen := w.LastSeen
	if seen.IsZero() {
		seen = w.CreatedAt
	}
	return s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.w.exec(`INSERT INTO workers (`+workerCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.Tenant, w.Name, w.Host, rowscan.JSONSlice(w.Types), rowscan.JSONSlice(w.Queues), w.Capacity,
			rowscan.JSONMap(w.Labels), w.LeaseTTL.Milliseconds(), w.State, t2i(w.CreatedAt), t2i(seen), t2i(seen), 0)
		if err != nil {
			return unavailable("register worker", err)
		}
		return nil
	})
}

// runningJobsQuery reads the running jobs through the jobs_lease partial
// index, never the whole table: that keeps finished jobs for the retention
// period, and GetWorker runs whenever a server refreshes a worker it has
// cached, for every worker. (An ORDER BY rowid would make SQLite scan the
// table, so the rows are sorted here.)
const runningJobsQuery = `SELECT rowid, worker_id, id FROM jobs WHERE state = 'running'`

// workerJobsQuery is runningJobsQuery for one worker.
const workerJobsQuery = runningJobsQuery + ` AND worker_id = ?`

// fillWorkerJobs sets Running, JobIDs (oldest job first) and IdleSince
// from the running jobs.
func (s *Store) fillWorkerJobs(ctx context.Context, ws []*job.Worker) error {
	if len(ws) == 0 {
		return nil
	}
	byID := make(map[string]*job.Worker, len(ws))
	for _, w := range ws {
		byID[w.ID] = w
	}
	query, args := runningJobsQuery, []any(nil)
	if len(ws) == 1 {
		query, args = workerJobsQuery, []any{ws[0].ID}
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	type running struct {
		rowid   int64
		wid, id string
	}
	var rs []running
	for rows.Next() {
		var r running
		if err := rows.Scan(&r.rowid, &r.wid, &r.id); err != nil {
			return err
		}
		if byID[r.wid] != nil {
			rs = append(rs, r)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	slices.SortFunc(rs, func(a, b running) int { return cmp.Compare(a.rowid, b.rowid) })
	for _, r := range rs {
		w := byID[r.wid]
		w.JobIDs = append(w.JobIDs, r.id)
		w.Running++
	}
	for _, w := range ws {
		if w.Running > 0 {
			w.IdleSince = time.Time{}
		}
	}
	return nil
}

// GetWorker implements [store.Store].
func (s *Store) GetWorker(ctx context.Context, id string) (*job.Worker, error) {
	w, err := s.LookupWorker(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.fillWorkerJobs(ctx, []*job.Worker{w}); err != nil {
		return nil, unavailable("get worker", err)
	}
	return w, nil
}

// LookupWorker implements [store.Store].
func (s *Store) LookupWorker(ctx context.Context, id string) (*job.Worker, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	w, err := scanWorker(s.rdb.QueryRowContext(ctx, `SELECT `+workerCols+` FROM workers WHERE id = ?`, id))
	if isNoRows(err) {
		return nil, fmt.Errorf("sqlite: worker %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get worker", err)
	}
	return w, nil
}

// ListWorkers implements [store.Store].
func (s *Store) ListWorkers(ctx context.Context, tenant string) ([]*job.Worker, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+workerCols+` FROM workers WHERE ? = '' OR tenant = ? ORDER BY created_at, id`, tenant, tenant)
	if err != nil {
		return nil, unavailable("list workers", err)
	}
	var out []*job.Worker
	for rows.Next() {
		w, err := scanWorker(rows)
		if err != nil {
			rows.Close()
			return nil, unavailable("list workers", err)
		}
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, unavailable("list workers", err)
	}
	if err := s.fillWorkerJobs(ctx, out); err != nil {
		return nil, unavailable("list workers", err)
	}
	return out, nil
}

// DrainWorker implements [store.Store].
func (s *Store) DrainWorker(ctx context.Context, id string, now time.Time) (*job.Worker, error) {
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`UPDATE workers SET state = 'draining', drained_at = CASE WHEN drained_at = 0 THEN ? ELSE drained_at END WHERE id = ?`, t2i(now), id)
		if err != nil {
			return unavailable("drain worker", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: worker %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetWorker(ctx, id)
}

// DeleteWorker implements [store.Store].
func (s *Store) DeleteWorker(ctx context.Context, id string, now time.Time) ([]*job.Job, error) {
	var out []*job.Job
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil
		res, err := tx.w.exec(`DELETE FROM workers WHERE id = ?`, id)
		if err != nil {
			return unavailable("delete worker", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: worker %s: %w", id, store.ErrNotFound)
		}
		ids, jobs, err := tx.runningJobs(`worker_id = ?`, id)
		if err != nil {
			return unavailable("delete worker", err)
		}
		for i, j := range jobs {
			state, kind := gantry.StateQueued, job.EventQueued
			if j.CancelRequested {
				state, kind = gantry.StateCanceled, job.EventCanceled
			}
			ok, err := tx.endAttempt(ids[i], j, now, state, job.OutcomeReleased, kind, nil, "", time.Time{}, true)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PruneWorkers implements [store.Store].
func (s *Store) PruneWorkers(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`DELETE FROM workers WHERE last_seen < ? AND NOT EXISTS (
			SELECT 1 FROM jobs WHERE jobs.state = 'running' AND jobs.worker_id = workers.id)`, t2i(before))
		if err != nil {
			return unavailable("prune workers", err)
		}
		m, _ := res.RowsAffected()
		n = int(m)
		return nil
	})
	return n, err
}

// SetQueuePaused implements [store.Store].
func (s *Store) SetQueuePaused(ctx context.Context, tenant, name string, paused bool) (*job.Queue, error) {
	err := s.w.do(ctx, func(tx *wtx) error {
		if _, err := tx.w.exec(`INSERT INTO queues (tenant, name, paused) VALUES (?, ?, ?)
			ON CONFLICT (tenant, name) DO UPDATE SET paused = excluded.paused`, tenant, name, paused); err != nil {
			return unavailable("pause queue", err)
		}
		tq := tenantQueue{tenant, name}
		tx.after = append(tx.after, func() { tx.w.queues[tq] = paused })
		if !paused {
			tx.jobsAvailable = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	qs, err := s.listQueues(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("sqlite: queue %s: %w", name, store.ErrNotFound)
	}
	return qs[0], nil
}

// ListQueues implements [store.Store].
func (s *Store) ListQueues(ctx context.Context, tenant string) ([]*job.Queue, error) {
	return s.listQueues(ctx, tenant, "")
}

func (s *Store) listQueues(ctx context.Context, tenant, name string) ([]*job.Queue, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT tenant, name, paused FROM queues
		WHERE (?1 = '' OR tenant = ?1) AND (?2 = '' OR name = ?2) ORDER BY tenant, name`, tenant, name)
	if err != nil {
		return nil, unavailable("list queues", err)
	}
	var out []*job.Queue
	for rows.Next() {
		q := &job.Queue{Counts: map[gantry.State]int{}}
		if err := rows.Scan(&q.Tenant, &q.Name, &q.Paused); err != nil {
			rows.Close()
			return nil, unavailable("list queues", err)
		}
		out = append(out, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, unavailable("list queues", err)
	}
	for _, q := range out {
		crows, err := s.rdb.QueryContext(ctx, `SELECT state, count(*) FROM jobs WHERE tenant = ? AND queue = ? GROUP BY state`, q.Tenant, q.Name)
		if err != nil {
			return nil, unavailable("list queues", err)
		}
		for crows.Next() {
			var st string
			var n int
			if err := crows.Scan(&st, &n); err != nil {
				crows.Close()
				return nil, unavailable("list queues", err)
			}
			q.Counts[gantry.State(st)] = n
		}
		crows.Close()
		var oldest sql.NullInt64
		if err := s.rdb.QueryRowContext(ctx, `SELECT min(created_at) FROM jobs WHERE state = 'queued' AND tenant = ? AND queue = ?`, q.Tenant, q.Name).Scan(&oldest); err != nil {
			return nil, unavailable("list queues", err)
		}
		q.OldestQueued = i2t(oldest.Int64)
	}
	return out, nil
}
