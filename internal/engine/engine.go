// Package engine runs Gantry's job lifecycle on a [store.Store]: it
// validates and submits jobs and batches, leases them to workers with long
// polling, renews and finishes leases with the backoff policy, follows jobs
// through the event [event.Hub], and runs the maintenance loops that promote
// due jobs, fire cron schedules, rescue expired leases, apply retention and
// prune lost workers.
//
// The engine knows nothing of HTTP or SQL; the server, the embedded package
// and tests call it through [API].
//
// Lock order: Engine.mu, Engine.wmu, Engine.hintMu, Engine.promoteMu and
// elector.mu are leaves: none is held while taking another, or while
// calling the store or the hub.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// ErrClosed is returned by calls that wait (Lease, Wait) when the engine
// is closed while they wait.
var ErrClosed = errors.New("engine: closed")

// ErrTooLarge is wrapped, together with a *job.FieldError naming the field,
// when a request holds more items than the configured limits allow.
var ErrTooLarge = errors.New("engine: too large")

var _ API = (*Engine)(nil)

// Engine is Gantry's job lifecycle over a store. Create it with [New],
// start its maintenance loops with [Engine.Start] and stop them with
// [Engine.Close]. Its methods are safe for concurrent use.
type Engine struct {
	st  store.Store
	cfg Config
	log *slog.Logger
	hub *event.Hub

	hintMu  sync.Mutex
	hint    chan struct{} // closed and replaced when jobs may be leasable
	hintGen uint64        // how many times hint was closed
	// empty records, per worker filter (tenant, queues, types), the latest
	// lease query that found nothing: woken lease calls of the same filter
	// that nothing newer concerns skip theirs (see Lease).
	empty map[string]emptyMark
	// wokenSem bounds the woken lease calls querying the store at once, so
	// that a hint waking a thousand waiters makes a few queries, not a
	// thousand.
	wokenSem chan struct{}

	promoteMu   sync.Mutex
	promoteAt   time.Time     // earliest pending RunAt known; zero if none
	promoteWake chan struct{} // capacity 1: promoteAt moved earlier
	cronWake    chan struct{} // capacity 1: a schedule was put or resumed

	wmu     sync.Mutex
	workers map[string]*workerEntry

	elector *elector // nil unless Config.Elect

	mu      sync.Mutex
	started bool
	closed  bool
	upSince time.Time
	cancel  context.CancelFunc
	stop    chan struct{} // closed by Close
	wg      sync.WaitGroup
}

// workerEntry caches a worker: it is read on every lease and heartbeat.
type workerEntry struct {
	w       *job.Worker
	fetched time.Time // when w was read from the store
	seen    time.Time // the worker's last call through this engine
}

// New returns an engine over st. It registers change callbacks on st, so
// make one engine per store.
func New(st store.Store, cfg Config) *Engine {
	cfg = cfg.withDefaults()
	e := &Engine{
		st:          st,
		cfg:         cfg,
		log:         cfg.Logger,
		hint:        make(chan struct{}),
		empty:       make(map[string]emptyMark),
		wokenSem:    make(chan struct{}, wokenQueries),
		promoteWake: make(chan struct{}, 1),
		cronWake:    make(chan struct{}, 1),
		workers:     make(map[string]*workerEntry),
		stop:        make(chan struct{}),
	}
	if e.cfg.Leader == nil {
		e.elector = newElector(st, e.cfg)
		e.cfg.Leader = e.elector.IsLeader
	}
	e.hub = event.NewHub(st, event.Options{
		PollInterval: cfg.EventPollInterval,
		Buffer:       cfg.EventBuffer,
		Logger:       cfg.Logger,
	})
	st.OnChange(func(c store.Change) {
		if c.JobsAvailable {
			e.wakeLessees()
		}
	})
	return e
}

// Config returns the engine's configuration with defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Hub returns the engine's event hub.
func (e *Engine) Hub() *event.Hub { return e.hub }

// Start records the start time (the rescuer grants leases a grace of their
// own TTL from it) and starts the event hub and the maintenance loops. They
// run until [Engine.Close] or until ctx is done. Start is a no-op after the
// first call or after Close.
func (e *Engine) Start(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return
	}
	e.started = true
	e.upSince = e.now()
	ctx, e.cancel = context.WithCancel(ctx)
	e.wg.Go(func() {
		if err := e.hub.Run(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("engine: event hub stopped", "err", err)
		}
	})
	if e.elector != nil {
		e.wg.Go(func() { e.elector.run(ctx) })
	}
	e.wg.Go(func() { e.promoteLoop(ctx) })
	e.wg.Go(func() { e.cronLoop(ctx) })
	e.wg.Go(func() { e.every(ctx, e.cfg.RescueInterval, e.rescue) })
	e.wg.Go(func() { e.every(ctx, e.cfg.RescueInterval, e.settleBatches) })
	e.wg.Go(func() { e.every(ctx, e.cfg.RetentionInterval, e.retain) })
	e.wg.Go(func() { e.every(ctx, e.cfg.RetentionInterval, e.pruneWorkers) })
}

// Close stops the maintenance loops and the event hub, ends every
// subscription and waiting call, and waits for the loops to return; an
// elected leader then releases its reservation, so that another engine
// takes over at once. It does not close the store.
func (e *Engine) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.stop)
		if e.cancel != nil {
			e.cancel()
		}
	}
	e.mu.Unlock()
	e.hub.Close()
	e.wg.Wait()
	if e.elector != nil {
		e.elector.release()
	}
}

