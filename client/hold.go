package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// releaseTimeout bounds the release of a reservation when [Client.Hold]'s
// function returns.
const releaseTimeout = 5 * time.Second

// trustMargin is subtracted from a grant's TTL for its trust window: it
// covers the time a holder takes to notice the window passed and stop.
func trustMargin(ttl time.Duration) time.Duration { return ttl / 5 }

// Hold runs fn while holding the reservation name, under a holder name of
// its own ([NewHolder]), and releases the reservation when fn returns.
//
// It acquires name for ttl (a name held by another holder is a
// *[ReservationHeldError], at once: Hold does not wait; see [Singleton]),
// renews it every ttl/3, and cancels fn's context as soon as the trust
// window passes without a successful renewal, or a renewal finds the
// reservation lost; context.Cause of that context then matches
// [ErrReservationLost]. The trust window is ttl minus a fifth, counted on
// the monotonic clock from when the last successful acquire or renew
// request was sent, so fn's context is canceled before the server could
// grant the name to another holder, even if the server cannot be reached.
// fn should return promptly when its context is done: it has that fifth
// of ttl to stop.
//
// Hold returns fn's error; if the reservation was lost while fn ran, it
// returns an error matching [ErrReservationLost] (joined with fn's error
// unless that is nil or context.Canceled).
func (c *Client) Hold(ctx context.Context, name string, ttl time.Duration, fn func(ctx context.Context) error) error {
	_, err := c.hold(ctx, name, NewHolder(), ttl, fn)
	return err
}

