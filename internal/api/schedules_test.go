package api

import (
	"net/http"
	"testing"

	"github.com/gantryhq/gantry/internal/wire"
)

func TestScheduleTenantsAndRoles(t *testing.T) {
	h := newHarness(t, nil)
	body := map[string]any{"cron": "0 3 * * *", "timezone": "Europe/Berlin", "job": map[string]any{"type": "report"}}
	var s wire.Schedule
	h.want("acme-submit", "PUT", "/v1/schedules/nightly", body, http.StatusCreated, &s)
	if s.Tenant != "acme" || s.Name != "nightly" || s.NextRunAt == nil {
		t.Fatalf("PUT answered %+v, want acme's nightly with a next run", s)
	}
	h.want("acme-submit", "PUT", "/v1/schedules/nightly", body, http.StatusOK, nil)
	// Roles: read reads, only submit (and admin) writes; workers neither.
	h.want("acme-read", "GET", "/v1/schedules/nightly", nil, http.StatusOK, nil)
	h.want("acme-read", "GET", "/v1/schedules", nil, http.StatusOK, nil)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/v1/schedules/nightly"}, {"DELETE", "/v1/schedules/nightly"},
		{"POST", "/v1/schedules/nightly/trigger"}, {"POST", "/v1/schedules/nightly/pause"}, {"POST", "/v1/schedules/nightly/resume"},
	} {
		var b any
		if c.method == "PUT" {
			b = body
		}
		h.want("acme-read", c.method, c.path, b, http.StatusForbidden, nil)
		h.want("acme-worker", c.method, c.path, b, http.StatusForbidden, nil)
	}
	// Another tenant's schedule is not found; naming another tenant is
	// forbidden; an admin names the tenant with ?tenant=.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/schedules/nightly"}, {"DELETE", "/v1/schedules/nightly"},
		{"POST", "/v1/schedules/nightly/trigger"}, {"POST", "/v1/schedules/nightly/pause"},
	} {
		h.want("globex-submit", c.method, c.path, nil, http.StatusNotFound, nil)
	}
	h.want("globex-submit", "GET", "/v1/schedules/nightly?tenant=acme", nil, http.StatusForbidden, nil)
	h.want("globex-submit", "PUT", "/v1/schedules/x", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "tenant": "acme"}}, http.StatusForbidden, nil)
	var page wire.Page[wire.Schedule]
	h.want("globex-submit", "GET", "/v1/schedules", nil, http.StatusOK, &page)
	if len(page.Items) != 0 {
		t.Errorf("globex lists %d schedules, want none", len(page.Items))
	}
	h.want("admin", "GET", "/v1/schedules/nightly", nil, http.StatusNotFound, nil) // default tenant
	h.want("admin", "GET", "/v1/schedules/nightly?tenant=acme", nil, http.StatusOK, nil)
	h.want("admin", "PUT", "/v1/schedules/nightly?tenant=globex", body, http.StatusCreated, nil)
	h.want("admin", "GET", "/v1/schedules", nil, http.StatusOK, &page)
	if len(page.Items) != 2 || page.Items[0].Tenant != "acme" || page.Items[1].Tenant != "globex" {
		t.Errorf("admin lists %+v, want acme's then globex's nightly", page.Items)
	}
	h.want("admin", "GET", "/v1/schedules?tenant=globex", nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Tenant != "globex" {
		t.Errorf("admin lists globex's schedules as %+v", page.Items)
	}
	var j wire.Job
	h.want("acme-submit", "POST", "/v1/schedules/nightly/trigger", nil, http.StatusCreated, &j)
	if j.Tenant != "acme" || j.Type != "report" || j.Metadata["gantry.schedule"] != "nightly" {
		t.Errorf("triggered job %+v, want acme's report of nightly", j)
	}
	h.want("acme-submit", "DELETE", "/v1/schedules/nightly", nil, http.StatusNoContent, nil)
	h.want("acme-read", "GET", "/v1/schedules/nightly", nil, http.StatusNotFound, nil)
	h.want("admin", "GET", "/v1/schedules/nightly?tenant=globex", nil, http.StatusOK, nil)
}
