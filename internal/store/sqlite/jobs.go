package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

const insertJobSQL = `INSERT INTO jobs (id, tenant, type, name, queue, priority, params, package,
	batch_id, run_at, max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, state, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const nonTerminal = `('scheduled', 'queued', 'running', 'retrying')`

// InsertJobs implements [store.Store].
func (s *Store) InsertJobs(ctx context.Context, p *store.InsertJobsParams) ([]store.InsertResult, error) {
	var out []store.InsertResult
	err := s.w.do(ctx, func(tx *wtx) error {
		out = out[:0]
		if p.NewBatch != nil {
			if err := tx.insertBatch(p.NewBatch); err != nil {
				return err
			}
		}
		if p.AddToBatch != "" {
			tenant := ""
			if len(p.Jobs) > 0 {
				tenant = p.Jobs[0].Tenant
			}
			var closed bool
			err := tx.w.queryRow(`SELECT closed FROM batches WHERE id = ? AND (? = '' OR tenant = ?)`, p.AddToBatch, tenant, tenant).Scan(&closed)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: batch %s: %w", p.AddToBatch, store.ErrNotFound)
			}
			if err != nil {
				return unavailable("insert jobs", err)
			}
			if closed {
				return fmt.Errorf("sqlite: batch %s is closed: %w", p.AddToBatch, store.ErrConflict)
			}
		}
		if p.AddToBatch != "" {
			for _, j := range p.Jobs {
				j.BatchID = p.AddToBatch
			}
		}
		res, err := tx.insertJobs(p.Now, p.Jobs)
		if err != nil {
			return err
		}
		out = res
		if p.NewBatch != nil && p.NewBatch.Closed {
			// A closed batch whose jobs all matched existing ones by
			// unique key (or that has none) is done at once.
			return tx.terminal(p.NewBatch.ID, p.Now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertJobs inserts jobs, resolving unique keys, and emits their events.
func (tx *wtx) insertJobs(now time.Time, jobs []*job.Job) ([]store.InsertResult, error) {
	out := make([]store.InsertResult, 0, len(jobs))
	var seen map[[2]string]*job.Job
	tx.expectEvents(len(jobs))
	for _, j := range jobs {
		if j.UniqueKey != "" {
			k := [2]string{j.Tenant, j.UniqueKey}
			if prev, ok := seen[k]; ok {
				out = append(out, store.InsertResult{Job: prev})
				continue
			}
			existing, err := scanJob(tx.w.queryRow(`SELECT `+jobCols+` FROM jobs WHERE tenant = ? AND unique_key = ? AND unique_key <> '' AND state IN `+nonTerminal, j.Tenant, j.UniqueKey), false)
			if err == nil {
				out = append(out, store.InsertResult{Job: existing})
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, unavailable("insert jobs", err)
			}
			if seen == nil {
				seen = map[[2]string]*job.Job{}
			}
			seen[k] = j
		}
		if j.UniqueKey != "" {
			// Later jobs of this call look this key up: insert now.
			if err := tx.flushInserts(); err != nil {
				return nil, err
			}
		}
		if j.SingletonKey != "" {
			tx.w.singletons = true
		}
		tx.pending = append(tx.pending, j.ID, j.Tenant, j.Type, j.Name, j.Queue, j.Priority,
			nullBytes(j.Params), j.Package, j.BatchID, t2i(j.RunAt), j.MaxAttempts, j.Timeout.Milliseconds(),
			j.UniqueKey, j.SingletonKey, rowscan.JSONSlice(j.Tags), rowscan.JSONMap(j.Metadata), string(j.State), t2i(j.CreatedAt))
		if len(tx.pending) == insertChunk*insertCols {
			if err := tx.flushInserts(); err != nil {
				return nil, err
			}
		}
		if err := tx.noteQueue(j.Tenant, j.Queue); err != nil {
			return nil, unavailable("insert jobs", err)
		}
		tx.emit(job.EventFor(job.EventSubmitted, j, now))
		if j.State == gantry.StateQueued {
			tx.jobsAvailable = true
		}
		out = append(out, store.InsertResult{Job: j, Created: true})
	}
	if err := tx.flushInserts(); err != nil {
		return nil, err
	}
	return out, nil
}

// insertChunk is the most rows one INSERT statement carries; insertCols is
// the number of values per row.
const (
	insertChunk = 64
	insertCols  = 18
)

// flushInserts inserts the rows queued in tx.pending with one multi-row
// INSERT (statements are prepared once per row count).
func (tx *wtx) flushInserts() error {
	if len(tx.pending) == 0 {
		return nil
	}
	n := len(tx.pending) / insertCols
	q := insertJobSQL
	if n > 1 {
		q += strings.Repeat(", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", n-1)
	}
	_, err := tx.w.exec(q, tx.pending...)
	clear(tx.pending)
	tx.pending = tx.pending[:0]
	if err != nil {
		return unavailable("insert jobs", err)
	}
	return nil
}

// GetJob implements [store.Store].
func (s *Store) GetJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	j, err := scanJob(s.rdb.QueryRowContext(ctx, `SELECT `+jobColsWithAttempts+` FROM jobs WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get job", err)
	}
	return j, nil
}

