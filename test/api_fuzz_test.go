package test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/internal/wire"
)

// Fuzz targets for the request decoders. `go test` runs their seed
// corpus; `go test -fuzz FuzzAPIDecode ./test/` explores further.

var apiFuzzBodies = []string{
	``, `{}`, `null`, `[]`, `"x"`, `{"type":"x"}`,
	`{"type":"email.send","queue":"q","priority":5,"params":{"a":[1,2,{"b":null}]},"tags":["t"],"metadata":{"k":"v"},"max_attempts":3,"timeout_seconds":1.5,"delay_seconds":2}`,
	`{"type":"x","run_at":"2030-01-02T03:04:05.678+02:00"}`, `{"type":"x","run_at":12}`,
	`{"name":"b","open":true,"jobs":[{"type":"a"},{"type":"b c"}],"on_complete":{"type":"done"}}`,
	`{"jobs":[{"type":"a","priority":1e400}]}`,
	`{"outcomes":[{"job_id":"01900000-0000-7000-8000-000000000000","token":3,"outcome":"failed","error":"e","retryable":false,"retry_after_seconds":2.5,"result":{"x":1}}]}`,
	`{"leases":[{"job_id":"j","token":-1,"progress":{"percent":50,"message":"m"}}]}`,
	`{"max":3,"wait_seconds":0.001}`, `{"token":1,"result":[1,2]}`, `{"token":1,"error":"e","retryable":true}`,
	`{"type":"x"}{"type":"y"}`, `{"type":"x",}`, `{"type":"\ud800"}`, "{\"type\":\"x\u0000\"}",
	strings.Repeat("[", 70) + strings.Repeat("]", 70), `{"type":"x","params":"` + strings.Repeat("\\\\", 100) + `"}`,
}

func FuzzAPIDecode(f *testing.F) {
	for _, b := range apiFuzzBodies {
		f.Add([]byte(b))
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		var fe *job.FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field == "" || fe.Problem == "") {
			t.Fatalf("error %v (%T) is not a *job.FieldError naming a field", err, err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var jr wire.JobRequest
		if err := wire.DecodeBytes(body, &jr); err == nil {
			if s, err := jr.Spec(); err == nil {
				s.Normalize(time.Now())
				check(t, s.Validate(time.Now(), job.Limits{}))
			} else {
				check(t, err)
			}
		} else {
			check(t, err)
		}
		var br wire.BatchRequest
		if err := wire.DecodeBytes(body, &br); err == nil {
			_, err := wire.Specs(br.Jobs)
			check(t, err)
		} else {
			check(t, err)
		}
		var rr wire.ReportRequest
		if err := wire.DecodeBytes(body, &rr); err == nil {
			for _, o := range rr.Outcomes {
				_ = o.RetryAfter()
				_ = o.RetryableOr(true)
			}
		} else {
			check(t, err)
		}
		var dj wire.JobRequest
		if err := wire.DecodeJob(body, &dj); err == nil && dj.Type == "" {
			t.Fatalf("DecodeJob(%q) accepted a job without a type", body)
		} else {
			check(t, err)
		}
		var hr wire.HeartbeatRequest
		check(t, wire.DecodeBytes(body, &hr))
		var lr wire.LeaseRequest
		check(t, wire.DecodeBytes(body, &lr))
		var wr wire.WorkerRequest
		check(t, wire.DecodeBytes(body, &wr))
	})
}

