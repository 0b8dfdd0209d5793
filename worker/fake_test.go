package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

// fake is a small in-memory Gantry for the worker to talk to: it keeps
// jobs and their states, grants leases with fencing tokens and expiry
// (checked on its own clock, lazily), renews, records outcomes only for
// current leases and releases a leaving worker's jobs.
type fake struct {
	ttl time.Duration
	hb  time.Duration

	// hook, when set, runs before each call with its name ("register",
	// "lease", "heartbeat", "report", "leave") and its number (from 1 per
	// name); an error fails the call. It may block.
	hook func(ctx context.Context, op string, n int) error

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	tokens  int64
	nextID  int
	jobs    map[string]*fakeJob
	queue   []*fakeJob // queued jobs, in order
	workers map[string]*Registration
	regs    []Registration // every registration, in order
	drain   bool
	counts  map[string]int // calls per op
	calls   []fakeCall     // every call, in order
	beats   []fakeBeat     // every heartbeat call's renewals
}

type fakeJob struct {
	job             gantry.Job
	state           gantry.State
	token           int64
	worker          string
	expires         time.Time
	cancelRequested bool
	progress        []Progress
	outcomes        []Outcome // accepted outcomes
	stale           int       // rejected outcomes
}

type fakeCall struct {
	op string
	n  int // leases asked, renewals or outcomes sent
}

type fakeBeat struct {
	at       time.Time
	renewals []Renewal
}

var _ Transport = (*fake)(nil)

func newFake(ttl time.Duration) *fake {
	return &fake{
		ttl:     ttl,
		hb:      ttl / 3,
		changed: make(chan struct{}),
		jobs:    make(map[string]*fakeJob),
		workers: make(map[string]*Registration),
		counts:  make(map[string]int),
	}
}

// changedLocked wakes everyone waiting for a change.
func (f *fake) changedLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fake) before(ctx context.Context, op string, n int) error {
	f.mu.Lock()
	f.counts[op]++
	k := f.counts[op]
	f.calls = append(f.calls, fakeCall{op: op, n: n})
	hook := f.hook
	f.changedLocked()
	f.mu.Unlock()
	if hook != nil {
		return hook(ctx, op, k)
	}
	return nil
}

// submit queues a job and returns its ID.
func (f *fake) submit(typ string, params any, timeout time.Duration) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := fmt.Sprintf("job-%d", f.nextID)
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params)
	}
	j := &fakeJob{
		job:   gantry.Job{ID: id, Type: typ, Queue: "default", Params: raw, MaxAttempts: 5, Timeout: timeout},
		state: gantry.StateQueued,
	}
	f.jobs[id] = j
	f.queue = append(f.queue, j)
	f.changedLocked()
	return id
}

// currentLocked reports whether (id, token) is the job's live lease; an
// expired lease is lost (and the job queued again) here. As in the store,
// a lease is its token: the worker's identity is not checked.
func (f *fake) currentLocked(id string, token int64) (*fakeJob, bool) {
	j := f.jobs[id]
	if j == nil || j.state != gantry.StateRunning || j.token != token {
		return j, false
	}
	if !time.Now().Before(j.expires) {
		f.requeueLocked(j)
		return j, false
	}
	return j, true
}

func (f *fake) requeueLocked(j *fakeJob) {
	j.state = gantry.StateQueued
	j.worker = ""
	f.queue = append(f.queue, j)
	f.changedLocked()
}

