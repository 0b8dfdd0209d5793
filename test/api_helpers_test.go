// Package test holds Gantry's black-box tests: each starts a real server
// on a loopback port and drives it from outside. The api_*_test.go files
// speak raw HTTP and JSON only, as a client in any language would.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

// apiServer is a server under test and a raw HTTP client of it.
type apiServer struct {
	t     testing.TB
	srv   *server.Server
	url   string
	token string
	hc    *http.Client
	done  chan error // Serve's result
}

// apiStart starts a server on 127.0.0.1:0 with cfg (its DataDir defaults
// to a temporary directory) and shuts it down when the test ends.
func apiStart(t testing.TB, cfg server.Config) *apiServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &apiServer{t: t, srv: srv, url: "http://" + ln.Addr().String(), token: srv.Token(),
		hc: &http.Client{Transport: &http.Transport{}}, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// apiStartStore starts a server on a SQLite store the test holds, so that
// it can close it under the server.
func apiStartStore(t *testing.T, cfg server.Config) (*apiServer, *sqlite.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "gantry.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	cfg.DataDir, cfg.Store = dir, st
	return apiStart(t, cfg), st
}

// stop shuts the server down (once) and returns Shutdown's error.
func (s *apiServer) stop() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; serr != nil {
		s.t.Errorf("Serve = %v, want nil after Shutdown", serr)
	}
	s.srv = nil
	s.hc.CloseIdleConnections()
	return err
}

// apiResp is an answer.
type apiResp struct {
	Status int
	Header http.Header
	Body   []byte
}

// apiProblem is a problem document as a client reads it.
type apiProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// req sends a request with the admin token. body is sent as is when it is
// a string or []byte, and as JSON otherwise (nil: no body).
func (s *apiServer) req(method, path string, body any) apiResp {
	s.t.Helper()
	return s.reqWith(method, path, body, http.Header{"Authorization": {"Bearer " + s.token}})
}

// reqWith sends a request with the given headers only.
func (s *apiServer) reqWith(method, path string, body any, h http.Header) apiResp {
	s.t.Helper()
	r, err := s.try(s.t.Context(), method, path, body, h)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// try sends a request with the given headers only; it may be called from
// any goroutine.
func (s *apiServer) try(ctx context.Context, method, path string, body any, h http.Header) (apiResp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return apiResp{}, fmt.Errorf("marshal body: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	r, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return apiResp{}, fmt.Errorf("NewRequest(%s %s): %w", method, path, err)
	}
	if rd != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		r.Header[k] = v
	}
	res, err := s.hc.Do(r)
	if err != nil {
		return apiResp{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return apiResp{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return apiResp{Status: res.StatusCode, Header: res.Header, Body: data}, nil
}

// goReq sends a request with the admin token from another goroutine; the
// answer arrives on the channel (status 0 and the error's text as body if
// it failed).
func (s *apiServer) goReq(method, path string, body any) <-chan apiResp {
	c := make(chan apiResp, 1)
	go func() {
		r, err := s.try(s.t.Context(), method, path, body, http.Header{"Authorization": {"Bearer " + s.token}})
		if err != nil {
			r = apiResp{Body: []byte(err.Error())}
		}
		c <- r
	}()
	return c
}

// want checks the status and decodes the JSON body into v (if not nil).
func (r apiResp) want(t testing.TB, status int, v any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if v == nil {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem checks that r is a problem document with status (and, if not
// empty, naming field) and returns it.
func (r apiResp) problem(t testing.TB, status int, field string) apiProblem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p apiProblem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("decode problem %s: %v", r.Body, err)
	}
	if p.Status != status || p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Errorf("problem = %+v, want status %d with type, title and detail", p, status)
	}
	if field != "" && p.Field != field {
		t.Errorf("problem field = %q, want %q (detail %q)", p.Field, field, p.Detail)
	}
	return p
}

// apiJob is the part of the job object the tests read.
type apiJob struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Type     string `json:"type"`
	Queue    string `json:"queue"`
	Priority int    `json:"priority"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Progress struct {
		Percent int    `json:"percent"`
		Message string `json:"message"`
	} `json:"progress"`
	Params          json.RawMessage `json:"params"`
	Result          json.RawMessage `json:"result"`
	Error           string          `json:"error"`
	CancelRequested bool            `json:"cancel_requested"`
	BatchID         string          `json:"batch_id"`
	Tags            []string        `json:"tags"`
	WorkerID        string          `json:"worker_id"`
	Attempts        []struct {
		Attempt  int    `json:"attempt"`
		WorkerID string `json:"worker_id"`
		Token    int64  `json:"token"`
		Outcome  string `json:"outcome"`
		Error    string `json:"error"`
	} `json:"attempts"`
	Lease *struct {
		Token      int64   `json:"token"`
		ExpiresAt  string  `json:"expires_at"`
		TTLSeconds float64 `json:"ttl_seconds"`
	} `json:"lease"`
}

// apiPage is a page of a list.
type apiPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// submit submits a job and returns it.
func (s *apiServer) submit(body any) apiJob {
	s.t.Helper()
	var j apiJob
	s.req("POST", "/v1/jobs", body).want(s.t, http.StatusCreated, &j)
	return j
}

// job reads a job.
func (s *apiServer) job(id string) apiJob {
	s.t.Helper()
	var j apiJob
	s.req("GET", "/v1/jobs/"+id, nil).want(s.t, http.StatusOK, &j)
	return j
}

// apiEventually polls cond every 10ms until it holds, failing the test after
// a generous deadline (no timing is asserted: the deadline only bounds a
// hung test).
func apiEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
