package embedded_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
	"github.com/gantryhq/gantry/worker"
)

// TestPostgres runs embedded Gantry on PostgreSQL: jobs submitted in a
// batch all run once and the batch is done.
func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	g, err := embedded.Open(ctx, embedded.Config{DatabaseURL: url, Schema: pgtest.Schema(t, url), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var runs atomic.Int64
	w := worker.New(g.Transport(), worker.Options{Concurrency: 8, Logger: slog.New(slog.DiscardHandler)})
	w.RegisterFunc("pg.job", func(ctx context.Context, j *gantry.Job) (any, error) {
		runs.Add(1)
		return map[string]int{"attempt": j.Attempt}, nil
	})
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(wctx) })
	defer func() { stop(); wg.Wait() }()

	specs := make([]embedded.JobSpec, 50)
	for i := range specs {
		specs[i] = embedded.JobSpec{Type: "pg.job"}
	}
	b, ids, err := g.SubmitBatch(ctx, embedded.BatchSpec{Name: "pg", Jobs: specs})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		j, err := g.Wait(ctx, id)
		if err != nil {
			t.Fatalf("Wait(%s): %v", id, err)
		}
		if j.State != gantry.StateSucceeded {
			t.Errorf("job %s ended %s, want succeeded", id, j.State)
		}
	}
	if n := runs.Load(); n != int64(len(ids)) {
		t.Errorf("handler ran %d times for %d jobs", n, len(ids))
	}
	got, err := g.GetBatch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Done {
		t.Errorf("batch done = false after every job succeeded")
	}
}

// BenchmarkEndToEndPostgres is BenchmarkEndToEnd on PostgreSQL (a fresh
// schema of GANTRY_TEST_DATABASE_URL).
func BenchmarkEndToEndPostgres(b *testing.B) {
	url := pgtest.URL(b)
	g, err := embedded.Open(context.Background(), embedded.Config{DatabaseURL: url, Schema: pgtest.Schema(b, url), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	benchEndToEnd(b, g)
}
