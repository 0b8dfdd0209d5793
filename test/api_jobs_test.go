package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/gantryhq/gantry/internal/server"
)

// registerWorker registers a worker and returns its ID.
func (s *apiServer) registerWorker(body any) string {
	s.t.Helper()
	var reg struct {
		ID string `json:"id"`
	}
	s.req("POST", "/v1/workers", body).want(s.t, http.StatusCreated, &reg)
	return reg.ID
}

// leaseJobs leases up to max jobs without waiting.
func (s *apiServer) leaseJobs(workerID string, max int) []apiJob {
	s.t.Helper()
	var res struct {
		Jobs []apiJob `json:"jobs"`
	}
	s.req("POST", "/v1/workers/"+workerID+"/lease", map[string]any{"max": max, "wait_seconds": 0}).want(s.t, http.StatusOK, &res)
	return res.Jobs
}

// failJob runs job id to failed (no retry) through a new worker.
func (s *apiServer) failJob(id string) {
	s.t.Helper()
	w := s.registerWorker(map[string]any{"name": "failer"})
	for _, j := range s.leaseJobs(w, 100) {
		s.req("POST", "/v1/jobs/"+j.ID+"/fail", map[string]any{"token": j.Lease.Token, "error": "boom", "retryable": j.ID != id}).want(s.t, http.StatusOK, nil)
	}
	if st := s.job(id).State; st != "failed" {
		s.t.Fatalf("job %s is %s after failing it, want failed", id, st)
	}
}

func TestAPIJobSubmitAndGet(t *testing.T) {
	s := apiStart(t, server.Config{})
	j := s.submit(map[string]any{
		"type": "email.send", "queue": "mail", "priority": 7, "params": map[string]any{"to": "a@example.com"},
		"tags": []string{"x", "y"}, "metadata": map[string]string{"k": "v"}, "max_attempts": 3,
	})
	if j.ID == "" || j.State != "queued" || j.Tenant != "default" || j.Queue != "mail" || j.Priority != 7 {
		t.Fatalf("submitted job = %+v", j)
	}
	if string(j.Params) != `{"to":"a@example.com"}` {
		t.Errorf("params = %s", j.Params)
	}

	r := s.req("GET", "/v1/jobs/"+j.ID, nil)
	var got apiJob
	r.want(t, http.StatusOK, &got)
	if got.ID != j.ID || got.Type != "email.send" || !slices.Equal(got.Tags, []string{"x", "y"}) {
		t.Errorf("GET job = %+v, want the submitted job", got)
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(r.Body, &raw)
	for _, k := range []string{"attempts", "progress", "result", "error", "cancel_requested", "created_at", "started_at", "finished_at", "worker_id", "run_at", "metadata", "max_attempts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET job has no %q member: %s", k, r.Body)
		}
	}
	// Unset strings are present as "", in every answer with a job.
	var list struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	s.req("GET", "/v1/jobs?limit=1", nil).want(t, http.StatusOK, &list)
	var posted map[string]json.RawMessage
	s.req("POST", "/v1/jobs", map[string]any{"type": "t"}).want(t, http.StatusCreated, &posted)
	if len(list.Items) != 1 {
		t.Fatalf("list = %+v", list)
	}
	for name, obj := range map[string]map[string]json.RawMessage{"GET": raw, "list": list.Items[0], "POST": posted} {
		for _, k := range []string{"name", "package", "batch_id", "unique_key", "singleton_key", "error", "worker_id"} {
			if v, ok := obj[k]; !ok || string(v) != `""` {
				t.Errorf("%s job member %q = %s, want \"\"", name, k, v)
			}
		}
	}

	// A delayed job is scheduled.
	d := s.submit(map[string]any{"type": "later", "delay_seconds": 3600})
	if d.State != "scheduled" {
		t.Errorf("delayed job state = %s, want scheduled", d.State)
	}
}

func TestAPIJobUniqueKey(t *testing.T) {
	s := apiStart(t, server.Config{})
	first := s.submit(map[string]any{"type": "t", "unique_key": "u1"})
	var again apiJob
	r := s.req("POST", "/v1/jobs", map[string]any{"type": "t", "unique_key": "u1"})
	r.want(t, http.StatusOK, &again)
	if again.ID != first.ID {
		t.Errorf("resubmitted unique job id = %s, want %s", again.ID, first.ID)
	}
	if loc := r.Header.Get("Location"); loc != "/v1/jobs/"+first.ID {
		t.Errorf("Location = %q", loc)
	}
}

