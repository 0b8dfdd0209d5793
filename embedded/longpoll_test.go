package embedded_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// TestLeaseAfterLongPoll checks that a lease granted at the end of a long
// poll that lasted longer than the lease TTL is trusted from its grant,
// not from when the poll began: the job runs once and succeeds, instead of
// being dropped as expired on arrival and leased again and again.
func TestLeaseAfterLongPoll(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g, err := embedded.Open(ctx, embedded.Config{Path: filepath.Join(t.TempDir(), "g.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := worker.New(g.Transport(), worker.Options{Concurrency: 1, LeaseTTL: 2 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	w.RegisterFunc("slowish", func(ctx context.Context, j *gantry.Job) (any, error) {
		select {
		case <-time.After(300 * time.Millisecond):
			return j.Attempt, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	})
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(wctx) })
	defer func() { stop(); wg.Wait() }()

	// Let the worker sit in its long poll for more than the 2 s lease TTL
	// (short, yet with room for heartbeats on a loaded machine).
	time.Sleep(3500 * time.Millisecond)
	j, err := g.Submit(ctx, embedded.JobSpec{Type: "slowish"})
	if err != nil {
		t.Fatal(err)
	}
	done, err := g.Wait(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != gantry.StateSucceeded || done.Attempt != 1 {
		t.Errorf("job ended %s after %d attempts, want succeeded after 1", done.State, done.Attempt)
	}
}
