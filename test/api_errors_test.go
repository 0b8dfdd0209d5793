package test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/server"
)

func TestAPIAuth(t *testing.T) {
	s := apiStart(t, server.Config{})
	tests := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"missing", "/v1/jobs", nil},
		{"bad token", "/v1/jobs", http.Header{"Authorization": {"Bearer " + s.token + "x"}}},
		{"empty bearer", "/v1/jobs", http.Header{"Authorization": {"Bearer "}}},
		{"basic scheme", "/v1/jobs", http.Header{"Authorization": {"Basic " + s.token}}},
		{"token only", "/v1/jobs", http.Header{"Authorization": {s.token}}},
		{"query token", "/v1/jobs?token=" + s.token, nil},
		{"query access_token", "/v1/jobs?access_token=" + s.token, nil},
		{"query token with header too", "/v1/jobs?token=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query TOKEN", "/v1/jobs?TOKEN=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query Access_Token", "/v1/jobs?Access_Token=" + s.token, nil},
		{"query api_key", "/v1/jobs?limit=5&api_key=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query apikey", "/v1/jobs?apikey=" + s.token, nil},
		{"query api-key", "/v1/jobs?api-key=" + s.token, nil},
		{"query Api-Key", "/v1/jobs?Api-Key=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query key", "/v1/jobs?key=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query auth", "/v1/jobs?auth=" + s.token, nil},
		{"query authorization", "/v1/jobs?authorization=Bearer+" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query Authorization", "/v1/jobs?Authorization=Bearer+" + s.token, nil},
		{"query bearer", "/v1/jobs?bearer=" + s.token, nil},
		{"query JWT", "/v1/jobs?JWT=" + s.token, http.Header{"Authorization": {"Bearer " + s.token}}},
		{"query empty token", "/v1/events?token=", http.Header{"Authorization": {"Bearer " + s.token}}},
		{"events", "/v1/events", nil},
		{"unknown /v1 path", "/v1/nothing", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.reqWith("GET", tt.path, nil, tt.header)
			p := r.problem(t, http.StatusUnauthorized, "")
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer", r.Header.Get("WWW-Authenticate"))
			}
			if strings.HasPrefix(tt.name, "query") && !strings.Contains(p.Detail, "query string") {
				t.Errorf("detail = %q, want it to say the query string is refused", p.Detail)
			}
		})
	}
	// The scheme is case-insensitive.
	s.reqWith("GET", "/v1/jobs", nil, http.Header{"Authorization": {"bearer " + s.token}}).want(t, http.StatusOK, nil)

	// Health endpoints need no credentials.
	var h struct{ Status string }
	s.reqWith("GET", "/healthz", nil, nil).want(t, http.StatusOK, &h)
	s.reqWith("GET", "/readyz", nil, nil).want(t, http.StatusOK, &h)
	if h.Status != "ready" {
		t.Errorf("readyz status = %q", h.Status)
	}
}

