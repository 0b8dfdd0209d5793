package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
)

func TestSubmit(t *testing.T) {
	var body map[string]any
	status := 201
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/jobs" {
			t.Errorf("request = %s %s, want POST /v1/jobs", r.Method, r.URL.Path)
		}
		b, _ := io.ReadAll(r.Body)
		body = nil
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		writeJSON(w, status, `{"id":"j1","type":"mail","state":"scheduled","params":{"to":"a@b"},"result":null,
			"timeout_seconds":1.5,"created_at":"2026-01-02T03:04:05.123Z","run_at":"2026-01-02T04:00:00Z",
			"tags":["x"],"metadata":{"k":"v"},"progress":{"percent":0,"message":""},"unknown_future_field":1}`)
	}))
	req := JobRequest{
		Type: "mail", Name: "n", Queue: "q", Priority: 5, Params: map[string]string{"to": "a@b"},
		Delay: 90 * time.Second, MaxAttempts: 3, Timeout: 1500 * time.Millisecond, UniqueKey: "u",
		SingletonKey: "s", Tags: []string{"x"}, Metadata: map[string]string{"k": "v"}, BatchID: "b1",
	}
	j, err := c.Submit(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	wantBody := map[string]any{
		"type": "mail", "name": "n", "queue": "q", "priority": 5.0, "params": map[string]any{"to": "a@b"},
		"delay_seconds": 90.0, "max_attempts": 3.0, "timeout_seconds": 1.5, "unique_key": "u",
		"singleton_key": "s", "tags": []any{"x"}, "metadata": map[string]any{"k": "v"}, "batch_id": "b1",
	}
	if diff := cmp.Diff(wantBody, body); diff != "" {
		t.Errorf("request body (-want +got):\n%s", diff)
	}
	want := &Job{
		ID: "j1", Type: "mail", State: gantry.StateScheduled, Params: json.RawMessage(`{"to":"a@b"}`),
		Timeout: 1500 * time.Millisecond, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123e6, time.UTC),
		RunAt: time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC), Tags: []string{"x"}, Metadata: map[string]string{"k": "v"},
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("Submit() (-want +got):\n%s", diff)
	}

	status = 200
	j, err = c.Submit(t.Context(), JobRequest{Type: "mail", UniqueKey: "u", RunAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Params: json.RawMessage(`[1,2]`)})
	if err != nil {
		t.Fatal(err)
	}
	if !j.Deduplicated {
		t.Errorf("Submit() answered 200: Deduplicated = false, want true")
	}
	if body["run_at"] != "2030-01-01T00:00:00.000Z" || fmt.Sprint(body["params"]) != "[1 2]" {
		t.Errorf("body = %v, want run_at and raw params sent as is", body)
	}

	_, err = c.Submit(t.Context(), JobRequest{Type: "mail", Params: func() {}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("Submit(unmarshalable params) = %v, want ErrInvalid", err)
	}
}

// pagedJobs serves n jobs in pages of the requested limit, newest first,
// and records the queries it saw.
type pagedJobs struct {
	n       int
	mu      sync.Mutex
	queries []url.Values
}

