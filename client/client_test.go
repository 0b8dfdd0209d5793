package client

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
)

func TestErrorMapping(t *testing.T) {
	sentinels := []error{ErrInvalid, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
		ErrTooLarge, ErrTooManyRequests, ErrUnavailable}
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        error // the one sentinel it must match; nil for none
		wantErr     *Error
	}{
		{
			name: "400 names the field", status: 400, contentType: "application/problem+json",
			body: `{"type":"urn:gantry:problem:invalid-request","title":"Bad Request","status":400,"detail":"priority must be from -100 to 100","field":"priority"}`,
			want: ErrInvalid,
			wantErr: &Error{Status: 400, Type: "urn:gantry:problem:invalid-request", Title: "Bad Request",
				Detail: "priority must be from -100 to 100", Field: "priority", Method: "POST", Path: "/v1/jobs"},
		},
		{
			name: "401", status: 401, contentType: "application/problem+json",
			body: `{"type":"urn:gantry:problem:unauthorized","title":"Unauthorized","status":401,"detail":"invalid token"}`,
			want: ErrUnauthorized,
		},
		{name: "403", status: 403, contentType: "application/problem+json", body: `{"status":403,"title":"Forbidden"}`, want: ErrForbidden},
		{name: "404", status: 404, contentType: "application/problem+json", body: `{"status":404,"title":"Not Found"}`, want: ErrNotFound},
		{name: "409", status: 409, contentType: "application/problem+json", body: `{"status":409,"title":"Conflict"}`, want: ErrConflict},
		{name: "413", status: 413, contentType: "application/problem+json", body: `{"status":413,"title":"Request Entity Too Large"}`, want: ErrTooLarge},
		{name: "422", status: 422, contentType: "application/problem+json", body: `{"status":422,"field":"jobs"}`, want: ErrInvalid},
		{name: "429", status: 429, contentType: "application/problem+json", body: `{"status":429}`, want: ErrTooManyRequests},
		{name: "503", status: 503, contentType: "application/problem+json", body: `{"status":503}`, want: ErrUnavailable},
		{
			name: "500 is no sentinel", status: 500, contentType: "application/problem+json",
			body: `{"status":500,"title":"Internal Server Error","detail":"internal server error"}`,
		},
		{
			name: "a proxy's text page", status: 502, contentType: "text/html", body: "<html>bad gateway</html>",
			wantErr: &Error{Status: 502, Title: "Bad Gateway", Detail: "<html>bad gateway</html>", Method: "POST", Path: "/v1/jobs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			_, err := c.Submit(t.Context(), JobRequest{Type: "x"})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Submit() = %v, want an *Error", err)
			}
			if e.Status != tt.status {
				t.Errorf("Status = %d, want %d", e.Status, tt.status)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(err, %v) = %t, want %t", s, got, s == tt.want)
				}
			}
			if tt.wantErr != nil {
				if diff := cmp.Diff(tt.wantErr, e); diff != "" {
					t.Errorf("Error (-want +got):\n%s", diff)
				}
			}
			if !strings.Contains(err.Error(), http.StatusText(tt.status)) && !strings.Contains(err.Error(), e.Title) {
				t.Errorf("Error() = %q, want the status text", err.Error())
			}
		})
	}
}

func TestErrorMessageNamesField(t *testing.T) {
	e := &Error{Status: 400, Title: "Bad Request", Detail: "must be set", Field: "type", Method: "POST", Path: "/v1/jobs"}
	want := "client: POST /v1/jobs: 400 Bad Request: must be set (field type)"
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRetriesReadsAfter503(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		method    string
		wantCalls int32
		wantErr   error
	}{
		{name: "GET recovers", failures: 2, method: "GET", wantCalls: 3},
		{name: "GET gives up", failures: 100, method: "GET", wantCalls: 1 + retries, wantErr: ErrUnavailable},
		{name: "POST is not retried", failures: 1, method: "POST", wantCalls: 1, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(calls.Add(1)) <= tt.failures {
					w.Header().Set("Retry-After", "0")
					writeProblem(w, 503, `{"status":503,"title":"Service Unavailable"}`)
					return
				}
				writeJSON(w, 200, `{"id":"j1","state":"queued"}`)
			}))
			var err error
			if tt.method == "GET" {
				_, err = c.GetJob(t.Context(), "j1")
			} else {
				_, err = c.CancelJob(t.Context(), "j1")
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("%s = %v, want %v", tt.method, err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0}, // in the past
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := retryAfter(future); got <= 50*time.Minute || got > time.Hour {
		t.Errorf("retryAfter(an hour ahead) = %v, want about an hour", got)
	}
}

