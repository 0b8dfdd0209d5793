package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/wire"
)

// listQueues is GET /v1/queues: the queues the principal may see, by tenant
// then name, in one page.
func (a *API) listQueues(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	qs, err := a.eng.ListQueues(r.Context(), p.Scope())
	if err != nil {
		return err
	}
	now := a.now()
	items := make([]wire.Queue, len(qs))
	for i, q := range qs {
		items[i] = wire.FromQueue(q, now)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, ""))
}

// pauseQueue is POST /v1/queues/{name}/pause[?tenant=]: the queue leases
// nothing until resumed. A queue need not have jobs yet to be paused.
func (a *API) pauseQueue(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.queueOp(w, r, p, a.eng.PauseQueue)
}

// resumeQueue is POST /v1/queues/{name}/resume[?tenant=].
func (a *API) resumeQueue(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return a.queueOp(w, r, p, a.eng.ResumeQueue)
}

// queueOp applies op to the named queue of the principal's tenant (an
// admin names the tenant with ?tenant=, default "default").
func (a *API) queueOp(w http.ResponseWriter, r *http.Request, p auth.Principal,
	op func(ctx context.Context, tenant, name string) (*job.Queue, error)) error {
	name := r.PathValue("name")
	if !job.ValidName(name) {
		return notFound("queue", strconv.Quote(name))
	}
	t := r.URL.Query().Get("tenant")
	if t != "" && !job.ValidName(t) {
		return badParam("tenant", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	tenant, err := tenantFor(p, t, job.DefaultTenant)
	if err != nil {
		return err
	}
	q, err := op(r.Context(), tenant, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromQueue(q, a.now()))
}
