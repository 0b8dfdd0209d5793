package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry"
)

// Causes of a job context's cancellation, as returned by [context.Cause]
// inside a handler.
var (
	// ErrCancelRequested: a user asked to cancel the job.
	ErrCancelRequested = errors.New("worker: cancellation requested")
	// ErrLeaseLost: the server said the lease is no longer this worker's.
	ErrLeaseLost = errors.New("worker: lease lost")
	// ErrLeaseExpired: the lease was not renewed within its trust window.
	ErrLeaseExpired = errors.New("worker: lease not renewed in time")
	// ErrTimeout: the job's per-attempt timeout passed.
	ErrTimeout = errors.New("worker: job timeout")
	// ErrShutdown: the worker shut down and the grace period passed.
	ErrShutdown = errors.New("worker: shut down")
)

// ErrUnknownWorker is the error a [Transport] wraps when the server does
// not know the worker: it never registered, was removed, or went unseen for
// so long that the server declared it lost. The worker then registers
// again, and leaving counts as done.
var ErrUnknownWorker = errors.New("worker: unknown to the server")

// errFinished releases a job context's resources once its handler returned.
var errFinished = errors.New("worker: job finished")

// Defaults of [Options].
const (
	DefaultConcurrency    = 10
	DefaultShutdownGrace  = 30 * time.Second
	DefaultReportInterval = 5 * time.Millisecond
	DefaultReportBatch    = 500
)

const (
	// leaseWait is how long a lease request waits for jobs (long poll).
	leaseWait = 30 * time.Second
	// fetchGather is how long a busy worker waits for more free slots
	// before leasing, so that leases and reports come in batches.
	fetchGather = 3 * time.Millisecond
	// minLeasePeriod spaces out lease requests that return nothing early.
	minLeasePeriod = 100 * time.Millisecond
	// defaultLeaseTTL is used when the transport announces no TTL.
	defaultLeaseTTL = 30 * time.Second
	// leaveTimeout bounds the final Leave call.
	leaveTimeout = 10 * time.Second
	// reportSenders is the number of concurrent report calls.
	reportSenders = 4
)

// Options configure a [Worker]. The zero value is usable.
type Options struct {
	// Name is the worker's display name. Defaults to the host name.
	Name string
	// Host is the machine the worker runs on. Defaults to os.Hostname.
	Host string
	// Labels are free-form key/values shown with the worker.
	Labels map[string]string
	// Concurrency is the most jobs run at once. Defaults to 10.
	Concurrency int
	// Queues are the queues to lease from. Defaults to all.
	Queues []string
	// Types are the job types to lease. Defaults to the registered types.
	Types []string
	// LeaseTTL asks the server for this lease TTL. Defaults to the server's.
	LeaseTTL time.Duration
	// ShutdownGrace is how long running jobs may take to finish after a
	// shutdown begins before their contexts are canceled. Defaults to 30
	// seconds.
	ShutdownGrace time.Duration
	// Logger receives the worker's logs. Defaults to slog.Default().
	Logger *slog.Logger
	// ReportInterval is the longest an outcome waits to be sent with
	// others; an outcome of a worker that sent nothing within the last
	// interval goes at once. Defaults to 5 milliseconds.
	ReportInterval time.Duration
	// ReportBatch is the number of outcomes that are sent at once without
	// waiting for ReportInterval. Defaults to 500.
	ReportBatch int
}

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.Name == "" {
		o.Name = o.Host
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReportInterval <= 0 {
		o.ReportInterval = DefaultReportInterval
	}
	if o.ReportBatch <= 0 {
		o.ReportBatch = DefaultReportBatch
	}
	return o
}

// Worker runs jobs leased through a [Transport] with registered handlers.
// Register handlers, then call [Worker.Run] once.
type Worker struct {
	t    Transport
	opts Options
	log  *slog.Logger

	handlers map[string]gantry.Handler
	started  atomic.Bool

	// Set by Run before any goroutine starts.
	reg     Registration
	ttl     time.Duration
	hbEvery time.Duration

	regMu sync.Mutex // serializes registering again

	sem  chan struct{} // one token per running job
	jobs chan *run     // leased jobs for the runner goroutines
	// backlog is signaled when a lease filled every slot it asked for:
	// more jobs are likely waiting (see burstLoop).
	backlog chan struct{}

	mu      sync.Mutex
	id      string            // the worker's identity, from the last Register
	running map[*run]struct{} // leased and not yet finished
	hbKick  chan struct{}     // asks for an early heartbeat (progress)

	rep reporter

	stopOnce, drainOnce, hardOnce sync.Once
	stopCh, drainCh, hardCh       chan struct{}
	done                          chan struct{}
}

