package api

import (
	"net/http"
	"testing"

	"github.com/gantryhq/gantry/internal/wire"
)

func TestReservationRolesAndTenants(t *testing.T) {
	h := newHarness(t, nil)
	acquire := func(holder string) map[string]any { return map[string]any{"holder": holder, "ttl_seconds": 60} }

	// Submit and worker credentials may acquire, renew and release; read
	// credentials may only read.
	var g wire.Grant
	h.want("acme-worker", "POST", "/v1/reservations/r1/acquire", acquire("w"), http.StatusOK, &g)
	if g.Tenant != "acme" || g.Holder != "w" || g.Token <= 0 {
		t.Errorf("worker's grant = %+v, want acme's, held by w", g)
	}
	h.want("acme-worker", "POST", "/v1/reservations/r1/renew", map[string]any{"holder": "w", "token": g.Token, "ttl_seconds": 60}, http.StatusOK, nil)
	h.want("acme-worker", "POST", "/v1/reservations/r1/release", map[string]any{"holder": "w", "token": g.Token}, http.StatusNoContent, nil)
	h.want("acme-submit", "POST", "/v1/reservations/r1/acquire", acquire("s"), http.StatusOK, &g)
	h.want("acme-read", "POST", "/v1/reservations/r1/acquire", acquire("r"), http.StatusForbidden, nil)
	h.want("acme-read", "POST", "/v1/reservations/r1/renew", map[string]any{"holder": "s", "token": g.Token, "ttl_seconds": 60}, http.StatusForbidden, nil)
	h.want("acme-read", "POST", "/v1/reservations/r1/release", map[string]any{"holder": "s", "token": g.Token}, http.StatusForbidden, nil)
	var got wire.Reservation
	h.want("acme-read", "GET", "/v1/reservations/r1", nil, http.StatusOK, &got)
	if got.Holder == nil || *got.Holder != "s" || len(got.History) != 2 {
		t.Errorf("acme-read's GET = %+v, want held by s with 2 grants", got)
	}

	// Names are per tenant: globex neither sees nor disturbs acme's r1.
	h.want("globex-submit", "GET", "/v1/reservations/r1", nil, http.StatusNotFound, nil)
	h.want("globex-submit", "POST", "/v1/reservations/r1/release", map[string]any{"holder": "s", "token": g.Token}, http.StatusConflict, nil)
	h.want("globex-submit", "POST", "/v1/reservations/r1/renew", map[string]any{"holder": "s", "token": g.Token, "ttl_seconds": 60}, http.StatusConflict, nil)
	var gg wire.Grant
	h.want("globex-submit", "POST", "/v1/reservations/r1/acquire", acquire("x"), http.StatusOK, &gg)
	if gg.Tenant != "globex" {
		t.Errorf("globex's grant is %s's", gg.Tenant)
	}
	h.want("acme-read", "GET", "/v1/reservations/r1", nil, http.StatusOK, &got)
	if got.Holder == nil || *got.Holder != "s" {
		t.Errorf("acme's r1 after globex's acquire = %+v, want still s's", got)
	}
	// Naming another tenant is forbidden; an admin may name any.
	h.want("acme-submit", "POST", "/v1/reservations/r2/acquire?tenant=globex", acquire("s"), http.StatusForbidden, nil)
	h.want("acme-submit", "POST", "/v1/reservations/r2/acquire", map[string]any{"holder": "s", "ttl_seconds": 60, "tenant": "globex"}, http.StatusForbidden, nil)
	h.want("acme-read", "GET", "/v1/reservations/r1?tenant=globex", nil, http.StatusForbidden, nil)
	h.want("acme-read", "GET", "/v1/reservations?tenant=globex", nil, http.StatusForbidden, nil)
	h.want("admin", "GET", "/v1/reservations/r1?tenant=globex", nil, http.StatusOK, &got)
	if got.Holder == nil || *got.Holder != "x" {
		t.Errorf("admin's GET of globex's r1 = %+v, want x's", got)
	}
	h.want("admin", "POST", "/v1/reservations/r3/acquire", map[string]any{"holder": "a", "ttl_seconds": 60, "tenant": "acme"}, http.StatusOK, &g)
	if g.Tenant != "acme" {
		t.Errorf("admin's grant for acme has tenant %q", g.Tenant)
	}
	h.want("admin", "POST", "/v1/reservations/r3/release?tenant=globex", map[string]any{"holder": "a", "token": g.Token, "tenant": "acme"}, http.StatusBadRequest, nil)
	h.want("admin", "POST", "/v1/reservations/r3/acquire", acquire("d"), http.StatusOK, &g)
	if g.Tenant != "default" {
		t.Errorf("admin's grant without a tenant has tenant %q, want default", g.Tenant)
	}

	// The engine's own reservation (tenant "", gantry:maintenance) is out
	// of reach, even of an admin.
	for _, tenant := range []string{"", "?tenant=default"} {
		h.want("admin", "POST", "/v1/reservations/gantry:maintenance/acquire"+tenant, acquire("thief"), http.StatusBadRequest, nil)
		h.want("admin", "GET", "/v1/reservations/gantry:maintenance"+tenant, nil, http.StatusBadRequest, nil)
	}

	// Lists: one's own tenant's; an admin's every tenant's, or one.
	var page wire.Page[wire.Reservation]
	h.want("acme-read", "GET", "/v1/reservations", nil, http.StatusOK, &page)
	if len(page.Items) != 2 {
		t.Errorf("acme lists %d reservations, want 2", len(page.Items))
	}
	for _, it := range page.Items {
		if it.Tenant != "acme" || it.History != nil {
			t.Errorf("acme lists %+v", it)
		}
	}
	h.want("admin", "GET", "/v1/reservations", nil, http.StatusOK, &page)
	if len(page.Items) != 4 {
		t.Errorf("admin lists %d reservations, want 4 (acme r1 r3, default r3, globex r1)", len(page.Items))
	}
	for _, it := range page.Items {
		if it.Tenant == "" {
			t.Errorf("admin lists the engine's own reservation %+v", it)
		}
	}
	h.want("admin", "GET", "/v1/reservations?tenant=globex", nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Tenant != "globex" {
		t.Errorf("admin's list of globex = %+v", page.Items)
	}
}
