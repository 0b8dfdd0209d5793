package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/store"
)

// listener holds a dedicated connection (not from the pool) that LISTENs
// on the schema's channel and turns other processes' notifications into
// OnChange callbacks. When the connection fails it reconnects with
// backoff, and after each (re)connection it reports a change, since
// notifications may have been missed meanwhile.
type listener struct {
	s      *Store
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	pid uint32 // backend PID of the current connection, 0 if none
}

// Backoff between reconnection attempts.
const (
	listenMinBackoff = 50 * time.Millisecond
	listenMaxBackoff = 5 * time.Second
)

func startListener(s *Store) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{s: s, cancel: cancel}
	l.wg.Go(func() { l.run(ctx) })
	return l
}

func (l *listener) stop() {
	l.cancel()
	l.wg.Wait()
}

// backendPID returns the PID of the listening session, 0 while none.
func (l *listener) backendPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid
}

func (l *listener) run(ctx context.Context) {
	backoff := listenMinBackoff
	for ctx.Err() == nil {
		err := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		l.s.log.Warn("postgres: listener connection lost; reconnecting", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, listenMaxBackoff)
		if err == nil {
			backoff = listenMinBackoff
		}
	}
}

// listen connects, LISTENs and delivers notifications until the
// connection fails or ctx ends. Once listening it reports a change: what
// was notified before (the store opens its listener in the background, and
// a reconnection misses what was sent meanwhile) is not lost to waiters.
func (l *listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.s.connCfg.Copy())
	if err != nil {
		return err
	}
	defer func() {
		l.mu.Lock()
		l.pid = 0
		l.mu.Unlock()
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// The newest seq is read before LISTEN (so that LISTEN stays the
	// session's last statement, which is how operators and tests find the
	// listener in pg_stat_activity). A commit in between is not lost: the
	// change reported below makes every waiter look for itself, and
	// readers of the event log read up to its end, not up to c.LastSeq.
	c := store.Change{JobsAvailable: true}
	if err := conn.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'event_seq'`).Scan(&c.LastSeq); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.s.channel}.Sanitize()); err != nil {
		return err
	}
	l.s.changed(c)
	l.mu.Lock()
	l.pid = conn.PgConn().PID()
	l.mu.Unlock()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		inst, c, ok := decodeHint(n.Payload)
		if !ok || inst == l.s.instance {
			continue
		}
		l.s.changed(c)
	}
}
