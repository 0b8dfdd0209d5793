package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// List page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Submit validates spec and stores it as a new job (queued, or scheduled
// when its run_at is in the future). A bad spec gives a *job.FieldError.
// If a non-terminal job of the tenant has the same unique key, that job is
// returned with created false. A spec with a BatchID joins that open batch.
func (e *Engine) Submit(ctx context.Context, spec job.Spec) (*job.Job, bool, error) {
	now := e.now()
	if err := e.prepare(&spec, now); err != nil {
		return nil, false, err
	}
	j := job.NewFromSpec(&spec, job.NewID(now), now)
	res, err := e.st.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}, AddToBatch: spec.BatchID})
	if err != nil {
		return nil, false, fmt.Errorf("engine: submit: %w", err)
	}
	if len(res) != 1 {
		return nil, false, fmt.Errorf("engine: submit: store returned %d results for 1 job", len(res))
	}
	e.scheduled(res)
	return res[0].Job, res[0].Created, nil
}

// prepare normalizes and validates spec, and checks its batch ID's form.
func (e *Engine) prepare(spec *job.Spec, now time.Time) error {
	spec.Normalize(now)
	if err := spec.Validate(now, e.cfg.Limits); err != nil {
		return err
	}
	if spec.BatchID != "" && !job.ValidID(spec.BatchID) {
		return &job.FieldError{Field: "batch_id", Problem: "must be a batch ID"}
	}
	return nil
}

// scheduled tells the promote loop about newly created scheduled jobs.
func (e *Engine) scheduled(res []store.InsertResult) {
	for _, r := range res {
		if r.Created && r.Job != nil {
			e.schedulePromote(r.Job.RunAt)
		}
	}
}

// prepareBatch validates the specs of jobs joining a batch of tenant,
// naming the index of a bad one, and returns their records.
func (e *Engine) prepareBatch(specs []job.Spec, tenant, batchID string, now time.Time) ([]*job.Job, error) {
	if len(specs) > e.cfg.MaxBatch {
		return nil, tooMany("jobs", len(specs), e.cfg.MaxBatch)
	}
	jobs := make([]*job.Job, len(specs))
	for i := range specs {
		s := specs[i] // a copy: the caller's specs are not modified
		prefix := fmt.Sprintf("jobs[%d].", i)
		if s.Tenant != "" && s.Tenant != tenant {
			return nil, &job.FieldError{Field: prefix + "tenant", Problem: "must be the batch's tenant"}
		}
		if s.BatchID != "" && s.BatchID != batchID {
			return nil, &job.FieldError{Field: prefix + "batch_id", Problem: "must be empty or the batch's ID"}
		}
		s.Tenant = tenant
		s.BatchID = ""
		if err := e.prepare(&s, now); err != nil {
			var fe *job.FieldError
			if errors.As(err, &fe) {
				return nil, fe.Prefix(prefix)
			}
			return nil, err
		}
		s.BatchID = batchID
		jobs[i] = job.NewFromSpec(&s, job.NewID(now), now)
	}
	return jobs, nil
}

// SubmitBatch validates every job of b (a bad one gives a *job.FieldError
// naming its index, e.g. "jobs[3].type") and its on_complete spec, then
// stores the batch and its jobs all or nothing. It returns the batch and
// the job IDs in the order of b.Jobs.
func (e *Engine) SubmitBatch(ctx context.Context, b BatchSpec) (*job.Batch, []string, error) {
	now := e.now()
	tenant := b.Tenant
	if tenant == "" {
		tenant = job.DefaultTenant
	}
	switch {
	case !job.ValidName(tenant):
		return nil, nil, &job.FieldError{Field: "tenant", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	case len(b.Name) > 256 || !utf8.ValidString(b.Name):
		return nil, nil, &job.FieldError{Field: "name", Problem: "must be valid UTF-8 of at most 256 bytes"}
	case len(b.Jobs) == 0 && !b.Open:
		return nil, nil, &job.FieldError{Field: "jobs", Problem: "must not be empty unless the batch is open"}
	}
	id := job.NewID(now)
	jobs, err := e.prepareBatch(b.Jobs, tenant, id, now)
	if err != nil {
		return nil, nil, err
	}
	var onComplete *job.Spec
	if b.OnComplete != nil {
		if onComplete, err = e.prepareOnComplete(*b.OnComplete, tenant, now); err != nil {
			return nil, nil, err
		}
	}
	nb := &job.Batch{ID: id, Tenant: tenant, Name: b.Name, CreatedAt: now, Closed: !b.Open, OnComplete: onComplete}
	res, err := e.st.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: jobs, NewBatch: nb})
	if err != nil {
		return nil, nil, fmt.Errorf("engine: submit batch: %w", err)
	}
	e.scheduled(res)
	ids := resultIDs(res)
	got, err := e.st.GetBatch(ctx, tenant, id)
	if err != nil {
		// The batch is stored: answer with what was written rather than
		// an error the client would retry.
		e.log.Warn("engine: read new batch", "batch_id", id, "err", err)
		nb.Total = len(ids)
		return nb, ids, nil
	}
	return got, ids, nil
}

