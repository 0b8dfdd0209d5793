package test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// clientQuiet discards the logs of the servers and workers of the SDK
// tests.
var clientQuiet = slog.New(slog.DiscardHandler)

// clientServer is a real server on a loopback port and an SDK client of it.
type clientServer struct {
	srv *server.Server
	url string
	c   *client.Client
}

// startClientServer starts a server with fast maintenance loops (cfg's
// non-zero fields kept) and returns it with an admin client. The server
// shuts down when the test ends.
func startClientServer(t *testing.T, cfg server.Config) *clientServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = clientQuiet
	e := &cfg.Engine
	if e.Backoff.Base == 0 {
		e.Backoff = engine.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	}
	for _, d := range []*time.Duration{&e.PromoteInterval, &e.RescueInterval, &e.EventPollInterval, &e.LeasePollInterval} {
		if *d == 0 {
			*d = 50 * time.Millisecond
		}
	}
	srv, err := server.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serve sets the server's URL concurrently; the listener knows it now.
	c, err := client.New("http://"+ln.Addr().String(), client.WithToken(srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	return &clientServer{srv: srv, url: "http://" + ln.Addr().String(), c: c}
}

// clientWorker is a worker.Worker running over the HTTP worker protocol.
type clientWorker struct {
	w    *worker.Worker
	stop context.CancelFunc
	done chan struct{} // closed when Run returned
	err  error         // what Run returned
}

// startClientWorker runs a remote worker with the handlers registered by
// register until the test ends or Stop is called.
func startClientWorker(t *testing.T, c *client.Client, o worker.Options, register func(w *worker.Worker)) *clientWorker {
	t.Helper()
	o.Logger = clientQuiet
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 10 * time.Second
	}
	w := worker.New(c.WorkerTransport(), o)
	register(w)
	ctx, stop := context.WithCancel(context.Background())
	rw := &clientWorker{w: w, stop: stop, done: make(chan struct{})}
	go func() {
		rw.err = w.Run(ctx)
		close(rw.done)
	}()
	t.Cleanup(func() {
		if err := rw.Stop(); err != nil {
			t.Errorf("worker %s: Run = %v", o.Name, err)
		}
	})
	// Wait for the registration, so that the worker can be named.
	clientWaitFor(t, "the worker to register", func() bool { return w.ID() != "" })
	return rw
}

// Stop shuts the worker down gracefully and returns what Run returned.
func (rw *clientWorker) Stop() error {
	rw.stop()
	<-rw.done
	return rw.err
}

// clientWaitFor polls cond until it holds, failing the test after a generous
// deadline.
func clientWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientWaitJob waits for a job to finish, with a generous deadline.
func clientWaitJob(t *testing.T, c *client.Client, id string) *client.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	j, err := c.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s) = %v", id, err)
	}
	return j
}

// clientSubmit submits a job or fails the test.
func clientSubmit(t *testing.T, c *client.Client, r client.JobRequest) *client.Job {
	t.Helper()
	j, err := c.Submit(t.Context(), r)
	if err != nil {
		t.Fatalf("Submit(%+v) = %v", r, err)
	}
	return j
}

// clientErr returns err as a *client.Error, failing the test if it is not.
func clientErr(t *testing.T, err error) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *client.Error", err)
	}
	return e
}

// clientConfig is the default configuration of the SDK tests' servers.
func clientConfig() server.Config { return server.Config{} }
