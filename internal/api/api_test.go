package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
	"github.com/gantryhq/gantry/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// tokens maps test tokens to principals.
type tokens map[string]auth.Principal

func (t tokens) Authenticate(_ context.Context, token string) (auth.Principal, error) {
	if p, ok := t[token]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrUnauthorized
}

var testTokens = tokens{
	"admin":         {Role: auth.RoleAdmin, Key: "admin"},
	"acme-submit":   {Tenant: "acme", Role: auth.RoleSubmit, Key: "acme-submit"},
	"acme-read":     {Tenant: "acme", Role: auth.RoleRead, Key: "acme-read"},
	"acme-worker":   {Tenant: "acme", Role: auth.RoleWorker, Key: "acme-worker"},
	"globex-submit": {Tenant: "globex", Role: auth.RoleSubmit, Key: "globex-submit"},
	"globex-worker": {Tenant: "globex", Role: auth.RoleWorker, Key: "globex-worker"},
}

// harness is an API over a real engine and SQLite store.
type harness struct {
	t   *testing.T
	srv *httptest.Server
	a   *API
}

func newHarness(t *testing.T, eng Engine) *harness {
	t.Helper()
	if eng == nil {
		st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db"), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		e := engine.New(st, engine.Config{Logger: quiet})
		e.Start(context.Background())
		t.Cleanup(func() { e.Close(); st.Close() })
		eng = e
	}
	a, err := New(Config{Engine: eng, Auth: testTokens, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() { a.Shutdown(); srv.Close() })
	return &harness{t: t, srv: srv, a: a}
}

// do sends a request as token and decodes a JSON answer into out.
func (h *harness) do(token, method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	r, _ := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, rd)
	r.Header.Set("Authorization", "Bearer "+token)
	res, err := h.srv.Client().Do(r)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return res.StatusCode
}

func (h *harness) want(token, method, path string, body any, status int, out any) {
	h.t.Helper()
	if got := h.do(token, method, path, body, out); got != status {
		h.t.Errorf("%s %s %s = %d, want %d", token, method, path, got, status)
	}
}

