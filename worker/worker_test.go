package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs a worker over a fake in the background.
type harness struct {
	f      *fake
	w      *Worker
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startWorker(t *testing.T, f *fake, o Options, handlers map[string]gantry.HandlerFunc) *harness {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	w := New(f, o)
	for typ, h := range handlers {
		w.Register(typ, h)
	}
	ctx, cancel := context.WithCancel(t.Context())
	h := &harness{f: f, w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- w.Run(ctx) }()
	return h
}

// stop cancels the worker's context and returns what Run returned.
func (h *harness) stop() error {
	h.cancel()
	return <-h.done
}

func noop(context.Context, *gantry.Job) (any, error) { return nil, nil }

func TestDispatchByType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		echo := func(ctx context.Context, j *gantry.Job) (any, error) {
			var p struct{ N int }
			if err := j.Decode(&p); err != nil {
				return nil, err
			}
			return map[string]any{"type": j.Type, "n": p.N, "attempt": j.Attempt}, nil
		}
		h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"a": echo, "b": echo})
		want := map[string]string{}
		for i := range 3 {
			for _, typ := range []string{"a", "b"} {
				id := f.submit(typ, map[string]int{"N": i}, 0)
				b, _ := json.Marshal(map[string]any{"type": typ, "n": i, "attempt": 1})
				want[id] = string(b)
			}
		}
		for id := range want {
			f.awaitState(t, id, gantry.StateSucceeded)
		}
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		got := map[string]string{}
		for id := range want {
			j := f.job(id)
			got[id] = string(j.outcomes[0].Result)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("results (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"a", "b"}, f.regs[0].Types); diff != "" {
			t.Errorf("registered types (-want +got):\n%s", diff)
		}
		if got, want := f.regs[0].Capacity, DefaultConcurrency; got != want {
			t.Errorf("registered capacity = %d, want %d", got, want)
		}
	})
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		work    gantry.HandlerFunc
		want    Outcome // JobID and Token are not compared
		// wantErr is a prefix of want's Error, which is compared by prefix.
		wantErr string
	}{
		{
			name: "result",
			work: func(context.Context, *gantry.Job) (any, error) { return map[string]int{"n": 1}, nil },
			want: Outcome{Outcome: Succeeded, Result: json.RawMessage(`{"n":1}`)},
		},
		{
			name: "nil result",
			work: noop,
			want: Outcome{Outcome: Succeeded},
		},
		{
			name:    "error",
			work:    func(context.Context, *gantry.Job) (any, error) { return nil, errors.New("boom") },
			want:    Outcome{Outcome: Failed, Retryable: true},
			wantErr: "boom",
		},
		{
			name: "permanent",
			work: func(context.Context, *gantry.Job) (any, error) {
				return nil, gantry.Permanent(errors.New("bad input"))
			},
			want:    Outcome{Outcome: Failed, Retryable: false},
			wantErr: "bad input",
		},
		{
			name: "retry after",
			work: func(context.Context, *gantry.Job) (any, error) {
				return nil, gantry.RetryAfter(errors.New("rate limited"), 5*time.Second)
			},
			want:    Outcome{Outcome: Failed, Retryable: true, RetryAfter: 5 * time.Second},
			wantErr: "rate limited",
		},
		{
			name: "retry after zero",
			work: func(context.Context, *gantry.Job) (any, error) {
				return nil, gantry.RetryAfter(errors.New("again"), 0)
			},
			want:    Outcome{Outcome: Failed, Retryable: true, RetryAfter: time.Millisecond},
			wantErr: "again",
		},
		{
			name:    "unmarshalable result",
			work:    func(context.Context, *gantry.Job) (any, error) { return func() {}, nil },
			want:    Outcome{Outcome: Failed, Retryable: false},
			wantErr: "worker: marshal result: json: unsupported type",
		},
		{
			name:    "panic",
			work:    func(context.Context, *gantry.Job) (any, error) { panic("kaboom") },
			want:    Outcome{Outcome: Failed, Retryable: true},
			wantErr: "panic: kaboom\n\ngoroutine ",
		},
		{
			name:    "timeout",
			timeout: 2 * time.Second,
			work: func(ctx context.Context, _ *gantry.Job) (any, error) {
				<-ctx.Done()
				if c := context.Cause(ctx); c != ErrTimeout {
					return nil, gantry.Permanent(errors.New("wrong cause"))
				}
				return nil, ctx.Err()
			},
			want:    Outcome{Outcome: Failed, Retryable: true},
			wantErr: "timeout after 2s",
		},
		{
			name:    "within timeout",
			timeout: 2 * time.Second,
			work: func(ctx context.Context, _ *gantry.Job) (any, error) {
				time.Sleep(time.Second)
				return "done", ctx.Err()
			},
			want: Outcome{Outcome: Succeeded, Result: json.RawMessage(`"done"`)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(30 * time.Second)
				h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": tc.work, "ok": noop})
				id := f.submit("t", nil, tc.timeout)
				f.await(t, "an outcome", func() bool { return len(f.jobs[id].outcomes) > 0 })
				// The worker keeps running whatever the job did.
				next := f.submit("ok", nil, 0)
				f.awaitState(t, next, gantry.StateSucceeded)
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				j := f.job(id)
				if len(j.outcomes) != 1 {
					t.Fatalf("outcomes = %+v, want one", j.outcomes)
				}
				got := j.outcomes[0]
				if !strings.HasPrefix(got.Error, tc.wantErr) || (tc.wantErr == "") != (got.Error == "") {
					t.Errorf("Error = %q, want prefix %q", got.Error, tc.wantErr)
				}
				got.Error = ""
				if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(Outcome{}, "JobID", "Token")); diff != "" {
					t.Errorf("outcome (-want +got):\n%s", diff)
				}
				if got.Token != j.token {
					t.Errorf("Token = %d, want the lease's %d", got.Token, j.token)
				}
			})
		})
	}
}

