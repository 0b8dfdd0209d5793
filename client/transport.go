package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/wire"
	"github.com/gantryhq/gantry/worker"
)

// leaseSlack is how much longer than its wait a long-poll lease request may
// take before the client gives up on it.
const leaseSlack = 15 * time.Second

// WorkerTransport returns the remote [worker.Transport]: the worker runtime
// over the HTTP worker protocol of the server.
//
//	w := worker.New(c.WorkerTransport(), worker.Options{Concurrency: 20})
//
// Leases are timed by the durations the server sends (lease_ttl_seconds,
// ttl_seconds), never by its timestamps. A call naming a worker the server
// does not know (HTTP 404) fails with an error that matches
// [worker.ErrUnknownWorker], so that the worker registers again.
func (c *Client) WorkerTransport() worker.Transport { return &transport{c: c} }

// transport is the remote [worker.Transport].
type transport struct {
	c *Client
}

var _ worker.Transport = (*transport)(nil)

// Register implements [worker.Transport].
func (t *transport) Register(ctx context.Context, r worker.Registration) (worker.Registered, error) {
	body := wire.WorkerRequest{Name: r.Name, Host: r.Host, Types: r.Types, Queues: r.Queues,
		Capacity: r.Capacity, Labels: r.Labels}
	if r.LeaseTTL > 0 {
		s := wire.S(r.LeaseTTL)
		body.LeaseTTLSeconds = &s
	}
	var w wire.WorkerRegistered
	if _, err := t.c.do(ctx, call{method: "POST", path: "/v1/workers", body: &body, out: &w}); err != nil {
		return worker.Registered{}, err
	}
	if w.ID == "" {
		return worker.Registered{}, errors.New("client: register worker: the server answered no worker id")
	}
	return worker.Registered{ID: w.ID, LeaseTTL: seconds(w.LeaseTTLSeconds), Heartbeat: seconds(w.HeartbeatSeconds)}, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Lease implements [worker.Transport]. The request may take wait plus a
// margin before it is given up.
func (t *transport) Lease(ctx context.Context, workerID string, max int, wait time.Duration) (worker.LeaseResult, error) {
	body := wire.LeaseRequest{Max: max}
	if wait > 0 {
		s := wire.S(wait)
		body.WaitSeconds = &s
	}
	var w wire.LeaseResponse
	_, err := t.c.do(ctx, call{method: "POST", path: workerPath(workerID, "/lease"), body: &body, out: &w, timeout: wait + leaseSlack})
	if err != nil {
		return worker.LeaseResult{}, workerError(err)
	}
	res := worker.LeaseResult{Drain: w.Drain}
	if len(w.Jobs) > 0 {
		res.Leases = make([]worker.Lease, len(w.Jobs))
		for i := range w.Jobs {
			j := &w.Jobs[i]
			if j.Lease == nil || j.Lease.Token == 0 {
				return worker.LeaseResult{}, fmt.Errorf("client: lease: job %s came without a lease token", j.ID)
			}
			// Zero takes the worker's registered TTL. The lease began
			// waited_seconds after the server got the request.
			res.Leases[i] = worker.Lease{Job: handlerJob(j), Token: j.Lease.Token,
				TTL: seconds(j.Lease.TTLSeconds), Waited: seconds(w.WaitedSeconds)}
		}
	}
	return res, nil
}

// handlerJob is the view of a leased job that a handler gets.
func handlerJob(w *wire.Job) gantry.Job {
	return gantry.Job{
		ID: w.ID, Tenant: w.Tenant, Type: w.Type, Name: w.Name, Queue: w.Queue, Priority: w.Priority,
		Params: raw(w.Params), BatchID: w.BatchID, Attempt: w.Attempt, MaxAttempts: w.MaxAttempts,
		Timeout: wire.Seconds(w.TimeoutSeconds), Tags: w.Tags, Metadata: w.Metadata, CreatedAt: tm(w.CreatedAt),
	}
}

// Heartbeat implements [worker.Transport].
func (t *transport) Heartbeat(ctx context.Context, workerID string, renewals []worker.Renewal) (worker.HeartbeatResult, error) {
	body := wire.HeartbeatRequest{Leases: make([]wire.HeartbeatLease, len(renewals))}
	for i, r := range renewals {
		body.Leases[i] = wire.HeartbeatLease{JobID: r.JobID, Token: r.Token}
		if r.Progress != nil {
			body.Leases[i].Progress = &wire.Progress{Percent: r.Progress.Percent, Message: r.Progress.Message}
		}
	}
	var w wire.HeartbeatResponse
	if _, err := t.c.do(ctx, call{method: "POST", path: workerPath(workerID, "/heartbeat"), body: &body, out: &w}); err != nil {
		return worker.HeartbeatResult{}, workerError(err)
	}
	res := worker.HeartbeatResult{Drain: w.Drain, Leases: make([]worker.RenewalResult, len(w.Leases))}
	for i, l := range w.Leases {
		res.Leases[i] = worker.RenewalResult{JobID: l.JobID, OK: l.OK, CancelRequested: l.CancelRequested}
	}
	return res, nil
}

// Report implements [worker.Transport]. A report the server finds too
// large (413: its body limit is lower than the worker's chunks assume) is
// sent again in halves, down to single outcomes.
func (t *transport) Report(ctx context.Context, workerID string, outcomes []worker.Outcome) ([]bool, error) {
	oks, err := t.report(ctx, workerID, outcomes)
	if !errors.Is(err, ErrTooLarge) || len(outcomes) < 2 {
		return oks, err
	}
	half := len(outcomes) / 2
	first, err := t.Report(ctx, workerID, outcomes[:half])
	if err != nil {
		return nil, err
	}
	rest, err := t.Report(ctx, workerID, outcomes[half:])
	if err != nil {
		return nil, err
	}
	return append(first, rest...), nil
}

// report sends outcomes in one request.
func (t *transport) report(ctx context.Context, workerID string, outcomes []worker.Outcome) ([]bool, error) {
	body := wire.ReportRequest{Outcomes: make([]wire.Outcome, len(outcomes))}
	for i, o := range outcomes {
		w := wire.Outcome{JobID: o.JobID, Token: o.Token, Outcome: o.Outcome, Result: raw(o.Result), Error: o.Error}
		if o.Outcome == worker.Failed {
			retryable := o.Retryable
			w.Retryable = &retryable
			if o.RetryAfter > 0 {
				s := wire.S(o.RetryAfter)
				w.RetryAfterSeconds = &s
			}
		}
		body.Outcomes[i] = w
	}
	var w wire.ReportResponse
	if _, err := t.c.do(ctx, call{method: "POST", path: workerPath(workerID, "/report"), body: &body, out: &w}); err != nil {
		return nil, workerError(err)
	}
	if len(w.Outcomes) != len(outcomes) {
		return nil, fmt.Errorf("client: report: the server answered %d outcomes for %d", len(w.Outcomes), len(outcomes))
	}
	oks := make([]bool, len(w.Outcomes))
	for i, o := range w.Outcomes {
		if o.JobID != "" && o.JobID != outcomes[i].JobID {
			return nil, fmt.Errorf("client: report: the server answered outcome %d for job %s, not %s", i, o.JobID, outcomes[i].JobID)
		}
		oks[i] = o.OK
	}
	return oks, nil
}

// Leave implements [worker.Transport].
func (t *transport) Leave(ctx context.Context, workerID string) error {
	_, err := t.c.do(ctx, call{method: "DELETE", path: workerPath(workerID, "")})
	return workerError(err)
}

// workerError makes a 404 answer to a call naming a worker match
// [worker.ErrUnknownWorker] too: the server does not know the worker.
func workerError(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", worker.ErrUnknownWorker, err)
	}
	return err
}
