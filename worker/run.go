package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/gantryhq/gantry"
)

// run is one leased job, from its lease until its handler returns.
type run struct {
	w      *Worker
	job    *gantry.Job
	token  int64
	ttl    time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by w.mu.
	until    time.Time // end of the trust window (monotonic)
	dead     bool      // lease lost or trust window passed: renew no more
	latest   *Progress // latest progress report
	reported *Progress // latest report the server acknowledged
}

// progress is the job's [gantry.ProgressFunc]: it keeps the latest report
// for the next heartbeat and asks for that heartbeat to come early.
func (r *run) progress(_ context.Context, percent int, message string) error {
	if r.ctx.Err() != nil {
		return context.Cause(r.ctx)
	}
	p := &Progress{Percent: percent, Message: message}
	r.w.mu.Lock()
	r.latest = p
	r.w.mu.Unlock()
	select {
	case r.w.hbKick <- struct{}{}:
	default:
	}
	return nil
}

// execute runs one job and queues its outcome, then frees its slot (once
// the reports are not too far behind).
func (w *Worker) execute(r *run) {
	w.mu.Lock()
	expired := !time.Now().Before(r.until)
	if expired {
		r.dead = true
	}
	w.mu.Unlock()
	var o Outcome
	report := false
	if expired {
		w.log.Warn("worker: lease expired before the job started", "job_id", r.job.ID)
	} else {
		o, report = w.work(r)
	}
	w.mu.Lock()
	delete(w.running, r)
	until := r.until
	w.mu.Unlock()
	r.cancel(errFinished)
	if report {
		w.rep.add(o, until)
		w.rep.awaitRoom() // holding the slot while reports are behind
	}
	<-w.sem
}

// work calls the job's handler and turns what it returned into an outcome,
// and whether to report it.
func (w *Worker) work(r *run) (Outcome, bool) {
	o := Outcome{JobID: r.job.ID, Token: r.token}
	h, ok := w.handlers[r.job.Type]
	if !ok {
		o.Outcome = Failed
		o.Error = fmt.Sprintf("worker: no handler for job type %q", r.job.Type)
		o.Retryable = true
		return o, true
	}
	ctx := r.ctx
	if r.job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.job.Timeout, ErrTimeout)
		defer cancel()
	}
	result, panicked, err := call(ctx, h, r.job)
	var cause error
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	switch {
	case cause == ErrLeaseLost || cause == ErrLeaseExpired:
		// The attempt is no longer ours: another worker may hold the job.
		return o, false
	case panicked == "" && err == nil:
		o.Outcome = Succeeded
		if result != nil {
			b, err := json.Marshal(result)
			if err != nil {
				o.Outcome = Failed
				o.Error = fmt.Sprintf("worker: marshal result: %v", err)
				return o, true
			}
			o.Result = b
		}
	case cause == ErrShutdown:
		// Leaving releases the job to another worker; it was not its fault.
		return o, false
	case cause == ErrCancelRequested:
		o.Outcome = Canceled
		o.Error = errorText(err, panicked)
	case cause == ErrTimeout:
		o.Outcome = Failed
		o.Error = fmt.Sprintf("timeout after %s", r.job.Timeout)
		o.Retryable = true
	case panicked != "":
		w.log.Error("worker: handler panicked", "job_id", r.job.ID, "type", r.job.Type, "panic", panicked)
		o.Outcome = Failed
		o.Error = panicked
		o.Retryable = true
	default:
		o.Outcome = Failed
		o.Error = err.Error()
		o.Retryable = !gantry.IsPermanent(err)
		if d, ok := gantry.RetryDelay(err); ok {
			// Zero would mean the server's backoff policy.
			o.RetryAfter = max(d, time.Millisecond)
		}
	}
	return o, true
}

func errorText(err error, panicked string) string {
	if panicked != "" {
		return panicked
	}
	return err.Error()
}

// call runs the handler, turning a panic into its value and stack.
func call(ctx context.Context, h gantry.Handler, job *gantry.Job) (result any, panicked string, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = fmt.Sprintf("panic: %v\n\n%s", v, debug.Stack())
		}
	}()
	result, err = h.Work(ctx, job)
	return result, "", err
}
