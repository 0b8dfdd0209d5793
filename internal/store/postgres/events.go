package postgres

import (
	"context"
	"encoding/json"
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
	rows, err := s.pool.Query(ctx, `SELECT first_seq, data FROM event_chunks WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, s.wrap("read events", err)
	}
	defer rows.Close()
	var out []job.Event
	for rows.Next() && len(out) < limit {
		var (
			first int64
			data  []byte
		)
		if err := rows.Scan(&first, &data); err != nil {
			return nil, s.wrap("read events", err)
		}
		if out, err = decodeChunk(out, data, first, after); err != nil {
			return nil, fmt.Errorf("postgres: read events: chunk from %d: %w", first, err)
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("read events", err)
	}
	return out, nil
}

// decodeChunk appends the events of a chunk numbered from first with Seq >
// after to out. Chunks are written by rowscan.EncodeChunk; those of
// versions before 0.3 are JSON arrays of events carrying their numbers.
func decodeChunk(out []job.Event, data []byte, first, after int64) ([]job.Event, error) {
	if len(data) == 0 || data[0] != '[' {
		return rowscan.DecodeChunk(out, data, first, after)
	}
	var chunk []job.Event
	if err := json.Unmarshal(data, &chunk); err != nil {
		return out, err
	}
	for _, e := range chunk {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, nil
}

// EventBounds implements [store.Store].
func (s *Store) EventBounds(ctx context.Context) (oldest, newest int64, err error) {
	if err := s.checkOpen(); err != nil {
		return 0, 0, err
	}
	var first *int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT value FROM counters WHERE name = 'event_seq'),
		(SELECT first_seq FROM event_chunks ORDER BY seq LIMIT 1)`).Scan(&newest, &first); err != nil {
		return 0, 0, s.wrap("event bounds", err)
	}
	switch {
	case newest == 0:
		return 0, 0, nil
	case first == nil:
		return newest + 1, newest, nil
	}
	return *first, newest, nil
}

// Retain implements [store.Store].
func (s *Store) Retain(ctx context.Context, p *store.RetainParams) (store.RetainResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	var r store.RetainResult
	err := s.write(ctx, "retain", func(t *ptx) error {
		r = store.RetainResult{}
		if !p.JobsBefore.IsZero() {
			tag, err := t.exec(`DELETE FROM jobs_done WHERE id IN (SELECT id FROM jobs_done
				WHERE finished_at < $1 LIMIT $2
				FOR UPDATE SKIP LOCKED)`, t2i(p.JobsBefore), limit)
			if err != nil {
				return err
			}
			r.Jobs = int(tag.RowsAffected())
			tag, err = t.exec(`DELETE FROM batches WHERE done AND finished_at < $1
				AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id AND jobs.batch_id <> '')
				AND NOT EXISTS (SELECT 1 FROM jobs_done WHERE jobs_done.batch_id = batches.id AND jobs_done.batch_id <> '')`, t2i(p.JobsBefore))
			if err != nil {
				return err
			}
			r.Batches = int(tag.RowsAffected())
		}
		if !p.EventsBefore.IsZero() {
			// Chunks are appended in time order: delete from the oldest up to
			// the first one young enough to keep.
			var n int
			if err := t.queryRow(`WITH keep AS (
					SELECT coalesce((SELECT seq FROM event_chunks WHERE at >= $1 ORDER BY seq LIMIT 1), 9223372036854775807) AS seq),
				gone AS (DELETE FROM event_chunks WHERE seq < (SELECT seq FROM keep) RETURNING seq - first_seq + 1 AS n)
				SELECT coalesce(sum(n), 0) FROM gone`, t2i(p.EventsBefore)).Scan(&n); err != nil {
				return err
			}
			r.Events = n
		}
		return nil
	})
	return r, err
}