// prepareOnComplete validates a batch's on_complete spec. Its delay, if
// any, is kept to count from when the batch is done.
func (e *Engine) prepareOnComplete(s job.Spec, tenant string, now time.Time) (*job.Spec, error) {
	const prefix = "on_complete."
	if s.Tenant != "" && s.Tenant != tenant {
		return nil, &job.FieldError{Field: prefix + "tenant", Problem: "must be the batch's tenant"}
	}
	if s.BatchID != "" {
		return nil, &job.FieldError{Field: prefix + "batch_id", Problem: "must be empty"}
	}
	s.Tenant = tenant
	delay := s.Delay
	s.Delay = 0
	s.Normalize(now)
	if err := s.Validate(now, e.cfg.Limits); err != nil {
		var fe *job.FieldError
		if errors.As(err, &fe) {
			return nil, fe.Prefix(prefix)
		}
		return nil, err
	}
	limits := e.cfg.Limits
	if limits.MaxDelay <= 0 {
		limits.MaxDelay = job.DefaultLimits.MaxDelay
	}
	switch {
	case delay < 0:
		return nil, &job.FieldError{Field: prefix + "delay_seconds", Problem: "must not be negative"}
	case delay > 0 && !s.RunAt.IsZero():
		return nil, &job.FieldError{Field: prefix + "delay_seconds", Problem: "cannot be combined with run_at"}
	case delay > limits.MaxDelay:
		return nil, &job.FieldError{Field: prefix + "delay_seconds", Problem: fmt.Sprintf("is more than %s", limits.MaxDelay)}
	}
	s.Delay = delay
	return &s, nil
}

func resultIDs(res []store.InsertResult) []string {
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// AddToBatch adds jobs to an open batch, all or nothing, and returns their
// IDs in order. A closed batch is store.ErrConflict.
func (e *Engine) AddToBatch(ctx context.Context, tenant, batchID string, specs []job.Spec) ([]string, error) {
	now := e.now()
	if len(specs) == 0 {
		return nil, &job.FieldError{Field: "jobs", Problem: "must not be empty"}
	}
	if tenant == "" {
		// An admin adds to any tenant's batch: its jobs are that tenant's.
		b, err := e.GetBatch(ctx, "", batchID)
		if err != nil {
			return nil, err
		}
		tenant = b.Tenant
	}
	jobs, err := e.prepareBatch(specs, tenant, batchID, now)
	if err != nil {
		return nil, err
	}
	res, err := e.st.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: jobs, AddToBatch: batchID})
	if err != nil {
		return nil, fmt.Errorf("engine: add to batch %s: %w", batchID, err)
	}
	e.scheduled(res)
	return resultIDs(res), nil
}

// CloseBatch closes a batch: no job can join it any more, and once all its
// jobs are terminal it is done.
func (e *Engine) CloseBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error) {
	b, err := e.st.CloseBatch(ctx, tenant, batchID, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: close batch %s: %w", batchID, err)
	}
	return b, nil
}

// CancelBatch closes a batch and cancels its jobs.
func (e *Engine) CancelBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error) {
	b, err := e.st.CancelBatch(ctx, tenant, batchID, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: cancel batch %s: %w", batchID, err)
	}
	return b, nil
}