func TestTenantScopingAndRoles(t *testing.T) {
	h := newHarness(t, nil)
	var acme, globex wire.Job
	h.want("acme-submit", "POST", "/v1/jobs", map[string]any{"type": "x"}, http.StatusCreated, &acme)
	h.want("globex-submit", "POST", "/v1/jobs", map[string]any{"type": "x"}, http.StatusCreated, &globex)
	if acme.Tenant != "acme" || globex.Tenant != "globex" {
		t.Fatalf("tenants = %q, %q; want the credentials' own", acme.Tenant, globex.Tenant)
	}
	// Naming another tenant is forbidden; naming one's own is fine; an
	// admin may name any.
	h.want("acme-submit", "POST", "/v1/jobs", map[string]any{"type": "x", "tenant": "globex"}, http.StatusForbidden, nil)
	h.want("acme-submit", "POST", "/v1/jobs", map[string]any{"type": "x", "tenant": "acme"}, http.StatusCreated, nil)
	var adm wire.Job
	h.want("admin", "POST", "/v1/jobs", map[string]any{"type": "x", "tenant": "globex"}, http.StatusCreated, &adm)
	if adm.Tenant != "globex" {
		t.Errorf("admin's job for globex has tenant %q", adm.Tenant)
	}

	// Another tenant's objects are not found.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/jobs/" + acme.ID}, {"POST", "/v1/jobs/" + acme.ID + "/cancel"},
		{"POST", "/v1/jobs/" + acme.ID + "/retry"}, {"DELETE", "/v1/jobs/" + acme.ID},
	} {
		h.want("globex-submit", c.method, c.path, nil, http.StatusNotFound, nil)
	}
	var page wire.Page[wire.Job]
	h.want("globex-submit", "GET", "/v1/jobs", nil, http.StatusOK, &page)
	for _, j := range page.Items {
		if j.Tenant != "globex" {
			t.Errorf("globex lists %s's job %s", j.Tenant, j.ID)
		}
	}
	h.want("admin", "GET", "/v1/jobs", nil, http.StatusOK, &page)
	if len(page.Items) != 4 {
		t.Errorf("admin lists %d jobs, want 4", len(page.Items))
	}

	// Batches.
	var b wire.BatchCreated
	h.want("acme-submit", "POST", "/v1/batches", map[string]any{"jobs": []any{map[string]any{"type": "x"}}, "open": true}, http.StatusCreated, &b)
	h.want("globex-submit", "GET", "/v1/batches/"+b.Batch.ID, nil, http.StatusNotFound, nil)
	h.want("globex-submit", "POST", "/v1/batches/"+b.Batch.ID+"/jobs", map[string]any{"jobs": []any{map[string]any{"type": "x"}}}, http.StatusNotFound, nil)
	h.want("globex-submit", "GET", "/v1/batches/"+b.Batch.ID+"/jobs", nil, http.StatusNotFound, nil)
	h.want("acme-submit", "POST", "/v1/batches", map[string]any{"tenant": "globex", "jobs": []any{map[string]any{"type": "x"}}}, http.StatusForbidden, nil)
	// An admin adding to acme's batch adds acme's jobs.
	var ids wire.JobIDs
	h.want("admin", "POST", "/v1/batches/"+b.Batch.ID+"/jobs", map[string]any{"jobs": []any{map[string]any{"type": "x"}}}, http.StatusCreated, &ids)
	var added wire.Job
	h.want("acme-read", "GET", "/v1/jobs/"+ids.JobIDs[0], nil, http.StatusOK, &added)

	// Roles: read cannot write, submit cannot work, worker cannot submit.
	h.want("acme-read", "POST", "/v1/jobs", map[string]any{"type": "x"}, http.StatusForbidden, nil)
	h.want("acme-read", "POST", "/v1/jobs/"+acme.ID+"/cancel", nil, http.StatusForbidden, nil)
	h.want("acme-read", "POST", "/v1/queues/default/pause", nil, http.StatusForbidden, nil)
	h.want("acme-submit", "POST", "/v1/workers", map[string]any{}, http.StatusForbidden, nil)
	h.want("acme-worker", "POST", "/v1/jobs", map[string]any{"type": "x"}, http.StatusForbidden, nil)
	h.want("acme-read", "GET", "/v1/jobs/"+acme.ID, nil, http.StatusOK, nil)

	// Workers serve their own tenant; another tenant's worker is 404.
	var reg wire.WorkerRegistered
	h.want("acme-worker", "POST", "/v1/workers", map[string]any{"tenant": "globex"}, http.StatusForbidden, nil)
	h.want("acme-worker", "POST", "/v1/workers", map[string]any{}, http.StatusCreated, &reg)
	var lease wire.LeaseResponse
	h.want("acme-worker", "POST", "/v1/workers/"+reg.ID+"/lease", map[string]any{"max": 100}, http.StatusOK, &lease)
	if len(lease.Jobs) == 0 {
		t.Fatal("acme's worker leased nothing")
	}
	for _, j := range lease.Jobs {
		if j.Tenant != "acme" {
			t.Errorf("acme's worker leased %s's job %s", j.Tenant, j.ID)
		}
	}
	for _, c := range []struct {
		path string
		body any
	}{
		{"/lease", map[string]any{"max": 1}}, {"/heartbeat", map[string]any{"leases": []any{}}},
		{"/report", map[string]any{"outcomes": []any{}}}, {"/drain", nil},
	} {
		h.want("globex-worker", "POST", "/v1/workers/"+reg.ID+c.path, c.body, http.StatusNotFound, nil)
	}
	h.want("globex-worker", "DELETE", "/v1/workers/"+reg.ID, nil, http.StatusNotFound, nil)
	l := lease.Jobs[0]
	h.want("globex-worker", "POST", "/v1/jobs/"+l.ID+"/complete", map[string]any{"token": l.Lease.Token}, http.StatusNotFound, nil)
	h.want("acme-worker", "POST", "/v1/jobs/"+l.ID+"/complete", map[string]any{"token": l.Lease.Token}, http.StatusOK, nil)
	var ws wire.Page[wire.Worker]
	h.want("globex-submit", "GET", "/v1/workers", nil, http.StatusOK, &ws)
	if len(ws.Items) != 0 {
		t.Errorf("globex sees %d workers, want none", len(ws.Items))
	}

	// Queues: one's own tenant's, by default and by name; not another's.
	var q wire.Queue
	h.want("acme-submit", "POST", "/v1/queues/default/pause", nil, http.StatusOK, &q)
	if q.Tenant != "acme" || !q.Paused {
		t.Errorf("paused queue = %+v, want acme's", q)
	}
	h.want("acme-submit", "POST", "/v1/queues/default/pause?tenant=globex", nil, http.StatusForbidden, nil)
	var qs wire.Page[wire.Queue]
	h.want("globex-submit", "GET", "/v1/queues", nil, http.StatusOK, &qs)
	for _, q := range qs.Items {
		if q.Tenant != "globex" || q.Paused {
			t.Errorf("globex sees queue %+v", q)
		}
	}
}

func TestEventsTenantScoped(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/v1/events", nil)
	r.Header.Set("Authorization", "Bearer globex-submit")
	res, err := h.srv.Client().Do(r)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events = %v, %v", res, err)
	}
	defer res.Body.Close()
	h.want("acme-submit", "POST", "/v1/jobs", map[string]any{"type": "secret"}, http.StatusCreated, nil)
	var g wire.Job
	h.want("globex-submit", "POST", "/v1/jobs", map[string]any{"type": "mine"}, http.StatusCreated, &g)
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), g.ID) {
		n, err := res.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("stream ended before globex's event: %v; got %q", err, got.String())
		}
	}
	if strings.Contains(got.String(), "secret") || strings.Contains(got.String(), "acme") {
		t.Errorf("globex's stream shows acme's event: %q", got.String())
	}
}

// failing is an engine whose calls fail in a given way.
type failing struct {
	Engine
	err   error
	panic bool
}