// getJobTx reads a job inside the write transaction.
func (tx *wtx) getJob(tenant, id string) (*job.Job, error) {
	j, err := scanJob(tx.w.queryRow(`SELECT `+jobColsWithAttempts+` FROM jobs WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get job", err)
	}
	return j, nil
}

// ListJobs implements [store.Store].
func (s *Store) ListJobs(ctx context.Context, p *store.ListJobsParams) ([]*job.Job, string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, "", err
	}
	after, err := rowscan.ParseCursor(p.Cursor, "j:")
	if err != nil {
		return nil, "", err
	}
	limit := rowscan.PageSize(p.Limit)
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if p.Tenant != "" {
		add("tenant = ?", p.Tenant)
	}
	if p.State != "" {
		add("state = ?", string(p.State))
	}
	if p.Type != "" {
		add("type = ?", p.Type)
	}
	if p.Queue != "" {
		add("queue = ?", p.Queue)
	}
	if p.BatchID != "" {
		add("batch_id = ? AND batch_id <> ''", p.BatchID)
	}
	if p.Tag != "" {
		add("tags <> '' AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?)", p.Tag)
	}
	if after != "" {
		add("id < ?", after)
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", unavailable("list jobs", err)
	}
	defer rows.Close()
	var out []*job.Job
	for rows.Next() {
		j, err := scanJob(rows, false)
		if err != nil {
			return nil, "", unavailable("list jobs", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", unavailable("list jobs", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rowscan.Cursor("j:", out[limit-1].ID)
	}
	return out, next, nil
}

// DeleteJob implements [store.Store].
func (s *Store) DeleteJob(ctx context.Context, tenant, id string) error {
	return s.w.do(ctx, func(tx *wtx) error {
		j, err := tx.getJob(tenant, id)
		if err != nil {
			return err
		}
		if !j.State.Terminal() {
			return fmt.Errorf("sqlite: job %s is %s: %w", id, j.State, store.ErrConflict)
		}
		if _, err := tx.w.exec(`DELETE FROM jobs WHERE id = ?`, id); err != nil {
			return unavailable("delete job", err)
		}
		return nil
	})
}

// CancelJob implements [store.Store].
func (s *Store) CancelJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error) {
	var out *job.Job
	err := s.w.do(ctx, func(tx *wtx) error {
		j, err := tx.getJob(tenant, id)
		if err != nil {
			return err
		}
		out, err = tx.cancel(j, now)
		return err
	})
	return out, err
}

// cancel cancels j (read in this transaction) as CancelJob describes.
func (tx *wtx) cancel(j *job.Job, now time.Time) (*job.Job, error) {
	switch {
	case j.State.Terminal():
		return nil, fmt.Errorf("sqlite: job %s is %s: %w", j.ID, j.State, store.ErrConflict)
	case j.State == gantry.StateRunning:
		if _, err := tx.w.exec(`UPDATE jobs SET cancel_requested = 1 WHERE id = ?`, j.ID); err != nil {
			return nil, unavailable("cancel job", err)
		}
		j.CancelRequested = true
		return j, nil
	}
	if _, err := tx.w.exec(`UPDATE jobs SET state = 'canceled', finished_at = ? WHERE id = ?`, t2i(now), j.ID); err != nil {
		return nil, unavailable("cancel job", err)
	}
	j.State, j.FinishedAt = gantry.StateCanceled, now
	tx.emit(job.EventFor(job.EventCanceled, j, now))
	if err := tx.terminal(j.BatchID, now); err != nil {
		return nil, err
	}
	return j, nil
}

// RetryJob implements [store.Store].
func (s *Store) RetryJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error) {
	var out *job.Job
	err := s.w.do(ctx, func(tx *wtx) error {
		j, err := tx.getJob(tenant, id)
		if err != nil {
			return err
		}
		if j.State != gantry.StateFailed && j.State != gantry.StateCanceled {
			return fmt.Errorf("sqlite: job %s is %s: %w", id, j.State, store.ErrConflict)
		}
		if j.UniqueKey != "" {
			var n int
			if err := tx.w.queryRow(`SELECT count(*) FROM jobs WHERE tenant = ? AND unique_key = ? AND unique_key <> '' AND state IN `+nonTerminal, j.Tenant, j.UniqueKey).Scan(&n); err != nil {
				return unavailable("retry job", err)
			}
			if n > 0 {
				return fmt.Errorf("sqlite: job %s: another job holds unique key %q: %w", id, j.UniqueKey, store.ErrConflict)
			}
		}
		// The attempt that ended the job joins the attempts array.
		var aOutcome string
		if err := tx.w.queryRow(`SELECT attempt_outcome FROM jobs WHERE id = ?`, id).Scan(&aOutcome); err != nil {
			return unavailable("retry job", err)
		}
		aj := ""
		if n := len(j.Attempts); aOutcome != "" && n > 0 {
			b, _ := json.Marshal(j.Attempts[n-1])
			aj = string(b)
		}
		if _, err := tx.w.exec(`UPDATE jobs SET state = 'queued', attempt_base = attempt, finished_at = 0, error = '',
			result = NULL, cancel_requested = 0, attempt_outcome = '',
			attempts = CASE WHEN ?1 = '' THEN attempts ELSE json_insert(attempts, '$[#]', json(?1)) END
			WHERE id = ?2`, aj, id); err != nil {
			return unavailable("retry job", err)
		}
		j.State, j.AttemptBase, j.FinishedAt, j.Error, j.Result, j.CancelRequested = gantry.StateQueued, j.Attempt, time.Time{}, "", nil, false
		tx.emit(job.EventFor(job.EventQueued, j, now))
		tx.jobsAvailable = true
		out = j
		return nil
	})
	return out, err
}

func marshalJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