func (p *pagedJobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.queries = append(p.queries, q)
	p.mu.Unlock()
	if q.Get("cursor") == "bad" {
		writeProblem(w, 400, `{"status":400,"field":"cursor","detail":"cursor is not a cursor of this list"}`)
		return
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit == 0 {
		limit = 50
	}
	start := 0
	if cur := q.Get("cursor"); cur != "" {
		start, _ = strconv.Atoi(cur)
	}
	items := []string{}
	for i := start; i < min(start+limit, p.n); i++ {
		items = append(items, fmt.Sprintf(`{"id":"j%d","state":"queued"}`, p.n-i))
	}
	next := "null"
	if start+limit < p.n {
		next = strconv.Quote(strconv.Itoa(start + limit))
	}
	writeJSON(w, 200, fmt.Sprintf(`{"items":[%s],"next_cursor":%s}`, join(items), next))
}

func join(items []string) string {
	s := ""
	for i, it := range items {
		if i > 0 {
			s += ","
		}
		s += it
	}
	return s
}

func TestListJobsPages(t *testing.T) {
	p := &pagedJobs{n: 7}
	c, _ := newTestClient(t, p)
	var ids []string
	for j, err := range c.ListJobs(t.Context(), ListJobsOptions{State: gantry.StateQueued, Type: "t", Queue: "q", BatchID: "b", Tag: "g", Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	if diff := cmp.Diff([]string{"j7", "j6", "j5", "j4", "j3", "j2", "j1"}, ids); diff != "" {
		t.Errorf("ListJobs (-want +got):\n%s", diff)
	}
	wantQueries := []url.Values{
		{"state": {"queued"}, "type": {"t"}, "queue": {"q"}, "batch_id": {"b"}, "tag": {"g"}, "limit": {"3"}},
		{"state": {"queued"}, "type": {"t"}, "queue": {"q"}, "batch_id": {"b"}, "tag": {"g"}, "limit": {"3"}, "cursor": {"3"}},
		{"state": {"queued"}, "type": {"t"}, "queue": {"q"}, "batch_id": {"b"}, "tag": {"g"}, "limit": {"3"}, "cursor": {"6"}},
	}
	if diff := cmp.Diff(wantQueries, p.queries); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}

	// Stopping early reads no further page.
	p.queries = nil
	for range c.ListJobs(t.Context(), ListJobsOptions{Limit: 2}) {
		break
	}
	if len(p.queries) != 1 {
		t.Errorf("breaking out of ListJobs read %d pages, want 1", len(p.queries))
	}

	page, err := c.ListJobsPage(t.Context(), ListJobsOptions{Limit: 5, Cursor: "5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].ID != "j2" || page.NextCursor != "" {
		t.Errorf("ListJobsPage(cursor 5) = %d items from %v, next %q; want j2, j1 and no next", len(page.Items), page.Items, page.NextCursor)
	}
	page, err = c.ListJobsPage(t.Context(), ListJobsOptions{Limit: 5})
	if err != nil || page.NextCursor != "5" {
		t.Errorf("ListJobsPage() = next %q, %v; want next 5", page.NextCursor, err)
	}

	var errs []error
	for j, err := range c.ListJobs(t.Context(), ListJobsOptions{Cursor: "bad"}) {
		if j != nil {
			t.Errorf("ListJobs(bad cursor) yielded job %s", j.ID)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrInvalid) {
		t.Errorf("ListJobs(bad cursor) errors = %v, want one ErrInvalid", errs)
	}
}

func TestListStopsOnRepeatedCursor(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"items":[{"id":"b1"}],"next_cursor":"same"}`)
	}))
	n := 0
	var last error
	for _, err := range c.ListBatches(t.Context(), ListBatchesOptions{Cursor: "same"}) {
		n++
		last = err
		if n > 10 {
			break
		}
	}
	if n != 2 || last == nil {
		t.Errorf("ListBatches with a repeating cursor: %d items, last error %v; want 1 item and an error", n, last)
	}
}

func TestListsAcceptArraysAndPages(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/queues", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `[{"name":"a","paused":true,"counts":{"queued":2},"oldest_queued_seconds":1.5}]`)
	})
	mux.HandleFunc("GET /v1/workers", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") == "" {
			writeJSON(w, 200, `{"items":[{"id":"w1","state":"active"}],"next_cursor":"c2"}`)
			return
		}
		writeJSON(w, 200, `{"items":[{"id":"w2","state":"draining"}],"next_cursor":null}`)
	})
	c, _ := newTestClient(t, mux)
	qs, err := c.ListQueues(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantQ := []*Queue{{Name: "a", Paused: true, Counts: map[gantry.State]int{gantry.StateQueued: 2}, OldestQueuedAge: 1500 * time.Millisecond}}
	if diff := cmp.Diff(wantQ, qs); diff != "" {
		t.Errorf("ListQueues (-want +got):\n%s", diff)
	}
	ws, err := c.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != "w1" || ws[1].State != WorkerDraining {
		t.Errorf("ListWorkers = %+v, want w1 then w2 draining", ws)
	}
}

func TestWaitPollsWithoutEvents(t *testing.T) {
	var gets int
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 500, `{"status":500}`)
	})
	mux.HandleFunc("GET /v1/jobs/j1", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		n := gets
		mu.Unlock()
		state := "running"
		if n >= 3 {
			state = "succeeded"
		}
		writeJSON(w, 200, `{"id":"j1","state":"`+state+`","result":{"ok":true},"attempts":[{"attempt":1,"token":7,"outcome":"succeeded"}]}`)
	})
	c, _ := newTestClient(t, mux)
	j, err := c.Wait(t.Context(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ OK bool }
	if err := j.DecodeResult(&res); err != nil || !res.OK {
		t.Errorf("DecodeResult = %+v, %v", res, err)
	}
	if j.State != gantry.StateSucceeded || gets != 3 || len(j.Attempts) != 1 || j.Attempts[0].Token != 7 {
		t.Errorf("Wait() = %s after %d reads, attempts %+v; want succeeded after 3", j.State, gets, j.Attempts)
	}
}

func TestWaitErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 503, `{"status":503}`)
	})
	mux.HandleFunc("GET /v1/jobs/gone", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 404, `{"status":404}`)
	})
	mux.HandleFunc("GET /v1/jobs/slow", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"id":"slow","state":"running"}`)
	})
	c, _ := newTestClient(t, mux)
	if _, err := c.Wait(t.Context(), "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Wait(deleted job) = %v, want ErrNotFound", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx, "slow"); err == nil || ctx.Err() == nil {
		t.Errorf("Wait(running job) = %v, want the context's error", err)
	}
}

func TestWaitFollowsEvents(t *testing.T) {
	var mu sync.Mutex
	gets, done := 0, false
	firstGet := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("job_id") != "j1" {
			t.Errorf("events query = %q, want job_id=j1", r.URL.RawQuery)
		}
		startStream(w)
		select {
		case <-firstGet:
		case <-r.Context().Done():
			return
		}
		sseEvent(w, 2, EventProgress, `,"progress":{"percent":10}`)
		mu.Lock()
		done = true
		mu.Unlock()
		sseEvent(w, 3, EventSucceeded, `,"state":"succeeded"`)
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /v1/jobs/j1", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		n, state := gets, "running"
		if done {
			state = "succeeded"
		}
		mu.Unlock()
		writeJSON(w, 200, `{"id":"j1","state":"`+state+`"}`)
		if n == 1 {
			close(firstGet)
		}
	})
	c, _ := newTestClient(t, mux)
	c.pollInterval = time.Hour // only the event stream can end the wait
	j, err := c.Wait(t.Context(), "j1")
	if err != nil {
		t.Fatal(err)
	}
	if j.State != gantry.StateSucceeded || gets != 2 {
		t.Errorf("Wait() = %s after %d reads, want succeeded after 2", j.State, gets)
	}
}
