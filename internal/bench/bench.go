// Package bench is the workload runner of "gantry bench": it starts Gantry
// on SQLite or PostgreSQL, in this process (package embedded) or as a
// server in this process with worker processes on loopback, submits no-op
// jobs in batches, and measures submission and completion rates, the
// submit-to-start and submit-to-finish latencies, the server's memory and
// the database's size.
//
// A run has three phases. Preloading queues Config.Preload jobs in a
// paused queue, untimed. The timed phase starts the workers, waits for
// all of them to register, then starts the clock, resumes the queue and
// submits Config.Jobs jobs (or submits for Config.Duration); it ends when
// every job has finished (or when the duration is up). Reading back then
// takes the jobs' timestamps from the store for the latencies.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry"
)

// Stores and modes of [Config].
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"

	ModeInProcess = "inprocess"
	ModeRemote    = "remote"
)

// JobType is the type of the benchmark's jobs: the built-in no-op of the
// gantry binary, so that "gantry worker" processes can run them.
const JobType = "demo.noop"

// Queue is the queue the benchmark's jobs wait in.
const Queue = "bench"

// Defaults of [Config].
const (
	DefaultJobs        = 20000
	DefaultWorkers     = 2
	DefaultConcurrency = 100
	DefaultBatch       = 1000
	DefaultSubmitters  = 2
)

// pollEvery is how often progress is shown and the end of the run looked
// for; pollQuiet without progress to show. The end is taken from the jobs'
// timestamps, not from when it is seen.
//
// The queue's counts cost the database a scan of the queue's jobs, finished
// ones included (a second of CPU for a few hundred thousand jobs on
// SQLite): read every second, they halved the measured throughput of a
// queue 200,000 jobs deep. So a target that counts its handlers' calls
// (in-process) is not asked for them until every job has been handled (then
// nothing else runs), and otherwise they are read at most once in
// countSpacing times as long as the last reading took.
const (
	pollEvery    = 250 * time.Millisecond
	pollQuiet    = time.Second
	countSpacing = 20
)