func (f *fake) Register(ctx context.Context, r Registration) (Registered, error) {
	if err := f.before(ctx, "register", 0); err != nil {
		return Registered{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("w%d", len(f.regs)+1)
	f.workers[id] = &r
	f.regs = append(f.regs, r)
	ttl := f.ttl
	if r.LeaseTTL > 0 {
		ttl = r.LeaseTTL
	}
	return Registered{ID: id, LeaseTTL: ttl, Heartbeat: f.hb}, nil
}

func (f *fake) Lease(ctx context.Context, workerID string, max int, wait time.Duration) (LeaseResult, error) {
	if err := f.before(ctx, "lease", max); err != nil {
		return LeaseResult{}, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		reg := f.workers[workerID]
		if reg == nil {
			f.mu.Unlock()
			return LeaseResult{}, fmt.Errorf("fake: lease: %w", ErrUnknownWorker)
		}
		if f.drain {
			f.mu.Unlock()
			return LeaseResult{Drain: true}, nil
		}
		var res LeaseResult
		kept := f.queue[:0]
		for _, j := range f.queue {
			if len(res.Leases) == max || j.state != gantry.StateQueued ||
				(len(reg.Types) > 0 && !slices.Contains(reg.Types, j.job.Type)) {
				kept = append(kept, j)
				continue
			}
			f.tokens++
			j.token = f.tokens
			j.state = gantry.StateRunning
			j.worker = workerID
			j.expires = time.Now().Add(f.ttl)
			j.job.Attempt++
			res.Leases = append(res.Leases, Lease{Job: j.job, Token: j.token, TTL: f.ttl})
		}
		clear(f.queue[len(kept):])
		f.queue = kept
		if len(res.Leases) > 0 {
			f.changedLocked()
			f.mu.Unlock()
			return res, nil
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return LeaseResult{}, nil
		case <-ctx.Done():
			return LeaseResult{}, ctx.Err()
		}
	}
}

func (f *fake) Heartbeat(ctx context.Context, workerID string, renewals []Renewal) (HeartbeatResult, error) {
	if err := f.before(ctx, "heartbeat", len(renewals)); err != nil {
		return HeartbeatResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.workers[workerID] == nil {
		return HeartbeatResult{}, fmt.Errorf("fake: heartbeat: %w", ErrUnknownWorker)
	}
	beat := fakeBeat{at: time.Now()}
	res := HeartbeatResult{Drain: f.drain}
	for _, rn := range renewals {
		if rn.Progress != nil {
			p := *rn.Progress
			rn.Progress = &p
		}
		beat.renewals = append(beat.renewals, rn)
		j, ok := f.currentLocked(rn.JobID, rn.Token)
		rr := RenewalResult{JobID: rn.JobID, OK: ok}
		if ok {
			j.expires = time.Now().Add(f.ttl)
			if rn.Progress != nil {
				j.progress = append(j.progress, *rn.Progress)
			}
			rr.CancelRequested = j.cancelRequested
		}
		res.Leases = append(res.Leases, rr)
	}
	f.beats = append(f.beats, beat)
	f.changedLocked()
	return res, nil
}

func (f *fake) Report(ctx context.Context, workerID string, outcomes []Outcome) ([]bool, error) {
	if err := f.before(ctx, "report", len(outcomes)); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	oks := make([]bool, len(outcomes))
	for i, o := range outcomes {
		j, ok := f.currentLocked(o.JobID, o.Token)
		oks[i] = ok
		if !ok {
			if j != nil {
				j.stale++
			}
			continue
		}
		j.outcomes = append(j.outcomes, o)
		j.worker = ""
		switch {
		case o.Outcome == Succeeded:
			j.state = gantry.StateSucceeded
		case o.Outcome == Canceled:
			j.state = gantry.StateCanceled
		case o.Retryable:
			j.state = gantry.StateRetrying
		default:
			j.state = gantry.StateFailed
		}
	}
	f.changedLocked()
	return oks, nil
}

func (f *fake) Leave(ctx context.Context, workerID string) error {
	if err := f.before(ctx, "leave", 0); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.workers[workerID] == nil {
		return fmt.Errorf("fake: leave: %w", ErrUnknownWorker)
	}
	delete(f.workers, workerID)
	for _, j := range f.jobs {
		if j.state == gantry.StateRunning && j.worker == workerID {
			f.requeueLocked(j)
		}
	}
	f.changedLocked()
	return nil
}

// requestCancel asks for a job's cancellation, as a user would.
func (f *fake) requestCancel(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].cancelRequested = true
	f.changedLocked()
}

// revoke takes a running job's lease away, as if it had expired and been
// leased to another worker.
func (f *fake) revoke(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	f.tokens++
	j.token = f.tokens
	j.worker = "someone-else"
	f.changedLocked()
}

// forget drops a worker, as a server does with one it declared lost; its
// leases stay valid.
func (f *fake) forget(workerID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.workers, workerID)
	f.changedLocked()
}

func (f *fake) setDrain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drain = true
	f.changedLocked()
}

// await waits until cond, called with f.mu held, is true; it fails the
// test after an hour (of the bubble's fake time in synctest tests).
func (f *fake) await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		ok := cond()
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// awaitState waits until the job is in state s.
func (f *fake) awaitState(t testing.TB, id string, s gantry.State) {
	t.Helper()
	f.await(t, id+" "+string(s), func() bool { return f.jobs[id].state == s })
}

// job returns a copy of a job's record.
func (f *fake) job(id string) fakeJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := *f.jobs[id]
	j.outcomes = slices.Clone(j.outcomes)
	j.progress = slices.Clone(j.progress)
	return j
}

// ops returns the names of the calls made so far, in order.
func (f *fake) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ops []string
	for _, c := range f.calls {
		ops = append(ops, c.op)
	}
	return ops
}

// sizes returns the sizes of the calls of one kind, in order.
func (f *fake) sizes(op string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n []int
	for _, c := range f.calls {
		if c.op == op {
			n = append(n, c.n)
		}
	}
	return n
}