// New returns a worker that talks to Gantry through t.
func New(t Transport, o Options) *Worker {
	o = o.withDefaults()
	return &Worker{
		t:        t,
		opts:     o,
		log:      o.Logger,
		handlers: make(map[string]gantry.Handler),
		running:  make(map[*run]struct{}),
		hbKick:   make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		drainCh:  make(chan struct{}),
		backlog:  make(chan struct{}, 1),
		hardCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Register makes h run the jobs of type typ. It panics if typ is empty or
// already registered, if h is nil, or if [Worker.Run] was called.
func (w *Worker) Register(typ string, h gantry.Handler) {
	switch {
	case w.started.Load():
		panic("worker: Register called after Run")
	case typ == "":
		panic("worker: Register with an empty type")
	case h == nil:
		panic("worker: Register with a nil handler for " + typ)
	case w.handlers[typ] != nil:
		panic("worker: type registered twice: " + typ)
	}
	w.handlers[typ] = h
}

// RegisterFunc makes f run the jobs of type typ, as [Worker.Register].
func (w *Worker) RegisterFunc(typ string, f func(ctx context.Context, job *gantry.Job) (any, error)) {
	if f == nil {
		panic("worker: RegisterFunc with a nil function for " + typ)
	}
	w.Register(typ, gantry.HandlerFunc(f))
}

// ID returns the identity the server gave the worker, or "" before
// [Worker.Run] registered it.
func (w *Worker) ID() string { return w.workerID() }

func (w *Worker) workerID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id
}

// registerAgain registers the worker anew after the server forgot the
// identity stale, unless another goroutine already did. The jobs it runs
// keep their leases: those are tied to their tokens, not to the identity.
func (w *Worker) registerAgain(ctx context.Context, stale string) error {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	if w.workerID() != stale {
		return nil
	}
	reg, err := w.t.Register(ctx, w.reg)
	if err != nil {
		return fmt.Errorf("worker: register again: %w", err)
	}
	w.mu.Lock()
	w.id = reg.ID
	w.mu.Unlock()
	w.log.Warn("worker: the server did not know this worker any more; registered again", "new_id", reg.ID)
	return nil
}

// Run registers the worker and runs jobs until ctx is done, [Worker.Shutdown]
// is called or the server asks the worker to drain. Then it shuts down
// gracefully: it stops leasing, lets running jobs finish (within
// ShutdownGrace, unless draining), cancels the rest, sends the outcomes it
// holds and leaves, which releases unfinished jobs to other workers at once.
// Run returns once all of its goroutines have ended: nil after a clean
// shutdown, or the error that prevented registering or leaving. Run may be
// called once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called more than once")
	}
	defer close(w.done)
	if len(w.handlers) == 0 {
		return errors.New("worker: no handlers registered")
	}
	types := w.opts.Types
	if len(types) == 0 {
		types = slices.Sorted(maps.Keys(w.handlers))
	}
	w.reg = Registration{
		Name: w.opts.Name, Host: w.opts.Host, Types: types, Queues: w.opts.Queues,
		Capacity: w.opts.Concurrency, Labels: w.opts.Labels, LeaseTTL: w.opts.LeaseTTL,
	}
	reg, err := w.t.Register(ctx, w.reg)
	if err != nil {
		return fmt.Errorf("worker: register: %w", err)
	}
	w.mu.Lock()
	w.id = reg.ID
	w.mu.Unlock()
	w.ttl = reg.LeaseTTL
	if w.ttl <= 0 {
		w.ttl = defaultLeaseTTL
	}
	w.hbEvery = reg.Heartbeat
	if w.hbEvery <= 0 || w.hbEvery > w.ttl/2 {
		w.hbEvery = w.ttl / 3
	}
	w.log = w.log.With("worker_id", reg.ID)
	w.log.Info("worker: registered", "name", w.opts.Name, "types", types,
		"concurrency", w.opts.Concurrency, "lease_ttl", w.ttl)

	w.sem = make(chan struct{}, w.opts.Concurrency)
	w.jobs = make(chan *run, w.opts.Concurrency)
	w.rep.init(w.opts.ReportBatch, w.opts.ReportInterval, backlogLimit(w.opts.ReportBatch, w.opts.Concurrency))

	bg := context.WithoutCancel(ctx)
	leaseCtx, stopLeasing := context.WithCancel(bg)
	defer stopLeasing()
	jobsCtx, cancelJobs := context.WithCancelCause(bg)
	defer cancelJobs(ErrShutdown)
	loopsCtx, stopLoops := context.WithCancel(bg)
	defer stopLoops()

	var runners sync.WaitGroup
	for range w.opts.Concurrency {
		runners.Go(func() {
			for r := range w.jobs {
				w.execute(r)
			}
		})
	}
	var loops sync.WaitGroup
	loops.Go(func() { w.heartbeatLoop(loopsCtx) })
	loops.Go(func() { w.watchdog(loopsCtx) })
	var reporters sync.WaitGroup
	chunks := make(chan chunk)
	reporters.Go(func() { w.rep.collect(chunks) })
	for range reportSenders {
		reporters.Go(func() {
			for c := range chunks {
				w.send(bg, c)
				w.rep.sent(len(c.outs))
			}
		})
	}
	fetchDone := make(chan struct{})
	go func() {
		defer close(fetchDone)
		defer close(w.jobs)
		var fetchers sync.WaitGroup
		fetchers.Go(func() { w.fetchLoop(leaseCtx, jobsCtx) })
		if w.opts.Concurrency >= minBurstConcurrency {
			fetchers.Go(func() { w.burstLoop(leaseCtx, jobsCtx) })
		}
		fetchers.Wait()
	}()

	// Run until asked to stop, then stop leasing.
	draining := false
	select {
	case <-ctx.Done():
	case <-w.stopCh:
	case <-w.drainCh:
		draining = true
	}
	stopLeasing()
	<-fetchDone
	runnersDone := make(chan struct{})
	go func() {
		runners.Wait()
		close(runnersDone)
	}()
	if draining {
		w.log.Info("worker: draining")
		select {
		case <-runnersDone:
		case <-ctx.Done():
		case <-w.stopCh:
		}
	}
	// Let running jobs finish within the grace period, then cancel them.
	grace := time.NewTimer(w.opts.ShutdownGrace)
	select {
	case <-runnersDone:
	case <-grace.C:
		w.log.Warn("worker: shutdown grace passed, canceling running jobs", "running", w.runningCount())
		cancelJobs(ErrShutdown)
	case <-w.hardCh:
		cancelJobs(ErrShutdown)
	}
	grace.Stop()
	<-runnersDone
	stopLoops()
	loops.Wait()
	w.rep.close()
	reporters.Wait()

	lctx, cancel := context.WithTimeout(bg, leaveTimeout)
	defer cancel()
	if err := w.t.Leave(lctx, w.workerID()); err != nil && !errors.Is(err, ErrUnknownWorker) {
		return fmt.Errorf("worker: leave: %w", err)
	}
	w.log.Info("worker: left")
	return nil
}

