package test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// TestPostgresUnreachable cuts the link between a server and PostgreSQL:
// the API answers 503 with Retry-After while the database is unreachable,
// and serves again without a restart once the link is back.
func TestPostgresUnreachable(t *testing.T) {
	dbURL := pgNeed(t)
	proxy, proxied := startPGProxy(t, dbURL)
	s := apiStart(t, server.Config{DatabaseURL: proxied, Schema: pgSchema(t, dbURL), DatabaseMaxConns: 4})

	j := s.submit(map[string]any{"type": "demo.noop"})
	s.req("GET", "/readyz", nil).want(t, http.StatusOK, nil)
	// A remote worker lives through the outage.
	c, err := client.New(s.url, client.WithToken(s.token))
	if err != nil {
		t.Fatal(err)
	}
	startClientWorker(t, c, worker.Options{Name: "through-outage", Concurrency: 2}, func(w *worker.Worker) {
		w.RegisterFunc("pg.echo", func(_ context.Context, j *gantry.Job) (any, error) { return j.ID, nil })
	})

	proxy.Cut()
	requests := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/jobs/" + j.ID, nil},
		{"POST", "/v1/jobs", map[string]any{"type": "demo.noop"}},
		{"GET", "/v1/jobs", nil},
		{"GET", "/readyz", nil},
	}
	for range 3 { // pooled connections die on first use, then new ones fail to start
		for _, r := range requests {
			resp := s.req(r.method, r.path, r.body)
			p := resp.problem(t, http.StatusServiceUnavailable, "")
			if p.Type != "urn:gantry:problem:unavailable" {
				t.Errorf("%s %s while the database is unreachable: problem type %q, want urn:gantry:problem:unavailable", r.method, r.path, p.Type)
			}
			if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
				t.Errorf("%s %s while the database is unreachable: Retry-After %q, want a number of seconds", r.method, r.path, resp.Header.Get("Retry-After"))
			}
		}
	}

	proxy.Restore()
	apiEventually(t, "the API to serve again", func() bool {
		return s.req("GET", "/v1/jobs/"+j.ID, nil).Status == http.StatusOK
	})
	s.req("GET", "/readyz", nil).want(t, http.StatusOK, nil)
	if got := s.job(j.ID); got.ID != j.ID {
		t.Errorf("job after the outage = %+v, want %s", got, j.ID)
	}
	after := clientSubmit(t, c, client.JobRequest{Type: "pg.echo"})
	if got := clientWaitJob(t, c, after.ID); got.State != gantry.StateSucceeded {
		t.Errorf("job submitted after the outage ended %s, want succeeded by the worker that lived through it", got.State)
	}
}
