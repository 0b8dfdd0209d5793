package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// The demo's job types.
const (
	demoFlaky = "demo.flaky"
	demoSlow  = "demo.slow"
	demoNoop  = "demo.noop"
)

// Tuning of the demo's handlers.
const (
	// flakyRetryable and flakyPermanent are the chances that an attempt of
	// demo.flaky fails with a retryable or a permanent error.
	flakyRetryable = 0.15
	flakyPermanent = 0.03
	// slowMin and slowMax bound how long demo.slow takes.
	slowMin, slowMax = time.Second, 3 * time.Second
	// slowSteps is the number of progress reports of demo.slow.
	slowSteps = 10
	// demoShutdownGrace is how long running jobs may finish after Ctrl-C.
	demoShutdownGrace = 5 * time.Second
)

// errInterrupted ends a demo stopped by a signal; it exits with code 130.
var errInterrupted = errors.New("interrupted")

// demoConfig is what the demo command's flags set.
type demoConfig struct {
	DataDir     string
	Jobs        int
	Concurrency int
}

func newDemoCommand() *cobra.Command {
	var cfg demoConfig
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a batch of demo jobs on an embedded Gantry and watch them",
		Long: "Demo opens Gantry in this process on a SQLite file, submits one batch of\n" +
			"demo jobs, runs them with in-process workers and shows their progress:\n\n" +
			"  demo.flaky  quick; an attempt fails 15% of the time (retried) and 3% of\n" +
			"              the time for good (the job goes to the dead letter)\n" +
			"  demo.slow   takes 1 to 3 seconds, reporting its progress\n" +
			"  demo.noop   does nothing\n\n" +
			"It ends with a summary. Ctrl-C stops it gracefully.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Jobs < 1 || cfg.Jobs > 10000 {
				return &usageError{fmt.Errorf("--jobs must be between 1 and 10000, not %d", cfg.Jobs)}
			}
			if cfg.Concurrency < 1 || cfg.Concurrency > 1000 {
				return &usageError{fmt.Errorf("--concurrency must be between 1 and 1000, not %d", cfg.Concurrency)}
			}
			return runDemo(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "gantry-data", "directory of the demo's database, demo.db")
	f.IntVar(&cfg.Jobs, "jobs", 300, "number of jobs to submit (1 to 10000)")
	f.IntVar(&cfg.Concurrency, "concurrency", 32, "number of jobs run at once (1 to 1000)")
	return cmd
}

// terminal reports whether w is a terminal, and its width in columns
// (from $COLUMNS, else 80).
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return false, 0
	}
	width := 80
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 40 {
		width = n
	}
	return true, width
}

// demoSpecs returns n demo jobs: a tenth slow (first in the queue, with a
// higher priority, since they take longest), half flaky, the rest no-ops.
func demoSpecs(n int) []embedded.JobSpec {
	specs := make([]embedded.JobSpec, n)
	for i := range specs {
		s := embedded.JobSpec{Type: demoNoop, Params: map[string]int{"n": i + 1}}
		switch {
		case i%10 == 9:
			s.Type, s.Priority = demoSlow, 10
		case i%2 == 1:
			s.Type = demoFlaky
		}
		s.Name = fmt.Sprintf("%s-%d", s.Type[len("demo."):], i+1)
		specs[i] = s
	}
	return specs
}

// sleep waits d or until ctx is done, then returns ctx's cause.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// flakyHandler succeeds quickly, except for the attempts that fail.
func flakyHandler(ctx context.Context, _ *gantry.Job) (any, error) {
	if err := sleep(ctx, time.Duration(2+rand.IntN(18))*time.Millisecond); err != nil {
		return nil, err
	}
	switch r := rand.Float64(); {
	case r < flakyPermanent:
		return nil, gantry.Permanent(errors.New("demo: simulated permanent failure"))
	case r < flakyPermanent+flakyRetryable:
		delay := time.Duration(200+rand.IntN(600)) * time.Millisecond
		return nil, gantry.RetryAfter(errors.New("demo: simulated transient failure"), delay)
	}
	return map[string]bool{"ok": true}, nil
}

