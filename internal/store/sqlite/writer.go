package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// op is one call waiting for the writer.
type op struct {
	ctx  context.Context
	fn   func(tx *wtx) error
	done chan error
}

// writer owns the write connection and runs every write. It takes the first
// waiting call, then every call queued behind it (up to MaxGroup), runs them
// in one transaction, each in its own savepoint, and commits once.
type writer struct {
	s      *Store
	conn   *sql.Conn
	ops    chan *op
	quit   chan struct{}
	wg     sync.WaitGroup
	closed chan struct{}
	exited chan struct{} // closed when run returns
	once   sync.Once

	groups, calls atomic.Int64 // transactions committed, calls run

	// Owned by the writer goroutine.
	token     int64 // last fencing token handed out
	seq       int64 // last event sequence written
	stmts     map[string]*sql.Stmt
	queues    map[tenantQueue]bool // known queues: paused
	queuesNew []tenantQueue
	// singletons: a job with a singleton key may be waiting (set at
	// start if any unfinished job has one, and by every insert of one;
	// never cleared while the store is open). Without them a claim in
	// one queue needs no candidate check (see leaseDirectSQL).
	singletons bool
}

type tenantQueue struct{ tenant, queue string }

// wtx is the view of the group transaction a call gets.
type wtx struct {
	w             *writer
	events        []job.Event
	jobsAvailable bool
	tokenUsed     bool
	pending       []any    // rows queued for a multi-row INSERT (see flushInserts)
	after         []func() // run after commit
}