func TestNoHandlerForLeasedType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		h := startWorker(t, f, Options{Types: []string{"x", "y"}}, map[string]gantry.HandlerFunc{"x": noop})
		id := f.submit("y", nil, 0)
		f.awaitState(t, id, gantry.StateRetrying)
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		o := f.job(id).outcomes[0]
		if o.Outcome != Failed || !o.Retryable || o.Error != `worker: no handler for job type "y"` {
			t.Errorf("outcome = %+v, want a retryable failure naming the type", o)
		}
	})
}

func TestConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		var cur, peak atomic.Int32
		work := func(context.Context, *gantry.Job) (any, error) {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Second)
			cur.Add(-1)
			return nil, nil
		}
		h := startWorker(t, f, Options{Concurrency: 3}, map[string]gantry.HandlerFunc{"t": work})
		var ids []string
		for range 10 {
			ids = append(ids, f.submit("t", nil, 0))
		}
		for _, id := range ids {
			f.awaitState(t, id, gantry.StateSucceeded)
		}
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if got := peak.Load(); got != 3 {
			t.Errorf("peak concurrency = %d, want 3", got)
		}
		for _, n := range f.sizes("lease") {
			if n < 1 || n > 3 {
				t.Errorf("lease asked for %d jobs, want 1..3", n)
			}
		}
	})
}

func TestCancelRequest(t *testing.T) {
	tests := []struct {
		name string
		// finish is what the handler returns once its context is canceled.
		finish  func(ctx context.Context) (any, error)
		want    string
		wantErr string
	}{
		{
			name:    "handler stops",
			finish:  func(ctx context.Context) (any, error) { return nil, ctx.Err() },
			want:    Canceled,
			wantErr: "context canceled",
		},
		{
			name:    "handler fails permanently",
			finish:  func(ctx context.Context) (any, error) { return nil, gantry.Permanent(ctx.Err()) },
			want:    Canceled,
			wantErr: "context canceled",
		},
		{
			name:   "handler completes anyway",
			finish: func(ctx context.Context) (any, error) { return "finished", nil },
			want:   Succeeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(30 * time.Second)
				var cause error
				work := func(ctx context.Context, _ *gantry.Job) (any, error) {
					<-ctx.Done()
					cause = context.Cause(ctx)
					return tc.finish(ctx)
				}
				h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": work})
				id := f.submit("t", nil, 0)
				f.awaitState(t, id, gantry.StateRunning)
				f.requestCancel(id)
				f.await(t, "an outcome", func() bool { return len(f.jobs[id].outcomes) > 0 })
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				if cause != ErrCancelRequested {
					t.Errorf("context.Cause = %v, want %v", cause, ErrCancelRequested)
				}
				o := f.job(id).outcomes[0]
				if o.Outcome != tc.want || o.Error != tc.wantErr {
					t.Errorf("outcome = %q %q, want %q %q", o.Outcome, o.Error, tc.want, tc.wantErr)
				}
			})
		})
	}
}

func TestLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		var cause error
		returned := make(chan struct{})
		work := func(ctx context.Context, _ *gantry.Job) (any, error) {
			defer close(returned)
			<-ctx.Done()
			cause = context.Cause(ctx)
			return "too late", nil
		}
		h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": work})
		id := f.submit("t", nil, 0)
		f.awaitState(t, id, gantry.StateRunning)
		f.revoke(id)
		<-returned
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if cause != ErrLeaseLost {
			t.Errorf("context.Cause = %v, want %v", cause, ErrLeaseLost)
		}
		if got := f.sizes("report"); len(got) != 0 {
			t.Errorf("report calls = %v, want none", got)
		}
		if j := f.job(id); len(j.outcomes) != 0 || j.stale != 0 {
			t.Errorf("job got outcomes %+v and %d stale ones, want none", j.outcomes, j.stale)
		}
	})
}

func TestTrustWindow(t *testing.T) {
	const ttl = 10 * time.Second
	interval := ttl / 3
	window := trustWindow(ttl) // 9s
	tick := trustMargin(ttl) / 4
	tests := []struct {
		name string
		hook func(ctx context.Context, n int) error
		// from is when the last successful renewal (or the lease) was sent.
		from time.Duration
	}{
		{
			name: "heartbeats fail",
			hook: func(context.Context, int) error { return errors.New("connection refused") },
		},
		{
			name: "heartbeats hang",
			hook: func(ctx context.Context, _ int) error {
				<-ctx.Done()
				return ctx.Err()
			},
		},
		{
			name: "window counts from when the renewal was sent",
			hook: func(_ context.Context, n int) error {
				if n == 1 {
					time.Sleep(3 * time.Second) // a slow but successful renewal
					return nil
				}
				return errors.New("connection refused")
			},
			from: interval,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				begin := time.Now()
				f := newFake(ttl)
				f.hook = func(ctx context.Context, op string, n int) error {
					if op == "heartbeat" {
						return tc.hook(ctx, n)
					}
					return nil
				}
				var cause error
				var stopped time.Duration
				returned := make(chan struct{})
				work := func(ctx context.Context, _ *gantry.Job) (any, error) {
					defer close(returned)
					<-ctx.Done()
					stopped = time.Since(begin)
					cause = context.Cause(ctx)
					return nil, ctx.Err()
				}
				h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": work})
				id := f.submit("t", nil, 0)
				<-returned
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				if cause != ErrLeaseExpired {
					t.Errorf("context.Cause = %v, want %v", cause, ErrLeaseExpired)
				}
				lo := tc.from + window
				if stopped < lo || stopped > lo+tick {
					t.Errorf("job canceled after %v, want within %v..%v (lease TTL %v)", stopped, lo, lo+tick, ttl)
				}
				if got := f.sizes("report"); len(got) != 0 {
					t.Errorf("report calls = %v, want none", got)
				}
				if j := f.job(id); len(j.outcomes) != 0 {
					t.Errorf("outcomes = %+v, want none", j.outcomes)
				}
			})
		})
	}
}

func TestProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		f := newFake(30 * time.Second) // heartbeat every 10s
		release := make(chan struct{})
		work := func(ctx context.Context, j *gantry.Job) (any, error) {
			time.Sleep(500 * time.Millisecond)
			for i := range 100 {
				if err := j.Progress(ctx, i, "step"); err != nil {
					return nil, err
				}
			}
			if err := j.Progress(ctx, 142, "rendered"); err != nil {
				return nil, err
			}
			<-release
			return nil, nil
		}
		h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": work})
		id := f.submit("t", nil, 0)
		f.await(t, "a progress report", func() bool { return len(f.jobs[id].progress) > 0 })
		f.await(t, "a second heartbeat", func() bool { return len(f.beats) >= 2 })
		close(release)
		f.awaitState(t, id, gantry.StateSucceeded)
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}

		if diff := cmp.Diff([]Progress{{Percent: 100, Message: "rendered"}}, f.job(id).progress); diff != "" {
			t.Errorf("progress (-want +got):\n%s", diff)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		first, second := f.beats[0], f.beats[1]
		if at := first.at.Sub(begin); at > time.Second {
			t.Errorf("progress sent %v after the start, want within 1s", at)
		}
		if len(first.renewals) != 1 || first.renewals[0].Progress == nil {
			t.Errorf("first heartbeat = %+v, want the job's progress", first.renewals)
		}
		if len(second.renewals) != 1 || second.renewals[0].Progress != nil {
			t.Errorf("second heartbeat = %+v, want the job without progress (unchanged)", second.renewals)
		}
		if gap := second.at.Sub(first.at); gap != 10*time.Second {
			t.Errorf("second heartbeat %v after the first, want the interval 10s", gap)
		}
	})
}

func TestProgressAfterLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		var err error
		work := func(ctx context.Context, j *gantry.Job) (any, error) {
			<-ctx.Done()
			err = j.Progress(ctx, 50, "half")
			return nil, ctx.Err()
		}
		h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": work})
		id := f.submit("t", nil, 0)
		f.awaitState(t, id, gantry.StateRunning)
		f.revoke(id)
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if err != ErrLeaseLost {
			t.Errorf("Progress after the lease was lost = %v, want %v", err, ErrLeaseLost)
		}
	})
}

func TestReportBatching(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		jobs int
		// full: until the worker stops, every report but one (the idle
		// worker's first) carries a full batch.
		full bool
	}{
		{
			// The first outcome finds the worker idle and goes at once,
			// with whatever came with it; then only full batches, until
			// the worker stops.
			name: "full batches go at once, the rest at shutdown",
			opts: Options{ReportBatch: 10, ReportInterval: time.Hour},
			jobs: 25,
			full: true,
		},
		{
			name: "outcomes of a busy worker wait at most the interval",
			opts: Options{ReportBatch: 100, ReportInterval: 50 * time.Millisecond},
			jobs: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(30 * time.Second)
				var mu sync.Mutex // the hook runs on concurrent calls
				var reportAt []time.Duration
				begin := time.Now()
				f.hook = func(_ context.Context, op string, _ int) error {
					if op == "report" {
						mu.Lock()
						reportAt = append(reportAt, time.Since(begin))
						mu.Unlock()
					}
					return nil
				}
				h := startWorker(t, f, tc.opts, map[string]gantry.HandlerFunc{"t": noop})
				for range tc.jobs {
					f.submit("t", nil, 0)
				}
				time.Sleep(time.Second)
				sizes := f.sizes("report")
				if len(sizes) == 0 {
					t.Fatal("nothing reported before stopping")
				}
				partial := 0 // reports go from concurrent senders, in any order
				for _, n := range sizes {
					if n != tc.opts.ReportBatch {
						partial++
					}
				}
				if tc.full && partial > 1 {
					t.Errorf("report sizes before stopping: %v, want full batches of %d but one", sizes, tc.opts.ReportBatch)
				}
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				sizes = f.sizes("report")
				total := 0
				for _, n := range sizes {
					total += n
				}
				if total != tc.jobs {
					t.Errorf("reported %d outcomes in %v, want %d", total, sizes, tc.jobs)
				}
				if reportAt[0] != 0 {
					t.Errorf("first report after %v, want at once (the worker was idle)", reportAt[0])
				}
				if tc.opts.ReportInterval < time.Second && reportAt[len(reportAt)-1] > tc.opts.ReportInterval {
					t.Errorf("last report after %v, want within the interval %v", reportAt[len(reportAt)-1], tc.opts.ReportInterval)
				}
				// Every outcome was reported (total above) before the
				// worker left.
				ops := f.ops()
				if last := ops[len(ops)-1]; last != "leave" {
					t.Errorf("last call = %s, want leave", last)
				}
			})
		})
	}
}

