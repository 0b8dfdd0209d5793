package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// The sequencer numbers events (see migration 008): transactions append
// their events to event_inbox, and a pass moves every committed inbox row,
// in inbox order, into event_chunks with the next sequence numbers, under
// the counter row's lock. Passes of all servers serialize on that lock;
// the transactions that emit events do not.
//
// A write that appended events waits for a pass begun after its commit, so
// that its events are readable when it returns; the writes of a busy
// store share passes. Every second a pass also runs if the inbox holds
// rows (a server that died between a commit and its pass).

// sequencePassLimit bounds the inbox rows one pass moves; more are moved
// by the following passes, in order.
const sequencePassLimit = 5000

// sequenceInterval is how often the inbox is checked for rows no local
// write is waiting for.
const sequenceInterval = time.Second

// sequencer coordinates this store's passes.
type sequencer struct {
	s *Store

	mu        sync.Mutex
	requested uint64        // passes asked for
	done      uint64        // requests covered by finished passes
	running   bool          // a goroutine is running passes
	stopped   bool          // closed: no more passes
	finished  chan struct{} // closed and replaced when a pass ends

	stop chan struct{}
	wg   sync.WaitGroup
}

func startSequencer(s *Store) *sequencer {
	q := &sequencer{s: s, finished: make(chan struct{}), stop: make(chan struct{})}
	q.wg.Go(q.sweep)
	return q
}

// close stops the periodic sweep and waits for running passes; later
// requests are answered at once.
func (q *sequencer) close() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
}

// request asks for a pass that begins after now and returns the number to
// wait for with wait.
func (q *sequencer) request() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.requested++
	if q.stopped {
		q.done = q.requested
		return q.requested
	}
	if !q.running {
		q.running = true
		q.wg.Go(q.run)
	}
	return q.requested
}

// wait waits until the pass covering request r has ended, or ctx ends.
func (q *sequencer) wait(ctx context.Context, r uint64) {
	for {
		q.mu.Lock()
		if q.done >= r {
			q.mu.Unlock()
			return
		}
		ch := q.finished
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// run runs passes while they are asked for.
func (q *sequencer) run() {
	for {
		q.mu.Lock()
		if q.done >= q.requested {
			q.running = false
			q.mu.Unlock()
			return
		}
		target := q.requested
		q.mu.Unlock()
		for {
			moved, err := q.s.sequencePass(context.Background())
			if err != nil {
				if !q.s.closed.Load() {
					q.s.log.Warn("postgres: number events; the next pass will", "err", err)
				}
				break
			}
			if moved < sequencePassLimit {
				break
			}
		}
		q.mu.Lock()
		q.done = target
		close(q.finished)
		q.finished = make(chan struct{})
		q.mu.Unlock()
	}
}

// sweep asks for a pass every sequenceInterval while the inbox holds rows.
func (q *sequencer) sweep() {
	t := time.NewTicker(sequenceInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), sequenceInterval)
		var pending bool
		err := q.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM event_inbox)`).Scan(&pending)
		cancel()
		if err == nil && pending {
			q.request()
		}
	}
}

// sequencePassSQL moves up to $2 committed inbox rows, oldest first, into
// event_chunks, numbered from $1 + 1, and returns them.
const sequencePassSQL = `WITH m AS (
		DELETE FROM event_inbox WHERE id IN (SELECT id FROM event_inbox ORDER BY id LIMIT $2)
		RETURNING id, n, at, data),
	s AS (SELECT id, n, at, data, $1::bigint + sum(n) OVER (ORDER BY id) AS last FROM m),
	i AS (INSERT INTO event_chunks (seq, first_seq, at, data) SELECT last, last - n + 1, at, data FROM s)
	SELECT last, n, data FROM s ORDER BY id`

// sequencePass runs one pass and reports how many inbox rows it moved.
func (s *Store) sequencePass(ctx context.Context) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, s.wrap("number events", err)
	}
	defer tx.Rollback(context.Background())
	var base int64
	if err := tx.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'event_seq' FOR UPDATE`).Scan(&base); err != nil {
		return 0, s.wrap("number events", err)
	}
	// The statement's snapshot is taken now, after the lock: it sees every
	// row committed before, including those an earlier pass moved.
	rows, err := tx.Query(ctx, sequencePassSQL, base, sequencePassLimit)
	if err != nil {
		return 0, s.wrap("number events", err)
	}
	var (
		evs   []job.Event
		moved int
		last  = base
	)
	for rows.Next() {
		var (
			chunkLast int64
			n         int
			data      []byte
		)
		if err := rows.Scan(&chunkLast, &n, &data); err != nil {
			rows.Close()
			return 0, s.wrap("number events", err)
		}
		first := chunkLast - int64(n) + 1
		if evs, err = rowscan.DecodeChunk(evs, data, first, first-1); err != nil {
			evs = nil // followers read the store instead
		}
		moved++
		last = chunkLast
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, s.wrap("number events", err)
	}
	if moved == 0 {
		return 0, nil // rolled back: nothing to change
	}
	if _, err := tx.Exec(ctx, `UPDATE counters SET value = $1 WHERE name = 'event_seq'`, last); err != nil {
		return 0, s.wrap("number events", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, s.wrap("number events", err)
	}
	if len(evs) > 0 && evs[len(evs)-1].Seq != last {
		evs = nil
	}
	s.changed(store.Change{LastSeq: last, Events: evs})
	s.notifier.hint(false, last)
	return moved, nil
}
