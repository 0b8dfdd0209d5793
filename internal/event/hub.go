package event

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// ErrClosed means the hub or the subscription was closed.
var ErrClosed = errors.New("event: closed")

// Options configure a [Hub]. Zero fields take their defaults.
type Options struct {
	// PollInterval is how often the hub reads the store for new events when
	// no change hint arrives, and how long a subscription waits before it
	// retries a failed store read. Defaults to 1s.
	PollInterval time.Duration
	// Buffer is the number of events a subscription holds for a slow
	// reader; when it is full the subscription stops receiving live events
	// and reads the store instead until it has caught up. Defaults to 256.
	Buffer int
	// PageSize is the number of events read from the store at a time.
	// Defaults to 500.
	PageSize int
	// Logger receives store errors. Defaults to slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Hub tails the store's event log and fans it out to subscriptions. One
// goroutine ([Hub.Run]) reads the log from its newest event on, woken by the
// store's change hints and by a poll timer; each [Subscription] replays what
// it missed from the store and then receives live events from the hub. A
// slow subscriber never blocks the hub: its buffer overflows and it goes
// back to reading the store until it has caught up.
//
// Lock order: Hub.mu, then Subscription.mu.
type Hub struct {
	st    store.Store
	opts  Options
	wake  chan struct{} // a change hint arrived; capacity 1
	stop  chan struct{} // closed when the hub shuts down
	ready chan struct{} // closed once last is known
	wg    sync.WaitGroup

	// known is the newest seq a change hint announced.
	known atomic.Int64

	mu      sync.Mutex
	closed  bool
	running bool
	last    int64 // newest seq fanned out
	subs    map[*Subscription]struct{}
	// pending holds ephemeral events published before the stored events
	// committed ahead of them were fanned out, oldest first.
	pending []pendingEvent

	// recent holds events this process's commits appended (see
	// store.Change.Events), by seq, for tail to take instead of reading
	// the store when they follow its cursor.
	rmu       sync.Mutex
	recent    []job.Event
	recentSig chan struct{} // capacity 1: events were added to recent
	// following is set while the hub has live subscriptions: only then
	// are local commits' events kept in recent.
	following atomic.Bool
}

// maxRecent bounds the events held in Hub.recent; beyond it the oldest go
// (tail then reads them from the store).
const maxRecent = 32768

// gapWait is how long tail waits for the events of a local commit that
// precede kept ones before it reads them from the store.
const gapWait = 2 * time.Millisecond

// pendingEvent is an ephemeral event waiting for the stored events before it.
type pendingEvent struct {
	ev    job.Event
	after int64 // deliver once last >= after
}

// maxPending bounds the ephemeral events held back; beyond it the oldest
// are dropped, as ephemeral events may be.
const maxPending = 4096

// NewHub returns a hub over st. It registers a change callback on st; call
// [Hub.Run] to start tailing and [Hub.Close] to stop.
func NewHub(st store.Store, opts Options) *Hub {
	h := &Hub{
		st:    st,
		opts:  opts.withDefaults(),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		ready: make(chan struct{}),
		subs:  make(map[*Subscription]struct{}),

		recentSig: make(chan struct{}, 1),
	}
	st.OnChange(func(c store.Change) {
		if c.LastSeq == 0 {
			return
		}
		if len(c.Events) > 0 && h.following.Load() {
			h.addRecent(c.Events)
		}
		for {
			k := h.known.Load()
			if c.LastSeq <= k || h.known.CompareAndSwap(k, c.LastSeq) {
				break
			}
		}
		select {
		case h.wake <- struct{}{}:
		default:
		}
	})
	return h
}

// Run tails the store until ctx is done or the hub is closed, then ends
// every subscription. It returns nil after [Hub.Close], ctx's error when ctx
// ended it, and ErrClosed if the hub was already closed or running.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.closed || h.running {
		h.mu.Unlock()
		return fmt.Errorf("event: run: %w", ErrClosed)
	}
	h.running = true
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	defer h.shut()

	for {
		_, newest, err := h.st.EventBounds(ctx)
		if err == nil {
			h.mu.Lock()
			h.last = newest
			h.mu.Unlock()
			close(h.ready)
			break
		}
		h.opts.Logger.Error("event: read event bounds", "err", err)
		if err := h.sleep(ctx, h.opts.PollInterval); err != nil {
			if errors.Is(err, errStopped) {
				return nil
			}
			return err
		}
	}

	t := time.NewTicker(h.opts.PollInterval)
	defer t.Stop()
	for {
		h.tail(ctx)
		select {
		case <-h.wake:
		case <-t.C:
		case <-h.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sleep waits d, or until the hub stops (nil error: a clean stop is no
// failure of Run) or ctx ends.
func (h *Hub) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-h.stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errStopped ends Run quietly when the hub is closed during a retry wait.
var errStopped = errors.New("event: stopped")

// tail reads every event after h.last and fans it out.
func (h *Hub) tail(ctx context.Context) {
	for {
		h.mu.Lock()
		after := h.last
		idle := len(h.subs) == 0
		h.following.Store(!idle)
		h.mu.Unlock()
		if idle {
			// Nobody follows live: move past the new events without
			// reading them. A subscription that joins later catches up
			// from the store up to h.last first.
			newest := h.known.Load()
			if newest <= after {
				_, n, err := h.st.EventBounds(ctx)
				if err != nil {
					return
				}
				newest = n
			}
			h.mu.Lock()
			if len(h.subs) == 0 {
				h.last = max(h.last, newest)
				h.takeRecent(h.last, 0) // drops what is kept
				h.flushPending()
				h.mu.Unlock()
				return
			}
			h.mu.Unlock()
		}
		evs, local := h.takeRecent(after, h.opts.PageSize), true
		if len(evs) == 0 && h.gapAfter(after) {
			// Events after a gap are kept: the commit before them is most
			// likely still on its way to its callback. Wait a moment for
			// it rather than read the store.
			evs = h.awaitRecent(ctx, after, h.opts.PageSize)
		}
		if len(evs) == 0 {
			local = false
			var err error
			evs, err = h.st.ReadEvents(ctx, after, h.opts.PageSize)
			if err != nil {
				if ctx.Err() == nil {
					h.opts.Logger.Error("event: read events", "after", after, "err", err)
				}
				return
			}
		}
		if len(evs) == 0 {
			return
		}
		h.mu.Lock()
		for i := range evs {
			h.fanout(&evs[i])
		}
		h.last = evs[len(evs)-1].Seq
		h.flushPending()
		h.mu.Unlock()
		if local {
			if h.known.Load() <= evs[len(evs)-1].Seq {
				return // nothing announced beyond what was given
			}
			continue
		}
		if len(evs) < h.opts.PageSize {
			return
		}
	}
}

// addRecent keeps evs, events of a local commit numbered consecutively,
// for tail.
func (h *Hub) addRecent(evs []job.Event) {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	// Commits report in about seq order; insert where evs belongs.
	i := len(h.recent)
	for i > 0 && h.recent[i-1].Seq > evs[0].Seq {
		i--
	}
	h.recent = slices.Insert(h.recent, i, evs...)
	if len(h.recent) > maxRecent {
		// Drop the older half at once; tail reads them from the store.
		h.recent = slices.Delete(h.recent, 0, len(h.recent)-maxRecent/2)
	}
	select {
	case h.recentSig <- struct{}{}:
	default:
	}
}

// gapAfter reports whether events are kept beyond seq after+1 while that
// one is not.
func (h *Hub) gapAfter(after int64) bool {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	return len(h.recent) > 0 && h.recent[len(h.recent)-1].Seq > after+1
}

// awaitRecent waits up to gapWait for kept events to follow seq after, and
// takes them (see takeRecent); nil if none came.
func (h *Hub) awaitRecent(ctx context.Context, after int64, limit int) []job.Event {
	t := time.NewTimer(gapWait)
	defer t.Stop()
	for {
		select {
		case <-h.recentSig:
			if evs := h.takeRecent(after, limit); len(evs) > 0 {
				return evs
			}
		case <-t.C:
			return h.takeRecent(after, limit)
		case <-h.stop:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// takeRecent returns up to limit kept events that follow seq after
// without a gap, dropping them and every older one; nil when the event
// after after is not kept.
func (h *Hub) takeRecent(after int64, limit int) []job.Event {
	h.rmu.Lock()
	defer h.rmu.Unlock()
	i := 0
	for i < len(h.recent) && h.recent[i].Seq <= after {
		i++
	}
	h.recent = slices.Delete(h.recent, 0, i)
	n := 0
	for n < len(h.recent) && n < limit && h.recent[n].Seq == after+1+int64(n) {
		n++
	}
	if n == 0 {
		return nil
	}
	out := slices.Clone(h.recent[:n])
	h.recent = slices.Delete(h.recent, 0, n)
	return out
}

// fanout hands a stored event to every live subscription. A subscription
// whose buffer is full leaves the live set and catches up from the store.
// h.mu must be held.
func (h *Hub) fanout(ev *job.Event) {
	for s := range h.subs {
		if ev.Seq <= s.cursor {
			continue // the subscription read it from the store already
		}
		if !s.f.Match(ev) {
			s.cursor = ev.Seq
			continue
		}
		select {
		case s.out <- *ev:
			s.cursor = ev.Seq
		default:
			delete(h.subs, s)
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// Publish hands an ephemeral event (job.progress) to the live subscriptions
// it matches, after the stored events that change hints announced before
// it (so a job's progress never overtakes its job.started). It is not
// stored: a subscription that is catching up from the store, or whose
// buffer is full, does not get it. Each copy carries the Seq of the last
// stored event its subscription received, so resuming from it loses
// nothing.
func (h *Hub) Publish(ev job.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if after := h.known.Load(); after > h.last {
		if len(h.pending) == maxPending {
			h.pending = slices.Delete(h.pending, 0, 1)
		}
		h.pending = append(h.pending, pendingEvent{ev: ev, after: after})
		return
	}
	h.deliver(&ev)
}

// flushPending delivers the held-back ephemeral events that are due.
// h.mu must be held.
func (h *Hub) flushPending() {
	n := 0
	for n < len(h.pending) && h.pending[n].after <= h.last {
		h.deliver(&h.pending[n].ev)
		n++
	}
	h.pending = slices.Delete(h.pending, 0, n)
}

// deliver hands an ephemeral event to the live subscriptions it matches.
// h.mu must be held.
func (h *Hub) deliver(ev *job.Event) {
	for s := range h.subs {
		if !s.f.Match(ev) {
			continue
		}
		e := *ev
		e.Seq = s.cursor
		select {
		case s.out <- e:
		default:
		}
	}
}

// Close ends every subscription (their Err is [ErrClosed]), stops
// [Hub.Run] and waits for the hub's goroutines to return.
func (h *Hub) Close() {
	h.shut()
	h.wg.Wait()
}

// shut marks the hub closed and signals its goroutines, once.
func (h *Hub) shut() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
}

// Subscribe follows the events that match f. With after >= 0 it first
// replays the stored events with Seq > after, then continues with live
// events, without gap or duplicate; if events after it were already removed
// by retention it returns [ErrTooOld]. With after < 0 it delivers only
// events stored from now on. The subscription ends when ctx is done, when
// it or the hub is closed, or when it fell behind the retention window.
func (h *Hub) Subscribe(ctx context.Context, f Filter, after int64) (*Subscription, error) {
	oldest, newest, err := h.st.EventBounds(ctx)
	if err != nil {
		return nil, fmt.Errorf("event: subscribe: %w", err)
	}
	if after < 0 {
		after = newest
	} else if after < oldest-1 {
		return nil, fmt.Errorf("event: subscribe after %d (oldest retained is %d): %w", after, oldest, ErrTooOld)
	}
	f.Kinds = slices.Clone(f.Kinds)
	s := &Subscription{
		h:        h,
		f:        f,
		cursor:   after,
		out:      make(chan job.Event, h.opts.Buffer),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("event: subscribe: %w", ErrClosed)
	}
	h.wg.Add(1)
	h.mu.Unlock()
	go s.run(ctx)
	return s, nil
}

// Subscription is a stream of events from a [Hub]. Read them from
// [Subscription.C]; when it is closed, [Subscription.Err] says why.
//
// A subscription is either live (in the hub's set, fed by the hub under
// Hub.mu) or catching up (fed by its own goroutine from the store); never
// both, so its channel has one writer at a time.
type Subscription struct {
	h        *Hub
	f        Filter
	cursor   int64 // seq of the last stored event delivered or skipped
	out      chan job.Event
	kick     chan struct{} // the buffer overflowed: catch up
	done     chan struct{} // closed by Close
	closeOne sync.Once
	finished chan struct{} // closed when run returned

	mu  sync.Mutex
	err error
}

// C returns the channel of events, in Seq order. It is closed when the
// subscription ends.
func (s *Subscription) C() <-chan job.Event { return s.out }

// Err returns why the subscription ended: [ErrTooOld] when it fell behind
// the retention window, [ErrClosed] when it or its hub was closed, the
// context's error, or a store error. It is nil while the subscription runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription and waits until its channel is closed.
func (s *Subscription) Close() {
	s.closeOne.Do(func() { close(s.done) })
	<-s.finished
}

func (s *Subscription) run(ctx context.Context) {
	defer s.h.wg.Done()
	defer close(s.finished)
	err := s.loop(ctx)
	s.h.mu.Lock()
	delete(s.h.subs, s)
	s.h.mu.Unlock()
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.out)
}

func (s *Subscription) loop(ctx context.Context) error {
	for {
		if err := s.catchUp(ctx); err != nil {
			return err
		}
		select {
		case <-s.kick:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.h.stop:
			return ErrClosed
		case <-s.done:
			return ErrClosed
		}
	}
}

// wait blocks until c is ready or the subscription must end.
func (s *Subscription) wait(ctx context.Context, c <-chan struct{}) error {
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.h.stop:
		return ErrClosed
	case <-s.done:
		return ErrClosed
	}
}

// pause waits d unless the subscription must end.
func (s *Subscription) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.h.stop:
		return ErrClosed
	case <-s.done:
		return ErrClosed
	}
}

// catchUp reads the store from s.cursor until it reaches what the hub has
// fanned out, then joins the hub's live set.
func (s *Subscription) catchUp(ctx context.Context) error {
	h := s.h
	if err := s.wait(ctx, h.ready); err != nil {
		return err
	}
	for {
		h.mu.Lock()
		if h.last <= s.cursor {
			h.subs[s] = struct{}{}
			h.following.Store(true)
			h.mu.Unlock()
			return nil
		}
		h.mu.Unlock()

		evs, err := h.st.ReadEvents(ctx, s.cursor, h.opts.PageSize)
		var oldest int64
		if err == nil {
			// Bounds are read after the events: oldest only grows, so if
			// nothing after the cursor is missing now, nothing was missing
			// when the events were read.
			oldest, _, err = h.st.EventBounds(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("event: read events: %w", err)
			}
			h.opts.Logger.Error("event: catch up", "after", s.cursor, "err", err)
			if err := s.pause(ctx, h.opts.PollInterval); err != nil {
				return err
			}
			continue
		}
		if s.cursor < oldest-1 {
			return fmt.Errorf("event: resume after %d (oldest retained is %d): %w", s.cursor, oldest, ErrTooOld)
		}
		for i := range evs {
			ev := &evs[i]
			if s.f.Match(ev) {
				select {
				case s.out <- *ev:
				case <-ctx.Done():
					return ctx.Err()
				case <-h.stop:
					return ErrClosed
				case <-s.done:
					return ErrClosed
				}
			}
			s.cursor = ev.Seq
		}
		if len(evs) == 0 {
			// The hub has seen events the store no longer returns: only
			// a store inconsistency does that. Do not spin.
			if err := s.pause(ctx, h.opts.PollInterval); err != nil {
				return err
			}
		}
	}
}
