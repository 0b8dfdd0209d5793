package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/gantryhq/gantry/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

func newServer(t *testing.T, cfg Config) (*Server, error) {
	t.Helper()
	cfg.Logger = quiet
	s, err := New(t.Context(), cfg)
	if err == nil {
		t.Cleanup(func() {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	return s, err
}

func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	s1, err := newServer(t, Config{DataDir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	path := filepath.Join(dir, TokenFile)
	if s1.TokenFile() != path {
		t.Errorf("TokenFile() = %q, want %q", s1.TokenFile(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode = %04o, want 0600", perm)
	}
	data, _ := os.ReadFile(path)
	if strings.TrimSpace(string(data)) != s1.Token() || len(s1.Token()) < 32 {
		t.Errorf("token file holds %q, server uses %q", data, s1.Token())
	}
	if err := s1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The next start reads the same token.
	s2, err := newServer(t, Config{DataDir: dir})
	if err != nil {
		t.Fatalf("New again: %v", err)
	}
	if s2.Token() != s1.Token() {
		t.Errorf("second start token %q, want the first's %q", s2.Token(), s1.Token())
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A file others may read is refused, with advice.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(t, Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("New with a world-readable token file = %v, want an error advising chmod 600", err)
	}

	// A configured token wins over the file, and is not written.
	tok := "configured-token-0123456789"
	s3, err := newServer(t, Config{DataDir: dir, AdminToken: tok})
	if err != nil {
		t.Fatalf("New with AdminToken: %v", err)
	}
	if s3.Token() != tok || s3.TokenFile() != "" {
		t.Errorf("Token() = %q, TokenFile() = %q; want the configured token and no file", s3.Token(), s3.TokenFile())
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := newServer(t, Config{DataDir: dir, DatabaseURL: "postgres://127.0.0.1:1/gantry?connect_timeout=5"}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("New with an unreachable DatabaseURL = %v, want store.ErrUnavailable", err)
	}
	if _, err := newServer(t, Config{DataDir: dir, DatabaseURL: "postgres://127.0.0.1:1/gantry", Schema: "Not-A-Schema"}); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("New with a bad schema = %v, want an error about the schema", err)
	}
	if _, err := newServer(t, Config{DataDir: dir, AdminToken: "short"}); err == nil {
		t.Error("New with a short AdminToken = nil error")
	}
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newServer(t, Config{DataDir: dir}); err == nil {
		t.Error("New with an empty token file = nil error")
	}
	if _, err := os.Stat(filepath.Join(dir, DatabaseFile)); err == nil {
		t.Error("a failed New created the database")
	}
}

func TestServeAndShutdown(t *testing.T) {
	s, err := newServer(t, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	// The listener queues the connection until Serve accepts it.
	res, err := http.Get("http://" + ln.Addr().String() + "/readyz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /readyz = %v, %v", res, err)
	}
	res.Body.Close()
	if got := s.URL(); got != "http://"+ln.Addr().String() {
		t.Errorf("URL() = %q", got)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