func TestRequestHeaders(t *testing.T) {
	var got http.Header
	var query string
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		query = r.URL.RawQuery
		writeJSON(w, 201, `{"id":"j1"}`)
	}), WithUserAgent("test-agent/2"))
	if _, err := c.Submit(t.Context(), JobRequest{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Authorization": "Bearer secret-token",
		"User-Agent":    "test-agent/2",
		"Content-Type":  "application/json",
	} {
		if got.Get(k) != want {
			t.Errorf("header %s = %q, want %q", k, got.Get(k), want)
		}
	}
	if query != "" {
		t.Errorf("query = %q, want none (never a token in the URL)", query)
	}
}

func TestBasePathPrefix(t *testing.T) {
	var path string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		writeJSON(w, 200, `{"id":"a/b"}`)
	})
	c, srv := newTestClient(t, mux)
	c2, err := New(srv.URL+"/gantry/", WithToken("t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c2.hc.CloseIdleConnections)
	_ = c
	if _, err := c2.GetJob(t.Context(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if want := "/gantry/v1/jobs/a%2Fb"; path != want {
		t.Errorf("path = %q, want %q", path, want)
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://h/?a=b", "http://u:p@h", "http://h/#x"} {
		if _, err := New(u); err == nil {
			t.Errorf("New(%q) = nil error, want an error", u)
		}
	}
	if _, err := New("http://h", WithToken("a\nb")); err == nil {
		t.Errorf("New with a two-line token = nil error, want an error")
	}
}

func TestFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("gantry-data", 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.token")
	for name, content := range map[string]string{"gantry-data/admin.token": "file-token\n", other: " other-token \n"} {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		server, tok string
		opts        []Option
		wantBase    string
		wantToken   string
		wantErr     bool
	}{
		{name: "defaults read the data dir's token", wantBase: DefaultServer, wantToken: "file-token"},
		{name: "environment", server: "https://gantry.example:9000/", tok: "env-token", wantBase: "https://gantry.example:9000", wantToken: "env-token"},
		{name: "WithToken overrides the environment", tok: "env-token", opts: []Option{WithToken("opt")}, wantBase: DefaultServer, wantToken: "opt"},
		{name: "WithTokenFile", opts: []Option{WithTokenFile(other)}, wantBase: DefaultServer, wantToken: "other-token"},
		{name: "a missing token file given explicitly", opts: []Option{WithTokenFile(filepath.Join(dir, "nope"))}, wantErr: true},
		{name: "a bad server", server: "nowhere", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvServer, tt.server)
			t.Setenv(EnvToken, tt.tok)
			c, err := FromEnv(tt.opts...)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FromEnv() = nil error, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv() = %v", err)
			}
			if c.Server() != tt.wantBase || c.token != tt.wantToken {
				t.Errorf("FromEnv() = server %q token %q, want %q %q", c.Server(), c.token, tt.wantBase, tt.wantToken)
			}
		})
	}
	t.Run("no token file is no token", func(t *testing.T) {
		t.Chdir(t.TempDir())
		t.Setenv(EnvServer, "")
		t.Setenv(EnvToken, "")
		c, err := FromEnv()
		if err != nil || c.token != "" {
			t.Errorf("FromEnv() = token %q, %v; want no token and no error", c.token, err)
		}
	})
}

func TestTimeoutOption(t *testing.T) {
	release := make(chan struct{})
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		writeJSON(w, 200, `{}`)
	}), WithTimeout(20*time.Millisecond))
	defer close(release)
	_, err := c.GetJob(context.Background(), "j1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GetJob() on a stuck server = %v, want context.DeadlineExceeded", err)
	}
}

