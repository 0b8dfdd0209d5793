package test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
)

// The worker protocol as a worker in another language speaks it: raw HTTP
// and JSON, nothing from Gantry's Go packages.

type apiWPRegistered struct {
	ID               string  `json:"id"`
	LeaseTTLSeconds  float64 `json:"lease_ttl_seconds"`
	HeartbeatSeconds float64 `json:"heartbeat_seconds"`
}

type apiWPLeaseAnswer struct {
	Jobs  []apiJob `json:"jobs"`
	Drain bool     `json:"drain"`
}

type apiWPHeartbeatAnswer struct {
	Leases []struct {
		JobID           string  `json:"job_id"`
		OK              bool    `json:"ok"`
		ExpiresAt       *string `json:"expires_at"`
		CancelRequested bool    `json:"cancel_requested"`
	} `json:"leases"`
	Drain bool `json:"drain"`
}

type apiWPReportAnswer struct {
	Outcomes []struct {
		JobID string `json:"job_id"`
		OK    bool   `json:"ok"`
	} `json:"outcomes"`
}

func (s *apiServer) wpLease(workerID string, max int, wait float64) apiWPLeaseAnswer {
	s.t.Helper()
	var a apiWPLeaseAnswer
	s.req("POST", "/v1/workers/"+workerID+"/lease", map[string]any{"max": max, "wait_seconds": wait}).want(s.t, http.StatusOK, &a)
	return a
}

func (s *apiServer) wpHeartbeat(workerID string, leases ...map[string]any) apiWPHeartbeatAnswer {
	s.t.Helper()
	var a apiWPHeartbeatAnswer
	s.req("POST", "/v1/workers/"+workerID+"/heartbeat", map[string]any{"leases": leases}).want(s.t, http.StatusOK, &a)
	if len(a.Leases) != len(leases) {
		s.t.Fatalf("heartbeat of %d leases answered %d", len(leases), len(a.Leases))
	}
	return a
}

func (s *apiServer) wpReport(workerID string, outcomes ...map[string]any) []bool {
	s.t.Helper()
	var a apiWPReportAnswer
	s.req("POST", "/v1/workers/"+workerID+"/report", map[string]any{"outcomes": outcomes}).want(s.t, http.StatusOK, &a)
	oks := make([]bool, len(a.Outcomes))
	for i, o := range a.Outcomes {
		oks[i] = o.OK
	}
	return oks
}