func startWriter(ctx context.Context, s *Store) (*writer, error) {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	w := &writer{
		s: s, conn: conn, ops: make(chan *op, 4096), quit: make(chan struct{}),
		closed: make(chan struct{}), exited: make(chan struct{}), stmts: map[string]*sql.Stmt{}, queues: map[tenantQueue]bool{},
	}
	row := conn.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'token'), (SELECT value FROM counters WHERE name = 'event_seq')`)
	if err := row.Scan(&w.token, &w.seq); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: read counters: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE singleton_key <> '' AND state IN `+nonTerminal+`)`).Scan(&w.singletons); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: read singleton keys: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT tenant, name, paused FROM queues`)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: read queues: %w", err)
	}
	for rows.Next() {
		var tq tenantQueue
		var paused bool
		if err := rows.Scan(&tq.tenant, &tq.queue, &paused); err != nil {
			rows.Close()
			conn.Close()
			return nil, fmt.Errorf("sqlite: read queues: %w", err)
		}
		w.queues[tq] = paused
	}
	rows.Close()
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// do runs fn in the writer's next transaction and waits for its commit.
// If ctx ends before fn starts, fn never runs and do returns ctx's error;
// once fn has started, do waits for the commit and reports its outcome.
func (w *writer) do(ctx context.Context, fn func(tx *wtx) error) error {
	o := &op{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-w.closed:
		return store.ErrClosed
	default:
	}
	select {
	case w.ops <- o:
	case <-w.closed:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the writer even if ctx ends: it skips a call
	// whose ctx ended before it started, and a started transaction is
	// short. Returning early would race with fn writing its results.
	select {
	case err := <-o.done:
		return err
	case <-w.exited:
		// The writer stopped; it answered every call it took.
		select {
		case err := <-o.done:
			return err
		default:
			return store.ErrClosed
		}
	}
}

func (w *writer) stop() {
	w.once.Do(func() {
		close(w.closed)
		close(w.quit)
		w.wg.Wait()
		for _, st := range w.stmts {
			st.Close()
		}
		w.conn.Close()
	})
}

func (w *writer) run() {
	defer w.wg.Done()
	defer close(w.exited)
	group := make([]*op, 0, w.s.cfg.MaxGroup)
	for {
		select {
		case <-w.quit:
			w.failPending()
			return
		case o := <-w.ops:
			group = append(group[:0], o)
		}
	drain:
		for len(group) < w.s.cfg.MaxGroup {
			select {
			case o := <-w.ops:
				group = append(group, o)
			default:
				break drain
			}
		}
		w.runGroup(group)
		clear(group)
	}
}

func (w *writer) failPending() {
	for {
		select {
		case o := <-w.ops:
			o.done <- store.ErrClosed
		default:
			return
		}
	}
}

// bg is the context statements run under: a started transaction finishes
// even if one caller gives up.
var bg = context.Background()

func (w *writer) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(bg, args...)
}

func (w *writer) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(bg, args...)
}

func (w *writer) queryRow(query string, args ...any) *sql.Row {
	st, err := w.stmt(query)
	if err != nil {
		// Surface the error through a query that fails the same way.
		return w.conn.QueryRowContext(bg, query, args...)
	}
	return st.QueryRowContext(bg, args...)
}

func (w *writer) stmt(query string) (*sql.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := w.conn.PrepareContext(bg, query)
	if err != nil {
		return nil, err
	}
	w.stmts[query] = st
	return st, nil
}

func (w *writer) runGroup(group []*op) {
	tx := &wtx{w: w}
	token0, seq0 := w.token, w.seq
	if _, err := w.exec("BEGIN IMMEDIATE"); err != nil {
		w.finish(group, nil, unavailable("begin", err))
		return
	}
	errs := make([]error, len(group))
	ran := 0
	for i, o := range group {
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		nEvents, nAfter, nQueues := len(tx.events), len(tx.after), len(w.queuesNew)
		avail := tx.jobsAvailable
		if _, err := w.exec("SAVEPOINT op"); err != nil {
			errs[i] = unavailable("savepoint", err)
			continue
		}
		if err := o.fn(tx); err != nil {
			errs[i] = err
			tx.events, tx.after, tx.jobsAvailable = tx.events[:nEvents], tx.after[:nAfter], avail
			tx.pending = tx.pending[:0]
			w.queuesNew = w.queuesNew[:nQueues]
			if _, rerr := w.exec("ROLLBACK TO op"); rerr != nil {
				w.abort(group, token0, seq0, unavailable("rollback to savepoint", rerr))
				return
			}
		}
		if _, err := w.exec("RELEASE op"); err != nil {
			w.abort(group, token0, seq0, unavailable("release savepoint", err))
			return
		}
		ran++
	}
	if err := w.flushEvents(tx); err != nil {
		w.abort(group, token0, seq0, err)
		return
	}
	if tx.tokenUsed {
		if _, err := w.exec(`UPDATE counters SET value = ? WHERE name = 'token'`, w.token); err != nil {
			w.abort(group, token0, seq0, unavailable("save token", err))
			return
		}
	}
	if _, err := w.exec("COMMIT"); err != nil {
		w.abort(group, token0, seq0, unavailable("commit", err))
		return
	}
	for _, tq := range w.queuesNew {
		if _, ok := w.queues[tq]; !ok {
			w.queues[tq] = false
		}
	}
	w.queuesNew = w.queuesNew[:0]
	w.s.ckpt.committed()
	w.groups.Add(1)
	w.calls.Add(int64(len(group)))
	for _, f := range tx.after {
		f()
	}
	w.finish(group, errs, nil)
	if tx.jobsAvailable || len(tx.events) > 0 {
		c := store.Change{JobsAvailable: tx.jobsAvailable}
		if len(tx.events) > 0 {
			c.LastSeq = w.seq
		}
		w.s.changed(c)
	}
}

// abort rolls the whole transaction back and fails every call in it.
func (w *writer) abort(group []*op, token0, seq0 int64, err error) {
	if _, rerr := w.exec("ROLLBACK"); rerr != nil {
		w.s.log.Error("sqlite: rollback failed", "err", rerr)
	}
	// Tokens handed out in a rolled-back transaction are never reused
	// (w.token keeps growing), but the event sequence must not have gaps.
	_ = token0
	w.seq = seq0
	w.queuesNew = w.queuesNew[:0]
	w.finish(group, nil, err)
}

func (w *writer) finish(group []*op, errs []error, all error) {
	for i, o := range group {
		switch {
		case all != nil:
			o.done <- all
		case errs != nil:
			o.done <- errs[i]
		default:
			o.done <- nil
		}
	}
}

// nextToken returns a new fencing token, greater than every token handed
// out before by this database.
func (tx *wtx) nextToken() int64 {
	tx.w.token++
	tx.tokenUsed = true
	return tx.w.token
}

// emit queues an event; it is written with the transaction's other events.
func (tx *wtx) emit(e job.Event) { tx.events = append(tx.events, e) }

// expectEvents makes room for n more events, for a call about to emit one
// per job.
func (tx *wtx) expectEvents(n int) { tx.events = slices.Grow(tx.events, n) }

// flushEvents writes the transaction's events as one chunk.
func (w *writer) flushEvents(tx *wtx) error {
	if len(tx.events) == 0 {
		return nil
	}
	first := w.seq + 1
	for i := range tx.events {
		tx.events[i].Seq = first + int64(i)
	}
	data := rowscan.EncodeChunk(tx.events)
	last := w.seq + int64(len(tx.events))
	at := tx.events[len(tx.events)-1].At
	if _, err := w.exec(`INSERT INTO event_chunks (seq, first_seq, at, data) VALUES (?, ?, ?, ?)`, last, first, t2i(at), data); err != nil {
		return unavailable("write events", err)
	}
	if _, err := w.exec(`UPDATE counters SET value = ? WHERE name = 'event_seq'`, last); err != nil {
		return unavailable("write events", err)
	}
	w.seq = last
	return nil
}

// noteQueue records that jobs were inserted into a tenant's queue.
func (tx *wtx) noteQueue(tenant, queue string) error {
	tq := tenantQueue{tenant, queue}
	if _, ok := tx.w.queues[tq]; ok {
		return nil
	}
	for _, q := range tx.w.queuesNew {
		if q == tq {
			return nil
		}
	}
	if _, err := tx.w.exec(`INSERT OR IGNORE INTO queues (tenant, name) VALUES (?, ?)`, tenant, queue); err != nil {
		return err
	}
	tx.w.queuesNew = append(tx.w.queuesNew, tq)
	return nil
}

var errStop = errors.New("stop")

// t2i and i2t encode times as the stores keep them (see rowscan).
var (
	t2i = rowscan.Nanos
	i2t = rowscan.Time
)