func TestAPIJobList(t *testing.T) {
	s := apiStart(t, server.Config{})
	var ids []string
	for i := range 5 {
		q := "a"
		if i%2 == 1 {
			q = "b"
		}
		ids = append(ids, s.submit(map[string]any{"type": fmt.Sprintf("t%d", i%2), "queue": q, "tags": []string{fmt.Sprintf("tag%d", i)}}).ID)
	}
	slices.Reverse(ids) // newest first

	// Paging with limit and cursor covers every job once, newest first.
	var got []string
	cursor := ""
	for range 10 {
		path := "/v1/jobs?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var p apiPage[apiJob]
		s.req("GET", path, nil).want(t, http.StatusOK, &p)
		if len(p.Items) > 2 {
			t.Fatalf("page of %d items with limit=2", len(p.Items))
		}
		for _, j := range p.Items {
			got = append(got, j.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged ids = %v, want %v", got, ids)
	}

	tests := []struct {
		query string
		want  int
	}{
		{"", 5},
		{"?queue=a", 3},
		{"?queue=b&type=t1", 2},
		{"?type=t0", 3},
		{"?state=queued", 5},
		{"?state=running", 0},
		{"?tag=tag3", 1},
		{"?unknown=ignored", 5},
	}
	for _, tt := range tests {
		var p apiPage[apiJob]
		s.req("GET", "/v1/jobs"+tt.query, nil).want(t, http.StatusOK, &p)
		if len(p.Items) != tt.want || p.NextCursor != nil {
			t.Errorf("GET /v1/jobs%s = %d items, cursor %v; want %d, none", tt.query, len(p.Items), p.NextCursor, tt.want)
		}
	}

	bad := []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?state=done", "state"},
		{"?queue=bad%20name", "queue"},
		{"?type=a/b", "type"},
		{"?batch_id=nope", "batch_id"},
		{"?cursor=garbage", "cursor"},
	}
	for _, tt := range bad {
		t.Run(tt.query, func(t *testing.T) {
			s.req("GET", "/v1/jobs"+tt.query, nil).problem(t, http.StatusBadRequest, tt.field)
		})
	}
}

func TestAPIJobCancelRetryDelete(t *testing.T) {
	s := apiStart(t, server.Config{})
	j := s.submit(map[string]any{"type": "t"})

	// Deleting a job that has not finished is a conflict.
	s.req("DELETE", "/v1/jobs/"+j.ID, nil).problem(t, http.StatusConflict, "")
	// Retrying a queued job is a conflict.
	s.req("POST", "/v1/jobs/"+j.ID+"/retry", nil).problem(t, http.StatusConflict, "")

	var c apiJob
	s.req("POST", "/v1/jobs/"+j.ID+"/cancel", nil).want(t, http.StatusOK, &c)
	if c.State != "canceled" {
		t.Fatalf("canceled job state = %s", c.State)
	}
	// Canceling a terminal job is a conflict.
	s.req("POST", "/v1/jobs/"+j.ID+"/cancel", nil).problem(t, http.StatusConflict, "")

	var r apiJob
	s.req("POST", "/v1/jobs/"+j.ID+"/retry", nil).want(t, http.StatusOK, &r)
	if r.State != "queued" {
		t.Fatalf("retried job state = %s, want queued", r.State)
	}

	// A failed job can be retried too.
	s.failJob(j.ID)
	s.req("POST", "/v1/jobs/"+j.ID+"/retry", nil).want(t, http.StatusOK, &r)
	if r.State != "queued" {
		t.Fatalf("retried failed job state = %s, want queued", r.State)
	}

	// A running job gets cancel_requested.
	w := s.registerWorker(map[string]any{})
	if got := s.leaseJobs(w, 1); len(got) != 1 || got[0].ID != j.ID {
		t.Fatalf("leased %+v, want job %s", got, j.ID)
	}
	s.req("POST", "/v1/jobs/"+j.ID+"/cancel", nil).want(t, http.StatusOK, &c)
	if c.State != "running" || !c.CancelRequested {
		t.Errorf("cancel of a running job = state %s, cancel_requested %t; want running, true", c.State, c.CancelRequested)
	}

	done := s.submit(map[string]any{"type": "t"})
	s.req("POST", "/v1/jobs/"+done.ID+"/cancel", nil).want(t, http.StatusOK, nil)
	r2 := s.req("DELETE", "/v1/jobs/"+done.ID, nil)
	r2.want(t, http.StatusNoContent, nil)
	if len(r2.Body) != 0 {
		t.Errorf("204 with body %q", r2.Body)
	}
	s.req("GET", "/v1/jobs/"+done.ID, nil).problem(t, http.StatusNotFound, "")
}

func TestAPIJobNotFound(t *testing.T) {
	s := apiStart(t, server.Config{})
	unknown := "01900000-0000-7000-8000-000000000000"
	for _, path := range []string{
		"GET /v1/jobs/" + unknown, "GET /v1/jobs/not-an-id", "GET /v1/jobs/%20",
		"POST /v1/jobs/" + unknown + "/cancel", "POST /v1/jobs/x/cancel",
		"POST /v1/jobs/" + unknown + "/retry", "DELETE /v1/jobs/" + unknown, "DELETE /v1/jobs/x",
		"GET /v1/batches/" + unknown, "GET /v1/batches/x", "GET /v1/batches/" + unknown + "/jobs",
		"POST /v1/batches/" + unknown + "/close", "POST /v1/batches/" + unknown + "/cancel",
		"POST /v1/workers/" + unknown + "/drain", "DELETE /v1/workers/" + unknown, "DELETE /v1/workers/x",
		"GET /v1/nothing-here", "GET /v1", "GET /nothing",
	} {
		t.Run(path, func(t *testing.T) {
			var method, p string
			_, _ = fmt.Sscan(path, &method, &p)
			s.req(method, p, nil).problem(t, http.StatusNotFound, "")
		})
	}
}