// apiFuzzRoutes are the endpoints FuzzAPIRequests drives; {x} is replaced
// by the fuzzed path segment (or, when it is empty, by a real object's ID).
var apiFuzzRoutes = []string{
	"POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job}", "POST /v1/jobs/{job}/cancel", "POST /v1/jobs/{job}/retry",
	"DELETE /v1/jobs/{job}", "POST /v1/jobs/{job}/heartbeat", "POST /v1/jobs/{job}/complete", "POST /v1/jobs/{job}/fail",
	"POST /v1/batches", "GET /v1/batches", "GET /v1/batches/{batch}", "POST /v1/batches/{batch}/jobs",
	"GET /v1/batches/{batch}/jobs", "POST /v1/batches/{batch}/close", "POST /v1/batches/{batch}/cancel",
	"POST /v1/workers", "GET /v1/workers", "POST /v1/workers/{worker}/lease", "POST /v1/workers/{worker}/heartbeat",
	"POST /v1/workers/{worker}/report", "POST /v1/workers/{worker}/drain", "GET /v1/queues",
	"POST /v1/queues/{queue}/pause", "POST /v1/queues/{queue}/resume", "GET /v1/events",
	"POST /v1/webhooks", "GET /v1/webhooks/{x}", "PATCH /v1/jobs",
}

func FuzzAPIRequests(f *testing.F) {
	s := apiStart(f, server.Config{Limits: api.Limits{MaxLeaseWait: time.Millisecond}})
	ids := map[string]string{"queue": "default"}
	var j apiJob
	s.req("POST", "/v1/jobs", map[string]any{"type": "x"}).want(f, http.StatusCreated, &j)
	ids["job"] = j.ID
	var b struct {
		Batch struct{ ID string } `json:"batch"`
	}
	s.req("POST", "/v1/batches", map[string]any{"open": true, "jobs": []any{map[string]any{"type": "x"}}}).want(f, http.StatusCreated, &b)
	ids["batch"] = b.Batch.ID
	var w struct{ ID string }
	s.req("POST", "/v1/workers", map[string]any{}).want(f, http.StatusCreated, &w)
	ids["worker"] = w.ID

	for i := range apiFuzzRoutes {
		f.Add(uint8(i), "", "", []byte(apiFuzzBodies[i%len(apiFuzzBodies)]))
	}
	for _, q := range []string{"limit=2&cursor=x", "state=queued&type=x&queue=q&tag=t", "limit=-1", "batch_id=%zz",
		"job_id=x&kinds=job.started,nope", "after=99999999999999999999", "token=abc", "kinds=,,,"} {
		f.Add(uint8(1), "", q, []byte(nil))
		f.Add(uint8(25), "", q, []byte(nil))
	}
	f.Add(uint8(2), "..", "", []byte(nil))
	f.Add(uint8(2), "%00", "", []byte(nil))
	f.Add(uint8(23), "a b", "tenant=x", []byte(nil))
	f.Add(uint8(18), "", "", []byte(`{"max":1000000,"wait_seconds":1e308}`))

	f.Fuzz(func(t *testing.T, route uint8, segment, query string, body []byte) {
		method, path, _ := strings.Cut(apiFuzzRoutes[int(route)%len(apiFuzzRoutes)], " ")
		if i := strings.Index(path, "{"); i >= 0 {
			k := strings.Index(path, "}")
			name := path[i+1 : k]
			seg := url.PathEscape(segment)
			if segment == "" {
				seg = ids[name]
			}
			path = path[:i] + seg + path[k+1:]
		}
		if strings.ContainsFunc(query, func(c rune) bool { return c <= ' ' || c >= 0x7f || c == '#' }) {
			t.Skip("not a valid request line") // net/http answers it before any handler
		}
		target := s.url + path
		if query != "" {
			target += "?" + query
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		r, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(string(body)))
		if err != nil {
			t.Skip("not a valid URL")
		}
		r.Header.Set("Authorization", "Bearer "+s.token)
		if segment != "" && !strings.ContainsFunc(segment, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			r.Header.Set("Last-Event-ID", segment)
		}
		res, err := s.hc.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		res.Body.Close() // event streams: the status is all we read
		if res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with body %q = %d, want no 5xx", method, target, body, res.StatusCode)
		}
		if res.StatusCode >= 400 && res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s = %d with Content-Type %q, want a problem", method, target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	})
}
