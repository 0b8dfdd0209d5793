package worker

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// reporter buffers outcomes and hands them out in chunks: when a batch is
// full, when the oldest buffered outcome has waited the report interval,
// and at once when no chunk went within the last interval. So an idle
// worker's outcome does not wait, a busy worker's outcomes go in chunks of
// an interval's worth (each report is a transaction in the store: fewer,
// larger ones cost the database less per job), and none waits longer than
// the interval.
type reporter struct {
	batch    int
	interval time.Duration
	maxBytes int           // size bound of a chunk (reportMaxBytes)
	signal   chan struct{} // first outcome buffered, batch full, or closed

	mu     sync.Mutex
	outs   []Outcome
	untils []time.Time // end of each outcome's trust window
	since  time.Time   // when the buffer last became non-empty
	last   time.Time   // when the last chunk was taken
	bytes  int         // outcomeSize of the buffered outcomes
	closed bool

	// The backlog: outcomes buffered or being sent. A job's slot is free
	// once its outcome is buffered, so without a bound a worker whose
	// reports are slower than its jobs (the store or the network is
	// behind) would lease on and on: jobs leased and done but not yet
	// reported pile up (in a benchmark, 9,849 for a worker of 200 slots),
	// their leases not renewed, and the store slows further with them.
	// Past limit, awaitRoom holds the slot until the backlog shrinks.
	pending int
	limit   int
	room    sync.Cond // signaled when pending drops or on close
}

// backlogLimit is the backlog a worker allows: two full reports, or twice
// its slots if that is more.
func backlogLimit(batch, concurrency int) int { return max(2*batch, 2*concurrency) }

// reportMaxBytes bounds the size of one report: a chunk holds no more
// outcomes than fit in it (at least one), whatever the batch size. Half
// the server's default request limit (1 MiB), so that 500 outcomes with
// results of a few KiB each still go in requests the server accepts.
const reportMaxBytes = 512 << 10

// outcomeSize estimates an outcome's share of a report request: its
// result and error, and room for the rest of its JSON.
func outcomeSize(o *Outcome) int { return len(o.Result) + len(o.Error) + 128 }

// chunk is a batch of outcomes sent in one call, with the end of each one's
// trust window: past it, a failed report is not retried.
type chunk struct {
	outs   []Outcome
	untils []time.Time
}

func (rp *reporter) init(batch int, interval time.Duration, limit int) {
	rp.batch = batch
	rp.interval = interval
	rp.limit = limit
	rp.room.L = &rp.mu
	rp.maxBytes = reportMaxBytes
	rp.signal = make(chan struct{}, 1)
	rp.outs = make([]Outcome, 0, batch)
	rp.untils = make([]time.Time, 0, batch)
}

// add buffers an outcome whose lease is trusted until until.
func (rp *reporter) add(o Outcome, until time.Time) {
	rp.mu.Lock()
	if len(rp.outs) == 0 {
		rp.since = time.Now()
	}
	rp.outs = append(rp.outs, o)
	rp.untils = append(rp.untils, until)
	rp.pending++
	size := outcomeSize(&o)
	rp.bytes += size
	wake := len(rp.outs) == 1 || len(rp.outs) == rp.batch || (rp.bytes >= rp.maxBytes && rp.bytes-size < rp.maxBytes)
	rp.mu.Unlock()
	if wake {
		rp.wake()
	}
}

func (rp *reporter) wake() {
	select {
	case rp.signal <- struct{}{}:
	default:
	}
}

// awaitRoom returns once the backlog is within its limit, or the reporter
// is closed.
func (rp *reporter) awaitRoom() {
	rp.mu.Lock()
	for rp.pending > rp.limit && !rp.closed {
		rp.room.Wait()
	}
	rp.mu.Unlock()
}

// sent takes n outcomes whose report ended (stored, refused or given up)
// off the backlog.
func (rp *reporter) sent(n int) {
	rp.mu.Lock()
	rp.pending -= n
	rp.mu.Unlock()
	rp.room.Broadcast()
}

// close makes collect flush what is buffered and return. No outcome may be
// added after it.
func (rp *reporter) close() {
	rp.mu.Lock()
	rp.closed = true
	rp.mu.Unlock()
	rp.wake()
	rp.room.Broadcast()
}

