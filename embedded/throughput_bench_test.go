package embedded_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// openBench opens a fresh Gantry on a SQLite file in a temp dir.
func openBench(b *testing.B) *embedded.Gantry {
	b.Helper()
	g, err := embedded.Open(context.Background(), embedded.Config{
		Path: filepath.Join(b.TempDir(), "gantry.db"), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

// BenchmarkSubmitBatch measures submitting jobs in batches of 1,000; one op
// is one job.
func BenchmarkSubmitBatch(b *testing.B) {
	g := openBench(b)
	ctx := context.Background()
	specs := make([]embedded.JobSpec, 1000)
	for i := range specs {
		specs[i] = embedded.JobSpec{Type: "noop"}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(specs) {
		if _, _, err := g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: specs[:min(len(specs), b.N-i)]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEndToEnd measures no-op jobs per second from the first submit to
// the last completion, with submission (batches of 1,000 from 2
// goroutines) and two in-process workers of concurrency 100 running at the
// same time; one op is one job.
func BenchmarkEndToEnd(b *testing.B) {
	benchEndToEnd(b, openBench(b))
}

func benchEndToEnd(b *testing.B, g *embedded.Gantry) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done sync.WaitGroup
	done.Add(b.N)
	var workers sync.WaitGroup
	for range 2 {
		w := worker.New(g.Transport(), worker.Options{Concurrency: 100, Logger: slog.New(slog.DiscardHandler)})
		w.RegisterFunc("noop", func(context.Context, *gantry.Job) (any, error) {
			done.Done()
			return nil, nil
		})
		workers.Go(func() { w.Run(ctx) })
	}
	const batch, submitters = 1000, 2
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var subs sync.WaitGroup
	for range submitters {
		subs.Go(func() {
			specs := make([]embedded.JobSpec, batch)
			for i := range specs {
				specs[i] = embedded.JobSpec{Type: "noop"}
			}
			for {
				from := next.Add(batch) - batch
				if from >= int64(b.N) {
					return
				}
				n := min(int64(batch), int64(b.N)-from)
				if _, _, err := g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: specs[:n]}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	subs.Wait()
	done.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	workers.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
}

// BenchmarkSubmitToStart measures the latency from Submit to the handler
// starting, one job at a time, with an idle worker waiting (long poll).
func BenchmarkSubmitToStart(b *testing.B) {
	g := openBench(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan time.Time, 1)
	w := worker.New(g.Transport(), worker.Options{Concurrency: 10, Logger: slog.New(slog.DiscardHandler)})
	w.RegisterFunc("noop", func(context.Context, *gantry.Job) (any, error) {
		started <- time.Now()
		return nil, nil
	})
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	// Warm up: the first job also waits for the worker to register.
	if _, err := g.Submit(ctx, embedded.JobSpec{Type: "noop"}); err != nil {
		b.Fatal(err)
	}
	<-started
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(2 * time.Millisecond) // let the worker go back to waiting
		t0 := time.Now()
		if _, err := g.Submit(ctx, embedded.JobSpec{Type: "noop"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-started).Sub(t0))
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.90), "p90-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
