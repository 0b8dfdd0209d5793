package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a real server on a loopback port, in a temporary data
// directory.
type testServer struct {
	url   string
	token string
	dir   string
	c     *client.Client
}

// startTestServer starts a server for the test; it stops when the test
// ends.
func startTestServer(t *testing.T) *testServer {
	t.Helper()
	dir := t.TempDir()
	s, err := startServer(t.Context(), server.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("startServer: %v", err)
	}
	a := &app{}
	c, err := client.New(s.url, client.WithToken(s.srv.Token()), client.WithHTTPClient(a.httpClient()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.close()
		if err := s.stop(context.Background(), 10*time.Second); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
	})
	return &testServer{url: s.url, token: s.srv.Token(), dir: dir, c: c}
}

// result is what a gantry command did.
type result struct {
	code           int
	stdout, stderr string
}

// run runs gantry with args.
func run(ctx context.Context, args ...string) result {
	var out, errOut bytes.Buffer
	code := Run(ctx, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// gantry runs gantry with args against s.
func (s *testServer) gantry(t *testing.T, args ...string) result {
	t.Helper()
	return run(t.Context(), append([]string{"--server", s.url, "--token", s.token}, args...)...)
}

// ok runs gantry with args against s and fails the test unless it exits 0.
func (s *testServer) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := s.gantry(t, args...)
	if r.code != 0 {
		t.Fatalf("gantry %s exited %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// syncBuffer is a buffer safe for a command writing to it while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// changed is signaled on every write.
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds want, failing the test if done is
// closed first (the command ended) or the test's context ends.
func (b *syncBuffer) waitFor(t *testing.T, want string, done <-chan struct{}) {
	t.Helper()
	for !strings.Contains(b.String(), want) {
		select {
		case <-b.changed:
		case <-done:
			if !strings.Contains(b.String(), want) {
				t.Fatalf("the command ended without printing %q:\n%s", want, b.String())
			}
			return
		case <-t.Context().Done():
			t.Fatalf("the test ended before the output held %q:\n%s", want, b.String())
		}
	}
}

// background is a gantry command running in the background.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	out    *syncBuffer
	errOut *syncBuffer
}

// start runs gantry with args in the background until stop.
func start(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan struct{}), out: newSyncBuffer(), errOut: newSyncBuffer()}
	go func() {
		defer close(b.done)
		b.code = Run(ctx, args, b.out, b.errOut)
	}()
	t.Cleanup(func() { b.stop() })
	return b
}

// stop cancels the command's context (as a signal would) and returns its
// exit code.
func (b *background) stop() int {
	b.cancel()
	<-b.done
	return b.code
}

// wait waits for the command to end by itself and returns its exit code.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-t.Context().Done():
		t.Fatalf("the test ended before the command:\nstdout:\n%s\nstderr:\n%s", b.out, b.errOut)
		return 0
	}
}

// startWorker runs 'gantry worker' against s in the background.
func (s *testServer) startWorker(t *testing.T, args ...string) *background {
	t.Helper()
	return start(t, append([]string{"worker", "--server", s.url, "--token", s.token, "--log-level", "error"}, args...)...)
}

// waitState waits until the job is in the state.
func (s *testServer) waitState(t *testing.T, id string, state string) *client.Job {
	t.Helper()
	for {
		j, err := s.c.GetJob(t.Context(), id)
		if err != nil {
			t.Fatalf("GetJob(%s): %v", id, err)
		}
		if string(j.State) == state {
			return j
		}
		if j.State.Terminal() {
			t.Fatalf("job %s is %s, waiting for %s", id, j.State, state)
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("the test ended before job %s was %s", id, state)
		}
	}
}
