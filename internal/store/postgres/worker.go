package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

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
	return s.write(ctx, "register worker", func(t *ptx) error {
		_, err := t.exec(`INSERT INTO workers (`+workerCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			w.ID, w.Tenant, w.Name, w.Host, rowscan.JSONSlice(w.Types), rowscan.JSONSlice(w.Queues), w.Capacity,
			rowscan.JSONMap(w.Labels), w.LeaseTTL.Milliseconds(), w.State, t2i(w.CreatedAt), t2i(seen), t2i(seen), int64(0))
		t.after = append(t.after, func() { s.sightings.forget(w.ID) })
		return err
	})
}

// fillWorkerJobs sets Running, JobIDs and IdleSince from the running jobs.
func (s *Store) fillWorkerJobs(ctx context.Context, ws []*job.Worker) error {
	if len(ws) == 0 {
		return nil
	}
	ids := make([]string, len(ws))
	byID := make(map[string]*job.Worker, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
		byID[w.ID] = w
	}
	rows, err := s.pool.Query(ctx, `SELECT worker_id, id::text FROM jobs WHERE lease_expires_at > 0 AND state = 'running' AND worker_id = ANY($1::text[]) ORDER BY jobs.id`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var wid, id string
		if err := rows.Scan(&wid, &id); err != nil {
			return err
		}
		if w := byID[wid]; w != nil {
			w.JobIDs = append(w.JobIDs, id)
			w.Running++
		}
	}
	for _, w := range ws {
		if w.Running > 0 {
			w.IdleSince = time.Time{}
		}
	}
	return rows.Err()
}

// GetWorker implements [store.Store].
func (s *Store) GetWorker(ctx context.Context, id string) (*job.Worker, error) {
	w, err := s.LookupWorker(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.fillWorkerJobs(ctx, []*job.Worker{w}); err != nil {
		return nil, s.wrap("get worker", err)
	}
	return w, nil
}

// LookupWorker implements [store.Store]. The engine reads its workers this
// way every few seconds each: looking for a worker's running jobs walks
// the jobs_lease index, whose dead entries (of jobs that finished or
// renewed since the last vacuum) made that 40–370 ms a read under load.
func (s *Store) LookupWorker(ctx context.Context, id string) (*job.Worker, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	w, err := scanWorker(s.pool.QueryRow(ctx, `SELECT `+workerCols+` FROM workers WHERE id = $1`, id))
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: worker %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("get worker", err)
	}
	return w, nil
}

// ListWorkers implements [store.Store].
func (s *Store) ListWorkers(ctx context.Context, tenant string) ([]*job.Worker, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+workerCols+` FROM workers WHERE $1 = '' OR tenant = $1 ORDER BY created_at, id`, tenant)
	if err != nil {
		return nil, s.wrap("list workers", err)
	}
	var out []*job.Worker
	for rows.Next() {
		w, err := scanWorker(rows)
		if err != nil {
			rows.Close()
			return nil, s.wrap("list workers", err)
		}
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list workers", err)
	}
	if err := s.fillWorkerJobs(ctx, out); err != nil {
		return nil, s.wrap("list workers", err)
	}
	return out, nil
}

// DrainWorker implements [store.Store].
func (s *Store) DrainWorker(ctx context.Context, id string, now time.Time) (*job.Worker, error) {
	err := s.write(ctx, "drain worker", func(t *ptx) error {
		tag, err := t.exec(`UPDATE workers SET state = 'draining', drained_at = CASE WHEN drained_at = 0 THEN $1 ELSE drained_at END WHERE id = $2`, t2i(now), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: worker %s: %w", id, store.ErrNotFound)
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
	err := s.write(ctx, "delete worker", func(t *ptx) error {
		out = nil
		tag, err := t.exec(`DELETE FROM workers WHERE id = $1`, id)
		if err != nil {
			return err
		}
		t.after = append(t.after, func() { s.sightings.forget(id) })
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: worker %s: %w", id, store.ErrNotFound)
		}
		jobs, err := t.runningJobs(`worker_id = $1 ORDER BY jobs.id FOR UPDATE`, id)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			state, kind := gantry.StateQueued, job.EventQueued
			if j.CancelRequested {
				state, kind = gantry.StateCanceled, job.EventCanceled
			}
			ok, err := t.endAttempt(j, now, state, job.OutcomeReleased, kind, "", true)
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
	err := s.write(ctx, "prune workers", func(t *ptx) error {
		tag, err := t.exec(`DELETE FROM workers WHERE last_seen < $1 AND NOT EXISTS (
			SELECT 1 FROM jobs WHERE jobs.lease_expires_at > 0 AND jobs.state = 'running' AND jobs.worker_id = workers.id)`, t2i(before))
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return nil
	})
	return n, err
}

// SetQueuePaused implements [store.Store].
func (s *Store) SetQueuePaused(ctx context.Context, tenant, name string, paused bool) (*job.Queue, error) {
	err := s.write(ctx, "pause queue", func(t *ptx) error {
		if _, err := t.exec(`INSERT INTO queues (tenant, name, paused) VALUES ($1, $2, $3)
			ON CONFLICT (tenant, name) DO UPDATE SET paused = excluded.paused`, tenant, name, paused); err != nil {
			return err
		}
		tq := tenantQueue{tenant, name}
		t.after = append(t.after, func() { s.queues.Store(tq, struct{}{}) })
		if !paused {
			t.jobsAvailable = true
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
		return nil, fmt.Errorf("postgres: queue %s: %w", name, store.ErrNotFound)
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
	rows, err := s.pool.Query(ctx, `SELECT tenant, name, paused FROM queues
		WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR name = $2) ORDER BY tenant, name`, tenant, name)
	if err != nil {
		return nil, s.wrap("list queues", err)
	}
	var out []*job.Queue
	for rows.Next() {
		q := &job.Queue{Counts: map[gantry.State]int{}}
		if err := rows.Scan(&q.Tenant, &q.Name, &q.Paused); err != nil {
			rows.Close()
			return nil, s.wrap("list queues", err)
		}
		out = append(out, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list queues", err)
	}
	for _, q := range out {
		crows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM jobs WHERE tenant = $1 AND queue = $2 GROUP BY state
			UNION ALL SELECT state, count(*) FROM jobs_done WHERE tenant = $1 AND queue = $2 GROUP BY state`, q.Tenant, q.Name)
		if err != nil {
			return nil, s.wrap("list queues", err)
		}
		for crows.Next() {
			var st string
			var n int
			if err := crows.Scan(&st, &n); err != nil {
				crows.Close()
				return nil, s.wrap("list queues", err)
			}
			q.Counts[gantry.State(st)] += n
		}
		crows.Close()
		if err := crows.Err(); err != nil {
			return nil, s.wrap("list queues", err)
		}
		var oldest *int64
		if err := s.pool.QueryRow(ctx, `SELECT min(created_at) FROM jobs WHERE state = 'queued' AND tenant = $1 AND queue = $2`, q.Tenant, q.Name).Scan(&oldest); err != nil {
			return nil, s.wrap("list queues", err)
		}
		if oldest != nil {
			q.OldestQueued = i2t(*oldest)
		}
	}
	return out, nil
}
