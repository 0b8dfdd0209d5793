package embedded

import (
	"context"
	"iter"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// Submit validates spec and stores it as a new job, queued or, with RunAt
// or Delay, scheduled. A bad spec gives a *[FieldError] naming the field.
// When spec.UniqueKey matches an unfinished job of the tenant, that job is
// returned and none is created.
func (g *Gantry) Submit(ctx context.Context, spec JobSpec) (*JobInfo, error) {
	s, err := spec.spec()
	if err != nil {
		return nil, err
	}
	j, _, err := g.eng.Submit(ctx, s)
	if err != nil {
		return nil, publicError(err)
	}
	return jobInfo(j), nil
}

// SubmitBatch stores a batch and its jobs, all or nothing: a bad job gives
// a *[FieldError] naming its index ("jobs[3].type"). It returns the batch
// and the IDs of its jobs, in the order of b.Jobs.
func (g *Gantry) SubmitBatch(ctx context.Context, b BatchSpec) (*BatchInfo, []string, error) {
	js, err := specs(b.Jobs, "jobs")
	if err != nil {
		return nil, nil, err
	}
	bs := engine.BatchSpec{Tenant: b.Tenant, Name: b.Name, Jobs: js, Open: b.Open}
	if b.OnComplete != nil {
		s, err := b.OnComplete.spec()
		if err != nil {
			fe := err.(*FieldError)
			return nil, nil, &FieldError{Field: "on_complete." + fe.Field, Problem: fe.Problem}
		}
		bs.OnComplete = &s
	}
	batch, ids, err := g.eng.SubmitBatch(ctx, bs)
	if err != nil {
		return nil, nil, publicError(err)
	}
	return batchInfo(batch), ids, nil
}

// AddToBatch adds jobs to an open batch, all or nothing, and returns their
// IDs in order. A closed batch is [ErrConflict].
func (g *Gantry) AddToBatch(ctx context.Context, batchID string, jobs []JobSpec) ([]string, error) {
	js, err := specs(jobs, "jobs")
	if err != nil {
		return nil, err
	}
	ids, err := g.eng.AddToBatch(ctx, "", batchID, js)
	return ids, publicError(err)
}

// CloseBatch closes a batch: no job can join it any more, and once all its
// jobs are finished it is done.
func (g *Gantry) CloseBatch(ctx context.Context, batchID string) (*BatchInfo, error) {
	b, err := g.eng.CloseBatch(ctx, "", batchID)
	return batchInfo(b), publicError(err)
}

// CancelBatch closes a batch and cancels its unfinished jobs.
func (g *Gantry) CancelBatch(ctx context.Context, batchID string) (*BatchInfo, error) {
	b, err := g.eng.CancelBatch(ctx, "", batchID)
	return batchInfo(b), publicError(err)
}

// GetBatch returns a batch with its counts.
func (g *Gantry) GetBatch(ctx context.Context, batchID string) (*BatchInfo, error) {
	b, err := g.eng.GetBatch(ctx, "", batchID)
	return batchInfo(b), publicError(err)
}

// ListBatches returns the batches of tenant ("" all), newest first, read
// pageSize at a time (0: 50). It stops at the first error, which it yields.
func (g *Gantry) ListBatches(ctx context.Context, tenant string, pageSize int) iter.Seq2[*BatchInfo, error] {
	return pages(ctx, func(cursor string) ([]*job.Batch, string, error) {
		return g.eng.ListBatches(ctx, &store.ListBatchesParams{Tenant: tenant, Limit: pageSize, Cursor: cursor})
	}, batchInfo)
}

// GetJob returns a job with its attempts.
func (g *Gantry) GetJob(ctx context.Context, id string) (*JobInfo, error) {
	j, err := g.eng.GetJob(ctx, "", id)
	return jobInfo(j), publicError(err)
}

// ListJobs returns the jobs that match f, newest first, read f.PageSize at
// a time, without their attempts. It stops at the first error, which it
// yields.
func (g *Gantry) ListJobs(ctx context.Context, f JobFilter) iter.Seq2[*JobInfo, error] {
	return pages(ctx, func(cursor string) ([]*job.Job, string, error) {
		return g.eng.ListJobs(ctx, &store.ListJobsParams{
			Tenant: f.Tenant, State: f.State, Type: f.Type, Queue: f.Queue, BatchID: f.BatchID,
			Tag: f.Tag, Limit: f.PageSize, Cursor: cursor,
		})
	}, jobInfo)
}

// pages iterates over the items of successive pages read by page.
func pages[T, P any](ctx context.Context, page func(cursor string) ([]T, string, error), conv func(T) *P) iter.Seq2[*P, error] {
	return func(yield func(*P, error) bool) {
		cursor := ""
		for {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			items, next, err := page(cursor)
			if err != nil {
				yield(nil, publicError(err))
				return
			}
			for _, it := range items {
				if !yield(conv(it), nil) {
					return
				}
			}
			if next == "" || len(items) == 0 {
				return
			}
			cursor = next
		}
	}
}

// CancelJob cancels a job: a waiting one at once; a running one ends
// canceled once its worker, told on its next heartbeat, stops it. A
// finished job is [ErrConflict].
func (g *Gantry) CancelJob(ctx context.Context, id string) (*JobInfo, error) {
	j, err := g.eng.CancelJob(ctx, "", id)
	return jobInfo(j), publicError(err)
}

// RetryJob puts a failed or canceled job back in its queue with a fresh
// attempt budget; other states are [ErrConflict].
func (g *Gantry) RetryJob(ctx context.Context, id string) (*JobInfo, error) {
	j, err := g.eng.RetryJob(ctx, "", id)
	return jobInfo(j), publicError(err)
}

// DeleteJob deletes a finished job; others are [ErrConflict].
func (g *Gantry) DeleteJob(ctx context.Context, id string) error {
	return publicError(g.eng.DeleteJob(ctx, "", id))
}

// Wait blocks until the job is finished (succeeded, failed or canceled)
// and returns it with its attempts.
func (g *Gantry) Wait(ctx context.Context, id string) (*JobInfo, error) {
	j, err := g.eng.Wait(ctx, "", id)
	return jobInfo(j), publicError(err)
}

// PauseQueue pauses a tenant's ("" the default tenant's) queue: its jobs
// are not leased until [Gantry.ResumeQueue].
func (g *Gantry) PauseQueue(ctx context.Context, tenant, name string) (*QueueInfo, error) {
	q, err := g.eng.PauseQueue(ctx, tenant, name)
	if err != nil {
		return nil, publicError(err)
	}
	return queueInfo(q), nil
}

// ResumeQueue resumes a paused queue.
func (g *Gantry) ResumeQueue(ctx context.Context, tenant, name string) (*QueueInfo, error) {
	q, err := g.eng.ResumeQueue(ctx, tenant, name)
	if err != nil {
		return nil, publicError(err)
	}
	return queueInfo(q), nil
}

// Queues returns the queues of tenant ("" all) with their counts.
func (g *Gantry) Queues(ctx context.Context, tenant string) ([]*QueueInfo, error) {
	qs, err := g.eng.ListQueues(ctx, tenant)
	if err != nil {
		return nil, publicError(err)
	}
	out := make([]*QueueInfo, len(qs))
	for i, q := range qs {
		out[i] = queueInfo(q)
	}
	return out, nil
}

// Workers returns the registered workers, oldest first.
func (g *Gantry) Workers(ctx context.Context) ([]*WorkerInfo, error) {
	ws, err := g.eng.ListWorkers(ctx, "")
	if err != nil {
		return nil, publicError(err)
	}
	out := make([]*WorkerInfo, len(ws))
	for i, w := range ws {
		out[i] = workerInfo(w)
	}
	return out, nil
}

// DrainWorker asks a worker to drain: it is leased no more jobs, finishes
// those it runs, and leaves.
func (g *Gantry) DrainWorker(ctx context.Context, id string) (*WorkerInfo, error) {
	w, err := g.eng.DrainWorker(ctx, "", id)
	if err != nil {
		return nil, publicError(err)
	}
	return workerInfo(w), nil
}
