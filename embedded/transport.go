package embedded

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/worker"
)

// transport is the in-process [worker.Transport]: worker calls become engine
// calls, with no HTTP in between. Its workers serve every tenant.
type transport struct {
	eng *engine.Engine
}

var _ worker.Transport = (*transport)(nil)

// Register implements [worker.Transport].
func (t *transport) Register(ctx context.Context, r worker.Registration) (worker.Registered, error) {
	w, err := t.eng.RegisterWorker(ctx, &job.Worker{
		Name: r.Name, Host: r.Host, Types: r.Types, Queues: r.Queues,
		Capacity: r.Capacity, Labels: r.Labels, LeaseTTL: r.LeaseTTL,
	})
	if err != nil {
		return worker.Registered{}, publicError(err)
	}
	return worker.Registered{ID: w.ID, LeaseTTL: w.LeaseTTL, Heartbeat: t.eng.HeartbeatInterval(w.LeaseTTL)}, nil
}

// Lease implements [worker.Transport].
func (t *transport) Lease(ctx context.Context, workerID string, max int, wait time.Duration) (worker.LeaseResult, error) {
	res, err := t.eng.Lease(ctx, workerID, max, wait)
	if err != nil {
		return worker.LeaseResult{}, workerError(err)
	}
	out := worker.LeaseResult{Drain: res.Drain}
	if len(res.Jobs) > 0 {
		out.Leases = make([]worker.Lease, len(res.Jobs))
		for i, j := range res.Jobs {
			out.Leases[i] = worker.Lease{Job: j.Handler(), Token: j.Token, TTL: res.TTL, Waited: res.Waited}
		}
	}
	return out, nil
}

// Heartbeat implements [worker.Transport].
func (t *transport) Heartbeat(ctx context.Context, workerID string, renewals []worker.Renewal) (worker.HeartbeatResult, error) {
	leases := make([]store.HeartbeatLease, len(renewals))
	for i, r := range renewals {
		leases[i] = store.HeartbeatLease{JobID: r.JobID, Token: r.Token}
		if r.Progress != nil {
			leases[i].Progress = &job.Progress{Percent: r.Progress.Percent, Message: r.Progress.Message}
		}
	}
	res, err := t.eng.Heartbeat(ctx, workerID, leases)
	if err != nil {
		return worker.HeartbeatResult{}, workerError(err)
	}
	out := worker.HeartbeatResult{Drain: res.Drain, Leases: make([]worker.RenewalResult, len(res.Leases))}
	for i, r := range res.Leases {
		out.Leases[i] = worker.RenewalResult{JobID: r.JobID, OK: r.OK, CancelRequested: r.CancelRequested}
	}
	return out, nil
}

// Report implements [worker.Transport].
func (t *transport) Report(ctx context.Context, workerID string, outcomes []worker.Outcome) ([]bool, error) {
	outs := make([]store.Outcome, len(outcomes))
	for i, o := range outcomes {
		kind, err := outcomeKind(o.Outcome)
		if err != nil {
			return nil, fmt.Errorf("embedded: report outcomes[%d]: %w", i, err)
		}
		outs[i] = store.Outcome{
			JobID: o.JobID, Token: o.Token, Outcome: kind, Result: o.Result,
			Error: o.Error, Retryable: o.Retryable, RetryAfter: o.RetryAfter,
		}
	}
	res, err := t.eng.Report(ctx, workerID, outs)
	if err != nil {
		return nil, publicError(err)
	}
	oks := make([]bool, len(res))
	for i, r := range res {
		oks[i] = r.OK
	}
	return oks, nil
}

func outcomeKind(s string) (string, error) {
	switch s {
	case worker.Succeeded:
		return job.OutcomeSucceeded, nil
	case worker.Failed:
		return job.OutcomeFailed, nil
	case worker.Canceled:
		return job.OutcomeCanceled, nil
	}
	return "", &FieldError{Field: "outcome", Problem: fmt.Sprintf("must be succeeded, failed or canceled, not %q", s)}
}

// Leave implements [worker.Transport].
func (t *transport) Leave(ctx context.Context, workerID string) error {
	return workerError(t.eng.RemoveWorker(ctx, "", workerID))
}

// workerError maps an error of a call naming a worker: an unknown (or
// lost) worker is [worker.ErrUnknownWorker], so that the worker registers
// again.
func workerError(err error) error {
	err = publicError(err)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", worker.ErrUnknownWorker, err)
	}
	return err
}
