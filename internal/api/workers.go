package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// registerWorker is POST /v1/workers {name, host, types, queues, capacity,
// labels, lease_ttl_seconds?}: 201 {id, lease_ttl_seconds,
// heartbeat_seconds}. An admin's worker serves every tenant unless it
// names one; other credentials' workers serve their own tenant.
func (a *API) registerWorker(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req wire.WorkerRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	jw := &job.Worker{Name: req.Name, Host: req.Host, Types: req.Types, Queues: req.Queues,
		Capacity: req.Capacity, Labels: req.Labels}
	var err error
	if jw.Tenant, err = tenantFor(p, req.Tenant, ""); err != nil {
		return err
	}
	if req.LeaseTTLSeconds != nil {
		ttl := wire.Seconds(req.LeaseTTLSeconds)
		if ttl < engine.MinLeaseTTL || ttl > engine.MaxLeaseTTL {
			return badField("lease_ttl_seconds", fmt.Sprintf("must be from %g to %g", engine.MinLeaseTTL.Seconds(), engine.MaxLeaseTTL.Seconds()))
		}
		jw.LeaseTTL = ttl
	}
	if len(req.Labels) > 64 {
		return badField("labels", "has more than 64 entries")
	}
	nw, err := a.eng.RegisterWorker(r.Context(), jw)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, wire.WorkerRegistered{
		ID: nw.ID, LeaseTTLSeconds: wire.S(nw.LeaseTTL), HeartbeatSeconds: wire.S(a.eng.HeartbeatInterval(nw.LeaseTTL)),
	})
}

// listWorkers is GET /v1/workers: every worker the principal may see,
// oldest first, in one page.
func (a *API) listWorkers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ws, err := a.eng.ListWorkers(r.Context(), p.Scope())
	if err != nil {
		return err
	}
	items := make([]wire.Worker, len(ws))
	for i, jw := range ws {
		items[i] = wire.FromWorker(jw)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, ""))
}

// workerID returns the {id} of a worker-protocol call. An admin may call
// for any worker (the engine says whether it is known); other principals
// only for their tenant's workers.
func (a *API) workerID(r *http.Request, p auth.Principal) (string, error) {
	id, err := pathID(r, "worker")
	if err != nil {
		return "", err
	}
	if p.Admin() {
		return id, nil
	}
	ws, err := a.eng.ListWorkers(r.Context(), p.Scope())
	if err != nil {
		return "", err
	}
	for _, jw := range ws {
		if jw.ID == id {
			return id, nil
		}
	}
	return "", notFound("worker", id)
}

// lease is POST /v1/workers/{id}/lease {max, wait_seconds}: up to max
// jobs, each with its lease, waiting up to wait_seconds (at most
// Limits.MaxLeaseWait) for one. An unknown or lost worker is 404: it must
// register again.
func (a *API) lease(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := a.workerID(r, p)
	if err != nil {
		return err
	}
	var req wire.LeaseRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Max < 0 {
		return badField("max", "must not be negative")
	}
	var wait time.Duration
	if req.WaitSeconds != nil {
		if *req.WaitSeconds < 0 {
			return badField("wait_seconds", "must not be negative")
		}
		wait = min(wire.Seconds(req.WaitSeconds), a.lim.MaxLeaseWait)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.base, cancel)()
	res, err := a.eng.Lease(ctx, id, max(req.Max, 1), wait)
	if err != nil {
		if a.base.Err() != nil && r.Context().Err() == nil && errors.Is(err, context.Canceled) {
			// Shutting down: end the long poll with no job.
			return writeJSON(w, http.StatusOK, wire.LeaseResponse{Jobs: []wire.Job{}})
		}
		return err
	}
	out := wire.LeaseResponse{Jobs: make([]wire.Job, len(res.Jobs)), Drain: res.Drain, WaitedSeconds: wire.S(res.Waited)}
	for i, j := range res.Jobs {
		out.Jobs[i] = wire.FromJob(j, false)
		out.Jobs[i].Lease = &wire.Lease{Token: j.Token, ExpiresAt: wire.T(j.LeaseExpiresAt), TTLSeconds: wire.S(res.TTL)}
	}
	return writeJSON(w, http.StatusOK, out)
}

