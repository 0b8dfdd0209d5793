package sqlite

import (
	"context"
	"fmt"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// ReadEvents implements [store.Store].
func (s *Store) ReadEvents(ctx context.Context, after int64, limit int) ([]job.Event, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT first_seq, data FROM event_chunks WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, unavailable("read events", err)
	}
	defer rows.Close()
	var out []job.Event
	for rows.Next() && len(out) < limit {
		var first int64
		var data []byte
		if err := rows.Scan(&first, &data); err != nil {
			return nil, unavailable("read events", err)
		}
		if out, err = rowscan.DecodeChunk(out, data, first, after); err != nil {
			return nil, fmt.Errorf("sqlite: read events: chunk from %d: %w", first, err)
		}
		if len(out) > limit {
			out = out[:limit]
		}
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("read events", err)
	}
	return out, nil
}

// EventBounds implements [store.Store].
func (s *Store) EventBounds(ctx context.Context) (oldest, newest int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, err
	}
	if err := s.rdb.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event_seq'`).Scan(&newest); err != nil {
		return 0, 0, unavailable("event bounds", err)
	}
	if newest == 0 {
		return 0, 0, nil
	}
	err = s.rdb.QueryRowContext(ctx, `SELECT first_seq FROM event_chunks ORDER BY seq LIMIT 1`).Scan(&oldest)
	if isNoRows(err) {
		return newest + 1, newest, nil
	}
	if err != nil {
		return 0, 0, unavailable("event bounds", err)
	}
	return oldest, newest, nil
}

// Retain implements [store.Store].
func (s *Store) Retain(ctx context.Context, p *store.RetainParams) (store.RetainResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var r store.RetainResult
	err := s.w.do(ctx, func(tx *wtx) error {
		r = store.RetainResult{}
		if !p.JobsBefore.IsZero() {
			res, err := tx.w.exec(`DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs
				WHERE state IN ('succeeded', 'failed', 'canceled') AND finished_at < ? ORDER BY finished_at LIMIT ?)`,
				t2i(p.JobsBefore), limit)
			if err != nil {
				return unavailable("retain jobs", err)
			}
			n, _ := res.RowsAffected()
			r.Jobs = int(n)
			res, err = tx.w.exec(`DELETE FROM batches WHERE done = 1 AND finished_at < ?
				AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id)`, t2i(p.JobsBefore))
			if err != nil {
				return unavailable("retain batches", err)
			}
			n, _ = res.RowsAffected()
			r.Batches = int(n)
		}
		if !p.EventsBefore.IsZero() {
			// Chunks are appended in time order: delete from the oldest up to
			// the first one young enough to keep.
			var keep int64
			err := tx.w.queryRow(`SELECT seq FROM event_chunks WHERE at >= ? ORDER BY seq LIMIT 1`, t2i(p.EventsBefore)).Scan(&keep)
			if isNoRows(err) {
				keep = tx.w.seq + 1
			} else if err != nil {
				return unavailable("retain events", err)
			}
			var n int
			if err := tx.w.queryRow(`SELECT coalesce(sum(seq - first_seq + 1), 0) FROM event_chunks WHERE seq < ?`, keep).Scan(&n); err != nil {
				return unavailable("retain events", err)
			}
			if _, err := tx.w.exec(`DELETE FROM event_chunks WHERE seq < ?`, keep); err != nil {
				return unavailable("retain events", err)
			}
			r.Events = n
		}
		return nil
	})
	return r, err
}