// slowHandler takes a while and reports its progress in steps.
func slowHandler(ctx context.Context, job *gantry.Job) (any, error) {
	d := slowMin + rand.N(slowMax-slowMin)
	for step := 1; step <= slowSteps; step++ {
		if err := sleep(ctx, d/slowSteps); err != nil {
			return nil, err
		}
		if err := job.Progress(ctx, step*100/slowSteps, fmt.Sprintf("step %d/%d", step, slowSteps)); err != nil {
			return nil, err
		}
	}
	return map[string]any{"steps": slowSteps, "seconds": d.Seconds()}, nil
}

func noopHandler(context.Context, *gantry.Job) (any, error) { return nil, nil }

// slowTracker follows the running slow jobs of a batch from its events.
type slowTracker struct {
	batchID string
	done    chan struct{} // closed on batch.done
	once    sync.Once

	mu    sync.Mutex
	order []string // job IDs, in the order they started
	jobs  map[string]*slowJob
	names map[string]string // job ID to name
}

func newSlowTracker(batchID string, names map[string]string) *slowTracker {
	return &slowTracker{batchID: batchID, done: make(chan struct{}), jobs: make(map[string]*slowJob), names: names}
}

// follow applies the events of sub until it ends.
func (t *slowTracker) follow(sub *embedded.Subscription) {
	for ev := range sub.Events() {
		t.apply(&ev)
	}
}

func (t *slowTracker) apply(ev *embedded.Event) {
	if ev.BatchID != t.batchID {
		return
	}
	if ev.Kind == embedded.EventBatchDone {
		t.once.Do(func() { close(t.done) })
		return
	}
	if ev.Type != demoSlow {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Kind {
	case embedded.EventStarted:
		if _, ok := t.jobs[ev.JobID]; !ok {
			t.order = append(t.order, ev.JobID)
		}
		t.jobs[ev.JobID] = &slowJob{Name: t.names[ev.JobID]}
	case embedded.EventProgress:
		if j, ok := t.jobs[ev.JobID]; ok && ev.Progress != nil {
			j.Percent, j.Message = ev.Progress.Percent, ev.Progress.Message
		}
	default: // any other transition ends the attempt
		if _, ok := t.jobs[ev.JobID]; ok {
			delete(t.jobs, ev.JobID)
			for i, id := range t.order {
				if id == ev.JobID {
					t.order = append(t.order[:i], t.order[i+1:]...)
					break
				}
			}
		}
	}
}

// running returns the running slow jobs, in the order they started.
func (t *slowTracker) running() []slowJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]slowJob, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, *t.jobs[id])
	}
	return out
}

// fill sets s's counts from b.
func fill(s *snapshot, b *embedded.BatchInfo) {
	c := b.Counts
	s.Total = b.Total
	s.Queued = c[gantry.StateQueued] + c[gantry.StateScheduled]
	s.Running = c[gantry.StateRunning]
	s.Retrying = c[gantry.StateRetrying]
	s.Succeeded = c[gantry.StateSucceeded]
	s.Failed = c[gantry.StateFailed]
	s.Canceled = c[gantry.StateCanceled]
}