func TestRoutes(t *testing.T) {
	var got []string
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		if r.Method == "DELETE" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, 200, `{}`)
	}))
	ctx := t.Context()
	calls := []struct {
		want string
		call func() error
	}{
		{"POST /v1/jobs", func() error { _, err := c.Submit(ctx, JobRequest{Type: "t"}); return err }},
		{"GET /v1/jobs/j1", func() error { _, err := c.GetJob(ctx, "j1"); return err }},
		{"GET /v1/jobs?limit=10", func() error { _, err := c.ListJobsPage(ctx, ListJobsOptions{Limit: 10}); return err }},
		{"POST /v1/jobs/j1/cancel", func() error { _, err := c.CancelJob(ctx, "j1"); return err }},
		{"POST /v1/jobs/j1/retry", func() error { _, err := c.RetryJob(ctx, "j1"); return err }},
		{"DELETE /v1/jobs/j1", func() error { return c.DeleteJob(ctx, "j1") }},
		{"POST /v1/jobs/j1/heartbeat", func() error { _, err := c.HeartbeatJob(ctx, "j1", 3, &Progress{Percent: 5}); return err }},
		{"POST /v1/jobs/j1/complete", func() error { _, err := c.CompleteJob(ctx, "j1", 3, "r"); return err }},
		{"POST /v1/jobs/j1/fail", func() error { _, err := c.FailJob(ctx, "j1", 3, Failure{Error: "e"}); return err }},
		{"POST /v1/batches", func() error { _, err := c.CreateBatch(ctx, BatchRequest{Jobs: []JobRequest{{Type: "t"}}}); return err }},
		{"POST /v1/batches/b1/jobs", func() error { _, err := c.AddToBatch(ctx, "b1", []JobRequest{{Type: "t"}}); return err }},
		{"GET /v1/batches/b1", func() error { _, err := c.GetBatch(ctx, "b1"); return err }},
		{"POST /v1/batches/b1/close", func() error { _, err := c.CloseBatch(ctx, "b1"); return err }},
		{"POST /v1/batches/b1/cancel", func() error { _, err := c.CancelBatch(ctx, "b1"); return err }},
		{"GET /v1/batches?cursor=c", func() error { _, err := c.ListBatchesPage(ctx, ListBatchesOptions{Cursor: "c"}); return err }},
		{"GET /v1/batches/b1/jobs?state=failed", func() error {
			_, err := c.ListBatchJobsPage(ctx, "b1", ListBatchJobsOptions{State: gantry.StateFailed})
			return err
		}},
		{"POST /v1/webhooks", func() error { _, err := c.CreateWebhook(ctx, WebhookRequest{URL: "https://x"}); return err }},
		{"GET /v1/webhooks/h1", func() error { _, err := c.GetWebhook(ctx, "h1"); return err }},
		{"GET /v1/webhooks", func() error { _, err := c.ListWebhooks(ctx); return err }},
		{"DELETE /v1/webhooks/h1", func() error { return c.DeleteWebhook(ctx, "h1") }},
		{"GET /v1/queues", func() error { _, err := c.ListQueues(ctx); return err }},
		{"POST /v1/queues/q1/pause", func() error { _, err := c.PauseQueue(ctx, "", "q1"); return err }},
		{"POST /v1/queues/q1/resume?tenant=acme", func() error { _, err := c.ResumeQueue(ctx, "acme", "q1"); return err }},
		{"GET /v1/workers", func() error { _, err := c.ListWorkers(ctx); return err }},
		{"POST /v1/workers/w1/drain", func() error { _, err := c.DrainWorker(ctx, "w1"); return err }},
		{"DELETE /v1/workers/w1", func() error { return c.RemoveWorker(ctx, "w1") }},
		{"GET /healthz", func() error { return c.Healthz(ctx) }},
		{"GET /readyz", func() error { return c.Readyz(ctx) }},
	}
	var want []string
	for _, cl := range calls {
		want = append(want, cl.want)
		if err := cl.call(); err != nil {
			t.Errorf("%s: %v", cl.want, err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