// IsLeader reports whether this engine runs the maintenance loops at the
// moment (see [Config.Leader] and [Config.Elect]).
func (e *Engine) IsLeader() bool { return e.cfg.Leader() }

// UpSince returns when [Engine.Start] was called (zero before).
func (e *Engine) UpSince() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.upSince
}

func (e *Engine) now() time.Time { return e.cfg.Clock() }

// hintChan returns the channel closed at the next hint that jobs may be
// leasable, and the number of hints so far. Take it before trying to
// lease, so no hint is missed.
func (e *Engine) hintChan() (<-chan struct{}, uint64) {
	e.hintMu.Lock()
	defer e.hintMu.Unlock()
	return e.hint, e.hintGen
}

// wakeLessees wakes every waiting Lease call.
func (e *Engine) wakeLessees() {
	e.hintMu.Lock()
	close(e.hint)
	e.hint = make(chan struct{})
	e.hintGen++
	e.hintMu.Unlock()
}

// wokenQueries is how many woken lease calls query the store at once.
const wokenQueries = 4

// emptyMark is a lease query that found nothing: it began after gen hints,
// at the engine's monotonic time at.
type emptyMark struct {
	gen uint64
	at  time.Time
}

// markEmpty records that a lease query for filter, begun after gen hints,
// found nothing.
func (e *Engine) markEmpty(filter string, gen uint64) {
	now := time.Now()
	e.hintMu.Lock()
	defer e.hintMu.Unlock()
	if m, ok := e.empty[filter]; !ok || gen >= m.gen {
		e.empty[filter] = emptyMark{gen: gen, at: now}
	}
	if len(e.empty) > 4096 {
		for k, m := range e.empty {
			if now.Sub(m.at) > time.Minute {
				delete(e.empty, k)
			}
		}
	}
}

// knownEmpty reports whether a lease query for filter need not run: one
// that began after every hint so far (gen) found nothing, and, for a call
// woken by its poll timer rather than a hint, did so less than half a poll
// interval ago (a change hint may have been lost).
func (e *Engine) knownEmpty(filter string, gen uint64, polled bool) bool {
	e.hintMu.Lock()
	m, ok := e.empty[filter]
	e.hintMu.Unlock()
	if !ok || m.gen < gen {
		return false
	}
	return !polled || time.Since(m.at) < e.cfg.LeasePollInterval/2
}

// leaseFilter is the key of the jobs a worker may lease.
func leaseFilter(w *job.Worker) string {
	return w.Tenant + "\x00" + strings.Join(w.Queues, "\x01") + "\x00" + strings.Join(w.Types, "\x01")
}

// schedulePromote tells the promote loop that a job becomes due at t.
func (e *Engine) schedulePromote(t time.Time) {
	if t.IsZero() {
		return
	}
	e.promoteMu.Lock()
	earlier := e.promoteAt.IsZero() || t.Before(e.promoteAt)
	if earlier {
		e.promoteAt = t
	}
	e.promoteMu.Unlock()
	if earlier {
		select {
		case e.promoteWake <- struct{}{}:
		default:
		}
	}
}

// lostAfter returns how long w may go unseen before it counts as lost.
func (e *Engine) lostAfter(w *job.Worker) time.Duration {
	return max(e.cfg.WorkerLostAfter, w.LeaseTTL)
}

// lastSeen returns when w was last seen, by the store or this engine.
func (e *Engine) lastSeen(w *job.Worker) time.Time {
	seen := w.LastSeen
	e.wmu.Lock()
	if ent := e.workers[w.ID]; ent != nil && ent.seen.After(seen) {
		seen = ent.seen
	}
	e.wmu.Unlock()
	return seen
}

// worker returns worker id, from the cache while it is fresh. It returns
// store.ErrNotFound (wrapped) for an unknown worker.
func (e *Engine) worker(ctx context.Context, id string) (*job.Worker, error) {
	now := e.now()
	e.wmu.Lock()
	if ent := e.workers[id]; ent != nil && ent.w != nil && now.Sub(ent.fetched) < workerCacheTTL && !now.Before(ent.fetched) {
		w := ent.w
		e.wmu.Unlock()
		return w, nil
	}
	e.wmu.Unlock()
	w, err := e.st.LookupWorker(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			e.forgetWorker(id)
		}
		return nil, fmt.Errorf("engine: worker %s: %w", id, err)
	}
	e.cacheWorker(w, now)
	return w, nil
}

// cacheWorker stores w in the cache as read at now.
func (e *Engine) cacheWorker(w *job.Worker, now time.Time) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	ent := e.workers[w.ID]
	if ent == nil {
		ent = &workerEntry{}
		e.workers[w.ID] = ent
	}
	ent.w = w
	ent.fetched = now
}

// sawWorker records that worker id called the engine at now.
func (e *Engine) sawWorker(id string, now time.Time) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if ent := e.workers[id]; ent != nil && now.After(ent.seen) {
		ent.seen = now
	}
}

func (e *Engine) forgetWorker(id string) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	delete(e.workers, id)
}

// every calls f at once and then every d while this server is the leader,
// until ctx is done.
func (e *Engine) every(ctx context.Context, d time.Duration, f func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if e.cfg.Leader() {
			f(ctx)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
