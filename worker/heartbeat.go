package worker

import (
	"context"
	"errors"
	"time"
)

// heartbeatLoop renews every running job's lease in one call each
// heartbeat interval, and sooner (at most one call in flight, at least
// progressDelay apart) when a job reported progress.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	interval := w.hbEvery
	progressDelay := min(time.Second, interval)
	retryDelay := min(time.Second, interval)
	last := time.Now()
	next := last.Add(interval)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	var hb heartbeat
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.hbKick:
			if early := last.Add(progressDelay); early.Before(next) {
				next = early
				timer.Reset(time.Until(next))
			}
			continue
		case <-timer.C:
		}
		last = time.Now()
		next = last.Add(interval)
		if !hb.send(ctx, w, last) {
			next = last.Add(retryDelay)
		}
		timer.Reset(time.Until(next))
	}
}

// heartbeat holds the buffers of heartbeat calls, reused from one to the next.
type heartbeat struct {
	runs     []*run
	renewals []Renewal
	lost     []*run
	canceled []*run
}

// send renews the leases of the running jobs with one call, sent at sent,
// and reports whether the call succeeded.
func (hb *heartbeat) send(ctx context.Context, w *Worker, sent time.Time) bool {
	defer func() {
		clear(hb.runs)
		clear(hb.renewals)
		clear(hb.lost)
		clear(hb.canceled)
		hb.runs, hb.renewals = hb.runs[:0], hb.renewals[:0]
		hb.lost, hb.canceled = hb.lost[:0], hb.canceled[:0]
	}()
	w.mu.Lock()
	for r := range w.running {
		if r.dead {
			continue
		}
		var p *Progress
		if r.latest != r.reported {
			p = r.latest
		}
		hb.runs = append(hb.runs, r)
		hb.renewals = append(hb.renewals, Renewal{JobID: r.job.ID, Token: r.token, Progress: p})
	}
	w.mu.Unlock()

	id := w.workerID()
	cctx, cancel := context.WithTimeout(ctx, w.hbEvery)
	res, err := w.t.Heartbeat(cctx, id, hb.renewals)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("worker: heartbeat failed", "err", err, "leases", len(hb.renewals))
			if errors.Is(err, ErrUnknownWorker) {
				if err := w.registerAgain(ctx, id); err != nil {
					w.log.Warn("worker: heartbeat", "err", err)
				}
			}
		}
		return false
	}
	if len(res.Leases) != len(hb.renewals) {
		w.log.Error("worker: heartbeat answer does not match the request",
			"sent", len(hb.renewals), "got", len(res.Leases))
		return false
	}
	w.mu.Lock()
	for i, lr := range res.Leases {
		r := hb.runs[i]
		if lr.JobID != r.job.ID {
			w.log.Error("worker: heartbeat answer out of order", "want", r.job.ID, "got", lr.JobID)
			continue
		}
		if !lr.OK {
			r.dead = true
			hb.lost = append(hb.lost, r)
			continue
		}
		if u := sent.Add(trustWindow(r.ttl)); u.After(r.until) {
			r.until = u
		}
		if p := hb.renewals[i].Progress; p != nil {
			r.reported = p
		}
		if lr.CancelRequested {
			hb.canceled = append(hb.canceled, r)
		}
	}
	w.mu.Unlock()
	// Cancel outside the lock: context callbacks may call back into the worker.
	for _, r := range hb.lost {
		r.cancel(ErrLeaseLost)
	}
	for _, r := range hb.canceled {
		r.cancel(ErrCancelRequested)
	}
	if res.Drain {
		w.drain()
	}
	return true
}

// watchdog cancels the jobs whose trust window passed without a
// successful renewal, whether or not the server can be reached. It checks
// several times per trust margin, so a job stops before its lease expires.
func (w *Worker) watchdog(ctx context.Context) {
	tick := time.NewTicker(max(trustMargin(w.ttl)/4, time.Millisecond))
	defer tick.Stop()
	var expired []*run
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		w.mu.Lock()
		for r := range w.running {
			if !r.dead && !now.Before(r.until) {
				r.dead = true
				expired = append(expired, r)
			}
		}
		w.mu.Unlock()
		for _, r := range expired {
			w.log.Warn("worker: lease not renewed in time, canceling the job", "job_id", r.job.ID)
			r.cancel(ErrLeaseExpired)
		}
		clear(expired)
		expired = expired[:0]
	}
}
