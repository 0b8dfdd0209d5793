package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// The scale benchmark (issue 6): one server process, many remote workers
// long-polling it over loopback, jobs submitted at a steady rate. The
// server runs in a child process (this test binary re-executed as
// TestScaleServerChild), so that its CPU, memory, goroutines and open
// files are its own; the workers and the submitters share this process.
//
// Its knobs are environment variables (defaults in brackets):
//
//	GANTRY_SCALE_WORKERS   remote workers [1000], capacity 1 to 4 each
//	GANTRY_SCALE_RATE      jobs submitted per second [2000]
//	GANTRY_SCALE_DURATION  how long jobs are submitted [30s]
//	GANTRY_SCALE_JOB       mean run time of a job [200ms], uniform in ±50 %
//	GANTRY_SCALE_BATCH     jobs per submit request [1]: 1 is POST /v1/jobs, more POST /v1/batches
//	GANTRY_SCALE_LEASE_TTL lease TTL the workers ask for [6s]: busy workers heartbeat every TTL/3
//	GANTRY_SCALE_CPUPROFILE file the server process writes its CPU profile to [none]
const (
	envScaleChild    = "GANTRY_SCALE_CHILD"
	envScaleWorkers  = "GANTRY_SCALE_WORKERS"
	envScaleRate     = "GANTRY_SCALE_RATE"
	envScaleDuration = "GANTRY_SCALE_DURATION"
	envScaleJob      = "GANTRY_SCALE_JOB"
	envScaleBatch    = "GANTRY_SCALE_BATCH"
	envScaleLeaseTTL = "GANTRY_SCALE_LEASE_TTL"
	// envScaleCPUProfile, if set, is where the server process writes its
	// CPU profile.
	envScaleCPUProfile = "GANTRY_SCALE_CPUPROFILE"
	// Passed to the child server.
	envScaleDataDir = "GANTRY_SCALE_DATA_DIR"
	envScaleDB      = "GANTRY_SCALE_DATABASE_URL"
	envScaleSchema  = "GANTRY_SCALE_SCHEMA"
	envScaleToken   = "GANTRY_SCALE_TOKEN"
)

// BenchmarkThousandWorkers runs the scale scenario once against a server
// on SQLite: 1,000 remote workers, 2,000 jobs/s for 30 s by default. Run
// it with -benchtime 1x; see the comment above for its knobs.
//
//	go test -run XXX -bench ThousandWorkers -benchtime 1x -timeout 30m ./test/
func BenchmarkThousandWorkers(b *testing.B) {
	runScale(b, "", "")
}

// BenchmarkThousandWorkersPostgres is BenchmarkThousandWorkers with the
// server on PostgreSQL (a fresh schema of GANTRY_TEST_DATABASE_URL).
func BenchmarkThousandWorkersPostgres(b *testing.B) {
	dbURL := pgNeed(b)
	runScale(b, dbURL, pgSchema(b, dbURL))
}

// scaleParams are the knobs of one run.
type scaleParams struct {
	workers  int
	rate     int
	duration time.Duration
	job      time.Duration
	batch    int
	leaseTTL time.Duration
}

func scaleParamsFromEnv(b *testing.B) scaleParams {
	b.Helper()
	p := scaleParams{workers: 1000, rate: 2000, duration: 30 * time.Second, job: 200 * time.Millisecond,
		batch: 1, leaseTTL: 6 * time.Second}
	intVar := func(name string, v *int) {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				b.Fatalf("%s must be a positive integer, not %q", name, s)
			}
			*v = n
		}
	}
	durVar := func(name string, v *time.Duration) {
		if s := os.Getenv(name); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				b.Fatalf("%s must be a positive duration, not %q", name, s)
			}
			*v = d
		}
	}
	intVar(envScaleWorkers, &p.workers)
	intVar(envScaleRate, &p.rate)
	intVar(envScaleBatch, &p.batch)
	durVar(envScaleDuration, &p.duration)
	durVar(envScaleJob, &p.job)
	durVar(envScaleLeaseTTL, &p.leaseTTL)
	return p
}

// raiseFileLimit raises this process's soft limit of open files to its
// hard limit and fails when that is below need: each remote worker keeps
// a long poll and a keep-alive connection or two open, in this process
// and in the server.
func raiseFileLimit(b *testing.B, need uint64) uint64 {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatalf("setrlimit: %v", err)
		}
	}
	if lim.Cur < need {
		b.Fatalf("open files: the hard limit is %d, %d are needed; raise it (ulimit -Hn, or LimitNOFILE in systemd)", lim.Cur, need)
	}
	return lim.Cur
}

