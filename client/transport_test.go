package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/worker"
)

// recordBody decodes a request body into a generic map.
func recordBody(t *testing.T, r *http.Request) map[string]any {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("read body: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Errorf("body %s: %v", b, err)
	}
	return m
}

func TestWorkerTransport(t *testing.T) {
	bodies := map[string]map[string]any{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/workers", func(w http.ResponseWriter, r *http.Request) {
		bodies["register"] = recordBody(t, r)
		writeJSON(w, 201, `{"id":"w1","lease_ttl_seconds":12.5,"heartbeat_seconds":4}`)
	})
	mux.HandleFunc("POST /v1/workers/w1/lease", func(w http.ResponseWriter, r *http.Request) {
		bodies["lease"] = recordBody(t, r)
		writeJSON(w, 200, `{"jobs":[
			{"id":"j1","tenant":"default","type":"mail","name":"n","queue":"q","priority":3,"params":{"a":1},
			 "batch_id":"b1","attempt":2,"max_attempts":5,"timeout_seconds":60,"tags":["t"],"metadata":{"k":"v"},
			 "created_at":"2026-01-02T03:04:05Z","state":"running",
			 "lease":{"token":41,"expires_at":"1999-01-01T00:00:00Z","ttl_seconds":7}},
			{"id":"j2","type":"mail","params":null,"lease":{"token":42,"expires_at":"1999-01-01T00:00:00Z"}}
		],"drain":true}`)
	})
	mux.HandleFunc("POST /v1/workers/w1/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		bodies["heartbeat"] = recordBody(t, r)
		writeJSON(w, 200, `{"leases":[{"job_id":"j1","ok":true,"expires_at":"1999-01-01T00:00:00Z","cancel_requested":true},
			{"job_id":"j2","ok":false}],"drain":false}`)
	})
	mux.HandleFunc("POST /v1/workers/w1/report", func(w http.ResponseWriter, r *http.Request) {
		bodies["report"] = recordBody(t, r)
		writeJSON(w, 200, `{"outcomes":[{"job_id":"j1","ok":true},{"job_id":"j2","ok":false},{"job_id":"j3","ok":true}]}`)
	})
	mux.HandleFunc("DELETE /v1/workers/w1", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(204)
	})
	c, _ := newTestClient(t, mux)
	tr := c.WorkerTransport()
	ctx := t.Context()

	reg, err := tr.Register(ctx, worker.Registration{Name: "n", Host: "h", Types: []string{"mail"}, Capacity: 4,
		Labels: map[string]string{"zone": "a"}, LeaseTTL: 12500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if want := (worker.Registered{ID: "w1", LeaseTTL: 12500 * time.Millisecond, Heartbeat: 4 * time.Second}); reg != want {
		t.Errorf("Register() = %+v, want %+v", reg, want)
	}

	res, err := tr.Lease(ctx, "w1", 3, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := worker.LeaseResult{Drain: true, Leases: []worker.Lease{
		{Token: 41, TTL: 7 * time.Second, Job: gantry.Job{ID: "j1", Tenant: "default", Type: "mail", Name: "n", Queue: "q",
			Priority: 3, Params: json.RawMessage(`{"a":1}`), BatchID: "b1", Attempt: 2, MaxAttempts: 5, Timeout: time.Minute,
			Tags: []string{"t"}, Metadata: map[string]string{"k": "v"}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		// No ttl_seconds: zero, so the worker uses its registered TTL; the
		// expires_at timestamp is never used.
		{Token: 42, Job: gantry.Job{ID: "j2", Type: "mail"}},
	}}
	if diff := cmp.Diff(want, res, cmp.AllowUnexported(gantry.Job{})); diff != "" {
		t.Errorf("Lease() (-want +got):\n%s", diff)
	}

	hb, err := tr.Heartbeat(ctx, "w1", []worker.Renewal{
		{JobID: "j1", Token: 41, Progress: &worker.Progress{Percent: 50, Message: "half"}},
		{JobID: "j2", Token: 42},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantHB := worker.HeartbeatResult{Leases: []worker.RenewalResult{{JobID: "j1", OK: true, CancelRequested: true}, {JobID: "j2"}}}
	if diff := cmp.Diff(wantHB, hb); diff != "" {
		t.Errorf("Heartbeat() (-want +got):\n%s", diff)
	}

	oks, err := tr.Report(ctx, "w1", []worker.Outcome{
		{JobID: "j1", Token: 41, Outcome: worker.Succeeded, Result: json.RawMessage(`"done"`)},
		{JobID: "j2", Token: 42, Outcome: worker.Failed, Error: "boom", Retryable: true, RetryAfter: 1500 * time.Millisecond},
		{JobID: "j3", Token: 43, Outcome: worker.Failed, Error: "bad input"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false, true}, oks); diff != "" {
		t.Errorf("Report() (-want +got):\n%s", diff)
	}
	if err := tr.Leave(ctx, "w1"); err != nil {
		t.Errorf("Leave() = %v", err)
	}

	wantBodies := map[string]map[string]any{
		"register": {"name": "n", "host": "h", "types": []any{"mail"}, "capacity": 4.0,
			"labels": map[string]any{"zone": "a"}, "lease_ttl_seconds": 12.5},
		"lease": {"max": 3.0, "wait_seconds": 2.0},
		"heartbeat": {"leases": []any{
			map[string]any{"job_id": "j1", "token": 41.0, "progress": map[string]any{"percent": 50.0, "message": "half"}},
			map[string]any{"job_id": "j2", "token": 42.0},
		}},
		"report": {"outcomes": []any{
			map[string]any{"job_id": "j1", "token": 41.0, "outcome": "succeeded", "result": "done"},
			map[string]any{"job_id": "j2", "token": 42.0, "outcome": "failed", "error": "boom", "retryable": true, "retry_after_seconds": 1.5},
			map[string]any{"job_id": "j3", "token": 43.0, "outcome": "failed", "error": "bad input", "retryable": false},
		}},
	}
	if diff := cmp.Diff(wantBodies, bodies); diff != "" {
		t.Errorf("request bodies (-want +got):\n%s", diff)
	}
}

func TestWorkerTransportUnknownWorker(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 404, `{"type":"urn:gantry:problem:not-found","title":"Not Found","status":404,"detail":"not found: worker w9"}`)
	}))
	tr := c.WorkerTransport()
	ctx := t.Context()
	_, lerr := tr.Lease(ctx, "w9", 1, 0)
	_, herr := tr.Heartbeat(ctx, "w9", nil)
	_, rerr := tr.Report(ctx, "w9", []worker.Outcome{{JobID: "j", Token: 1, Outcome: worker.Succeeded}})
	verr := tr.Leave(ctx, "w9")
	for name, err := range map[string]error{"Lease": lerr, "Heartbeat": herr, "Report": rerr, "Leave": verr} {
		if !errors.Is(err, worker.ErrUnknownWorker) || !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(unknown worker) = %v, want ErrUnknownWorker and ErrNotFound", name, err)
		}
	}
	if _, err := tr.Register(ctx, worker.Registration{}); errors.Is(err, worker.ErrUnknownWorker) || !errors.Is(err, ErrNotFound) {
		t.Errorf("Register() answered 404 = %v, want ErrNotFound only", err)
	}
}

func TestWorkerTransportLongPollOutlivesTimeout(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(60 * time.Millisecond) // the long poll waits, then finds nothing
		writeJSON(w, 200, `{"jobs":[]}`)
	}), WithTimeout(20*time.Millisecond))
	res, err := c.WorkerTransport().Lease(t.Context(), "w1", 1, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("Lease(wait 100ms) with a 20ms client timeout = %v, want the wait honored", err)
	}
	if len(res.Leases) != 0 || res.Drain {
		t.Errorf("Lease() = %+v, want nothing", res)
	}
}

func TestWorkerTransportRejectsBadAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/workers/w1/lease", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobs":[{"id":"j1"}]}`)
	})
	mux.HandleFunc("POST /v1/workers/w1/report", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"outcomes":[]}`)
	})
	c, _ := newTestClient(t, mux)
	tr := c.WorkerTransport()
	if _, err := tr.Lease(t.Context(), "w1", 1, 0); err == nil {
		t.Errorf("Lease() of a job without a lease = nil error, want an error")
	}
	if _, err := tr.Report(t.Context(), "w1", []worker.Outcome{{JobID: "j1", Token: 1, Outcome: worker.Succeeded}}); err == nil {
		t.Errorf("Report() answered with no outcome = nil error, want an error")
	}
}

func TestPerJobCallBodies(t *testing.T) {
	bodies := map[string]map[string]any{}
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bodies[r.URL.Path] = recordBody(t, r)
		writeJSON(w, 200, `{"job_id":"j1","ok":true,"cancel_requested":true,"id":"j1","state":"retrying"}`)
	}))
	ctx := t.Context()
	if cr, err := c.HeartbeatJob(ctx, "j1", 7, &Progress{Percent: 20, Message: "m"}); err != nil || !cr {
		t.Errorf("HeartbeatJob() = %t, %v; want the cancel request", cr, err)
	}
	if _, err := c.CompleteJob(ctx, "j2", 8, json.RawMessage(`[1]`)); err != nil {
		t.Fatal(err)
	}
	if j, err := c.FailJob(ctx, "j3", 9, Failure{Error: "e", RetryAfter: 2 * time.Second}); err != nil || j.State != gantry.StateRetrying {
		t.Errorf("FailJob() = %+v, %v", j, err)
	}
	if _, err := c.FailJob(ctx, "j4", 10, Failure{Error: "p", Permanent: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteJob(ctx, "j5", 11, make(chan int)); !errors.Is(err, ErrInvalid) {
		t.Errorf("CompleteJob(unmarshalable result) = %v, want ErrInvalid", err)
	}
	want := map[string]map[string]any{
		"/v1/jobs/j1/heartbeat": {"token": 7.0, "progress": map[string]any{"percent": 20.0, "message": "m"}},
		"/v1/jobs/j2/complete":  {"token": 8.0, "result": []any{1.0}},
		"/v1/jobs/j3/fail":      {"token": 9.0, "error": "e", "retryable": true, "retry_after_seconds": 2.0},
		"/v1/jobs/j4/fail":      {"token": 10.0, "error": "p", "retryable": false},
	}
	if diff := cmp.Diff(want, bodies); diff != "" {
		t.Errorf("request bodies (-want +got):\n%s", diff)
	}
}

// TestWorkerTransportReportSplitsTooLarge checks that a report the server
// refuses as too large (413) goes again in halves, and that the answers
// come back in the outcomes' order; a single outcome too large for the
// server is an ErrTooLarge.
func TestWorkerTransportReportSplitsTooLarge(t *testing.T) {
	const limit = 3 // outcomes the fake server takes in one request
	var sizes []int
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Outcomes []struct {
				JobID string `json:"job_id"`
			} `json:"outcomes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("decode report: %v", err)
		}
		sizes = append(sizes, len(req.Outcomes))
		huge := slices.ContainsFunc(req.Outcomes, func(o struct {
			JobID string `json:"job_id"`
		}) bool {
			return o.JobID == "huge"
		})
		if len(req.Outcomes) > limit || huge {
			writeProblem(w, 413, `{"type":"urn:gantry:problem:too-large","title":"Request Entity Too Large","status":413,"detail":"body too large"}`)
			return
		}
		var out []string
		for _, o := range req.Outcomes {
			// Jobs whose id ends in "x" are no longer the worker's.
			out = append(out, fmt.Sprintf(`{"job_id":%q,"ok":%t}`, o.JobID, !strings.HasSuffix(o.JobID, "x")))
		}
		writeJSON(w, 200, `{"outcomes":[`+strings.Join(out, ",")+`]}`)
	}))
	tr := c.WorkerTransport()
	var outs []worker.Outcome
	var want []bool
	for i := range 10 {
		id := fmt.Sprintf("j%d", i)
		if i%4 == 1 {
			id += "x"
		}
		outs = append(outs, worker.Outcome{JobID: id, Token: 1, Outcome: worker.Succeeded})
		want = append(want, i%4 != 1)
	}
	oks, err := tr.Report(t.Context(), "w1", outs)
	if err != nil {
		t.Fatalf("Report(10 outcomes, server takes %d) = %v", limit, err)
	}
	if diff := cmp.Diff(want, oks); diff != "" {
		t.Errorf("Report() answers (-want +got):\n%s", diff)
	}
	// 10 refused, 5 refused, 2 and 3 taken, 5 refused, 2 and 3 taken.
	if diff := cmp.Diff([]int{10, 5, 2, 3, 5, 2, 3}, sizes); diff != "" {
		t.Errorf("request sizes (-want +got):\n%s", diff)
	}
	_, err = tr.Report(t.Context(), "w1", []worker.Outcome{{JobID: "a", Token: 1, Outcome: worker.Succeeded}, {JobID: "huge", Token: 1, Outcome: worker.Succeeded}})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Report() with one outcome too large for the server = %v, want ErrTooLarge", err)
	}
}