// Shutdown stops the worker as if Run's context were done, and waits for
// Run to return. If ctx ends first, running jobs are canceled at once
// instead of after the grace period, and Shutdown returns ctx's error
// while Run finishes.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stopCh) })
	if !w.started.Load() {
		return nil
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.hardOnce.Do(func() { close(w.hardCh) })
		return ctx.Err()
	}
}

// drain stops leasing for good: running jobs finish, then the worker leaves.
func (w *Worker) drain() {
	w.drainOnce.Do(func() { close(w.drainCh) })
}

func (w *Worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// fetchLoop leases jobs while slots are free, until ctx is done or the
// server asks the worker to drain.
func (w *Worker) fetchLoop(ctx, jobsCtx context.Context) {
	bo := backoff{min: 100 * time.Millisecond, max: 10 * time.Second}
	for {
		n := w.takeSlots(ctx)
		if n == 0 {
			return
		}
		id := w.workerID()
		sent := time.Now()
		res, err := w.t.Lease(ctx, id, n, leaseWait)
		if err != nil {
			w.release(n)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrUnknownWorker) {
				if err = w.registerAgain(ctx, id); err == nil {
					continue
				}
			}
			d := bo.next()
			w.log.Warn("worker: lease failed", "err", err, "retry_in", d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		bo.reset()
		leases := res.Leases
		if len(leases) > n {
			w.log.Error("worker: transport leased more jobs than asked; ignoring the extra ones",
				"asked", n, "got", len(leases))
			leases = leases[:n]
		}
		w.start(jobsCtx, leases, sent)
		w.release(n - len(leases))
		if res.Drain {
			w.drain()
			return
		}
		if len(leases) == n {
			select {
			case w.backlog <- struct{}{}:
			default:
			}
		}
		if len(leases) == 0 && time.Since(sent) < minLeasePeriod {
			if !sleep(ctx, minLeasePeriod-time.Since(sent)) {
				return
			}
		}
	}
}

// minBurstConcurrency is the concurrency from which a worker runs
// burstLoop: below it, one lease call in flight keeps its slots busy.
const minBurstConcurrency = 16

// burstLoop leases next to fetchLoop while jobs are waiting: once a lease
// of fetchLoop fills every slot it asked for, burstLoop leases too, without
// a long poll, until one of its leases comes back short. Two lease calls
// are then in flight, so that slots freed while one is under way are
// filled by the other instead of waiting for it; an idle worker still
// holds a single long poll.
func (w *Worker) burstLoop(ctx, jobsCtx context.Context) {
	for {
		select {
		case <-w.backlog:
		case <-ctx.Done():
			return
		}
		for {
			n := w.takeSlots(ctx)
			if n == 0 {
				return
			}
			sent := time.Now()
			res, err := w.t.Lease(ctx, w.workerID(), n, 0)
			if err != nil {
				// fetchLoop reports and handles failures; wait for it to
				// find a backlog again.
				w.release(n)
				break
			}
			leases := res.Leases
			if len(leases) > n {
				leases = leases[:n]
			}
			w.start(jobsCtx, leases, sent)
			w.release(n - len(leases))
			if res.Drain {
				w.drain()
				return
			}
			if len(leases) < n {
				break
			}
		}
	}
}

// takeSlots waits for a free slot and takes it with those free now; when
// other jobs hold half the slots or more, it waits a moment (fetchGather)
// for up to half of them to free up, so that one lease (and later one
// report) serves many jobs; an idle worker leases at once. It returns 0
// once ctx is done.
func (w *Worker) takeSlots(ctx context.Context) int {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1 + w.grabSlots(cap(w.sem)-1)
	if n < cap(w.sem)/2 {
		n += w.awaitSlots(ctx, cap(w.sem)/2-n, fetchGather)
	}
	return n
}

// grabSlots takes up to max free slots without waiting.
func (w *Worker) grabSlots(max int) int {
	n := 0
	for n < max {
		select {
		case w.sem <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// awaitSlots takes up to want slots, waiting at most d for them.
func (w *Worker) awaitSlots(ctx context.Context, want int, d time.Duration) int {
	t := time.NewTimer(d)
	defer t.Stop()
	n := 0
	for n < want {
		select {
		case w.sem <- struct{}{}:
			n++
		case <-t.C:
			return n
		case <-ctx.Done():
			return n
		}
	}
	return n
}

func (w *Worker) release(n int) {
	for range n {
		<-w.sem
	}
}

// start hands leased jobs to the runners; their slots are already taken.
func (w *Worker) start(jobsCtx context.Context, leases []Lease, sent time.Time) {
	if len(leases) == 0 {
		return
	}
	runs := make([]run, len(leases))
	w.mu.Lock()
	for i := range leases {
		l := &leases[i]
		r := &runs[i]
		r.w = w
		r.token = l.Token
		r.ttl = l.TTL
		if r.ttl <= 0 {
			r.ttl = w.ttl
		}
		r.until = sent.Add(l.Waited + trustWindow(r.ttl))
		r.job = l.Job.WithProgress(r.progress)
		r.ctx, r.cancel = context.WithCancelCause(jobsCtx)
		w.running[r] = struct{}{}
	}
	w.mu.Unlock()
	for i := range runs {
		w.jobs <- &runs[i]
	}
}

// trustWindow is how long a lease of the given TTL is trusted after the
// request that granted or renewed it was sent.
func trustWindow(ttl time.Duration) time.Duration {
	return ttl - trustMargin(ttl)
}

func trustMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/10, time.Second), ttl/4)
}
