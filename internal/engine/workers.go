package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// HeartbeatInterval returns how often a worker with lease TTL ttl should
// heartbeat: the configured HeartbeatInterval scaled to ttl.
func (e *Engine) HeartbeatInterval(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl) * float64(e.cfg.HeartbeatInterval) / float64(e.cfg.LeaseTTL))
}

// RegisterWorker stores a new worker and returns it: the engine assigns its
// ID, state and times, and its LeaseTTL (the configured one when w asks for
// none, else w's clamped to MinLeaseTTL..MaxLeaseTTL). w is not modified.
func (e *Engine) RegisterWorker(ctx context.Context, w *job.Worker) (*job.Worker, error) {
	now := e.now()
	nw := *w
	switch {
	case nw.Tenant != "" && !job.ValidName(nw.Tenant):
		return nil, &job.FieldError{Field: "tenant", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	case len(nw.Name) > 256:
		return nil, &job.FieldError{Field: "name", Problem: "must be at most 256 bytes"}
	case len(nw.Host) > 256:
		return nil, &job.FieldError{Field: "host", Problem: "must be at most 256 bytes"}
	case nw.Capacity < 0:
		return nil, &job.FieldError{Field: "capacity", Problem: "must not be negative"}
	case nw.LeaseTTL < 0:
		return nil, &job.FieldError{Field: "lease_ttl_seconds", Problem: "must not be negative"}
	}
	for i, q := range nw.Queues {
		if !job.ValidName(q) {
			return nil, &job.FieldError{Field: fmt.Sprintf("queues[%d]", i), Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
		}
	}
	for i, t := range nw.Types {
		if !job.ValidName(t) {
			return nil, &job.FieldError{Field: fmt.Sprintf("types[%d]", i), Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
		}
	}
	nw.ID = job.NewID(now)
	if nw.LeaseTTL == 0 {
		nw.LeaseTTL = e.cfg.LeaseTTL
	}
	nw.LeaseTTL = clampTTL(nw.LeaseTTL)
	nw.Types = slices.Clone(nw.Types)
	nw.Queues = slices.Clone(nw.Queues)
	nw.State = job.WorkerActive
	nw.Running = 0
	nw.JobIDs = nil
	nw.CreatedAt = now
	nw.LastSeen = now
	nw.IdleSince = now
	nw.DrainedAt = time.Time{}
	if err := e.st.RegisterWorker(ctx, &nw); err != nil {
		return nil, fmt.Errorf("engine: register worker: %w", err)
	}
	e.cacheWorker(&nw, now)
	e.sawWorker(nw.ID, now)
	out := nw
	return &out, nil
}

// activeWorker returns a worker that may lease: unknown and lost workers
// are store.ErrNotFound (a lost worker must register again).
func (e *Engine) activeWorker(ctx context.Context, id string) (*job.Worker, error) {
	w, err := e.worker(ctx, id)
	if err != nil {
		return nil, err
	}
	now := e.now()
	if now.Sub(e.lastSeen(w)) > e.lostAfter(w) {
		return nil, fmt.Errorf("engine: worker %s is lost: %w", id, store.ErrNotFound)
	}
	e.sawWorker(id, now)
	return w, nil
}

// Lease leases up to n jobs (at least 1, at most [MaxLease]) to worker
// workerID. When none is available it waits up to wait (at most
// MaxLeaseWait) for a hint that jobs became available and tries again,
// returning as soon as it has one. A draining worker gets no job and Drain
// set; an unknown or lost worker gets store.ErrNotFound.
func (e *Engine) Lease(ctx context.Context, workerID string, n int, wait time.Duration) (LeaseResult, error) {
	w, err := e.activeWorker(ctx, workerID)
	if err != nil {
		return LeaseResult{}, err
	}
	start := time.Now() // monotonic: Waited is a duration, never compared across clocks
	res := LeaseResult{TTL: w.LeaseTTL}
	n = min(MaxLease, max(n, 1))
	if w.Capacity > 0 {
		n = min(n, w.Capacity) // one call never leases more than the worker can run
	}
	wait = min(e.cfg.MaxLeaseWait, max(wait, 0))
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	var poll *time.Ticker
	woken, polled := false, false
	for first := true; ; first = false {
		if !first {
			// The worker may have been removed or drained while this call
			// waited: look again before leasing to it. (It is not lost: it
			// is waiting right here.)
			if w, err = e.worker(ctx, workerID); err != nil {
				return LeaseResult{}, err
			}
		}
		if e.draining(workerID, w) {
			res.Drain = true
			return res, nil
		}
		hint, gen := e.hintChan()
		filter := leaseFilter(w)
		var jobs []*job.Job
		skip := false
		if woken {
			// A hint wakes every waiting call. Of those with the same
			// filter, a few query at a time; once one finds nothing after
			// the latest hint, the others go back to waiting.
			skip = e.knownEmpty(filter, gen, polled)
			if !skip {
				select {
				case e.wokenSem <- struct{}{}:
				case <-ctx.Done():
					return LeaseResult{}, fmt.Errorf("engine: lease: %w", ctx.Err())
				}
				skip = e.knownEmpty(filter, gen, polled)
				if skip {
					<-e.wokenSem
				}
			}
		}
		if skip {
			e.sawWorker(workerID, e.now()) // waiting here: not lost
		} else {
			now := e.now()
			res.Waited = time.Since(start)
			jobs, err = e.st.LeaseJobs(ctx, &store.LeaseJobsParams{
				Now: now, WorkerID: w.ID, Tenant: w.Tenant, Queues: w.Queues, Types: w.Types,
				Max: n, TTL: w.LeaseTTL,
			})
			if woken {
				<-e.wokenSem
			}
			if err != nil {
				return LeaseResult{}, fmt.Errorf("engine: lease: %w", err)
			}
			e.sawWorker(workerID, now)
			if len(jobs) == 0 {
				e.markEmpty(filter, gen)
			}
		}
		if len(jobs) > 0 || deadline == nil {
			res.Jobs = jobs
			return res, nil
		}
		if poll == nil {
			poll = time.NewTicker(e.cfg.LeasePollInterval)
			defer poll.Stop()
		}
		woken, polled = true, false
		select {
		case <-hint:
		case <-poll.C:
			polled = true
		case <-deadline:
			res.Waited = time.Since(start)
			return res, nil
		case <-ctx.Done():
			return LeaseResult{}, fmt.Errorf("engine: lease: %w", ctx.Err())
		case <-e.stop:
			return LeaseResult{}, fmt.Errorf("engine: lease: %w", ErrClosed)
		}
	}
}

// draining reports whether worker id is draining, as this engine knows it
// (w is the worker as read when the call began).
func (e *Engine) draining(id string, w *job.Worker) bool {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if ent := e.workers[id]; ent != nil && ent.w != nil {
		w = ent.w
	}
	return w.State == job.WorkerDraining
}

// Heartbeat renews worker workerID's leases and records their progress;
// a lease with new progress publishes a job.progress event. The answer
// says, per lease, whether it is still held and whether cancellation was
// requested, and whether the worker must drain.
func (e *Engine) Heartbeat(ctx context.Context, workerID string, leases []store.HeartbeatLease) (HeartbeatResult, error) {
	if len(leases) > e.cfg.MaxBatch {
		return HeartbeatResult{}, tooMany("leases", len(leases), e.cfg.MaxBatch)
	}
	w, err := e.worker(ctx, workerID)
	if err != nil {
		return HeartbeatResult{}, err
	}
	now := e.now()
	var results []store.HeartbeatResult
	if len(leases) > 0 {
		results, err = e.st.HeartbeatJobs(ctx, &store.HeartbeatJobsParams{Now: now, WorkerID: w.ID, Leases: leases})
		if err != nil {
			return HeartbeatResult{}, fmt.Errorf("engine: heartbeat: %w", err)
		}
	}
	e.sawWorker(workerID, now)
	for i, r := range results {
		if !r.OK || r.Job == nil || i >= len(leases) || leases[i].Progress == nil {
			continue
		}
		ev := job.EventFor(job.EventProgress, r.Job, now)
		p := *leases[i].Progress
		ev.Progress = &p
		e.hub.Publish(ev)
	}
	return HeartbeatResult{Leases: results, Drain: e.draining(workerID, w)}, nil
}

// Report records the outcomes of worker workerID's attempts with the
// engine's backoff policy. A stale lease's outcome gets OK false.
func (e *Engine) Report(ctx context.Context, workerID string, outcomes []store.Outcome) ([]store.FinishResult, error) {
	if len(outcomes) > e.cfg.MaxBatch {
		return nil, tooMany("outcomes", len(outcomes), e.cfg.MaxBatch)
	}
	for i, o := range outcomes {
		switch o.Outcome {
		case job.OutcomeSucceeded, job.OutcomeFailed, job.OutcomeCanceled:
		default:
			return nil, &job.FieldError{Field: fmt.Sprintf("outcomes[%d].outcome", i), Problem: "must be succeeded, failed or canceled"}
		}
		if o.RetryAfter < 0 {
			return nil, &job.FieldError{Field: fmt.Sprintf("outcomes[%d].retry_after_seconds", i), Problem: "must not be negative"}
		}
	}
	if len(outcomes) == 0 {
		return nil, nil
	}
	now := e.now()
	results, err := e.st.FinishJobs(ctx, &store.FinishJobsParams{
		Now: now, WorkerID: workerID, Outcomes: outcomes, Backoff: e.cfg.Backoff.Delay,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: report: %w", err)
	}
	e.sawWorker(workerID, now)
	for _, r := range results {
		if r.OK && r.Job != nil {
			e.schedulePromote(r.Job.RunAt)
		}
	}
	return results, nil
}

// tenantWorker returns worker id if tenant may see it ("" sees all).
func (e *Engine) tenantWorker(ctx context.Context, tenant, id string) (*job.Worker, error) {
	w, err := e.st.GetWorker(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("engine: worker %s: %w", id, err)
	}
	if tenant != "" && w.Tenant != tenant {
		return nil, fmt.Errorf("engine: worker %s: %w", id, store.ErrNotFound)
	}
	return w, nil
}

// DrainWorker asks a worker to drain: it is leased nothing more, and its
// next lease or heartbeat tells it so.
func (e *Engine) DrainWorker(ctx context.Context, tenant, workerID string) (*job.Worker, error) {
	if _, err := e.tenantWorker(ctx, tenant, workerID); err != nil {
		return nil, err
	}
	w, err := e.st.DrainWorker(ctx, workerID, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: drain worker %s: %w", workerID, err)
	}
	e.cacheWorker(w, e.now())
	e.wakeLessees() // a waiting Lease of this worker returns Drain
	out := *w
	e.markLost(&out)
	return &out, nil
}

// RemoveWorker removes a worker (a graceful leave): the jobs it holds
// return to queued at once, without counting an attempt.
func (e *Engine) RemoveWorker(ctx context.Context, tenant, workerID string) error {
	if _, err := e.tenantWorker(ctx, tenant, workerID); err != nil {
		return err
	}
	released, err := e.st.DeleteWorker(ctx, workerID, e.now())
	if err != nil {
		return fmt.Errorf("engine: remove worker %s: %w", workerID, err)
	}
	e.forgetWorker(workerID)
	if len(released) > 0 {
		e.wakeLessees()
	}
	return nil
}

// ListWorkers returns the workers of tenant ("" all), oldest first, with
// State lost for those unseen for longer than WorkerLostAfter.
func (e *Engine) ListWorkers(ctx context.Context, tenant string) ([]*job.Worker, error) {
	ws, err := e.st.ListWorkers(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("engine: list workers: %w", err)
	}
	for _, w := range ws {
		e.markLost(w)
	}
	return ws, nil
}

// markLost sets w's state to lost when it has not been seen for too long,
// and its LastSeen to the latest sighting this engine knows.
func (e *Engine) markLost(w *job.Worker) {
	w.LastSeen = e.lastSeen(w)
	if e.now().Sub(w.LastSeen) > e.lostAfter(w) {
		w.State = job.WorkerLost
	}
}

// PauseQueue pauses a tenant's queue: it leases nothing until resumed.
func (e *Engine) PauseQueue(ctx context.Context, tenant, name string) (*job.Queue, error) {
	return e.setPaused(ctx, tenant, name, true)
}

// ResumeQueue resumes a tenant's paused queue.
func (e *Engine) ResumeQueue(ctx context.Context, tenant, name string) (*job.Queue, error) {
	return e.setPaused(ctx, tenant, name, false)
}

func (e *Engine) setPaused(ctx context.Context, tenant, name string, paused bool) (*job.Queue, error) {
	if !job.ValidName(name) {
		return nil, &job.FieldError{Field: "queue", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	}
	if tenant == "" {
		tenant = job.DefaultTenant
	}
	q, err := e.st.SetQueuePaused(ctx, tenant, name, paused)
	if err != nil {
		return nil, fmt.Errorf("engine: set queue %s paused=%t: %w", name, paused, err)
	}
	if !paused {
		e.wakeLessees()
	}
	return q, nil
}

// ListQueues returns the queues of tenant ("" all) with their counts.
func (e *Engine) ListQueues(ctx context.Context, tenant string) ([]*job.Queue, error) {
	qs, err := e.st.ListQueues(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("engine: list queues: %w", err)
	}
	return qs, nil
}

// tooMany returns the error for a request with n items over the limit.
func tooMany(field string, n, limit int) error {
	return fmt.Errorf("%w: %w", ErrTooLarge, &job.FieldError{
		Field: field, Problem: fmt.Sprintf("has %d items, more than the limit of %d", n, limit),
	})
}