func TestAPIWorkerProtocol(t *testing.T) {
	s := apiStart(t, server.Config{})

	// Register, asking for a 5s lease TTL.
	var reg apiWPRegistered
	s.req("POST", "/v1/workers", map[string]any{
		"name": "py-worker", "host": "box1", "types": []string{"resize"}, "capacity": 4,
		"labels": map[string]string{"lang": "python"}, "lease_ttl_seconds": 5,
	}).want(t, http.StatusCreated, &reg)
	if reg.ID == "" || reg.LeaseTTLSeconds != 5 || reg.HeartbeatSeconds <= 0 || reg.HeartbeatSeconds >= 5 {
		t.Fatalf("registered = %+v, want an id, ttl 5 and a heartbeat interval under it", reg)
	}
	w := reg.ID

	// Long poll: a job submitted while the lease waits is handed over.
	got := s.goReq("POST", "/v1/workers/"+w+"/lease", map[string]any{"max": 2, "wait_seconds": 20})
	time.Sleep(50 * time.Millisecond) // let the lease start waiting (the test passes either way)
	s.submit(map[string]any{"type": "other"})
	j := s.submit(map[string]any{"type": "resize", "params": map[string]int{"w": 100}})
	var a apiWPLeaseAnswer
	(<-got).want(t, http.StatusOK, &a)
	if len(a.Jobs) != 1 || a.Jobs[0].ID != j.ID || a.Jobs[0].Lease == nil {
		t.Fatalf("long-poll lease = %+v, want job %s with a lease", a, j.ID)
	}
	l := a.Jobs[0]
	if l.State != "running" || l.Attempt != 1 || l.Lease.Token <= 0 || l.Lease.TTLSeconds != 5 || l.Lease.ExpiresAt == "" || string(l.Params) != `{"w":100}` {
		t.Errorf("leased job = %+v, lease %+v", l, *l.Lease)
	}
	// The worker's types filter keeps the other job away.
	if a := s.wpLease(w, 5, 0); len(a.Jobs) != 0 || a.Drain {
		t.Errorf("lease with only another type queued = %+v, want nothing", a)
	}

	// Heartbeat with progress.
	hb := s.wpHeartbeat(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token, "progress": map[string]any{"percent": 40, "message": "halfway"}})
	if !hb.Leases[0].OK || hb.Leases[0].ExpiresAt == nil || hb.Leases[0].CancelRequested || hb.Drain {
		t.Errorf("heartbeat = %+v", hb)
	}
	if p := s.job(j.ID).Progress; p.Percent != 40 || p.Message != "halfway" {
		t.Errorf("progress after heartbeat = %+v", p)
	}

	// Report success.
	if oks := s.wpReport(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token, "outcome": "succeeded", "result": map[string]int{"pixels": 42}}); !slices.Equal(oks, []bool{true}) {
		t.Fatalf("report = %v, want [true]", oks)
	}
	done := s.job(j.ID)
	if done.State != "succeeded" || string(done.Result) != `{"pixels":42}` || len(done.Attempts) != 1 || done.Attempts[0].Outcome != "succeeded" || done.Attempts[0].WorkerID != w {
		t.Errorf("job after success = %+v", done)
	}

	// A stale token changes nothing: report, heartbeat and shortcuts.
	if oks := s.wpReport(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token, "outcome": "failed", "error": "late"}); !slices.Equal(oks, []bool{false}) {
		t.Errorf("stale report = %v, want [false]", oks)
	}
	if hb := s.wpHeartbeat(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token}); hb.Leases[0].OK {
		t.Errorf("stale heartbeat = %+v, want ok false", hb)
	}
	for _, sc := range []string{"heartbeat", "complete", "fail"} {
		s.req("POST", "/v1/jobs/"+j.ID+"/"+sc, map[string]any{"token": l.Lease.Token}).problem(t, http.StatusConflict, "")
	}
	if after := s.job(j.ID); after.State != "succeeded" || after.Error != "" {
		t.Errorf("job after stale calls = %s %q, want succeeded unchanged", after.State, after.Error)
	}

	// Failures: retryable with a delay, then not retryable.
	f := s.submit(map[string]any{"type": "resize", "max_attempts": 5})
	fl := s.wpLease(w, 1, 0).Jobs[0]
	if oks := s.wpReport(w, map[string]any{"job_id": f.ID, "token": fl.Lease.Token, "outcome": "failed", "error": "flaky", "retryable": true, "retry_after_seconds": 3600}); !oks[0] {
		t.Fatal("retryable failure not recorded")
	}
	if st := s.job(f.ID); st.State != "retrying" || st.Error != "flaky" {
		t.Errorf("after a retryable failure: %s %q, want retrying flaky", st.State, st.Error)
	}
	g := s.submit(map[string]any{"type": "resize"})
	gl := s.wpLease(w, 1, 0).Jobs[0]
	if oks := s.wpReport(w, map[string]any{"job_id": g.ID, "token": gl.Lease.Token, "outcome": "failed", "error": "bad input", "retryable": false}); !oks[0] {
		t.Fatal("permanent failure not recorded")
	}
	if st := s.job(g.ID).State; st != "failed" {
		t.Errorf("after a permanent failure: %s, want failed", st)
	}

	// Per-job shortcuts.
	h := s.submit(map[string]any{"type": "resize"})
	hl := s.wpLease(w, 1, 0).Jobs[0]
	var one struct {
		JobID           string  `json:"job_id"`
		OK              bool    `json:"ok"`
		ExpiresAt       *string `json:"expires_at"`
		CancelRequested bool    `json:"cancel_requested"`
	}
	s.req("POST", "/v1/jobs/"+h.ID+"/heartbeat", map[string]any{"token": hl.Lease.Token, "progress": map[string]any{"percent": 90}}).want(t, http.StatusOK, &one)
	if !one.OK || one.JobID != h.ID || one.ExpiresAt == nil {
		t.Errorf("job heartbeat = %+v", one)
	}
	var completed apiJob
	s.req("POST", "/v1/jobs/"+h.ID+"/complete", map[string]any{"token": hl.Lease.Token, "result": "ok"}).want(t, http.StatusOK, &completed)
	if completed.State != "succeeded" || string(completed.Result) != `"ok"` {
		t.Errorf("complete = %+v", completed)
	}
	k := s.submit(map[string]any{"type": "resize"})
	kl := s.wpLease(w, 1, 0).Jobs[0]
	var failed apiJob
	s.req("POST", "/v1/jobs/"+k.ID+"/fail", map[string]any{"token": kl.Lease.Token, "error": "nope", "retryable": false}).want(t, http.StatusOK, &failed)
	if failed.State != "failed" || failed.Error != "nope" {
		t.Errorf("fail = %+v", failed)
	}

	// Cancellation of a running job reaches the worker on its heartbeat.
	c := s.submit(map[string]any{"type": "resize"})
	cl := s.wpLease(w, 1, 0).Jobs[0]
	s.req("POST", "/v1/jobs/"+c.ID+"/cancel", nil).want(t, http.StatusOK, nil)
	if hb := s.wpHeartbeat(w, map[string]any{"job_id": c.ID, "token": cl.Lease.Token}); !hb.Leases[0].OK || !hb.Leases[0].CancelRequested {
		t.Errorf("heartbeat after cancel = %+v, want ok and cancel_requested", hb)
	}
	s.wpReport(w, map[string]any{"job_id": c.ID, "token": cl.Lease.Token, "outcome": "canceled"})
	if st := s.job(c.ID).State; st != "canceled" {
		t.Errorf("canceled job state = %s", st)
	}

	// Bad requests name the field: 400, whether the body cannot be decoded
	// or a value is not acceptable.
	const invalid = http.StatusBadRequest
	bad := []struct {
		path   string
		body   any
		status int
		field  string
	}{
		{"/v1/workers", map[string]any{"lease_ttl_seconds": 0.5}, invalid, "lease_ttl_seconds"},
		{"/v1/workers", map[string]any{"lease_ttl_seconds": 3601}, invalid, "lease_ttl_seconds"},
		{"/v1/workers", map[string]any{"lease_ttl_seconds": 7200}, invalid, "lease_ttl_seconds"},
		{"/v1/workers", map[string]any{"lease_ttl_seconds": 1e300}, invalid, "lease_ttl_seconds"},
		{"/v1/workers", map[string]any{"lease_ttl_seconds": "60"}, http.StatusBadRequest, "lease_ttl_seconds"},
		{"/v1/workers", map[string]any{"queues": []string{"a b"}}, invalid, "queues[0]"},
		{"/v1/workers", map[string]any{"capacity": -1}, invalid, "capacity"},
		{"/v1/workers", map[string]any{"capacity": 1, "colour": "red"}, http.StatusBadRequest, "colour"},
		{"/v1/workers/" + w + "/lease", map[string]any{"max": -1}, invalid, "max"},
		{"/v1/workers/" + w + "/lease", map[string]any{"max": 1, "wait_seconds": -1}, invalid, "wait_seconds"},
		{"/v1/workers/" + w + "/lease", map[string]any{"max": "1"}, http.StatusBadRequest, "max"},
		{"/v1/workers/" + w + "/heartbeat", map[string]any{"leases": []any{map[string]any{"job_id": j.ID, "token": 1, "progress": map[string]any{"percent": 101}}}}, invalid, "leases[0].progress.percent"},
		{"/v1/workers/" + w + "/report", map[string]any{"outcomes": []any{map[string]any{"job_id": j.ID, "token": 1, "outcome": "done"}}}, invalid, "outcomes[0].outcome"},
		{"/v1/workers/" + w + "/report", map[string]any{"outcomes": []any{map[string]any{"job_id": j.ID, "token": "1", "outcome": "succeeded"}}}, http.StatusBadRequest, "outcomes[0].token"},
		{"/v1/workers/" + w + "/heartbeat", map[string]any{"leases": []any{map[string]any{"job_id": j.ID, "token": 1}, map[string]any{"job_id": j.ID, "tokn": 1}}}, http.StatusBadRequest, "leases[1].tokn"},
		{"/v1/jobs/" + j.ID + "/fail", map[string]any{"token": 1, "retry_after_seconds": -1}, invalid, "retry_after_seconds"},
		{"/v1/jobs/" + j.ID + "/heartbeat", map[string]any{"token": 1, "progress": map[string]any{"percent": 101}}, invalid, "progress.percent"},
	}
	for _, tt := range bad {
		s.req("POST", tt.path, tt.body).problem(t, tt.status, tt.field)
	}

	// The worker list shows the worker with what it runs.
	var ws apiPage[struct {
		ID       string   `json:"id"`
		Name     string   `json:"name"`
		State    string   `json:"state"`
		Capacity int      `json:"capacity"`
		Running  int      `json:"running"`
		JobIDs   []string `json:"job_ids"`
		LastSeen *string  `json:"last_seen"`
	}]
	n := s.submit(map[string]any{"type": "resize"})
	s.wpLease(w, 1, 0)
	s.req("GET", "/v1/workers", nil).want(t, http.StatusOK, &ws)
	if len(ws.Items) != 1 || ws.Items[0].ID != w || ws.Items[0].State != "active" || ws.Items[0].Running != 1 ||
		!slices.Equal(ws.Items[0].JobIDs, []string{n.ID}) || ws.Items[0].Capacity != 4 || ws.Items[0].LastSeen == nil {
		t.Errorf("workers = %+v", ws)
	}

	// Drain: no more leases, and lease and heartbeat answers say so.
	var drained struct {
		State string `json:"state"`
	}
	s.req("POST", "/v1/workers/"+w+"/drain", nil).want(t, http.StatusOK, &drained)
	if drained.State != "draining" {
		t.Errorf("drained worker state = %q", drained.State)
	}
	s.submit(map[string]any{"type": "resize"})
	if a := s.wpLease(w, 1, 5); len(a.Jobs) != 0 || !a.Drain {
		t.Errorf("lease of a draining worker = %+v, want no job and drain", a)
	}
	if hb := s.wpHeartbeat(w); !hb.Drain {
		t.Errorf("heartbeat of a draining worker = %+v, want drain", hb)
	}
}