// runDemo runs the demo: see newDemoCommand.
func runDemo(ctx context.Context, cfg demoConfig, stdout, stderr io.Writer) (err error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	path := filepath.Join(cfg.DataDir, "demo.db")
	g, err := embedded.Open(ctx, embedded.Config{Path: path, Logger: logger})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := g.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("demo: %w", cerr)
		}
	}()

	// Follow every event from now on; those of the batch are picked out
	// once it exists. The subscription buffers what comes before.
	sub, err := g.Subscribe(ctx, embedded.EventFilter{}, -1)
	if err != nil {
		return fmt.Errorf("demo: subscribe: %w", err)
	}
	defer sub.Close()

	live, width := terminal(stdout)
	fmt.Fprintf(stdout, "Gantry demo: %d jobs, %d at a time, database %s\n", cfg.Jobs, cfg.Concurrency, path)

	start := time.Now()
	specs := demoSpecs(cfg.Jobs)
	batch, ids, err := g.SubmitBatch(ctx, embedded.BatchSpec{Name: "demo", Jobs: specs})
	if err != nil {
		return fmt.Errorf("demo: submit: %w", err)
	}
	names := make(map[string]string, len(ids))
	for i, id := range ids {
		names[id] = specs[i].Name
	}
	tracker := newSlowTracker(batch.ID, names)
	var following sync.WaitGroup
	following.Go(func() { tracker.follow(sub) })
	defer func() {
		sub.Close()
		following.Wait()
	}()

	w := worker.New(g.Transport(), worker.Options{
		Name: "demo", Concurrency: cfg.Concurrency, ShutdownGrace: demoShutdownGrace, Logger: logger,
	})
	w.RegisterFunc(demoFlaky, flakyHandler)
	w.RegisterFunc(demoSlow, slowHandler)
	w.RegisterFunc(demoNoop, noopHandler)
	// The worker stops when the demo says so, not at once on Ctrl-C.
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerErr := make(chan error, 1)
	go func() { workerErr <- w.Run(workerCtx) }()
	workerDone := false
	var workerRunErr error
	// waitWorker stops the worker and waits for it to leave; it runs before
	// the subscription and the database close, whatever ends the demo.
	waitWorker := func() error {
		if !workerDone {
			stopWorker()
			workerDone, workerRunErr = true, <-workerErr
		}
		return workerRunErr
	}
	defer waitWorker()

	interval := time.Second
	var view *liveView
	if live {
		interval = 100 * time.Millisecond
		view = &liveView{w: stdout, width: width}
		defer view.Close() // shows the cursor again, also after an error
	}
	draw := func(s *snapshot) error {
		if view != nil {
			return view.Draw(s)
		}
		_, err := fmt.Fprintln(stdout, renderLine(s))
		return err
	}
	// bg outlives a canceled ctx, for the reads that end the demo.
	bg := context.WithoutCancel(ctx)
	snap := func() (*snapshot, *embedded.BatchInfo, error) {
		b, err := g.GetBatch(bg, batch.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("demo: %w", err)
		}
		s := &snapshot{Elapsed: time.Since(start), Slow: tracker.running()}
		fill(s, b)
		return s, b, nil
	}

	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	interrupted := false
	var elapsed time.Duration
loop:
	for {
		s, b, err := snap()
		if err != nil {
			return err
		}
		if b.Done {
			elapsed = s.Elapsed
		}
		if err := draw(s); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if b.Done {
			break
		}
		select {
		case <-ticker.C:
		case <-tracker.done:
		case <-ctx.Done():
			interrupted = true
			break loop
		case err := <-workerErr:
			workerDone, workerRunErr = true, err
			if err == nil {
				err = errors.New("the worker stopped")
			}
			return fmt.Errorf("demo: %w", err)
		}
	}
	if view != nil {
		if err := view.Close(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}

	if interrupted {
		fmt.Fprintf(stdout, "Stopping: letting running jobs finish (up to %s)...\n", demoShutdownGrace)
	}
	// A worker stopped while it was still registering ends with
	// context.Canceled: it ran nothing, and there is nothing to report.
	if err := waitWorker(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("demo: %w", err)
	}
	if interrupted {
		// The jobs that finished while the worker stopped count too.
		elapsed = time.Since(start)
	}

	s, _, err := snap()
	if err != nil {
		return err
	}
	sum := summary{
		Elapsed: elapsed, Total: s.Total, Succeeded: s.Succeeded, Failed: s.Failed,
		Canceled: s.Canceled, Interrupted: interrupted,
	}
	for j, err := range g.ListJobs(bg, embedded.JobFilter{BatchID: batch.ID, PageSize: 1000}) {
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if j.Attempt > 1 {
			sum.Retried++
		}
	}
	if err := writeSummary(stdout, sum); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if interrupted {
		return errInterrupted
	}
	return nil
}