// collect sends chunks to out as they become due, until closed and empty.
func (rp *reporter) collect(out chan<- chunk) {
	defer close(out)
	timer := time.NewTimer(rp.interval)
	timer.Stop()
	for {
		rp.mu.Lock()
		n := len(rp.outs)
		take, wait := 0, time.Duration(-1)
		switch {
		case n >= rp.batch || rp.bytes >= rp.maxBytes:
			take = rp.batch
		case n > 0 && rp.closed:
			take = n
		case n > 0:
			if time.Since(rp.last) >= rp.interval {
				wait = 0 // idle: nothing went within the interval
			} else {
				wait = rp.interval - time.Since(rp.since)
			}
			if wait <= 0 {
				take = n
			}
		case rp.closed:
			rp.mu.Unlock()
			return
		}
		var c chunk
		if take > 0 {
			c = rp.takeLocked(rp.fitLocked(take))
		}
		rp.mu.Unlock()
		switch {
		case take > 0:
			out <- c
		case wait > 0:
			timer.Reset(wait)
			select {
			case <-rp.signal:
				timer.Stop()
			case <-timer.C:
			}
		default:
			<-rp.signal
		}
	}
}

// fitLocked returns how many of the first k buffered outcomes (at most)
// fit in maxBytes: at least one, however large.
func (rp *reporter) fitLocked(k int) int {
	k = min(k, len(rp.outs))
	size := 0
	for i := range k {
		size += outcomeSize(&rp.outs[i])
		if size > rp.maxBytes && i > 0 {
			return i
		}
	}
	return k
}

func (rp *reporter) takeLocked(k int) chunk {
	rp.last = time.Now()
	for i := range k {
		rp.bytes -= outcomeSize(&rp.outs[i])
	}
	c := chunk{outs: make([]Outcome, k), untils: make([]time.Time, k)}
	copy(c.outs, rp.outs)
	copy(c.untils, rp.untils)
	rest := copy(rp.outs, rp.outs[k:])
	copy(rp.untils, rp.untils[k:])
	clear(rp.outs[rest:])
	rp.outs, rp.untils = rp.outs[:rest], rp.untils[:rest]
	return c
}

// send reports a chunk, retrying with backoff while some of its outcomes'
// leases are still trusted.
func (w *Worker) send(ctx context.Context, c chunk) {
	bo := backoff{min: 10 * time.Millisecond, max: time.Second}
	for {
		last := c.untils[0]
		for _, u := range c.untils[1:] {
			if u.After(last) {
				last = u
			}
		}
		cctx, cancel := context.WithDeadline(ctx, last)
		oks, err := w.t.Report(cctx, w.workerID(), c.outs)
		cancel()
		if err == nil {
			for i, ok := range oks {
				if !ok && i < len(c.outs) {
					w.log.Info("worker: outcome not recorded: the lease was no longer current",
						"job_id", c.outs[i].JobID, "outcome", c.outs[i].Outcome)
				}
			}
			return
		}
		// Retry only the outcomes still trusted when the retry goes out.
		d := bo.next()
		retryAt := time.Now().Add(d)
		kept := 0
		for i := range c.outs {
			if retryAt.Before(c.untils[i]) {
				c.outs[kept], c.untils[kept] = c.outs[i], c.untils[i]
				kept++
			}
		}
		if dropped := len(c.outs) - kept; dropped > 0 {
			w.log.Error("worker: report failed; dropping outcomes whose lease is no longer trusted",
				"err", err, "dropped", dropped)
		}
		c.outs, c.untils = c.outs[:kept], c.untils[:kept]
		if kept == 0 {
			return
		}
		w.log.Warn("worker: report failed", "err", err, "outcomes", kept, "retry_in", d)
		time.Sleep(d)
	}
}

// backoff gives capped exponential delays with jitter.
type backoff struct {
	min, max time.Duration
	n        int
}

// next returns the next delay: min doubled per call up to max, then
// jittered down by up to a half.
func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 && b.min<<b.n < b.max {
		d = b.min << b.n
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