// scaleServer is the child server process.
type scaleServer struct {
	cmd      *exec.Cmd
	url      string
	statsURL string
	done     chan struct{}
}

// startScaleServer re-executes this test binary as the server (see
// TestScaleServerChild) and waits until it listens. The child inherits
// the raised limit of open files.
func startScaleServer(b *testing.B, token, dbURL, schema string) *scaleServer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScaleServerChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envScaleChild+"=1", envScaleToken+"="+token,
		envScaleDataDir+"="+filepath.Join(b.TempDir(), "data"), envScaleDB+"="+dbURL, envScaleSchema+"="+schema)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits when it closes
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &scaleServer{cmd: cmd, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "SCALE-SERVER" {
				ready <- [2]string{f[1], f[2]}
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	select {
	case u := <-ready:
		s.url, s.statsURL = u[0], u[1]
	case <-s.done:
		b.Fatal("the server process exited before listening")
	case <-time.After(time.Minute):
		b.Fatal("the server process did not listen within a minute")
	}
	return s
}

// TestScaleServerChild is the server process of the scale benchmark; it
// is skipped unless GANTRY_SCALE_CHILD is set. It prints "SCALE-SERVER
// <url> <stats url>" once it listens and serves until its standard input
// closes or it gets SIGINT. The stats URL answers the process's goroutine
// count, which /proc does not show.
func TestScaleServerChild(t *testing.T) {
	if os.Getenv(envScaleChild) == "" {
		t.Skip("the server process of BenchmarkThousandWorkers")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // the parent is gone when stdin closes
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	conns, _ := strconv.Atoi(os.Getenv("GANTRY_SCALE_DB_CONNS")) // 0: the default
	srv, err := server.New(ctx, server.Config{
		DataDir: os.Getenv(envScaleDataDir), DatabaseURL: os.Getenv(envScaleDB), Schema: os.Getenv(envScaleSchema),
		DatabaseMaxConns: conns,
		AdminToken:       os.Getenv(envScaleToken),
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stats := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d\n", runtime.NumGoroutine())
	})}
	go stats.Serve(sln)
	defer stats.Close()
	if path := os.Getenv(envScaleCPUProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("SCALE-SERVER http://%s http://%s\n", ln.Addr(), sln.Addr())
	select {
	case <-ctx.Done():
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// procSample is what /proc and the stats URL say about the server process
// at one moment.
type procSample struct {
	at         time.Time
	cpu        time.Duration // user + system
	rss, hwm   int64         // bytes: VmRSS and its peak VmHWM
	fds        int
	threads    int
	goroutines int
}

// sampleProc reads the server process's figures. CPU times in
// /proc/<pid>/stat are in clock ticks, 100 a second on Linux.
func sampleProc(pid int, statsURL string) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 overall
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(utime+stime) * 10 * time.Millisecond
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.hwm = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	resp, err := http.Get(statsURL)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	s.goroutines, _ = strconv.Atoi(strings.TrimSpace(string(body)))
	return s, nil
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// quantiles returns the p-quantiles in milliseconds, sorting l.
func (l *latencies) quantiles(ps ...float64) []float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.d)
	out := make([]float64, len(ps))
	if len(l.d) == 0 {
		return out
	}
	for i, p := range ps {
		out[i] = float64(l.d[int(p*float64(len(l.d)-1))]) / 1e6
	}
	return out
}

// timedTransport is a worker.Transport that records how long lease calls
// that returned jobs took, minus the time the server waited for a job
// (the long poll): the server's and the network's share of a lease.
type timedTransport struct {
	worker.Transport
	lease      *latencies
	registered *atomic.Int64
}

func (t *timedTransport) Register(ctx context.Context, r worker.Registration) (worker.Registered, error) {
	reg, err := t.Transport.Register(ctx, r)
	if err == nil {
		t.registered.Add(1)
	}
	return reg, err
}

func (t *timedTransport) Lease(ctx context.Context, workerID string, n int, wait time.Duration) (worker.LeaseResult, error) {
	start := time.Now()
	res, err := t.Transport.Lease(ctx, workerID, n, wait)
	if err == nil && len(res.Leases) > 0 {
		t.lease.add(time.Since(start) - res.Leases[0].Waited)
	}
	return res, err
}

// scaleJob is the params of a scale job: when its submit request began
// (Unix nanoseconds; the workers run on the same clock) and how long it
// runs.
type scaleJob struct {
	Submitted int64 `json:"t"`
	RunMS     int64 `json:"ms"`
}

func runScale(b *testing.B, dbURL, schema string) {
	p := scaleParamsFromEnv(b)
	limit := raiseFileLimit(b, uint64(4*p.workers+1024))
	token := "scale-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	srv := startScaleServer(b, token, dbURL, schema)
	pid := srv.cmd.Process.Pid
	sample := func() procSample {
		s, err := sampleProc(pid, srv.statsURL)
		if err != nil {
			b.Fatalf("sample the server process: %v", err)
		}
		return s
	}
	start := sample()

	// The workers: each its own client and connection pool, as separate
	// machines would have.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		registered  atomic.Int64
		completed   atomic.Int64
		leaseLat    latencies
		startLat    latencies
		workersDone sync.WaitGroup
	)
	quiet := slog.New(slog.DiscardHandler)
	capacity := 0
	for i := range p.workers {
		c, err := client.New(srv.url, client.WithToken(token))
		if err != nil {
			b.Fatal(err)
		}
		tr := &timedTransport{Transport: c.WorkerTransport(), lease: &leaseLat, registered: &registered}
		conc := 1 + i%4
		capacity += conc
		w := worker.New(tr, worker.Options{Name: fmt.Sprintf("scale-%d", i), Concurrency: conc,
			LeaseTTL: p.leaseTTL, Logger: quiet})
		w.RegisterFunc("scale", func(ctx context.Context, j *gantry.Job) (any, error) {
			var sj scaleJob
			if err := json.Unmarshal(j.Params, &sj); err != nil {
				return nil, gantry.Permanent(err)
			}
			if j.Attempt == 1 {
				startLat.add(time.Since(time.Unix(0, sj.Submitted)))
			}
			select {
			case <-time.After(time.Duration(sj.RunMS) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			completed.Add(1)
			return nil, nil
		})
		workersDone.Go(func() { _ = w.Run(ctx) })
	}
	defer workersDone.Wait()
	defer cancel()
	if !scaleWait(ctx, 2*time.Minute, func() bool { return registered.Load() == int64(p.workers) }) {
		b.Fatalf("%d of %d workers registered within 2 minutes", registered.Load(), p.workers)
	}
	time.Sleep(3 * time.Second) // every worker in its long poll
	idle := sample()

	// Submit at a steady rate: a request of p.batch jobs every
	// p.batch/p.rate seconds, from a pool of submitters (a slow server
	// backs the queue of requests up rather than lowering the rate
	// silently: the achieved rate is reported).
	sc, err := client.New(srv.url, client.WithToken(token))
	if err != nil {
		b.Fatal(err)
	}
	var (
		submitted  atomic.Int64
		submitErrs atomic.Int64
		submitLat  latencies
		peak       procSample
		peakMu     sync.Mutex
	)
	reqs := make(chan struct{}, 100_000)
	var subs sync.WaitGroup
	for range 64 {
		subs.Go(func() {
			for range reqs {
				jobs := make([]client.JobRequest, p.batch)
				t0 := time.Now()
				for i := range jobs {
					ms := p.job.Milliseconds()/2 + rand.Int64N(p.job.Milliseconds()+1)
					jobs[i] = client.JobRequest{Type: "scale", Params: scaleJob{Submitted: t0.UnixNano(), RunMS: ms}}
				}
				var err error
				if p.batch == 1 {
					_, err = sc.Submit(ctx, jobs[0])
				} else {
					_, err = sc.CreateBatch(ctx, client.BatchRequest{Jobs: jobs})
				}
				if err != nil {
					if submitErrs.Add(1) <= 5 {
						b.Logf("submit: %v", err)
					}
					continue
				}
				submitLat.add(time.Since(t0))
				submitted.Add(int64(p.batch))
			}
		})
	}
	samplerDone := make(chan struct{})
	var samplerWG sync.WaitGroup
	samplerWG.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-samplerDone:
				return
			case <-t.C:
			}
			s, err := sampleProc(pid, srv.statsURL)
			if err != nil {
				continue
			}
			peakMu.Lock()
			peak.rss = max(peak.rss, s.rss)
			peak.fds = max(peak.fds, s.fds)
			peak.threads = max(peak.threads, s.threads)
			peak.goroutines = max(peak.goroutines, s.goroutines)
			peakMu.Unlock()
		}
	})
	var selfStart syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &selfStart)
	b.ResetTimer()
	loadBegin := sample()
	loadStart := loadBegin.at
	interval := time.Duration(float64(time.Second) * float64(p.batch) / float64(p.rate))
	total := int(p.duration / interval)
	backlog := 0
	for i := range total {
		if d := time.Until(loadStart.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		select {
		case reqs <- struct{}{}:
		default:
			backlog++
		}
	}
	close(reqs)
	subs.Wait()
	submitEnd := time.Now()
	loadEnd := sample()
	want := submitted.Load()
	drained := scaleWait(ctx, 5*time.Minute, func() bool { return completed.Load() >= want })
	end := time.Now()
	final := sample()
	b.StopTimer()
	var selfEnd syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &selfEnd)
	close(samplerDone)
	samplerWG.Wait()
	cancel()
	if !drained {
		b.Errorf("%d of %d jobs completed within 5 minutes of the last submit", completed.Load(), want)
	}
	if backlog > 0 {
		b.Errorf("%d submit requests were dropped: the submitters fell behind", backlog)
	}

	cpuPerSec := func(a, z procSample) float64 { return (z.cpu - a.cpu).Seconds() / z.at.Sub(a.at).Seconds() }
	selfCPU := time.Duration(selfEnd.Utime.Nano() + selfEnd.Stime.Nano() - selfStart.Utime.Nano() - selfStart.Stime.Nano())
	st := startLat.quantiles(0.5, 0.9, 0.99, 1)
	ls := leaseLat.quantiles(0.5, 0.9, 0.99, 1)
	su := submitLat.quantiles(0.5, 0.99)
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(float64(want)/submitEnd.Sub(loadStart).Seconds(), "submitted/s")
	b.ReportMetric(float64(completed.Load())/end.Sub(loadStart).Seconds(), "completed/s")
	b.ReportMetric(st[0], "start-p50-ms")
	b.ReportMetric(st[2], "start-p99-ms")
	b.ReportMetric(ls[0], "lease-p50-ms")
	b.ReportMetric(ls[2], "lease-p99-ms")
	b.ReportMetric(cpuPerSec(loadBegin, loadEnd), "server-cpu/s")
	b.ReportMetric(mib(final.hwm), "server-rss-peak-MiB")
	b.Logf(`scale: %d workers (capacity %d slots), %d jobs/s asked for %s, jobs of %s ±50 %%, %d jobs a request, lease TTL %s; open-file limit %d
  server at start:     RSS %.0f MiB, %d goroutines, %d threads, %d fds
  idle, %d long polls: RSS %.0f MiB, %d goroutines, %d threads, %d fds, CPU %.3f s/s
  under load (peaks):  RSS %.0f MiB (VmHWM %.0f MiB), %d goroutines, %d threads, %d fds
  server CPU:          %.2f s/s while submitting, %.2f s/s over the whole load (to the last completion)
  this process (workers + submitters): %.2f CPU s/s
  submitted %d jobs (%.0f/s, %d errors), completed %d (%.0f/s), last completion %.1f s after the last submit
  submit request:      p50 %.2f ms, p99 %.2f ms
  submit to start:     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.0f ms (%d jobs)
  lease service time:  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.0f ms (lease calls that returned jobs, minus the long-poll wait)`,
		p.workers, capacity, p.rate, p.duration, p.job, p.batch, p.leaseTTL, limit,
		mib(start.rss), start.goroutines, start.threads, start.fds,
		p.workers, mib(idle.rss), idle.goroutines, idle.threads, idle.fds, cpuPerSec(start, idle),
		mib(peak.rss), mib(final.hwm), peak.goroutines, peak.threads, peak.fds,
		cpuPerSec(loadBegin, loadEnd), cpuPerSec(loadBegin, final),
		selfCPU.Seconds()/end.Sub(loadStart).Seconds(),
		want, float64(want)/submitEnd.Sub(loadStart).Seconds(), submitErrs.Load(), completed.Load(),
		float64(completed.Load())/end.Sub(loadStart).Seconds(), end.Sub(submitEnd).Seconds(),
		su[0], su[1],
		st[0], st[1], st[2], st[3], len(startLat.d),
		ls[0], ls[1], ls[2], ls[3])
}

// scaleWait polls cond every 50 ms until it holds (true) or d passes or
// ctx ends (false).
func scaleWait(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