// GetBatch returns a batch with its counts.
func (e *Engine) GetBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error) {
	b, err := e.st.GetBatch(ctx, tenant, batchID)
	if err != nil {
		return nil, fmt.Errorf("engine: get batch %s: %w", batchID, err)
	}
	return b, nil
}

// ListBatches returns a page of batches, newest first. The page size is
// DefaultPageSize when p.Limit is not positive and at most MaxPageSize.
func (e *Engine) ListBatches(ctx context.Context, p *store.ListBatchesParams) ([]*job.Batch, string, error) {
	q := *p
	q.Limit = pageSize(q.Limit)
	bs, next, err := e.st.ListBatches(ctx, &q)
	if err != nil {
		return nil, "", fmt.Errorf("engine: list batches: %w", err)
	}
	return bs, next, nil
}

func pageSize(n int) int {
	if n <= 0 {
		return DefaultPageSize
	}
	return min(n, MaxPageSize)
}

// GetJob returns a job with its attempts.
func (e *Engine) GetJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	j, err := e.st.GetJob(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("engine: get job %s: %w", id, err)
	}
	return j, nil
}

// ListJobs returns a page of jobs, newest first. The page size is
// DefaultPageSize when p.Limit is not positive and at most MaxPageSize.
func (e *Engine) ListJobs(ctx context.Context, p *store.ListJobsParams) ([]*job.Job, string, error) {
	q := *p
	q.Limit = pageSize(q.Limit)
	if q.State != "" && !q.State.Valid() {
		return nil, "", &job.FieldError{Field: "state", Problem: "must be a job state"}
	}
	js, next, err := e.st.ListJobs(ctx, &q)
	if err != nil {
		return nil, "", fmt.Errorf("engine: list jobs: %w", err)
	}
	return js, next, nil
}

// CancelJob cancels a job: a waiting one at once, a running one by asking
// its worker (on its next heartbeat). A terminal job is store.ErrConflict.
func (e *Engine) CancelJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	j, err := e.st.CancelJob(ctx, tenant, id, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: cancel job %s: %w", id, err)
	}
	return j, nil
}

// RetryJob puts a failed or canceled job back to queued with a fresh
// attempt budget; other states are store.ErrConflict.
func (e *Engine) RetryJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	j, err := e.st.RetryJob(ctx, tenant, id, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: retry job %s: %w", id, err)
	}
	return j, nil
}

// DeleteJob deletes a terminal job; others are store.ErrConflict.
func (e *Engine) DeleteJob(ctx context.Context, tenant, id string) error {
	if err := e.st.DeleteJob(ctx, tenant, id); err != nil {
		return fmt.Errorf("engine: delete job %s: %w", id, err)
	}
	return nil
}

// Subscribe follows the events matching f with Seq > after (after < 0:
// only events from now on). See [event.Hub.Subscribe].
func (e *Engine) Subscribe(ctx context.Context, f event.Filter, after int64) (*event.Subscription, error) {
	return e.hub.Subscribe(ctx, f, after)
}

// Wait blocks until the job is terminal and returns it. It follows the
// job's events and reads the job when one says it ended, and also every
// few seconds in case an event was missed.
func (e *Engine) Wait(ctx context.Context, tenant, id string) (*job.Job, error) {
	var (
		sub    *event.Subscription
		events <-chan job.Event
	)
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	subscribe := func() {
		if sub != nil {
			sub.Close()
		}
		var err error
		if sub, err = e.hub.Subscribe(ctx, event.Filter{Tenant: tenant, JobID: id}, -1); err != nil {
			sub, events = nil, nil // fall back on reading the job every few seconds
			return
		}
		events = sub.C()
	}
	subscribe()
	t := time.NewTicker(waitRecheck)
	defer t.Stop()
	for {
		j, err := e.GetJob(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		if j.State.Terminal() {
			return j, nil
		}
	wait:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					subscribe()
					break wait
				}
				if ev.State.Terminal() {
					break wait
				}
			case <-t.C:
				break wait
			case <-ctx.Done():
				return nil, fmt.Errorf("engine: wait for job %s: %w", id, ctx.Err())
			case <-e.stop:
				return nil, fmt.Errorf("engine: wait for job %s: %w", id, ErrClosed)
			}
		}
	}
}