func (f failing) GetJob(context.Context, string, string) (*job.Job, error) {
	if f.panic {
		panic("boom")
	}
	return nil, f.err
}

func TestEngineFailures(t *testing.T) {
	tests := []struct {
		name   string
		eng    failing
		status int
	}{
		{"unknown error", failing{err: errors.New("disk on fire")}, http.StatusInternalServerError},
		{"panic", failing{panic: true}, http.StatusInternalServerError},
		{"store unavailable", failing{err: fmt.Errorf("x: %w", store.ErrUnavailable)}, http.StatusServiceUnavailable},
		{"engine closed", failing{err: fmt.Errorf("x: %w", engine.ErrClosed)}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.eng)
			r, _ := http.NewRequest("GET", h.srv.URL+"/v1/jobs/01900000-0000-7000-8000-000000000000", nil)
			r.Header.Set("Authorization", "Bearer admin")
			res, err := h.srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var p wire.Problem
			_ = json.NewDecoder(res.Body).Decode(&p)
			if res.StatusCode != tt.status || p.Status != tt.status || res.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("answer = %d %+v, want a %d problem", res.StatusCode, p, tt.status)
			}
			if strings.Contains(p.Detail, "fire") || strings.Contains(p.Detail, "boom") {
				t.Errorf("detail %q leaks the internal error", p.Detail)
			}
		})
	}
}

func TestProblemMapping(t *testing.T) {
	a := &API{log: quiet}
	r := httptest.NewRequest("GET", "/v1/x", nil)
	tests := []struct {
		err  error
		want wire.Problem
	}{
		{&job.FieldError{Field: "priority", Problem: "must be small"},
			wire.Problem{Type: ProblemType("invalid-request"), Title: "Bad Request", Status: 400, Detail: "priority must be small", Field: "priority"}},
		{fmt.Errorf("engine: %w", &job.FieldError{Field: "jobs[2].params", Problem: "is 9 bytes", TooLarge: true}),
			wire.Problem{Type: ProblemType("too-large"), Title: "Request Entity Too Large", Status: 413, Detail: "jobs[2].params is 9 bytes", Field: "jobs[2].params"}},
		{badInput(&job.FieldError{Field: "jobs[1].priority", Problem: "must be a number"}),
			wire.Problem{Type: ProblemType("invalid-request"), Title: "Bad Request", Status: 400, Detail: "jobs[1].priority must be a number", Field: "jobs[1].priority"}},
		{fmt.Errorf("engine: %w", fmt.Errorf("%w: %w", engine.ErrTooLarge, &job.FieldError{Field: "jobs", Problem: "has 5 items"})),
			wire.Problem{Type: ProblemType("too-many-items"), Title: "Unprocessable Entity", Status: 422, Detail: "jobs has 5 items", Field: "jobs"}},
		{&http.MaxBytesError{Limit: 1 << 20},
			wire.Problem{Type: ProblemType("too-large"), Title: "Request Entity Too Large", Status: 413, Detail: "the request body is larger than 1 MiB", Field: "body"}},
		{fmt.Errorf("engine: list: %w", fmt.Errorf("sqlite: bad cursor: %w", store.ErrInvalidCursor)),
			wire.Problem{Type: ProblemType("invalid-request"), Title: "Bad Request", Status: 400, Detail: "cursor is not a cursor of this list", Field: "cursor"}},
		{fmt.Errorf("engine: cancel job J: %w", fmt.Errorf("sqlite: job J is succeeded: %w", store.ErrConflict)),
			wire.Problem{Type: ProblemType("conflict"), Title: "Conflict", Status: 409, Detail: "conflict: job J is succeeded"}},
		{fmt.Errorf("engine: get job J: %w", fmt.Errorf("sqlite: job J: %w", store.ErrNotFound)),
			wire.Problem{Type: ProblemType("not-found"), Title: "Not Found", Status: 404, Detail: "not found: job J"}},
		{fmt.Errorf("engine: worker W is lost: %w", store.ErrNotFound),
			wire.Problem{Type: ProblemType("not-found"), Title: "Not Found", Status: 404, Detail: "not found: worker W is lost"}},
		{fmt.Errorf("server: too many webhooks: %w", ErrQuota),
			wire.Problem{Type: ProblemType("quota"), Title: "Unprocessable Entity", Status: 422, Detail: "quota reached: too many webhooks"}},
		{fmt.Errorf("event: subscribe: %w", event.ErrClosed),
			wire.Problem{Type: ProblemType("unavailable"), Title: "Service Unavailable", Status: 503, Detail: "the server cannot reach its store or is shutting down; retry later"}},
		{fmt.Errorf("sqlite: x: %w", context.Canceled),
			wire.Problem{Type: ProblemType("unavailable"), Title: "Service Unavailable", Status: 503, Detail: "the request was interrupted; retry later"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, a.problem(r, tt.err)); diff != "" {
			t.Errorf("problem(%v) (-want +got):\n%s", tt.err, diff)
		}
	}
}
