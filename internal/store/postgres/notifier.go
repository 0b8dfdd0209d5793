package postgres

import (
	"context"
	"sync"
	"time"
)

// notifier sends this store's change hints to the other processes sharing
// the database, outside the transactions that made the changes: NOTIFY
// inside a transaction takes a database-wide lock at commit, which would
// serialize every hot transaction (RELIABILITY.md rule 8: hot transactions
// do not depend on LISTEN/NOTIFY). Hints are coalesced: while one NOTIFY
// is being sent, later hints merge into the next one. A hint that jobs
// became available goes at once (it wakes long-polling workers); one that
// only announces events waits until eventHintGap has passed since the
// previous NOTIFY, so a busy server sends at most about a hundred a second
// of those: every NOTIFY is a transaction that takes the database's
// notification lock and wakes every listening session.
type notifier struct {
	s    *Store
	mu   sync.Mutex
	jobs bool  // pending: jobs became available
	seq  int64 // pending: newest event seq
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// notifyTimeout bounds one NOTIFY; a lost hint is covered by polling.
const notifyTimeout = 5 * time.Second

// eventHintGap is the least time between NOTIFYs that only announce
// events: the added delay of events reaching other servers' followers.
const eventHintGap = 10 * time.Millisecond

func startNotifier(s *Store) *notifier {
	n := &notifier{s: s, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go n.run()
	return n
}

// hint queues a change for the other processes.
func (n *notifier) hint(jobs bool, seq int64) {
	n.mu.Lock()
	n.jobs = n.jobs || jobs
	n.seq = max(n.seq, seq)
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) run() {
	defer close(n.done)
	var last time.Time // of the previous NOTIFY
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
		case <-timer.C:
		}
		n.mu.Lock()
		jobs, seq := n.jobs, n.seq
		if !jobs && seq != 0 {
			if wait := eventHintGap - time.Since(last); wait > 0 {
				n.mu.Unlock()
				timer.Reset(wait) // a kick (or this) comes back for it
				continue
			}
		}
		n.jobs, n.seq = false, 0
		n.mu.Unlock()
		if !jobs && seq == 0 {
			continue
		}
		last = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		_, err := n.s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, n.s.channel, encodeHint(n.s.instance, jobs, seq))
		cancel()
		if err != nil && !n.s.closed.Load() {
			n.s.log.Warn("postgres: notify failed; other servers will poll", "err", err)
		}
	}
}

// close stops the notifier; hints not yet sent are dropped (hints only).
func (n *notifier) close() {
	close(n.stop)
	<-n.done
}