func TestAPIWorkerLeaveReleasesAtOnce(t *testing.T) {
	s := apiStart(t, server.Config{})
	w1 := s.registerWorker(map[string]any{"name": "leaving"})
	w2 := s.registerWorker(map[string]any{"name": "successor"})
	j := s.submit(map[string]any{"type": "long"})
	l := s.wpLease(w1, 1, 0)
	if len(l.Jobs) != 1 {
		t.Fatalf("lease = %+v", l)
	}

	// w2 long-polls; w1 leaves; w2 gets the job without waiting for the
	// lease to expire (its TTL is the default 30s; the poll waits 20s).
	got := s.goReq("POST", "/v1/workers/"+w2+"/lease", map[string]any{"max": 1, "wait_seconds": 20})
	time.Sleep(50 * time.Millisecond) // let the lease start waiting (the test passes either way)
	s.req("DELETE", "/v1/workers/"+w1, nil).want(t, http.StatusNoContent, nil)
	var a apiWPLeaseAnswer
	(<-got).want(t, http.StatusOK, &a)
	if len(a.Jobs) != 1 || a.Jobs[0].ID != j.ID || a.Jobs[0].Lease.Token <= l.Jobs[0].Lease.Token {
		t.Fatalf("successor's lease = %+v, want job %s with a newer token", a, j.ID)
	}
	jj := s.job(j.ID)
	if len(jj.Attempts) != 2 || jj.Attempts[0].Outcome != "released" || jj.Attempts[1].WorkerID != w2 {
		t.Errorf("attempts = %+v, want a released one then w2's", jj.Attempts)
	}

	// The departed worker is unknown: every call on it is 404, so that it
	// registers again; its old lease is stale.
	for _, call := range []struct {
		path string
		body any
	}{
		{"/v1/workers/" + w1 + "/lease", map[string]any{"max": 1}},
		{"/v1/workers/" + w1 + "/heartbeat", map[string]any{"leases": []any{}}},
		{"/v1/workers/" + w1 + "/report", map[string]any{"outcomes": []any{map[string]any{"job_id": j.ID, "token": l.Jobs[0].Lease.Token, "outcome": "succeeded"}}}},
		{"/v1/workers/" + w1 + "/drain", nil},
	} {
		s.req("POST", call.path, call.body).problem(t, http.StatusNotFound, "")
	}
	s.req("DELETE", "/v1/workers/"+w1, nil).problem(t, http.StatusNotFound, "")
	s.req("POST", "/v1/jobs/"+j.ID+"/complete", map[string]any{"token": l.Jobs[0].Lease.Token}).problem(t, http.StatusConflict, "")
	if st := s.job(j.ID).State; st != "running" {
		t.Errorf("job state = %s, want running (by w2)", st)
	}
}

