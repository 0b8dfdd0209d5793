package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// submitJob is POST /v1/jobs: 201 with the new job, or 200 with the
// existing job of the same unique key.
func (a *API) submitJob(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	data, err := body(r)
	if err != nil {
		return err
	}
	req, err := decodeJob(data, "")
	if err != nil {
		return err
	}
	spec, err := req.Spec()
	if err != nil {
		return err
	}
	if spec.Tenant, err = tenantFor(p, req.Tenant, ""); err != nil {
		return err
	}
	j, created, err := a.eng.Submit(r.Context(), spec)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	return writeJSON(w, status, wire.FromJob(j, false))
}

// listJobs is GET /v1/jobs?state=&type=&queue=&batch_id=&tag=&limit=&cursor=.
func (a *API) listJobs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	lp := store.ListJobsParams{Tenant: p.Scope()}
	var err error
	if lp.Limit, lp.Cursor, err = page(q); err != nil {
		return err
	}
	if lp.State, err = stateParam(q); err != nil {
		return err
	}
	if lp.Type, err = nameParam(q, "type"); err != nil {
		return err
	}
	if lp.Queue, err = nameParam(q, "queue"); err != nil {
		return err
	}
	if lp.BatchID, err = idParam(q, "batch_id"); err != nil {
		return err
	}
	lp.Tag = q.Get("tag")
	if len(lp.Tag) > 128 || !utf8.ValidString(lp.Tag) {
		return badParam("tag", "must be valid UTF-8 of at most 128 bytes")
	}
	return a.writeJobs(w, r, &lp)
}

// writeJobs answers with a page of jobs.
func (a *API) writeJobs(w http.ResponseWriter, r *http.Request, lp *store.ListJobsParams) error {
	js, next, err := a.eng.ListJobs(r.Context(), lp)
	if err != nil {
		return err
	}
	items := make([]wire.Job, len(js))
	for i, j := range js {
		items[i] = wire.FromJob(j, false)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, next))
}

// getJob is GET /v1/jobs/{id}, with the job's attempts.
func (a *API) getJob(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	j, err := a.eng.GetJob(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromJob(j, true))
}

// cancelJob is POST /v1/jobs/{id}/cancel.
func (a *API) cancelJob(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	j, err := a.eng.CancelJob(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromJob(j, false))
}

// retryJob is POST /v1/jobs/{id}/retry.
func (a *API) retryJob(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	j, err := a.eng.RetryJob(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromJob(j, false))
}

// deleteJob is DELETE /v1/jobs/{id}: 204, terminal jobs only.
func (a *API) deleteJob(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	if err := a.eng.DeleteJob(r.Context(), p.Scope(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// leasedJob returns job id if token is its current lease; otherwise a 409
// (or a 404 for an unknown job).
func (a *API) leasedJob(r *http.Request, p auth.Principal, id string, token int64) (*job.Job, error) {
	j, err := a.eng.GetJob(r.Context(), p.Scope(), id)
	if err != nil {
		return nil, err
	}
	if j.State != gantry.StateRunning || j.WorkerID == "" || j.Token != token {
		return nil, staleLease(id)
	}
	return j, nil
}

// jobHeartbeat is POST /v1/jobs/{id}/heartbeat {token, progress?}: the
// per-job shortcut of a worker heartbeat.
func (a *API) jobHeartbeat(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	var req wire.JobHeartbeatRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	prog, err := progress(req.Progress, "progress")
	if err != nil {
		return err
	}
	j, err := a.leasedJob(r, p, id, req.Token)
	if err != nil {
		return err
	}
	res, err := a.eng.Heartbeat(r.Context(), j.WorkerID, []store.HeartbeatLease{{JobID: id, Token: req.Token, Progress: prog}})
	if errors.Is(err, store.ErrNotFound) {
		return staleLease(id) // the worker left: its leases were released
	}
	if err != nil {
		return err
	}
	if len(res.Leases) != 1 || !res.Leases[0].OK {
		return staleLease(id)
	}
	l := res.Leases[0]
	return writeJSON(w, http.StatusOK, wire.HeartbeatResult{JobID: id, OK: true, ExpiresAt: wire.T(l.ExpiresAt), CancelRequested: l.CancelRequested})
}

// jobComplete is POST /v1/jobs/{id}/complete {token, result?}.
func (a *API) jobComplete(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	var req wire.JobCompleteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	return a.finishOne(w, r, p, store.Outcome{JobID: id, Token: req.Token, Outcome: job.OutcomeSucceeded, Result: rawOrNil(req.Result)})
}

// jobFail is POST /v1/jobs/{id}/fail {token, error, retryable?, retry_after_seconds?}.
func (a *API) jobFail(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "job")
	if err != nil {
		return err
	}
	var req wire.JobFailRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	o := wire.Outcome{Retryable: req.Retryable, RetryAfterSeconds: req.RetryAfterSeconds}
	if req.RetryAfterSeconds != nil && *req.RetryAfterSeconds < 0 {
		return badField("retry_after_seconds", "must not be negative")
	}
	return a.finishOne(w, r, p, store.Outcome{
		JobID: id, Token: req.Token, Outcome: job.OutcomeFailed, Error: req.Error,
		Retryable: o.RetryableOr(true), RetryAfter: o.RetryAfter(),
	})
}

// finishOne records one outcome through the job's lease holder and answers
// with the job after it.
func (a *API) finishOne(w http.ResponseWriter, r *http.Request, p auth.Principal, o store.Outcome) error {
	j, err := a.leasedJob(r, p, o.JobID, o.Token)
	if err != nil {
		return err
	}
	res, err := a.eng.Report(r.Context(), j.WorkerID, []store.Outcome{o})
	if err != nil {
		return err
	}
	if len(res) != 1 || !res[0].OK || res[0].Job == nil {
		return staleLease(o.JobID)
	}
	return writeJSON(w, http.StatusOK, wire.FromJob(res[0].Job, false))
}

// progress converts and checks a progress report.
func progress(p *wire.Progress, field string) (*job.Progress, error) {
	if p == nil {
		return nil, nil
	}
	if p.Percent < 0 || p.Percent > 100 {
		return nil, &job.FieldError{Field: field + ".percent", Problem: "must be from 0 to 100"}
	}
	if len(p.Message) > 1024 || !utf8.ValidString(p.Message) {
		return nil, &job.FieldError{Field: field + ".message", Problem: "must be valid UTF-8 of at most 1024 bytes"}
	}
	return &job.Progress{Percent: p.Percent, Message: p.Message}, nil
}

// rawOrNil returns nil for an absent or null JSON value.
func rawOrNil(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}
