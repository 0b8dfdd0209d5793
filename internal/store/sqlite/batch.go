package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

const batchCols = rowscan.BatchCols

var scanBatch = rowscan.Batch

func (tx *wtx) insertBatch(b *job.Batch) error {
	onComplete := ""
	if b.OnComplete != nil {
		onComplete = marshalJSON(b.OnComplete)
	}
	_, err := tx.w.exec(`INSERT INTO batches (id, tenant, name, created_at, closed, on_complete) VALUES (?, ?, ?, ?, ?, ?)`,
		b.ID, b.Tenant, b.Name, t2i(b.CreatedAt), b.Closed, onComplete)
	if err != nil {
		return unavailable("insert batch", err)
	}
	return nil
}

// SettleBatches implements [store.Store]. The SQLite store marks a batch
// done in the transaction that ends its last job, so this finds nothing
// unless a database written otherwise (or by an older version) says so.
func (s *Store) SettleBatches(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	var n int
	err := s.w.do(ctx, func(tx *wtx) error {
		n = 0
		rows, err := tx.w.query(`SELECT id FROM batches b WHERE closed AND NOT done
			AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.id AND jobs.batch_id <> '' AND jobs.state IN `+nonTerminal+`)
			ORDER BY id LIMIT ?`, limit)
		if err != nil {
			return unavailable("settle batches", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return unavailable("settle batches", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("settle batches", err)
		}
		for _, id := range ids {
			if err := tx.terminal(id, now); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// terminal is called whenever a job of batchID became terminal, and when
// the batch closes: if the batch is closed and every job is terminal, it
// becomes done, its on_complete job is enqueued and batch.done emitted.
func (tx *wtx) terminal(batchID string, now time.Time) error {
	if batchID == "" {
		return nil
	}
	b, err := scanBatch(tx.w.queryRow(`SELECT `+batchCols+` FROM batches WHERE id = ?`, batchID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return unavailable("settle batch", err)
	}
	if !b.Closed || b.Done {
		return nil
	}
	var pending bool
	if err := tx.w.queryRow(`SELECT EXISTS (SELECT 1 FROM jobs WHERE batch_id = ? AND batch_id <> '' AND state IN `+nonTerminal+`)`, batchID).Scan(&pending); err != nil {
		return unavailable("settle batch", err)
	}
	if pending {
		return nil
	}
	onCompleteID := ""
	if b.OnComplete != nil {
		spec := *b.OnComplete
		spec.Tenant = b.Tenant
		spec.Normalize(now)
		j := job.NewFromSpec(&spec, job.NewID(now), now)
		res, err := tx.insertJobs(now, []*job.Job{j})
		if err != nil {
			return err
		}
		onCompleteID = res[0].Job.ID
	}
	if _, err := tx.w.exec(`UPDATE batches SET done = 1, finished_at = ?, on_complete_job_id = ? WHERE id = ?`, t2i(now), onCompleteID, batchID); err != nil {
		return unavailable("settle batch", err)
	}
	tx.emit(job.Event{Kind: job.EventBatchDone, At: now, Tenant: b.Tenant, BatchID: b.ID})
	return nil
}

// counts fills b's Total and Counts.
func countBatch(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, b *job.Batch) error {
	rows, err := q.QueryContext(ctx, `SELECT state, count(*) FROM jobs WHERE batch_id = ? AND batch_id <> '' GROUP BY state`, b.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	b.Counts = map[gantry.State]int{}
	b.Total = 0
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return err
		}
		b.Counts[gantry.State(st)] = n
		b.Total += n
	}
	return rows.Err()
}

// GetBatch implements [store.Store].
func (s *Store) GetBatch(ctx context.Context, tenant, id string) (*job.Batch, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	b, err := scanBatch(s.rdb.QueryRowContext(ctx, `SELECT `+batchCols+` FROM batches WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: batch %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get batch", err)
	}
	if err := countBatch(ctx, s.rdb, b); err != nil {
		return nil, unavailable("get batch", err)
	}
	return b, nil
}

// ListBatches implements [store.Store].
func (s *Store) ListBatches(ctx context.Context, p *store.ListBatchesParams) ([]*job.Batch, string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, "", err
	}
	after, err := rowscan.ParseCursor(p.Cursor, "b:")
	if err != nil {
		return nil, "", err
	}
	limit := rowscan.PageSize(p.Limit)
	var where []string
	var args []any
	if p.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, p.Tenant)
	}
	if after != "" {
		where, args = append(where, "id < ?"), append(args, after)
	}
	q := `SELECT ` + batchCols + ` FROM batches`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.rdb.QueryContext(ctx, q, append(args, limit+1)...)
	if err != nil {
		return nil, "", unavailable("list batches", err)
	}
	var out []*job.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			rows.Close()
			return nil, "", unavailable("list batches", err)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", unavailable("list batches", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rowscan.Cursor("b:", out[limit-1].ID)
	}
	for _, b := range out {
		if err := countBatch(ctx, s.rdb, b); err != nil {
			return nil, "", unavailable("list batches", err)
		}
	}
	return out, next, nil
}

// CloseBatch implements [store.Store].
func (s *Store) CloseBatch(ctx context.Context, tenant, id string, now time.Time) (*job.Batch, error) {
	return s.closeBatch(ctx, tenant, id, now, false)
}

// CancelBatch implements [store.Store].
func (s *Store) CancelBatch(ctx context.Context, tenant, id string, now time.Time) (*job.Batch, error) {
	return s.closeBatch(ctx, tenant, id, now, true)
}

func (s *Store) closeBatch(ctx context.Context, tenant, id string, now time.Time, cancel bool) (*job.Batch, error) {
	err := s.w.do(ctx, func(tx *wtx) error {
		var bt string
		err := tx.w.queryRow(`SELECT tenant FROM batches WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant).Scan(&bt)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: batch %s: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return unavailable("close batch", err)
		}
		if _, err := tx.w.exec(`UPDATE batches SET closed = 1 WHERE id = ?`, id); err != nil {
			return unavailable("close batch", err)
		}
		if cancel {
			rows, err := tx.w.query(`SELECT `+jobColsWithAttempts+` FROM jobs WHERE batch_id = ? AND batch_id <> '' AND state IN `+nonTerminal, id)
			if err != nil {
				return unavailable("cancel batch", err)
			}
			var jobs []*job.Job
			for rows.Next() {
				j, err := scanJob(rows, true)
				if err != nil {
					rows.Close()
					return unavailable("cancel batch", err)
				}
				jobs = append(jobs, j)
			}
			rows.Close()
			for _, j := range jobs {
				if _, err := tx.cancel(j, now); err != nil {
					return err
				}
			}
		}
		return tx.terminal(id, now)
	})
	if err != nil {
		return nil, err
	}
	return s.GetBatch(ctx, tenant, id)
}