func TestAPIWorkerLost(t *testing.T) {
	s := apiStart(t, server.Config{Engine: engine.Config{WorkerLostAfter: time.Second, RescueInterval: 50 * time.Millisecond}})
	w := s.registerWorker(map[string]any{"lease_ttl_seconds": 1})
	j := s.submit(map[string]any{"type": "x"})
	l := s.wpLease(w, 1, 0)
	if len(l.Jobs) != 1 {
		t.Fatalf("lease = %+v", l)
	}
	// Silent for longer than its TTL: its lease is rescued and the worker
	// is lost; a lease call tells it to register again.
	apiEventually(t, "the job to be rescued", func() bool { return s.job(j.ID).State == "queued" })
	apiEventually(t, "the worker to be reported lost", func() bool {
		var ws apiPage[struct {
			State string `json:"state"`
		}]
		s.req("GET", "/v1/workers", nil).want(t, http.StatusOK, &ws)
		return len(ws.Items) == 1 && ws.Items[0].State == "lost"
	})
	s.req("POST", "/v1/workers/"+w+"/lease", map[string]any{"max": 1}).problem(t, http.StatusNotFound, "")
	if hb := s.wpHeartbeat(w, map[string]any{"job_id": j.ID, "token": l.Jobs[0].Lease.Token}); hb.Leases[0].OK {
		t.Errorf("heartbeat of a rescued lease = %+v, want ok false", hb)
	}
}
