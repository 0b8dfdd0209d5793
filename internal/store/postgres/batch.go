package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

const batchCols = rowscan.BatchCols

var scanBatch = rowscan.Batch

func (t *ptx) insertBatch(b *job.Batch) error {
	onComplete := ""
	if b.OnComplete != nil {
		onComplete = marshalJSON(b.OnComplete)
	}
	_, err := t.exec(`INSERT INTO batches (id, tenant, name, created_at, closed, on_complete) VALUES ($1, $2, $3, $4, $5, $6)`,
		b.ID, b.Tenant, b.Name, t2i(b.CreatedAt), b.Closed, onComplete)
	return err
}

// readyBatchesSQL lists closed batches, not yet done, whose jobs have all
// ended: all of them, or those of $1 when it is not empty.
const readyBatchesSQL = `SELECT id FROM batches b WHERE closed AND NOT done
	AND (cardinality($1::text[]) = 0 OR id = ANY($1::text[]))
	AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.id AND jobs.batch_id <> '' AND jobs.state IN ` + nonTerminal + `)
	ORDER BY id LIMIT $2`

// SettleBatches implements [store.Store].
func (s *Store) SettleBatches(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 1000
	}
	return s.settleBatches(ctx, nil, now, limit)
}

// settleBatches marks done the batches of ids (all batches if ids is
// empty) that are closed and whose jobs have all ended, each in its own
// transaction under the batch's row lock (see terminal), and returns how
// many it marked.
func (s *Store) settleBatches(ctx context.Context, ids []string, now time.Time, limit int) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	if ids == nil {
		ids = []string{}
	}
	rows, err := s.pool.Query(ctx, readyBatchesSQL, ids, limit)
	if err != nil {
		return 0, s.wrap("settle batches", err)
	}
	ready, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, s.wrap("settle batches", err)
	}
	n := 0
	for _, id := range ready {
		marked := false
		err := s.write(ctx, "settle batch", func(t *ptx) error {
			var err error
			marked, err = t.settle(id, now)
			return err
		})
		if err != nil {
			return n, err
		}
		if marked {
			n++
		}
	}
	return n, nil
}

// terminal is called whenever a job of batchID became terminal, and when
// the batch closes: if the batch is closed and every job is terminal, it
// becomes done, its on_complete job is enqueued and batch.done emitted.
// It locks the batch row first, so that of two transactions ending a
// batch's last jobs at once, the later sees the earlier's jobs terminal.
func (t *ptx) terminal(batchID string, now time.Time) error {
	_, err := t.settle(batchID, now)
	return err
}

// settle is terminal, reporting whether it marked the batch done.
func (t *ptx) settle(batchID string, now time.Time) (bool, error) {
	if batchID == "" {
		return false, nil
	}
	b, err := scanBatch(t.queryRow(`SELECT `+batchCols+` FROM batches WHERE id = $1 FOR UPDATE`, batchID))
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !b.Closed || b.Done {
		return false, nil
	}
	var pending bool
	if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM jobs WHERE batch_id = $1 AND batch_id <> '' AND state IN `+nonTerminal+`)`, batchID).Scan(&pending); err != nil {
		return false, err
	}
	if pending {
		return false, nil
	}
	onCompleteID := ""
	if b.OnComplete != nil {
		spec := *b.OnComplete
		spec.Tenant = b.Tenant
		spec.Normalize(now)
		j := job.NewFromSpec(&spec, job.NewID(now), now)
		res, err := t.insertJobs(now, []*job.Job{j})
		if err != nil {
			return false, err
		}
		onCompleteID = res[0].Job.ID
	}
	if _, err := t.exec(`UPDATE batches SET done = true, finished_at = $1, on_complete_job_id = $2 WHERE id = $3`, t2i(now), onCompleteID, batchID); err != nil {
		return false, err
	}
	t.emit(job.Event{Kind: job.EventBatchDone, At: now, Tenant: b.Tenant, BatchID: b.ID})
	return true, nil
}

// countBatches fills the batches' Total and Counts.
func (s *Store) countBatches(ctx context.Context, bs []*job.Batch) error {
	if len(bs) == 0 {
		return nil
	}
	ids := make([]string, len(bs))
	byID := make(map[string]*job.Batch, len(bs))
	for i, b := range bs {
		ids[i] = b.ID
		byID[b.ID] = b
		b.Counts, b.Total = map[gantry.State]int{}, 0
	}
	rows, err := s.pool.Query(ctx, `SELECT batch_id, state, count(*) FROM jobs WHERE batch_id = ANY($1::text[]) AND batch_id <> ''
		GROUP BY batch_id, state
		UNION ALL SELECT batch_id, state, count(*) FROM jobs_done WHERE batch_id = ANY($1::text[]) AND batch_id <> ''
		GROUP BY batch_id, state`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, st string
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return err
		}
		b := byID[id]
		b.Counts[gantry.State(st)] += n
		b.Total += n
	}
	return rows.Err()
}

// GetBatch implements [store.Store].
func (s *Store) GetBatch(ctx context.Context, tenant, id string) (*job.Batch, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	b, err := scanBatch(s.pool.QueryRow(ctx, `SELECT `+batchCols+` FROM batches WHERE id = $1 AND ($2 = '' OR tenant = $2)`, id, tenant))
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: batch %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("get batch", err)
	}
	if err := s.countBatches(ctx, []*job.Batch{b}); err != nil {
		return nil, s.wrap("get batch", err)
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
		args = append(args, p.Tenant)
		where = append(where, "tenant = $"+strconv.Itoa(len(args)))
	}
	if after != "" {
		args = append(args, after)
		where = append(where, "id < $"+strconv.Itoa(len(args)))
	}
	q := `SELECT ` + batchCols + ` FROM batches`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", s.wrap("list batches", err)
	}
	var out []*job.Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			rows.Close()
			return nil, "", s.wrap("list batches", err)
		}
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", s.wrap("list batches", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rowscan.Cursor("b:", out[limit-1].ID)
	}
	if err := s.countBatches(ctx, out); err != nil {
		return nil, "", s.wrap("list batches", err)
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
	err := s.write(ctx, "close batch", func(t *ptx) error {
		tag, err := t.exec(`UPDATE batches SET closed = true WHERE id = $1 AND ($2 = '' OR tenant = $2)`, id, tenant)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: batch %s: %w", id, store.ErrNotFound)
		}
		if cancel {
			rows, err := t.query(`SELECT `+jobColsWithAttempts+` FROM jobs WHERE batch_id = $1 AND batch_id <> '' AND state IN `+nonTerminal+`
				ORDER BY jobs.id FOR UPDATE`, id)
			if err != nil {
				return err
			}
			var jobs []*job.Job
			for rows.Next() {
				j, err := scanJob(rows, true)
				if err != nil {
					rows.Close()
					return err
				}
				jobs = append(jobs, j)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, j := range jobs {
				if _, err := t.cancel(j, now); err != nil {
					return err
				}
			}
		}
		return t.terminal(id, now)
	})
	if err != nil {
		return nil, err
	}
	return s.GetBatch(ctx, tenant, id)
}
