package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gantryhq/gantry/internal/job"
)

// ptx is the view of one write transaction that a call gets.
//
// It saves the transaction's own round trips: BEGIN travels in one
// pipeline with the first statement, and COMMIT in one with the last (the
// statement that writes the events, see writeOnce), so a transaction of n
// statements costs n round trips, not n+2. That matters most for the last
// one: the event counter's row lock is held from the events statement to
// the end of the commit, and with COMMIT sent only after the events
// statement's answer reached the process, every event-emitting
// transaction of the database waited for that answer to travel and for
// this process to be scheduled.
type ptx struct {
	s             *Store
	ctx           context.Context
	conn          *pgxpool.Conn
	begun         bool // BEGIN has been sent
	noSeqScan     bool // BEGIN is followed by setNoSeqScan (see preferIndexes)
	events        []job.Event
	jobsAvailable bool
	after         []func() // run after commit
}

// setNoSeqScan keeps the planner off sequential scans for the rest of a
// transaction (see preferIndexes).
const setNoSeqScan = "SET LOCAL enable_seqscan = off"

// preferIndexes keeps the planner off sequential scans in this
// transaction; a call sets it before its first statement (it then travels
// with BEGIN, no round trip of its own).
//
// The statements that apply many outcomes or renewals join the unnested
// arguments to jobs by id. The jobs table's statistics are mostly wrong
// for them: a queue table's content turns over faster than ANALYZE runs,
// and a sample of queued jobs says that no job is running, or running for
// this worker. With an estimate of one such row, the planner scanned the
// whole table for the running jobs of the worker and, for each, the
// unnested arguments again: measured under steady load, 3.9–4.2 s for a
// report of 500 outcomes with 9,849 rows running (and 545 ms against 2 ms
// in a reproduction with 10,000 running rows), where looking each id up
// in the primary key is what it should do and does without a sequential
// scan to choose.
func (t *ptx) preferIndexes() error {
	if t.begun {
		_, err := t.conn.Exec(t.ctx, setNoSeqScan)
		return err
	}
	t.noSeqScan = true
	return nil
}

// queueBegin queues BEGIN, and setNoSeqScan if asked for.
func (t *ptx) queueBegin(b *pgx.Batch) {
	t.begun = true
	b.Queue("BEGIN")
	if t.noSeqScan {
		b.Queue(setNoSeqScan)
	}
}

// beginWith sends BEGIN and q in one pipeline and returns the batch, whose
// results before q's have been read; the caller reads q's and closes it.
func (t *ptx) beginWith(q string, args ...any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	t.queueBegin(b)
	b.Queue(q, args...)
	br := t.conn.SendBatch(t.ctx, b)
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			return nil, errors.Join(err, br.Close())
		}
	}
	return br, nil
}

func (t *ptx) exec(q string, args ...any) (pgconn.CommandTag, error) {
	if t.begun {
		return t.conn.Exec(t.ctx, q, args...)
	}
	br, err := t.beginWith(q, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	return tag, errors.Join(err, br.Close())
}

func (t *ptx) query(q string, args ...any) (pgx.Rows, error) {
	if t.begun {
		return t.conn.Query(t.ctx, q, args...)
	}
	br, err := t.beginWith(q, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *ptx) queryRow(q string, args ...any) pgx.Row {
	rows, err := t.query(q, args...)
	return &firstRow{rows: rows, err: err}
}

// savepoint sets a savepoint named name (to undo what follows with
// rollbackTo); it is released with the transaction.
func (t *ptx) savepoint(name string) error {
	_, err := t.exec("SAVEPOINT " + name)
	return err
}

// rollbackTo undoes what the transaction did since savepoint name, and
// makes a transaction that failed since then usable again.
func (t *ptx) rollbackTo(name string) error {
	_, err := t.conn.Exec(t.ctx, "ROLLBACK TO SAVEPOINT "+name)
	return err
}

// commit commits the transaction, running last (if not "") in the same
// pipeline just before COMMIT and scanning its one row into dest.
func (t *ptx) commit(last string, args []any, dest ...any) error {
	if !t.begun {
		if last == "" {
			return nil // nothing was sent: nothing to commit
		}
		b := &pgx.Batch{}
		t.queueBegin(b)
		b.Queue(last, args...).QueryRow(func(r pgx.Row) error { return r.Scan(dest...) })
		b.Queue("COMMIT").Exec(checkCommitted)
		return t.conn.SendBatch(t.ctx, b).Close()
	}
	if last == "" {
		tag, err := t.conn.Exec(t.ctx, "COMMIT")
		if err != nil {
			return err
		}
		return checkCommitted(tag)
	}
	b := &pgx.Batch{}
	b.Queue(last, args...).QueryRow(func(r pgx.Row) error { return r.Scan(dest...) })
	b.Queue("COMMIT").Exec(checkCommitted)
	return t.conn.SendBatch(t.ctx, b).Close()
}

// errRolledBack: COMMIT of a transaction that had failed.
var errRolledBack = errors.New("postgres: commit: the transaction was rolled back")

func checkCommitted(tag pgconn.CommandTag) error {
	if tag.String() == "ROLLBACK" {
		return errRolledBack
	}
	return nil
}

// rollback ends a transaction that will not commit. A connection whose
// state is unsure is closed by the pool when released (pgxpool drops
// connections that are not idle outside a transaction).
func (t *ptx) rollback() {
	if !t.begun || t.conn.Conn().IsClosed() {
		return
	}
	if t.conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.s.log.Debug("postgres: rollback", "err", err)
	}
}

// batchRows is the rows of the second statement of a pipeline; closing
// them closes the pipeline.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// firstRow is pgx.Row over query's rows: the first row, or ErrNoRows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r *firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	if err := r.rows.Err(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}
