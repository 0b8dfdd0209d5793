package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// readyTimeout bounds the readiness check.
const readyTimeout = 2 * time.Second

// healthz is GET /healthz: the process serves HTTP. No credentials.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	_ = writeJSON(w, http.StatusOK, wire.Health{Status: "ok"})
}

// readyz is GET /readyz: 200 when the store answers, else 503. No
// credentials.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := a.ready(ctx); err != nil {
			a.log.Warn("api: not ready", "err", err)
			a.fail(w, r, &apiError{status: http.StatusServiceUnavailable, detail: "the store is not reachable"})
			return
		}
	}
	_ = writeJSON(w, http.StatusOK, wire.Health{Status: "ready"})
}