// Config configures [Run]. Zero fields take their defaults.
type Config struct {
	// Store is StoreSQLite (the default) or StorePostgres.
	Store string
	// DatabaseURL is the PostgreSQL database; required with StorePostgres.
	// The run creates a schema of its own there and drops it at the end.
	DatabaseURL string
	// DataDir holds the SQLite database. Defaults to a temporary directory,
	// removed at the end.
	DataDir string
	// Mode is ModeInProcess (the default: package embedded, workers in
	// this process) or ModeRemote (a server in this process on loopback,
	// workers in processes of their own).
	Mode string
	// Jobs is the number of jobs submitted in the timed phase, unless
	// Duration is set. Defaults to 20,000.
	Jobs int
	// Duration, when set, makes the timed phase submit for this long
	// instead of submitting Jobs jobs, and end then: completions are
	// counted up to then.
	Duration time.Duration
	// Preload is the number of jobs queued before the timed phase, to run
	// on a deep queue. They are worked in the timed phase, before the jobs
	// submitted there (the queue is first in, first out).
	Preload int
	// Workers is the number of workers. Defaults to 2.
	Workers int
	// Concurrency is each worker's concurrency. Defaults to 100.
	Concurrency int
	// Batch is the number of jobs submitted at a time. Defaults to 1,000.
	Batch int
	// Submitters is the number of goroutines submitting. Defaults to 2.
	Submitters int
	// WorkerCommand is the gantry binary and leading arguments that run
	// gantry's command line (ModeRemote): "worker" and its flags follow.
	// Required with ModeRemote.
	WorkerCommand []string
	// WorkerEnv is added to the worker processes' environment.
	WorkerEnv []string
	// Progress, if set, is called about every 250 ms of the timed phase,
	// from one goroutine.
	Progress func(Progress)
	// Logger receives Gantry's logs. Defaults to discarding them.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	c.Store = cmpOr(c.Store, StoreSQLite)
	c.Mode = cmpOr(c.Mode, ModeInProcess)
	if c.Jobs == 0 && c.Duration == 0 {
		c.Jobs = DefaultJobs
	}
	c.Workers = cmpOr(c.Workers, DefaultWorkers)
	c.Concurrency = cmpOr(c.Concurrency, DefaultConcurrency)
	c.Batch = cmpOr(c.Batch, DefaultBatch)
	c.Submitters = cmpOr(c.Submitters, DefaultSubmitters)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Store != StoreSQLite && c.Store != StorePostgres:
		return c, fmt.Errorf("bench: store must be %s or %s, not %q", StoreSQLite, StorePostgres, c.Store)
	case c.Store == StorePostgres && c.DatabaseURL == "":
		return c, errors.New("bench: the postgres store needs a database URL")
	case c.Mode != ModeInProcess && c.Mode != ModeRemote:
		return c, fmt.Errorf("bench: mode must be %s or %s, not %q", ModeInProcess, ModeRemote, c.Mode)
	case c.Mode == ModeRemote && len(c.WorkerCommand) == 0:
		return c, errors.New("bench: remote mode needs the command of the gantry binary")
	case c.Jobs < 0 || c.Duration < 0 || c.Preload < 0:
		return c, errors.New("bench: jobs, duration and preload must not be negative")
	case c.Workers < 0 || c.Concurrency < 0 || c.Batch < 0 || c.Batch > 10000 || c.Submitters < 0:
		return c, errors.New("bench: workers, concurrency, submitters must be positive, batch 1 to 10000")
	}
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Progress is the state of the timed phase at one moment.
type Progress struct {
	Elapsed   time.Duration
	Submitted int // jobs submitted in the timed phase, preloaded ones included
	// Counts of the benchmark queue's jobs by state.
	Queued, Running, Succeeded, Failed int
	// Total is the number of jobs the run expects to finish: preloaded and
	// to be submitted; with a duration, those submitted so far.
	Total int
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	// N is the number of jobs measured.
	N int `json:"n"`
}

// Result is what a run measured.
type Result struct {
	Store       string  `json:"store"`
	Mode        string  `json:"mode"`
	Jobs        int     `json:"jobs"`
	Preload     int     `json:"preload"`
	Workers     int     `json:"workers"`
	Concurrency int     `json:"concurrency"`
	Duration    float64 `json:"duration_seconds,omitempty"`
	// Submitted is the number of jobs submitted in the timed phase.
	Submitted int `json:"submitted"`
	// Completed is the number of jobs (preloaded ones included) that
	// succeeded in the timed phase.
	Completed int `json:"completed"`
	// Failed is the number of jobs that failed; a sound run has none.
	Failed int `json:"failed"`
	// SubmitSeconds is how long submitting took.
	SubmitSeconds float64 `json:"submit_seconds"`
	// ElapsedSeconds is the timed phase: from the start to the last
	// completion (or to the end of Duration).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// SubmittedPerSec is Submitted / SubmitSeconds.
	SubmittedPerSec float64 `json:"submitted_per_sec"`
	// CompletedPerSec is Completed / ElapsedSeconds.
	CompletedPerSec float64 `json:"completed_per_sec"`
	// SubmitToStart is the time from a job's submission to its handler
	// starting (in-process: the handler's clock; remote: the job's
	// started_at in the store, when the server leased it), over the jobs
	// submitted in the timed phase.
	SubmitToStart Latency `json:"submit_to_start_ms"`
	// SubmitToFinish is the time from a job's submission to its success
	// being stored (its finished_at).
	SubmitToFinish Latency `json:"submit_to_finish_ms"`
	// ServerRSSBytes is the server's resident memory at the end of the
	// timed phase; ServerPeakRSSBytes its peak. In-process, the server is
	// this process, with its workers and submitters.
	ServerRSSBytes     int64 `json:"server_rss_bytes"`
	ServerPeakRSSBytes int64 `json:"server_peak_rss_bytes"`
	// WorkersPeakRSSBytes is the sum of the worker processes' peak
	// resident memory (remote only).
	WorkersPeakRSSBytes int64 `json:"workers_peak_rss_bytes,omitempty"`
	// DatabaseBytes is the database's size at the end: the SQLite files
	// (database and write-ahead log), or the total size of the tables and
	// indexes of Gantry's PostgreSQL schema.
	DatabaseBytes int64 `json:"database_bytes"`
}

