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

// BenchmarkNoop measures how many no-op jobs per second one worker with
// concurrency 100 drains from a SQLite file through the in-process
// transport, submission excluded. The worker takes about 1% of the CPU;
// the store and the event hub take the rest.
func BenchmarkNoop(b *testing.B) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	g, err := embedded.Open(ctx, embedded.Config{Path: filepath.Join(b.TempDir(), "gantry.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	var specs []embedded.JobSpec
	for i := 0; i < b.N; i++ {
		specs = append(specs, embedded.JobSpec{Type: "noop"})
		if len(specs) == 10000 || i == b.N-1 {
			if _, _, err := g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: specs}); err != nil {
				b.Fatal(err)
			}
			specs = specs[:0]
		}
	}
	var done sync.WaitGroup
	done.Add(b.N)
	w := worker.New(g.Transport(), worker.Options{Concurrency: 100, Logger: quiet})
	w.RegisterFunc("noop", func(context.Context, *gantry.Job) (any, error) {
		done.Done()
		return nil, nil
	})
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- w.Run(runCtx) }()
	done.Wait()
	stop()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.StopTimer()
	n := 0
	for _, err := range g.ListJobs(ctx, embedded.JobFilter{State: gantry.StateSucceeded, PageSize: 1000}) {
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
	if n != b.N {
		b.Fatalf("%d jobs succeeded, want %d", n, b.N)
	}
}
