package test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// benchServer starts a server on a loopback port over a fresh SQLite file.
func benchServer(b *testing.B) (url, token string) {
	b.Helper()
	return benchServerConfig(b, server.Config{DataDir: filepath.Join(b.TempDir(), "data")})
}

// benchServerConfig starts a server with cfg on a loopback port.
func benchServerConfig(b *testing.B, cfg server.Config) (url, token string) {
	b.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String(), srv.Token()
}

// startRemoteWorkers runs n remote workers, each with its own client (its
// own connection pool), as separate worker processes would.
func startRemoteWorkers(b *testing.B, ctx context.Context, url, token string, n, concurrency int, h gantry.HandlerFunc) *sync.WaitGroup {
	b.Helper()
	var wg sync.WaitGroup
	for range n {
		c, err := client.New(url, client.WithToken(token))
		if err != nil {
			b.Fatal(err)
		}
		w := worker.New(c.WorkerTransport(), worker.Options{Concurrency: concurrency, Logger: slog.New(slog.DiscardHandler)})
		w.RegisterFunc("noop", h)
		wg.Go(func() { w.Run(ctx) })
	}
	return &wg
}

// BenchmarkRemoteEndToEnd measures no-op jobs per second from the first
// submit to the last completion with 4 remote workers (concurrency 100
// each) on loopback HTTP, submission over HTTP in batches of 1,000 from 2
// goroutines; one op is one job. Compare with embedded's
// BenchmarkEndToEnd, the same workload in-process.
func BenchmarkRemoteEndToEnd(b *testing.B) {
	url, token := benchServer(b)
	benchRemoteEndToEnd(b, url, token)
}

// BenchmarkRemoteEndToEndPostgres is BenchmarkRemoteEndToEnd with the
// server on PostgreSQL (a fresh schema of GANTRY_TEST_DATABASE_URL).
func BenchmarkRemoteEndToEndPostgres(b *testing.B) {
	dbURL := pgNeed(b)
	url, token := benchServerConfig(b, server.Config{DataDir: filepath.Join(b.TempDir(), "data"),
		DatabaseURL: dbURL, Schema: pgSchema(b, dbURL)})
	benchRemoteEndToEnd(b, url, token)
}

func benchRemoteEndToEnd(b *testing.B, url, token string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done sync.WaitGroup
	done.Add(b.N)
	workers := startRemoteWorkers(b, ctx, url, token, 4, 100, func(context.Context, *gantry.Job) (any, error) {
		done.Done()
		return nil, nil
	})
	c, err := client.New(url, client.WithToken(token))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var subs sync.WaitGroup
	for range 2 {
		subs.Go(func() {
			reqs := make([]client.JobRequest, batch)
			for i := range reqs {
				reqs[i] = client.JobRequest{Type: "noop"}
			}
			for {
				from := next.Add(batch) - batch
				if from >= int64(b.N) {
					return
				}
				n := min(int64(batch), int64(b.N)-from)
				if _, err := c.CreateBatch(ctx, client.BatchRequest{Jobs: reqs[:n]}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	subs.Wait()
	benchWait(b, &done)
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	workers.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
}

// BenchmarkRemoteWakeUp measures the time from an HTTP submit to a remote
// worker's handler starting, one job at a time, with the worker idle in a
// long-poll lease.
func BenchmarkRemoteWakeUp(b *testing.B) {
	url, token := benchServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan time.Time, 1)
	workers := startRemoteWorkers(b, ctx, url, token, 1, 10, func(context.Context, *gantry.Job) (any, error) {
		started <- time.Now()
		return nil, nil
	})
	c, err := client.New(url, client.WithToken(token))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Submit(ctx, client.JobRequest{Type: "noop"}); err != nil {
		b.Fatal(err)
	}
	<-started
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(2 * time.Millisecond) // let the worker go back to its long poll
		t0 := time.Now()
		if _, err := c.Submit(ctx, client.JobRequest{Type: "noop"}); err != nil {
			b.Fatal(err)
		}
		select {
		case t := <-started:
			lat = append(lat, t.Sub(t0))
		case <-time.After(time.Minute):
			b.Fatal("the remote worker did not start the job within a minute")
		}
	}
	b.StopTimer()
	cancel()
	workers.Wait()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.90), "p90-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// benchWait waits for wg, failing the benchmark instead of hanging when
// the workers cannot finish (say, cannot reach the server).
func benchWait(b *testing.B, wg *sync.WaitGroup) {
	b.Helper()
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
	case <-time.After(5 * time.Minute):
		b.Fatal("jobs did not all finish within 5 minutes")
	}
}
