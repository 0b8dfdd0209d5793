package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// scheduleRoutes registers the schedule endpoints. An admin names the
// schedule's tenant with ?tenant= (default "default"; lists: every tenant).
func (a *API) scheduleRoutes() {
	a.handle("GET /v1/schedules", auth.Read, a.listSchedules)
	a.handle("PUT /v1/schedules/{name}", auth.Submit, a.putSchedule)
	a.handle("GET /v1/schedules/{name}", auth.Read, a.getSchedule)
	a.handle("DELETE /v1/schedules/{name}", auth.Submit, a.deleteSchedule)
	a.handle("POST /v1/schedules/{name}/trigger", auth.Submit, a.triggerSchedule)
	a.handle("POST /v1/schedules/{name}/pause", auth.Submit, a.pauseSchedule)
	a.handle("POST /v1/schedules/{name}/resume", auth.Submit, a.resumeSchedule)
}

// scheduleBody is the body of PUT /v1/schedules/{name} as the server
// decodes it: the job body is decoded on its own, so that its errors are
// named "job.<field>". [wire.ScheduleRequest] is the same shape, for
// clients.
type scheduleBody struct {
	Cron     string          `json:"cron"`
	Timezone string          `json:"timezone"`
	Job      json.RawMessage `json:"job"`
	Overlap  string          `json:"overlap"`
	Paused   bool            `json:"paused"`
}

// scheduleTarget returns the tenant and name a schedule request is about:
// a name that cannot be a schedule's is not found.
func scheduleTarget(r *http.Request, p auth.Principal) (tenant, name string, err error) {
	name = r.PathValue("name")
	if !job.ValidName(name) {
		return "", "", notFound("schedule", strconv.Quote(name))
	}
	tenant, err = tenantFor(p, r.URL.Query().Get("tenant"), job.DefaultTenant)
	return tenant, name, err
}

// putSchedule is PUT /v1/schedules/{name} {cron, timezone, job, overlap,
// paused}: 201 with the new schedule, 200 with a replaced one.
func (a *API) putSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	name := r.PathValue("name")
	if !job.ValidName(name) {
		return badParam("name", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	tenant, err := tenantFor(p, r.URL.Query().Get("tenant"), job.DefaultTenant)
	if err != nil {
		return err
	}
	var req scheduleBody
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Cron == "" {
		return badParam("cron", "is required")
	}
	raw := rawOrNil(req.Job)
	if raw == nil {
		return badParam("job", "is required")
	}
	jr, err := decodeJob(raw, "job.")
	if err != nil {
		return err
	}
	spec, err := jr.Spec()
	if err != nil {
		var fe *job.FieldError
		if errors.As(err, &fe) {
			return fe.Prefix("job.")
		}
		return err
	}
	if jr.Tenant != "" && jr.Tenant != tenant {
		if !p.Admin() {
			return &apiError{status: http.StatusForbidden, field: "job.tenant",
				detail: "job.tenant: the credential may act only for its own tenant"}
		}
		return badField("job.tenant", "must be empty or the schedule's tenant")
	}
	if jr.RunAt != nil {
		return badField("job.run_at", "must not be set: a schedule's job runs at its tick")
	}
	if jr.DelaySeconds != nil {
		return badField("job.delay_seconds", "must not be set: a schedule's job runs at its tick")
	}
	s, created, err := a.eng.PutSchedule(r.Context(), engine.ScheduleSpec{
		Tenant: tenant, Name: name, Cron: req.Cron, Timezone: req.Timezone, Job: spec, Overlap: req.Overlap, Paused: req.Paused,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/schedules/"+s.Name)
	return writeJSON(w, status, wire.FromSchedule(s))
}

// listSchedules is GET /v1/schedules?limit=&cursor=: the schedules by
// (tenant and) name.
func (a *API) listSchedules(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	lp := store.ListSchedulesParams{Tenant: p.Scope()}
	var err error
	if lp.Limit, lp.Cursor, err = page(q); err != nil {
		return err
	}
	if p.Admin() {
		if lp.Tenant, err = nameParam(q, "tenant"); err != nil {
			return err
		}
	}
	ss, next, err := a.eng.ListSchedules(r.Context(), &lp)
	if err != nil {
		return err
	}
	items := make([]wire.Schedule, len(ss))
	for i, s := range ss {
		items[i] = wire.FromSchedule(s)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, next))
}

// getSchedule is GET /v1/schedules/{name}.
func (a *API) getSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, name, err := scheduleTarget(r, p)
	if err != nil {
		return err
	}
	s, err := a.eng.GetSchedule(r.Context(), tenant, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromSchedule(s))
}

// deleteSchedule is DELETE /v1/schedules/{name}: 204; its jobs stay.
func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, name, err := scheduleTarget(r, p)
	if err != nil {
		return err
	}
	if err := a.eng.DeleteSchedule(r.Context(), tenant, name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// triggerSchedule is POST /v1/schedules/{name}/trigger: 201 with the job
// enqueued at once (409 if the schedule is paused).
func (a *API) triggerSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, name, err := scheduleTarget(r, p)
	if err != nil {
		return err
	}
	j, err := a.eng.TriggerSchedule(r.Context(), tenant, name)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	return writeJSON(w, http.StatusCreated, wire.FromJob(j, false))
}

// pauseSchedule is POST /v1/schedules/{name}/pause.
func (a *API) pauseSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, name, err := scheduleTarget(r, p)
	if err != nil {
		return err
	}
	s, err := a.eng.PauseSchedule(r.Context(), tenant, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromSchedule(s))
}

// resumeSchedule is POST /v1/schedules/{name}/resume.
func (a *API) resumeSchedule(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, name, err := scheduleTarget(r, p)
	if err != nil {
		return err
	}
	s, err := a.eng.ResumeSchedule(r.Context(), tenant, name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromSchedule(s))
}