// hold is [Client.Hold] for holder; it also reports whether the
// reservation was acquired (whether the error, if any, is fn's).
func (c *Client) hold(ctx context.Context, name, holder string, ttl time.Duration, fn func(ctx context.Context) error) (acquired bool, _ error) {
	sent := time.Now()
	g, err := c.AcquireReservation(ctx, name, holder, ttl)
	if err != nil {
		return false, err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h := &holding{c: c, name: name, holder: holder, token: g.Token, ttl: ttl, cancel: cancel}
	h.trust(sent, g.TTL)
	h.mu.Lock()
	h.timer = time.AfterFunc(time.Until(h.until), h.expire)
	h.mu.Unlock()

	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { h.renew(lctx) })
	ferr := fn(fctx)
	stop()
	wg.Wait()
	h.mu.Lock()
	h.timer.Stop()
	lost := h.lost
	h.done = true
	h.mu.Unlock()

	if lost {
		cause := context.Cause(fctx)
		if ferr == nil || errors.Is(ferr, context.Canceled) {
			return true, cause
		}
		return true, errors.Join(ferr, cause)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer rcancel()
	// A failed release only delays the next holder until the TTL passes.
	_ = c.ReleaseReservation(rctx, name, holder, g.Token)
	return true, ferr
}

// holding is one reservation held by [Client.hold].
type holding struct {
	c      *Client
	name   string
	holder string
	token  int64
	ttl    time.Duration
	cancel context.CancelCauseFunc

	mu    sync.Mutex
	until time.Time // the trust window ends then (monotonic)
	lost  bool
	done  bool
	timer *time.Timer // fires expire at until (re-armed when until moves)
}

// trust extends the trust window after a grant of ttl (0: the requested
// TTL) by a request sent at sent.
func (h *holding) trust(sent time.Time, ttl time.Duration) {
	if ttl <= 0 {
		ttl = h.ttl
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if u := sent.Add(ttl - trustMargin(ttl)); u.After(h.until) {
		h.until = u
	}
}

// window returns the end of the trust window and whether it is lost.
func (h *holding) window() (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.until, h.lost
}

// expire runs when the trust window may have passed: it re-arms itself if
// a renewal extended the window, else the reservation is lost.
func (h *holding) expire() {
	h.mu.Lock()
	if h.lost || h.done {
		h.mu.Unlock()
		return
	}
	if d := time.Until(h.until); d > 0 {
		h.timer.Reset(d)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	h.lose(fmt.Errorf("%w: reservation %s: no renewal succeeded within its trust window", ErrReservationLost, h.name))
}

// lose marks the reservation lost and cancels the function's context.
func (h *holding) lose(cause error) {
	h.mu.Lock()
	already := h.lost
	h.lost = true
	h.mu.Unlock()
	if !already {
		h.cancel(cause)
	}
}

// renew renews the reservation every ttl/3 until ctx is done or the
// reservation is lost; a failed renewal is retried sooner, at ttl/9.
func (h *holding) renew(ctx context.Context) {
	interval := h.ttl / 3
	wait := interval
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		until, lost := h.window()
		if lost {
			return
		}
		sent := time.Now()
		// A renewal answered after the trust window is of no use.
		rctx, cancel := context.WithDeadline(ctx, until)
		g, err := h.c.RenewReservation(rctx, h.name, h.holder, h.token, h.ttl)
		cancel()
		switch {
		case err == nil:
			h.trust(sent, g.TTL)
			wait = interval
		case errors.Is(err, ErrReservationLost):
			h.lose(err)
			return
		default:
			if ctx.Err() != nil {
				return
			}
			wait = max(interval/3, 10*time.Millisecond)
		}
		t.Reset(wait)
	}
}

// Singleton runs a continuous task on exactly one of many instances (in
// one process or many): each instance's [Singleton.Run] keeps trying to
// acquire the reservation Name, and runs Task only while it holds it,
// through [Client.Hold]'s rules. When the holder stops, its release hands
// over at the next try of another instance (within RetryInterval); when
// it crashes, another instance takes over once the TTL has passed, within
// TTL + RetryInterval (plus a request's time).
//
//	s := &client.Singleton{Client: c, Name: "billing-sync", TTL: 15 * time.Second,
//		Task: func(ctx context.Context) error { return syncForever(ctx) }}
//	err := s.Run(ctx)
type Singleton struct {
	// Client talks to the server. Required.
	Client *Client
	// Name is the reservation. Required.
	Name string
	// TTL is the reservation's TTL, renewed every TTL/3. Defaults to 15s.
	TTL time.Duration
	// Holder names this instance. Defaults to [NewHolder]'s.
	Holder string
	// RetryInterval is how often an instance that does not hold the
	// reservation tries to acquire it, and how long an instance waits
	// after Task returned before it tries again. Defaults to TTL/3.
	RetryInterval time.Duration
	// Task is the work to run while holding the reservation; its context
	// is canceled when the reservation is lost (see [Client.Hold]) or Run's
	// context is done, and it should then return promptly. If it returns
	// while the reservation is held, the reservation is released and Task
	// runs again on whichever instance acquires it next. Required.
	Task func(ctx context.Context) error
	// OnError, if set, is told of Task's errors and of failures to reach
	// the server (not of the reservation being held by another instance).
	OnError func(err error)
}

// Run runs s until ctx is done, then returns nil; it returns at once an
// error that retrying cannot cure: an incomplete Singleton, or a
// credential or request the server refuses.
func (s *Singleton) Run(ctx context.Context) error {
	if s.Client == nil || s.Name == "" || s.Task == nil {
		return errors.New("client: a Singleton needs a Client, a Name and a Task")
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	retry := s.RetryInterval
	if retry <= 0 {
		retry = ttl / 3
	}
	holder := s.Holder
	if holder == "" {
		holder = NewHolder()
	}
	for ctx.Err() == nil {
		acquired, err := s.Client.hold(ctx, s.Name, holder, ttl, s.Task)
		if ctx.Err() != nil {
			break
		}
		var held *ReservationHeldError
		switch {
		case errors.As(err, &held):
		case !acquired && (errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden)):
			return fmt.Errorf("client: singleton %s: %w", s.Name, err)
		case err != nil && s.OnError != nil:
			s.OnError(err)
		}
		sleep(ctx, retry)
	}
	return nil
}