// target is Gantry set up one way: in-process or remote.
type target interface {
	// submit queues n no-op jobs in the benchmark queue at once.
	submit(ctx context.Context, n int) error
	setPaused(ctx context.Context, paused bool) error
	// counts returns the benchmark queue's jobs by state.
	counts(ctx context.Context) (map[gantry.State]int, error)
	// handled returns how many jobs the target's handlers have run, or
	// -1 if it cannot know (remote workers).
	handled() int
	// startWorkers starts the workers and waits until they are all
	// registered.
	startWorkers(ctx context.Context) error
	// stopWorkers stops them and waits for them to leave.
	stopWorkers() error
	// startLatencies returns the submit-to-start latencies the target
	// measured itself, by job ID; nil when it leaves them to the store's
	// timestamps.
	startLatencies() map[string]time.Duration
	// jobs calls f for each succeeded job of the benchmark queue.
	jobs(ctx context.Context, f func(id string, created, started, finished time.Time)) error
	// rss returns the server's current and peak resident memory, and the
	// sum of the worker processes' peaks.
	rss() (cur, peak, workers int64)
	dbSize(ctx context.Context) (int64, error)
	close() error
}

// Run runs the benchmark cfg describes and returns what it measured.
// Canceling ctx stops it with ctx's error.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var t target
	if cfg.Mode == ModeInProcess {
		t, err = openInProcess(ctx, cfg)
	} else {
		t, err = openRemote(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.close()) }()

	if err := t.setPaused(ctx, true); err != nil {
		return nil, err
	}
	if err := submitN(ctx, t, cfg, cfg.Preload, time.Time{}, nil); err != nil {
		return nil, fmt.Errorf("bench: preload: %w", err)
	}
	if err := t.startWorkers(ctx); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, t.stopWorkers())
		}
	}()

	start := time.Now()
	if err := t.setPaused(ctx, false); err != nil {
		return nil, err
	}
	var submitted atomic.Int64
	submitted.Store(int64(cfg.Preload))
	subDone := make(chan error, 1)
	var submitEnd time.Time
	go func() {
		var until time.Time
		if cfg.Duration > 0 {
			until = start.Add(cfg.Duration)
		}
		err := submitN(ctx, t, cfg, cfg.Jobs, until, &submitted)
		submitEnd = time.Now()
		subDone <- err
	}()

	// Wait for the end: every job finished, or the duration up.
	every := pollEvery
	if cfg.Progress == nil {
		every = pollQuiet
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	submitting := true
	var (
		last      map[gantry.State]int
		nextCount time.Time // counts are not read before
	)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-subDone:
			if err != nil {
				return nil, fmt.Errorf("bench: submit: %w", err)
			}
			submitting = false
			continue
		case <-tick.C:
		}
		sub := int(submitted.Load())
		total := cfg.Preload + cfg.Jobs
		if cfg.Duration > 0 {
			total = sub
		}
		var p Progress
		h := t.handled()
		switch {
		case h >= 0 && (cfg.Duration > 0 || submitting || h < total):
			p = Progress{Queued: max(sub-h, 0), Succeeded: h}
		case h < 0 && time.Now().Before(nextCount):
			continue // remote: spacing the counts out
		default:
			began := time.Now()
			c, err := t.counts(ctx)
			if err != nil {
				return nil, err
			}
			nextCount = time.Now().Add(countSpacing * time.Since(began))
			last = c
			p = Progress{Queued: c[gantry.StateQueued], Running: c[gantry.StateRunning],
				Succeeded: c[gantry.StateSucceeded], Failed: c[gantry.StateFailed]}
		}
		if cfg.Progress != nil {
			p.Elapsed, p.Submitted, p.Total = time.Since(start), sub, total
			cfg.Progress(p)
		}
		if cfg.Duration > 0 && time.Since(start) >= cfg.Duration && !submitting {
			break
		}
		if cfg.Duration == 0 && !submitting && last != nil &&
			last[gantry.StateSucceeded]+last[gantry.StateFailed]+last[gantry.StateCanceled] >= total {
			break
		}
	}
	end := time.Now()
	cur, peak, _ := t.rss()
	stopped = true
	if err := t.stopWorkers(); err != nil {
		return nil, err
	}
	if last == nil { // a timed run in-process: nothing counted yet
		if last, err = t.counts(ctx); err != nil {
			return nil, err
		}
	}
	_, _, wpeak := t.rss()

	res = &Result{
		Store: cfg.Store, Mode: cfg.Mode, Jobs: cfg.Jobs, Preload: cfg.Preload,
		Workers: cfg.Workers, Concurrency: cfg.Concurrency, Duration: cfg.Duration.Seconds(),
		Submitted: int(submitted.Load()) - cfg.Preload, Failed: last[gantry.StateFailed],
		ServerRSSBytes: cur, ServerPeakRSSBytes: peak, WorkersPeakRSSBytes: wpeak,
	}
	res.SubmitSeconds = submitEnd.Sub(start).Seconds()
	if res.SubmitSeconds > 0 {
		res.SubmittedPerSec = float64(res.Submitted) / res.SubmitSeconds
	}
	// Latencies and the completion rate come from the stored timestamps.
	limit := end
	if cfg.Duration > 0 {
		limit = start.Add(cfg.Duration)
	}
	var toStart, toFinish []time.Duration
	lastFinish := start
	own := t.startLatencies()
	err = t.jobs(ctx, func(id string, created, started, finished time.Time) {
		if finished.After(limit) && cfg.Duration > 0 {
			return
		}
		res.Completed++
		if finished.After(lastFinish) {
			lastFinish = finished
		}
		if created.Before(start) {
			return // preloaded
		}
		if d, ok := own[id]; ok {
			toStart = append(toStart, d)
		} else {
			toStart = append(toStart, started.Sub(created))
		}
		toFinish = append(toFinish, finished.Sub(created))
	})
	if err != nil {
		return nil, fmt.Errorf("bench: read back the jobs: %w", err)
	}
	elapsed := lastFinish.Sub(start)
	if cfg.Duration > 0 {
		elapsed = cfg.Duration
	}
	res.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		res.CompletedPerSec = float64(res.Completed) / elapsed.Seconds()
	}
	res.SubmitToStart = latency(toStart)
	res.SubmitToFinish = latency(toFinish)
	if res.DatabaseBytes, err = t.dbSize(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// submitN submits n jobs, or, when until is set, batches until then, from
// cfg.Submitters goroutines, counting them in count if set.
func submitN(ctx context.Context, t target, cfg Config, n int, until time.Time, count *atomic.Int64) error {
	if n == 0 && until.IsZero() {
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, cfg.Submitters)
	for i := range cfg.Submitters {
		wg.Go(func() {
			for ctx.Err() == nil {
				size := int64(cfg.Batch)
				if !until.IsZero() {
					if !time.Now().Before(until) {
						return
					}
				} else {
					from := next.Add(size) - size
					if from >= int64(n) {
						return
					}
					size = min(size, int64(n)-from)
				}
				if err := t.submit(ctx, int(size)); err != nil {
					errs[i] = err
					return
				}
				if count != nil {
					count.Add(size)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// latency summarizes ds; it sorts ds.
func latency(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		return float64(ds[int(p*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), N: len(ds)}
}