// TestReporter checks when the reporter hands out chunks: an outcome of an
// idle worker at once, the next ones after the interval (counted from the
// first of them), full batches at once.
func TestReporter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Millisecond
		var rp reporter
		rp.init(3, interval, 1000)
		out := make(chan chunk)
		go rp.collect(out)
		begin := time.Now()
		type got struct {
			at time.Duration
			n  int
		}
		next := func() got {
			c := <-out
			return got{time.Since(begin), len(c.outs)}
		}
		until := begin.Add(time.Hour)
		rp.add(Outcome{JobID: "a"}, until)
		if g := next(); g != (got{0, 1}) {
			t.Errorf("idle outcome: chunk %+v, want {at:0 n:1}", g)
		}
		time.Sleep(2 * time.Millisecond)
		rp.add(Outcome{JobID: "b"}, until) // 2 ms after a chunk went: waits
		time.Sleep(3 * time.Millisecond)
		rp.add(Outcome{JobID: "c"}, until)
		if g := next(); g != (got{12 * time.Millisecond, 2}) {
			t.Errorf("busy outcomes: chunk %+v, want {at:12ms n:2} (the interval after the first of them)", g)
		}
		rp.add(Outcome{JobID: "d"}, until)
		rp.add(Outcome{JobID: "e"}, until)
		rp.add(Outcome{JobID: "f"}, until)
		if g := next(); g != (got{12 * time.Millisecond, 3}) {
			t.Errorf("full batch: chunk %+v, want {at:12ms n:3}", g)
		}
		time.Sleep(interval)
		rp.add(Outcome{JobID: "g"}, until)
		if g := next(); g != (got{22 * time.Millisecond, 1}) {
			t.Errorf("outcome after a quiet interval: chunk %+v, want {at:22ms n:1}", g)
		}
		rp.add(Outcome{JobID: "h"}, until)
		rp.close()
		if g := next(); g != (got{22 * time.Millisecond, 1}) {
			t.Errorf("at close: chunk %+v, want {at:22ms n:1}", g)
		}
		if _, ok := <-out; ok {
			t.Error("collect sent a chunk after the last, want out closed")
		}
	})
}

func TestReportRetry(t *testing.T) {
	tests := []struct {
		name      string
		failUntil int // report calls up to this one fail
		want      gantry.State
	}{
		{name: "succeeds after two failures", failUntil: 2, want: gantry.StateSucceeded},
		// The outcome is dropped when its lease is no longer trusted; the
		// job is released when the worker leaves.
		{name: "never succeeds", failUntil: 1 << 30, want: gantry.StateQueued},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const ttl = 10 * time.Second
				begin := time.Now()
				var mu sync.Mutex // the hook runs on concurrent calls
				var lastReport time.Duration
				f := newFake(ttl)
				f.hook = func(_ context.Context, op string, n int) error {
					if op == "report" {
						mu.Lock()
						lastReport = time.Since(begin)
						mu.Unlock()
						if n <= tc.failUntil {
							return errors.New("503 service unavailable")
						}
					}
					return nil
				}
				h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": noop})
				id := f.submit("t", nil, 0)
				if tc.want == gantry.StateSucceeded {
					f.awaitState(t, id, tc.want)
				} else {
					time.Sleep(ttl)
				}
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				if got := f.job(id).state; got != tc.want {
					t.Errorf("state = %s, want %s", got, tc.want)
				}
				n := len(f.sizes("report"))
				if n < 3 {
					t.Errorf("report calls = %d, want retries", n)
				}
				if tc.want != gantry.StateSucceeded && lastReport >= trustWindow(ttl) {
					t.Errorf("last report attempt %v after the lease, want before the trust window %v ended", lastReport, trustWindow(ttl))
				}
			})
		})
	}
}

func TestLeaseRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		f.hook = func(_ context.Context, op string, n int) error {
			if op == "lease" && n <= 3 {
				return errors.New("connection refused")
			}
			return nil
		}
		h := startWorker(t, f, Options{}, map[string]gantry.HandlerFunc{"t": noop})
		id := f.submit("t", nil, 0)
		f.awaitState(t, id, gantry.StateSucceeded)
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if n := len(f.sizes("lease")); n < 4 {
			t.Errorf("lease calls = %d, want at least 4", n)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		// work is the job; it sets cause to its context's cause if canceled.
		work      func(ctx context.Context, cause *error) (any, error)
		wantState gantry.State
		wantCause error
		wantRun   time.Duration // how long Run takes to return after the stop
	}{
		{
			name:  "running job finishes within the grace",
			grace: 5 * time.Second,
			work: func(ctx context.Context, cause *error) (any, error) {
				time.Sleep(2 * time.Second)
				return "done", nil
			},
			wantState: gantry.StateSucceeded,
			wantRun:   time.Second,
		},
		{
			name:  "running job is canceled after the grace and released",
			grace: 2 * time.Second,
			work: func(ctx context.Context, cause *error) (any, error) {
				<-ctx.Done()
				*cause = context.Cause(ctx)
				return nil, ctx.Err()
			},
			wantState: gantry.StateQueued,
			wantCause: ErrShutdown,
			wantRun:   2 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(30 * time.Second)
				var cause error
				work := func(ctx context.Context, _ *gantry.Job) (any, error) { return tc.work(ctx, &cause) }
				h := startWorker(t, f, Options{ShutdownGrace: tc.grace}, map[string]gantry.HandlerFunc{"t": work})
				id := f.submit("t", nil, 0)
				f.awaitState(t, id, gantry.StateRunning)
				time.Sleep(time.Second)
				h.cancel()
				synctest.Wait()
				later := f.submit("t", nil, 0) // must not be leased any more
				stopped := time.Now()
				if err := <-h.done; err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				if got := time.Since(stopped); got != tc.wantRun {
					t.Errorf("Run returned %v after the stop, want %v", got, tc.wantRun)
				}
				if got := f.job(id).state; got != tc.wantState {
					t.Errorf("state = %s, want %s", got, tc.wantState)
				}
				if cause != tc.wantCause {
					t.Errorf("context.Cause = %v, want %v", cause, tc.wantCause)
				}
				if j := f.job(later); j.state != gantry.StateQueued || j.job.Attempt != 0 {
					t.Errorf("job submitted during shutdown: state %s attempt %d, want queued, never leased", j.state, j.job.Attempt)
				}
				ops := f.ops()
				if ops[len(ops)-1] != "leave" {
					t.Errorf("last call = %s, want leave", ops[len(ops)-1])
				}
				if tc.wantState == gantry.StateSucceeded && ops[len(ops)-2] != "report" {
					t.Errorf("calls = %v, want the report before leave", ops)
				}
			})
		})
	}
}

func TestShutdownMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		var cause error
		work := func(ctx context.Context, _ *gantry.Job) (any, error) {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return nil, ctx.Err()
		}
		h := startWorker(t, f, Options{ShutdownGrace: time.Hour}, map[string]gantry.HandlerFunc{"t": work})
		id := f.submit("t", nil, 0)
		f.awaitState(t, id, gantry.StateRunning)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := h.w.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Errorf("Shutdown() = %v, want %v", err, context.DeadlineExceeded)
		}
		if err := <-h.done; err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if cause != ErrShutdown {
			t.Errorf("context.Cause = %v, want %v", cause, ErrShutdown)
		}
		if got := f.job(id).state; got != gantry.StateQueued {
			t.Errorf("state = %s, want queued (released)", got)
		}
		if err := h.w.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown() after Run returned = %v, want nil", err)
		}
		h.cancel()
	})
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int // 1: the lease loop waits for a slot, so only the heartbeat tells
	}{
		{name: "told by the lease", concurrency: 2},
		{name: "told by the heartbeat", concurrency: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(10 * time.Second)
				var cause error
				work := func(ctx context.Context, _ *gantry.Job) (any, error) {
					select {
					case <-time.After(20 * time.Second):
						return "done", nil
					case <-ctx.Done():
						cause = context.Cause(ctx)
						return nil, ctx.Err()
					}
				}
				h := startWorker(t, f, Options{Concurrency: tc.concurrency, ShutdownGrace: time.Second},
					map[string]gantry.HandlerFunc{"t": work})
				id := f.submit("t", nil, 0)
				f.awaitState(t, id, gantry.StateRunning)
				f.setDrain()
				time.Sleep(5 * time.Second)
				later := f.submit("t", nil, 0)
				// Run returns by itself once the running job is done.
				if err := <-h.done; err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				h.cancel()
				if cause != nil {
					t.Errorf("context.Cause = %v, want the job not canceled", cause)
				}
				if got := f.job(id).state; got != gantry.StateSucceeded {
					t.Errorf("state = %s, want succeeded", got)
				}
				if j := f.job(later); j.state != gantry.StateQueued || j.job.Attempt != 0 {
					t.Errorf("job submitted while draining: state %s attempt %d, want never leased", j.state, j.job.Attempt)
				}
				if ops := f.ops(); ops[len(ops)-1] != "leave" {
					t.Errorf("last call = %s, want leave", ops[len(ops)-1])
				}
			})
		})
	}
}

