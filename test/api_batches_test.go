package test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/server"
)

type apiBatch struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Tenant     string         `json:"tenant"`
	CreatedAt  string         `json:"created_at"`
	Closed     bool           `json:"closed"`
	Total      int            `json:"total"`
	Counts     map[string]int `json:"counts"`
	Done       bool           `json:"done"`
	FinishedAt *string        `json:"finished_at"`
}

func TestAPIBatches(t *testing.T) {
	s := apiStart(t, server.Config{})

	// All or nothing: one bad job rejects the batch, naming its index: 400
	// when it cannot be decoded or its values are not acceptable, 413 when
	// its params are too large.
	rejected := []struct {
		body   string
		status int
		field  string
	}{
		{`{"jobs":[{"type":"b.t"},{"type":"b.t","priority":"x"}]}`, http.StatusBadRequest, "jobs[1].priority"},
		{`{"jobs":[{"type":"b.t"},{"type":"b.t","foo":1}]}`, http.StatusBadRequest, "jobs[1].foo"},
		{`{"jobs":[{"type":"b.t"},{"queue":"q"}]}`, http.StatusBadRequest, "jobs[1].type"},
		{`{"jobs":[{"type":"b.t"},"b.t"]}`, http.StatusBadRequest, "jobs[1]"},
		{`{"jobs":[{"type":"b.t","run_at":"soon"}]}`, http.StatusBadRequest, "jobs[0].run_at"},
		{`{"jobs":{"type":"b.t"}}`, http.StatusBadRequest, "jobs"},
		{`{"jobs":[{"type":"b.t"}],"color":"red"}`, http.StatusBadRequest, "color"},
		{`{"jobs":[{"type":"b.t"}],"on_complete":{"type":"s","foo":1}}`, http.StatusBadRequest, "on_complete.foo"},
		{`{"jobs":[{"type":"b.t"}],"on_complete":{"type":"s","priority":true}}`, http.StatusBadRequest, "on_complete.priority"},
		{`{"jobs":[{"type":"b.t"}],"on_complete":{"name":"s"}}`, http.StatusBadRequest, "on_complete.type"},
		{`{"name":"b","jobs":[{"type":"ok"},{"type":"bad type"}]}`, http.StatusBadRequest, "jobs[1].type"},
		{`{"jobs":[{"type":"ok"},{"type":"ok","max_attempts":-1}]}`, http.StatusBadRequest, "jobs[1].max_attempts"},
		{`{"jobs":[{"type":"ok"},{"type":"ok","priority":101}]}`, http.StatusBadRequest, "jobs[1].priority"},
		{`{"jobs":[]}`, http.StatusBadRequest, "jobs"},
		{`{"jobs":[{"type":"x"}],"on_complete":{"type":"a b"}}`, http.StatusBadRequest, "on_complete.type"},
		{`{"jobs":[{"type":"x"}],"on_complete":{"type":"s","max_attempts":-1}}`, http.StatusBadRequest, "on_complete.max_attempts"},
		{`{"jobs":[{"type":"x"},{"type":"x","params":"` + strings.Repeat("a", 300<<10) + `"}]}`, http.StatusRequestEntityTooLarge, "jobs[1].params"},
	}
	for _, tt := range rejected {
		s.req("POST", "/v1/batches", tt.body).problem(t, tt.status, tt.field)
	}
	var none apiPage[apiJob]
	s.req("GET", "/v1/jobs", nil).want(t, http.StatusOK, &none)
	if len(none.Items) != 0 {
		t.Fatalf("rejected batches left %d jobs", len(none.Items))
	}

	// An open batch.
	var created struct {
		Batch  apiBatch `json:"batch"`
		JobIDs []string `json:"job_ids"`
	}
	r := s.req("POST", "/v1/batches", map[string]any{"name": "import", "open": true,
		"jobs":        []any{map[string]any{"type": "row"}, map[string]any{"type": "row"}},
		"on_complete": map[string]any{"type": "summary"}})
	r.want(t, http.StatusCreated, &created)
	b := created.Batch
	if b.ID == "" || b.Name != "import" || b.Closed || b.Total != 2 || len(created.JobIDs) != 2 || b.Tenant != "default" {
		t.Fatalf("created = %+v", created)
	}
	if r.Header.Get("Location") != "/v1/batches/"+b.ID {
		t.Errorf("Location = %q", r.Header.Get("Location"))
	}
	for _, id := range created.JobIDs {
		if j := s.job(id); j.BatchID != b.ID {
			t.Errorf("job %s batch_id = %q, want %s", id, j.BatchID, b.ID)
		}
	}

	var added struct {
		JobIDs []string `json:"job_ids"`
	}
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", map[string]any{"jobs": []any{map[string]any{"type": "row"}}}).want(t, http.StatusCreated, &added)
	if len(added.JobIDs) != 1 {
		t.Fatalf("added = %+v", added)
	}
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", map[string]any{"jobs": []any{map[string]any{"type": "row", "priority": 500}}}).problem(t, http.StatusBadRequest, "jobs[0].priority")
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", `{"jobs":[{"type":"row"},{"type":"row","priority":"x"}]}`).problem(t, http.StatusBadRequest, "jobs[1].priority")
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", `{"jobs":[{"type":"row"},{"type":"row","foo":"x"}]}`).problem(t, http.StatusBadRequest, "jobs[1].foo")
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", `{"jobs":[{"type":"row"}],"open":true}`).problem(t, http.StatusBadRequest, "open")
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", `{"jobs":[{"type":"row","params":"`+strings.Repeat("a", 300<<10)+`"}]}`).problem(t, http.StatusRequestEntityTooLarge, "jobs[0].params")
	// A job can also join an open batch by batch_id.
	byID := s.submit(map[string]any{"type": "row", "batch_id": b.ID})

	var got apiBatch
	s.req("GET", "/v1/batches/"+b.ID, nil).want(t, http.StatusOK, &got)
	if got.Total != 4 || got.Counts["queued"] != 4 || got.Done {
		t.Errorf("batch = %+v, want 4 queued jobs", got)
	}

	var jobs apiPage[apiJob]
	s.req("GET", "/v1/batches/"+b.ID+"/jobs?limit=10", nil).want(t, http.StatusOK, &jobs)
	var ids []string
	for _, j := range jobs.Items {
		ids = append(ids, j.ID)
	}
	want := append(append(slices.Clone(created.JobIDs), added.JobIDs...), byID.ID)
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("batch jobs = %v, want %v", ids, want)
	}
	s.req("GET", "/v1/batches/"+b.ID+"/jobs?state=running", nil).want(t, http.StatusOK, &jobs)
	if len(jobs.Items) != 0 {
		t.Errorf("running batch jobs = %d, want 0", len(jobs.Items))
	}
	s.req("GET", "/v1/batches/"+b.ID+"/jobs?state=nope", nil).problem(t, http.StatusBadRequest, "state")

	// Closed: no more jobs.
	s.req("POST", "/v1/batches/"+b.ID+"/close", nil).want(t, http.StatusOK, &got)
	if !got.Closed {
		t.Errorf("closed batch = %+v", got)
	}
	s.req("POST", "/v1/batches/"+b.ID+"/jobs", map[string]any{"jobs": []any{map[string]any{"type": "row"}}}).problem(t, http.StatusConflict, "")
	s.req("POST", "/v1/jobs", map[string]any{"type": "row", "batch_id": b.ID}).problem(t, http.StatusConflict, "")

	// Cancel: every waiting job is canceled, and the batch is done.
	s.req("POST", "/v1/batches/"+b.ID+"/cancel", nil).want(t, http.StatusOK, &got)
	s.req("GET", "/v1/batches/"+b.ID, nil).want(t, http.StatusOK, &got)
	if got.Counts["canceled"] != 4 || !got.Done || got.FinishedAt == nil {
		t.Errorf("canceled batch = %+v", got)
	}

	// A closed batch is created closed; lists page newest first.
	var c2 struct {
		Batch apiBatch `json:"batch"`
	}
	s.req("POST", "/v1/batches", map[string]any{"jobs": []any{map[string]any{"type": "x"}}}).want(t, http.StatusCreated, &c2)
	if !c2.Batch.Closed {
		t.Errorf("batch without open = %+v, want closed", c2.Batch)
	}
	var list apiPage[apiBatch]
	s.req("GET", "/v1/batches?limit=1", nil).want(t, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != c2.Batch.ID || list.NextCursor == nil {
		t.Fatalf("first page = %+v", list)
	}
	s.req("GET", "/v1/batches?limit=1&cursor="+*list.NextCursor, nil).want(t, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != b.ID {
		t.Errorf("second page = %+v", list)
	}
	s.req("GET", "/v1/batches?limit=5000", nil).problem(t, http.StatusBadRequest, "limit")
}

func TestAPIQueues(t *testing.T) {
	s := apiStart(t, server.Config{})
	s.submit(map[string]any{"type": "x", "queue": "mail"})
	s.submit(map[string]any{"type": "x", "queue": "mail"})
	s.submit(map[string]any{"type": "x"})

	type queue struct {
		Name                string         `json:"name"`
		Tenant              string         `json:"tenant"`
		Counts              map[string]int `json:"counts"`
		Paused              bool           `json:"paused"`
		OldestQueuedSeconds *float64       `json:"oldest_queued_seconds"`
	}
	var qs apiPage[queue]
	s.req("GET", "/v1/queues", nil).want(t, http.StatusOK, &qs)
	byName := map[string]queue{}
	for _, q := range qs.Items {
		byName[q.Name] = q
	}
	if q := byName["mail"]; q.Counts["queued"] != 2 || q.Paused || q.OldestQueuedSeconds == nil || q.Tenant != "default" {
		t.Errorf("mail queue = %+v", q)
	}
	if q := byName["default"]; q.Counts["queued"] != 1 {
		t.Errorf("default queue = %+v", q)
	}

	// A paused queue leases nothing; resumed, it does.
	var q queue
	s.req("POST", "/v1/queues/mail/pause", nil).want(t, http.StatusOK, &q)
	if !q.Paused || q.Name != "mail" {
		t.Errorf("paused = %+v", q)
	}
	w := s.registerWorker(map[string]any{"queues": []string{"mail"}})
	if got := s.leaseJobs(w, 5); len(got) != 0 {
		t.Errorf("lease from a paused queue = %d jobs", len(got))
	}
	s.req("POST", "/v1/queues/mail/resume", nil).want(t, http.StatusOK, &q)
	if q.Paused {
		t.Errorf("resumed = %+v", q)
	}
	if got := s.leaseJobs(w, 5); len(got) != 2 {
		t.Errorf("lease from a resumed queue = %d jobs, want 2", len(got))
	}
	// A queue without jobs can be paused ahead of time; bad names are 404.
	s.req("POST", "/v1/queues/future/pause", nil).want(t, http.StatusOK, &q)
	s.req("POST", "/v1/queues/a%20b/pause", nil).problem(t, http.StatusNotFound, "")
	s.req("POST", "/v1/queues/future/pause?tenant=a%20b", nil).problem(t, http.StatusBadRequest, "tenant")
}