// TestAPIBadRequests checks the split of bad input: a body that cannot be
// decoded (malformed JSON, a wrong JSON type, an unknown or missing
// field) and one that decodes to unacceptable values are 400, params over
// their limit 413; each names the field.
func TestAPIBadRequests(t *testing.T) {
	s := apiStart(t, server.Config{})
	const (
		bad      = http.StatusBadRequest
		invalid  = http.StatusBadRequest
		tooLarge = http.StatusRequestEntityTooLarge
	)
	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"empty body", ``, bad, "body"},
		{"not JSON", `type=x`, bad, "body"},
		{"truncated", `{"type":"x"`, bad, "body"},
		{"array", `[{"type":"x"}]`, bad, "body"},
		{"trailing data", `{"type":"x"} {}`, bad, "body"},
		{"unknown field", `{"type":"x","color":"red"}`, bad, "color"},
		{"wrong type", `{"type":"x","priority":"high"}`, bad, "priority"},
		{"fractional priority", `{"type":"x","priority":1.5}`, bad, "priority"},
		{"missing type", `{"queue":"q"}`, bad, "type"},
		{"empty type", `{"type":""}`, bad, "type"},
		{"bad run_at", `{"type":"x","run_at":"tomorrow"}`, bad, "run_at"},
		{"deep", `{"type":"x","params":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, bad, "body"},
		{"bad type", `{"type":"has space"}`, invalid, "type"},
		{"priority over range", `{"type":"x","priority":101}`, invalid, "priority"},
		{"priority under range", `{"type":"x","priority":-101}`, invalid, "priority"},
		{"bad queue", `{"type":"x","queue":"a/b"}`, invalid, "queue"},
		{"negative delay", `{"type":"x","delay_seconds":-1}`, invalid, "delay_seconds"},
		{"run_at and delay", `{"type":"x","delay_seconds":1,"run_at":"2030-01-01T00:00:00Z"}`, invalid, "delay_seconds"},
		{"negative max_attempts", `{"type":"x","max_attempts":-1}`, invalid, "max_attempts"},
		{"empty tag", `{"type":"x","tags":[""]}`, invalid, "tags[0]"},
		{"bad batch id", `{"type":"x","batch_id":"b"}`, invalid, "batch_id"},
		{"params too large", `{"type":"x","params":"` + strings.Repeat("a", 300<<10) + `"}`, tooLarge, "params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.req("POST", "/v1/jobs", tt.body).problem(t, tt.status, tt.field)
		})
	}
	var p apiPage[apiJob]
	s.req("GET", "/v1/jobs", nil).want(t, http.StatusOK, &p)
	if len(p.Items) != 0 {
		t.Errorf("bad requests created %d jobs", len(p.Items))
	}
}

// TestAPIBadQueryParams checks that bad query parameters are 400 naming
// the parameter.
func TestAPIBadQueryParams(t *testing.T) {
	s := apiStart(t, server.Config{})
	tests := []struct {
		path  string
		field string
	}{
		{"/v1/jobs?limit=0", "limit"},
		{"/v1/jobs?limit=x", "limit"},
		{"/v1/jobs?limit=1001", "limit"},
		{"/v1/jobs?state=done", "state"},
		{"/v1/jobs?queue=a/b", "queue"},
		{"/v1/jobs?batch_id=nope", "batch_id"},
		{"/v1/jobs?cursor=garbage", "cursor"},
		{"/v1/batches?limit=-1", "limit"},
		{"/v1/events?kinds=job.nothing", "kinds"},
		{"/v1/events?after=-3", "after"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s.req("GET", tt.path, nil).problem(t, http.StatusBadRequest, tt.field)
		})
	}
}

func TestAPIMethodNotAllowed(t *testing.T) {
	s := apiStart(t, server.Config{})
	r := s.req("PUT", "/v1/jobs", `{}`)
	r.problem(t, http.StatusMethodNotAllowed, "")
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q, want GET and POST", allow)
	}
	s.req("POST", "/v1/jobs/01900000-0000-7000-8000-000000000000", nil).problem(t, http.StatusMethodNotAllowed, "")
}

func TestAPIBodyTooLarge(t *testing.T) {
	s := apiStart(t, server.Config{Limits: api.Limits{MaxBody: 4 << 10}})
	big := `{"type":"x","params":"` + strings.Repeat("a", 8<<10) + `"}`
	s.req("POST", "/v1/jobs", big).problem(t, http.StatusRequestEntityTooLarge, "")
	s.req("POST", "/v1/batches", `{"jobs":[`+strings.Repeat(`{"type":"x"},`, 1000)+`{"type":"x"}]}`).problem(t, http.StatusRequestEntityTooLarge, "")
	// Under the limit it works.
	s.submit(map[string]any{"type": "x", "params": strings.Repeat("a", 1<<10)})
}

func TestAPITooManyItems(t *testing.T) {
	s := apiStart(t, server.Config{Limits: api.Limits{MaxBatch: 3}})
	jobs := make([]map[string]any, 4)
	for i := range jobs {
		jobs[i] = map[string]any{"type": "x"}
	}
	s.req("POST", "/v1/batches", map[string]any{"jobs": jobs}).problem(t, http.StatusUnprocessableEntity, "jobs")
	s.req("POST", "/v1/batches", map[string]any{"jobs": jobs[:3]}).want(t, http.StatusCreated, nil)

	w := s.registerWorker(map[string]any{})
	leases := make([]map[string]any, 4)
	outcomes := make([]map[string]any, 4)
	for i := range leases {
		leases[i] = map[string]any{"job_id": "01900000-0000-7000-8000-000000000000", "token": 1}
		outcomes[i] = map[string]any{"job_id": "01900000-0000-7000-8000-000000000000", "token": 1, "outcome": "succeeded"}
	}
	s.req("POST", "/v1/workers/"+w+"/heartbeat", map[string]any{"leases": leases}).problem(t, http.StatusUnprocessableEntity, "leases")
	s.req("POST", "/v1/workers/"+w+"/report", map[string]any{"outcomes": outcomes}).problem(t, http.StatusUnprocessableEntity, "outcomes")
}

func TestAPIStoreUnavailable(t *testing.T) {
	s, st := apiStartStore(t, server.Config{})
	j := s.submit(map[string]any{"type": "x"})
	if err := st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	for _, tt := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/jobs", map[string]any{"type": "x"}},
		{"GET", "/v1/jobs", nil},
		{"GET", "/v1/jobs/" + j.ID, nil},
		{"POST", "/v1/jobs/" + j.ID + "/cancel", nil},
		{"POST", "/v1/batches", map[string]any{"jobs": []any{map[string]any{"type": "x"}}}},
		{"GET", "/v1/batches", nil},
		{"POST", "/v1/workers", map[string]any{}},
		{"GET", "/v1/workers", nil},
		{"GET", "/v1/queues", nil},
		{"POST", "/v1/queues/q/pause", nil},
		{"GET", "/v1/events?after=0", nil},
	} {
		t.Run(fmt.Sprint(tt.method, " ", tt.path), func(t *testing.T) {
			r := s.req(tt.method, tt.path, tt.body)
			r.problem(t, http.StatusServiceUnavailable, "")
			if r.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	r := s.reqWith("GET", "/readyz", nil, nil)
	r.problem(t, http.StatusServiceUnavailable, "")
	s.reqWith("GET", "/healthz", nil, nil).want(t, http.StatusOK, nil)
}

func TestAPISlowClient(t *testing.T) {
	s := apiStart(t, server.Config{Limits: api.Limits{IOTimeout: 100 * time.Millisecond}})

	// A client that stops sending its body is answered and disconnected.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/jobs HTTP/1.1\r\nHost: gantry\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"type\"", s.token)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("stalled body answered %d, want 400", res.StatusCode)
	}

	// The read deadline does not cut a long poll short.
	w := s.registerWorker(map[string]any{})
	var a apiWPLeaseAnswer
	s.req("POST", "/v1/workers/"+w+"/lease", map[string]any{"max": 1, "wait_seconds": 0.5}).want(t, http.StatusOK, &a)
	if len(a.Jobs) != 0 {
		t.Errorf("lease = %+v, want no job", a)
	}
}