func TestRegisterAgain(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int // 1: the lease loop waits for a slot, so only the heartbeat tells
	}{
		{name: "told by the lease", concurrency: 2},
		{name: "told by the heartbeat", concurrency: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(30 * time.Second)
				release := make(chan struct{})
				h := startWorker(t, f, Options{Concurrency: tc.concurrency}, map[string]gantry.HandlerFunc{
					"long":  func(context.Context, *gantry.Job) (any, error) { <-release; return "long", nil },
					"short": noop,
				})
				long := f.submit("long", nil, 0)
				f.awaitState(t, long, gantry.StateRunning)
				f.forget(h.w.ID())
				short := f.submit("short", nil, 0)
				f.await(t, "a second registration", func() bool { return len(f.regs) == 2 })
				time.Sleep(15 * time.Second) // past a heartbeat
				close(release)
				f.awaitState(t, long, gantry.StateSucceeded)
				f.awaitState(t, short, gantry.StateSucceeded)
				if got := h.w.ID(); got != "w2" {
					t.Errorf("ID() = %s, want w2", got)
				}
				if err := h.stop(); err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				if diff := cmp.Diff(f.regs[0], f.regs[1]); diff != "" {
					t.Errorf("registrations differ (-first +second):\n%s", diff)
				}
			})
		})
	}
}

func TestRunErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		w := New(f, Options{Logger: testLogger(t)})
		if err := w.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "no handlers") {
			t.Errorf("Run() without handlers = %v, want an error", err)
		}
		if err := w.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("second Run() = %v, want an error", err)
		}

		refused := errors.New("connection refused")
		f.hook = func(_ context.Context, op string, _ int) error {
			if op == "register" {
				return refused
			}
			return nil
		}
		w = New(f, Options{Logger: testLogger(t)})
		w.Register("t", gantry.HandlerFunc(noop))
		if err := w.Run(t.Context()); !errors.Is(err, refused) {
			t.Errorf("Run() with a failing register = %v, want %v", err, refused)
		}
	})
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		do   func(w *Worker)
	}{
		{"empty type", func(w *Worker) { w.Register("", gantry.HandlerFunc(noop)) }},
		{"nil handler", func(w *Worker) { w.Register("t", nil) }},
		{"nil func", func(w *Worker) { w.RegisterFunc("t", nil) }},
		{"twice", func(w *Worker) {
			w.RegisterFunc("t", noop)
			w.RegisterFunc("t", noop)
		}},
		{"after Run", func(w *Worker) {
			w.RegisterFunc("t", noop)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = w.Run(ctx)
			w.RegisterFunc("u", noop)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(time.Second)
			f.hook = func(ctx context.Context, _ string, _ int) error { return ctx.Err() }
			w := New(f, Options{Logger: testLogger(t)})
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tc.name)
				}
			}()
			tc.do(w)
		})
	}
}

func TestTrustWindowShape(t *testing.T) {
	tests := []struct {
		ttl, want time.Duration
	}{
		{30 * time.Second, 27 * time.Second},
		{10 * time.Second, 9 * time.Second},
		{2 * time.Second, 1500 * time.Millisecond},
		{time.Second, 750 * time.Millisecond},
		{time.Hour, 54 * time.Minute},
	}
	for _, tc := range tests {
		if got := trustWindow(tc.ttl); got != tc.want {
			t.Errorf("trustWindow(%v) = %v, want %v", tc.ttl, got, tc.want)
		}
	}
}

