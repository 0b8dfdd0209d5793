package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// tooManyJobs is the error of a batch request over Limits.MaxBatch.
func (a *API) tooManyJobs(n int) error {
	return &apiError{status: http.StatusUnprocessableEntity, field: "jobs",
		detail: fmt.Sprintf("jobs has %d items, more than the limit of %d", n, a.lim.MaxBatch)}
}

// batchBody is the body of POST /v1/batches as the server decodes it: the
// jobs are decoded one by one, so that an error names its index.
// [wire.BatchRequest] is the same shape, for clients.
type batchBody struct {
	Name       string            `json:"name"`
	Tenant     string            `json:"tenant"`
	Jobs       []json.RawMessage `json:"jobs"`
	Open       bool              `json:"open"`
	OnComplete json.RawMessage   `json:"on_complete"`
}

// batchJobsBody is the body of POST /v1/batches/{id}/jobs as the server
// decodes it; see [batchBody].
type batchJobsBody struct {
	Jobs []json.RawMessage `json:"jobs"`
}

// batchSpecs decodes the jobs of a batch request, each strictly (a 400
// names its index, e.g. "jobs[3].priority"), and converts them to specs.
func (a *API) batchSpecs(raws []json.RawMessage) ([]job.Spec, error) {
	if len(raws) > a.lim.MaxBatch {
		return nil, a.tooManyJobs(len(raws))
	}
	reqs := make([]wire.JobRequest, len(raws))
	for i, raw := range raws {
		var err error
		if reqs[i], err = decodeJob(raw, fmt.Sprintf("jobs[%d].", i)); err != nil {
			return nil, err
		}
	}
	return wire.Specs(reqs)
}

// createBatch is POST /v1/batches {name, jobs, open, on_complete}: 201
// {batch, job_ids}, all or nothing.
func (a *API) createBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req batchBody
	if err := decode(r, &req); err != nil {
		return err
	}
	specs, err := a.batchSpecs(req.Jobs)
	if err != nil {
		return err
	}
	b := engine.BatchSpec{Name: req.Name, Jobs: specs, Open: req.Open}
	if b.Tenant, err = tenantFor(p, req.Tenant, ""); err != nil {
		return err
	}
	if oc := rawOrNil(req.OnComplete); oc != nil {
		ocr, err := decodeJob(oc, "on_complete.")
		if err != nil {
			return err
		}
		s, err := ocr.Spec()
		if err != nil {
			var fe *job.FieldError
			if errors.As(err, &fe) {
				return fe.Prefix("on_complete.")
			}
			return err
		}
		b.OnComplete = &s
	}
	batch, ids, err := a.eng.SubmitBatch(r.Context(), b)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	w.Header().Set("Location", "/v1/batches/"+batch.ID)
	return writeJSON(w, http.StatusCreated, wire.BatchCreated{Batch: wire.FromBatch(batch), JobIDs: ids})
}

// addToBatch is POST /v1/batches/{id}/jobs {jobs}: 201 {job_ids}.
func (a *API) addToBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "batch")
	if err != nil {
		return err
	}
	var req batchJobsBody
	if err := decode(r, &req); err != nil {
		return err
	}
	specs, err := a.batchSpecs(req.Jobs)
	if err != nil {
		return err
	}
	ids, err := a.eng.AddToBatch(r.Context(), p.Scope(), id, specs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, wire.JobIDs{JobIDs: ids})
}

// listBatches is GET /v1/batches?limit=&cursor=.
func (a *API) listBatches(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	lp := store.ListBatchesParams{Tenant: p.Scope()}
	var err error
	if lp.Limit, lp.Cursor, err = page(r.URL.Query()); err != nil {
		return err
	}
	bs, next, err := a.eng.ListBatches(r.Context(), &lp)
	if err != nil {
		return err
	}
	items := make([]wire.Batch, len(bs))
	for i, b := range bs {
		items[i] = wire.FromBatch(b)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, next))
}

// getBatch is GET /v1/batches/{id}.
func (a *API) getBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.batchOp(w, r, p, a.eng.GetBatch)
}

// closeBatch is POST /v1/batches/{id}/close.
func (a *API) closeBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.batchOp(w, r, p, a.eng.CloseBatch)
}

// cancelBatch is POST /v1/batches/{id}/cancel.
func (a *API) cancelBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.batchOp(w, r, p, a.eng.CancelBatch)
}

// batchOp answers with the batch op returns.
func (a *API) batchOp(w http.ResponseWriter, r *http.Request, p auth.Principal,
	op func(ctx context.Context, tenant, id string) (*job.Batch, error)) error {
	id, err := pathID(r, "batch")
	if err != nil {
		return err
	}
	b, err := op(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromBatch(b))
}

// listBatchJobs is GET /v1/batches/{id}/jobs?state=&limit=&cursor=; an
// unknown batch is 404 rather than an empty list.
func (a *API) listBatchJobs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "batch")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	lp := store.ListJobsParams{Tenant: p.Scope(), BatchID: id}
	if lp.Limit, lp.Cursor, err = page(q); err != nil {
		return err
	}
	if lp.State, err = stateParam(q); err != nil {
		return err
	}
	if lp.Cursor == "" {
		if _, err := a.eng.GetBatch(r.Context(), p.Scope(), id); err != nil {
			return err
		}
	}
	return a.writeJobs(w, r, &lp)
}
