package client

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTestClient returns a client of a test server running h, with short
// retry, reconnection and polling delays.
func newTestClient(t *testing.T, h http.Handler, opts ...Option) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, append([]Option{WithToken("secret-token")}, opts...)...)
	if err != nil {
		t.Fatalf("New(%q) = %v", srv.URL, err)
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	c.retryWait = time.Millisecond
	c.maxRetryWait = 20 * time.Millisecond
	c.minBackoff = time.Millisecond
	c.maxBackoff = 20 * time.Millisecond
	c.pollInterval = 5 * time.Millisecond
	c.safetyPoll = time.Hour
	return c, srv
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// writeProblem answers with a problem document.
func writeProblem(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