// heartbeat is POST /v1/workers/{id}/heartbeat {leases: [{job_id, token,
// progress?}]}: one answer per lease, in order, and whether to drain.
func (a *API) heartbeat(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := a.workerID(r, p)
	if err != nil {
		return err
	}
	var raw struct {
		Leases []json.RawMessage `json:"leases"`
	}
	if err := decode(r, &raw); err != nil {
		return err
	}
	req := wire.HeartbeatRequest{Leases: make([]wire.HeartbeatLease, len(raw.Leases))}
	if len(raw.Leases) <= a.lim.MaxBatch {
		if err := decodeItems(raw.Leases, "leases", req.Leases); err != nil {
			return err
		}
	}
	if len(req.Leases) > a.lim.MaxBatch {
		return &apiError{status: http.StatusUnprocessableEntity, field: "leases",
			detail: fmt.Sprintf("leases has %d items, more than the limit of %d", len(req.Leases), a.lim.MaxBatch)}
	}
	leases := make([]store.HeartbeatLease, len(req.Leases))
	for i, l := range req.Leases {
		prog, err := progress(l.Progress, fmt.Sprintf("leases[%d].progress", i))
		if err != nil {
			return err
		}
		leases[i] = store.HeartbeatLease{JobID: l.JobID, Token: l.Token, Progress: prog}
	}
	res, err := a.eng.Heartbeat(r.Context(), id, leases)
	if err != nil {
		return err
	}
	out := wire.HeartbeatResponse{Leases: make([]wire.HeartbeatResult, len(leases)), Drain: res.Drain}
	for i, l := range leases {
		out.Leases[i] = wire.HeartbeatResult{JobID: l.JobID}
		if i < len(res.Leases) && res.Leases[i].JobID == l.JobID {
			hr := res.Leases[i]
			out.Leases[i].OK = hr.OK
			out.Leases[i].CancelRequested = hr.CancelRequested
			if hr.OK {
				out.Leases[i].ExpiresAt = wire.T(hr.ExpiresAt)
			}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// report is POST /v1/workers/{id}/report {outcomes: [...]}: one answer per
// outcome, in order; ok false for a stale lease, which changes nothing.
func (a *API) report(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := a.workerID(r, p)
	if err != nil {
		return err
	}
	var raw struct {
		Outcomes []json.RawMessage `json:"outcomes"`
	}
	if err := decode(r, &raw); err != nil {
		return err
	}
	req := wire.ReportRequest{Outcomes: make([]wire.Outcome, len(raw.Outcomes))}
	if len(raw.Outcomes) <= a.lim.MaxBatch {
		if err := decodeItems(raw.Outcomes, "outcomes", req.Outcomes); err != nil {
			return err
		}
	}
	if len(req.Outcomes) > a.lim.MaxBatch {
		return &apiError{status: http.StatusUnprocessableEntity, field: "outcomes",
			detail: fmt.Sprintf("outcomes has %d items, more than the limit of %d", len(req.Outcomes), a.lim.MaxBatch)}
	}
	outs := make([]store.Outcome, len(req.Outcomes))
	for i, o := range req.Outcomes {
		if o.RetryAfterSeconds != nil && *o.RetryAfterSeconds < 0 {
			return badField(fmt.Sprintf("outcomes[%d].retry_after_seconds", i), "must not be negative")
		}
		outs[i] = store.Outcome{JobID: o.JobID, Token: o.Token, Outcome: o.Outcome, Result: rawOrNil(o.Result),
			Error: o.Error, Retryable: o.RetryableOr(true), RetryAfter: o.RetryAfter()}
	}
	// A worker the engine does not know (removed, or pruned after it was
	// lost) is told so, so that it registers again; a heartbeat of no
	// lease checks that cheaply. The store then accepts only outcomes of
	// leases this worker holds.
	if _, err := a.eng.Heartbeat(r.Context(), id, nil); err != nil {
		return err
	}
	res, err := a.eng.Report(r.Context(), id, outs)
	if err != nil {
		return err
	}
	out := wire.ReportResponse{Outcomes: make([]wire.OutcomeResult, len(outs))}
	for i, o := range outs {
		out.Outcomes[i] = wire.OutcomeResult{JobID: o.JobID, OK: i < len(res) && res[i].JobID == o.JobID && res[i].OK}
	}
	return writeJSON(w, http.StatusOK, out)
}

// drainWorker is POST /v1/workers/{id}/drain: the worker is leased nothing
// more and told so on its next lease or heartbeat.
func (a *API) drainWorker(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "worker")
	if err != nil {
		return err
	}
	jw, err := a.eng.DrainWorker(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromWorker(jw))
}

// removeWorker is DELETE /v1/workers/{id}: a graceful leave; the jobs the
// worker holds return to queued at once.
func (a *API) removeWorker(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "worker")
	if err != nil {
		return err
	}
	if err := a.eng.RemoveWorker(r.Context(), p.Scope(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
