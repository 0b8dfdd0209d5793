package api

import (
	"net/http"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/wire"
)

// createWebhook is POST /v1/webhooks {url, kinds?, batch_id?}: 201 with
// the webhook and its secret, shown only in this answer.
func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var req wire.WebhookRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.URL == "" {
		return badInput(&job.FieldError{Field: "url", Problem: "is required"})
	}
	tenant, err := tenantFor(p, req.Tenant, "")
	if err != nil {
		return err
	}
	wh, err := a.webhooks.Create(r.Context(), tenant, req.URL, req.Kinds, req.BatchID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/webhooks/"+wh.ID)
	return writeJSON(w, http.StatusCreated, wire.FromWebhook(wh, true))
}

// listWebhooks is GET /v1/webhooks, in one page, without secrets.
func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	whs, err := a.webhooks.List(r.Context(), p.Scope())
	if err != nil {
		return err
	}
	items := make([]wire.Webhook, len(whs))
	for i, wh := range whs {
		items[i] = wire.FromWebhook(wh, false)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, ""))
}

// getWebhook is GET /v1/webhooks/{id}, without its secret.
func (a *API) getWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "webhook")
	if err != nil {
		return err
	}
	wh, err := a.webhooks.Get(r.Context(), p.Scope(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromWebhook(wh, false))
}

// deleteWebhook is DELETE /v1/webhooks/{id}: 204.
func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, err := pathID(r, "webhook")
	if err != nil {
		return err
	}
	if err := a.webhooks.Delete(r.Context(), p.Scope(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