// BenchmarkNoop measures how many no-op jobs one worker with concurrency
// 100 runs per second over the in-memory fake.
func BenchmarkNoop(b *testing.B) {
	f := newFake(30 * time.Second)
	var done sync.WaitGroup
	done.Add(b.N)
	w := New(f, Options{Concurrency: 100, Logger: slog.New(slog.DiscardHandler)})
	w.RegisterFunc("t", func(context.Context, *gantry.Job) (any, error) {
		done.Done()
		return nil, nil
	})
	for range b.N {
		f.submit("t", nil, 0)
	}
	ctx, cancel := context.WithCancel(b.Context())
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- w.Run(ctx) }()
	done.Wait()
	// Every outcome is recorded before Run returns.
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	b.StopTimer()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.state != gantry.StateSucceeded {
			b.Fatalf("job %s is %s, want succeeded", j.job.ID, j.state)
		}
	}
}

// TestReporterBoundsChunkSize checks that a chunk holds no more outcomes
// than fit in the reporter's size bound (at least one, however large), so
// that reports of large results stay within the server's body limit.
func TestReporterBoundsChunkSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 10 * time.Millisecond
		var rp reporter
		rp.init(10, interval, 1000)
		rp.maxBytes = 1200 // outcomes below take 128 + 400 bytes: two fit
		begin := time.Now()
		until := begin.Add(time.Hour)
		result := json.RawMessage(`"` + strings.Repeat("r", 398) + `"`)
		for _, id := range []string{"a", "b", "c"} {
			rp.add(Outcome{JobID: id, Result: result}, until)
		}
		out := make(chan chunk)
		go rp.collect(out) // finds the three buffered
		var got [][]string
		var at []time.Duration
		for range 2 {
			c := <-out
			var ids []string
			for _, o := range c.outs {
				ids = append(ids, o.JobID)
			}
			got, at = append(got, ids), append(at, time.Since(begin))
		}
		if diff := cmp.Diff([][]string{{"a", "b"}, {"c"}}, got); diff != "" {
			t.Errorf("chunks (-want +got):\n%s", diff)
		}
		if at[0] != 0 || at[1] > interval {
			t.Errorf("chunks went after %v, want the first at once and the second within %v", at, interval)
		}
		rp.add(Outcome{JobID: "huge", Result: json.RawMessage(`"` + strings.Repeat("h", 5000) + `"`)}, until)
		rp.add(Outcome{JobID: "d"}, until)
		rp.close()
		got = nil
		for c := range out {
			var ids []string
			for _, o := range c.outs {
				ids = append(ids, o.JobID)
			}
			got = append(got, ids)
		}
		if diff := cmp.Diff([][]string{{"huge"}, {"d"}}, got); diff != "" {
			t.Errorf("chunks after a large outcome (-want +got):\n%s", diff)
		}
		if rp.bytes != 0 {
			t.Errorf("bytes buffered after the last chunk = %d, want 0", rp.bytes)
		}
	})
}

// TestReportBacklogBound checks that a worker whose reports do not get
// through stops leasing once its backlog (outcomes buffered or being
// sent) passes its limit, instead of leasing every queued job, and goes on
// once the reports pass again.
func TestReportBacklogBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		blocked := make(chan struct{})
		f.hook = func(ctx context.Context, op string, _ int) error {
			if op == "report" {
				select {
				case <-blocked:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		const concurrency, batch = 2, 1
		limit := backlogLimit(batch, concurrency)
		h := startWorker(t, f, Options{Concurrency: concurrency, ReportBatch: batch}, map[string]gantry.HandlerFunc{"t": noop})
		var ids []string
		for range 40 {
			ids = append(ids, f.submit("t", nil, 0))
		}
		synctest.Wait()
		running := func() int {
			n := 0
			for _, id := range ids {
				if f.job(id).state == gantry.StateRunning {
					n++
				}
			}
			return n
		}
		// Every outcome is held by a blocked report or buffered: the jobs
		// leased are those of the backlog, one over the limit per slot.
		if got, most := running(), limit+concurrency; got > most || got < limit {
			t.Errorf("%d jobs leased with no report through, want %d to %d (backlog limit %d, %d slots)", got, limit, most, limit, concurrency)
		}
		close(blocked)
		for _, id := range ids {
			f.awaitState(t, id, gantry.StateSucceeded)
		}
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	})
}
