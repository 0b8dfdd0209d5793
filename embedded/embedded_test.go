package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// open opens a Gantry on a new database, closed when the test ends.
func open(t *testing.T, cfg embedded.Config) *embedded.Gantry {
	t.Helper()
	cfg.Path = filepath.Join(t.TempDir(), "gantry.db")
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	g, err := embedded.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return g
}

// runWorker runs a worker over g until the returned stop is called (or the
// test ends); stop returns what Run returned.
func runWorker(t *testing.T, g *embedded.Gantry, o worker.Options, handlers map[string]gantry.HandlerFunc) (stop func() error) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	w := worker.New(g.Transport(), o)
	for typ, h := range handlers {
		w.Register(typ, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// deadline bounds a test's waits, so a bug fails it instead of hanging.
func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestJobsRunToCompletion(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	double := func(ctx context.Context, j *gantry.Job) (any, error) {
		var p struct{ N int }
		if err := j.Decode(&p); err != nil {
			return nil, err
		}
		return p.N * 2, nil
	}
	runWorker(t, g, worker.Options{Concurrency: 20}, map[string]gantry.HandlerFunc{"double": double})

	const n = 200
	want := map[string]int{}
	for i := range n {
		j, err := g.Submit(ctx, embedded.JobSpec{Type: "double", Params: map[string]int{"N": i}})
		if err != nil {
			t.Fatalf("Submit() = %v", err)
		}
		if j.State != gantry.StateQueued {
			t.Errorf("submitted job state = %s, want queued", j.State)
		}
		want[j.ID] = 2 * i
	}
	for id := range want {
		j, err := g.Wait(ctx, id)
		if err != nil {
			t.Fatalf("Wait(%s) = %v", id, err)
		}
		if j.State != gantry.StateSucceeded || len(j.Attempts) != 1 || j.Attempts[0].Outcome != embedded.OutcomeSucceeded {
			t.Errorf("job %s: state %s attempts %+v, want succeeded at the first attempt", id, j.State, j.Attempts)
		}
	}

	got := map[string]int{}
	for j, err := range g.ListJobs(ctx, embedded.JobFilter{State: gantry.StateSucceeded, PageSize: 30}) {
		if err != nil {
			t.Fatalf("ListJobs() = %v", err)
		}
		var r int
		if err := j.DecodeResult(&r); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[j.ID]; dup {
			t.Errorf("ListJobs returned %s twice", j.ID)
		}
		got[j.ID] = r
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

func TestFailuresRetryThenDeadLetter(t *testing.T) {
	g := open(t, embedded.Config{Backoff: embedded.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	ctx := deadline(t)
	var healed atomic.Bool
	runWorker(t, g, worker.Options{}, map[string]gantry.HandlerFunc{
		"flaky": func(context.Context, *gantry.Job) (any, error) {
			if healed.Load() {
				return "ok", nil
			}
			return nil, errors.New("boom")
		},
		"invalid": func(context.Context, *gantry.Job) (any, error) {
			return nil, gantry.Permanent(errors.New("bad input"))
		},
	})

	tests := []struct {
		typ          string
		maxAttempts  int
		wantAttempts int
		wantErr      string
	}{
		{typ: "flaky", maxAttempts: 3, wantAttempts: 3, wantErr: "boom"},
		{typ: "invalid", maxAttempts: 3, wantAttempts: 1, wantErr: "bad input"},
	}
	ids := map[string]string{}
	for _, tc := range tests {
		j, err := g.Submit(ctx, embedded.JobSpec{Type: tc.typ, MaxAttempts: tc.maxAttempts})
		if err != nil {
			t.Fatalf("Submit() = %v", err)
		}
		ids[tc.typ] = j.ID
	}
	for _, tc := range tests {
		j, err := g.Wait(ctx, ids[tc.typ])
		if err != nil {
			t.Fatalf("Wait() = %v", err)
		}
		if j.State != gantry.StateFailed || j.Attempt != tc.wantAttempts || j.Error != tc.wantErr {
			t.Errorf("%s: state %s attempt %d error %q, want failed after %d attempts with %q",
				tc.typ, j.State, j.Attempt, j.Error, tc.wantAttempts, tc.wantErr)
		}
		if len(j.Attempts) != tc.wantAttempts {
			t.Fatalf("%s: attempts %+v, want %d", tc.typ, j.Attempts, tc.wantAttempts)
		}
		for _, a := range j.Attempts {
			if a.Outcome != embedded.OutcomeFailed || a.Error != tc.wantErr {
				t.Errorf("%s: attempt %+v, want failed with %q", tc.typ, a, tc.wantErr)
			}
		}
	}

	// A dead-lettered job retried by hand gets a fresh budget.
	healed.Store(true)
	if _, err := g.RetryJob(ctx, ids["flaky"]); err != nil {
		t.Fatalf("RetryJob() = %v", err)
	}
	j, err := g.Wait(ctx, ids["flaky"])
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	if j.State != gantry.StateSucceeded || string(j.Result) != `"ok"` || len(j.Attempts) != 4 {
		t.Errorf("retried job: state %s result %s attempts %d, want succeeded \"ok\" at the 4th attempt", j.State, j.Result, len(j.Attempts))
	}
	if _, err := g.RetryJob(ctx, ids["flaky"]); !errors.Is(err, embedded.ErrConflict) {
		t.Errorf("RetryJob(succeeded job) = %v, want ErrConflict", err)
	}
}

func TestCancelRunningJob(t *testing.T) {
	g := open(t, embedded.Config{LeaseTTL: 3 * time.Second}) // heartbeats every second
	ctx := deadline(t)
	started := make(chan struct{})
	var cause error
	runWorker(t, g, worker.Options{}, map[string]gantry.HandlerFunc{
		"long": func(ctx context.Context, _ *gantry.Job) (any, error) {
			close(started)
			<-ctx.Done()
			cause = context.Cause(ctx)
			return nil, ctx.Err()
		},
	})
	j, err := g.Submit(ctx, embedded.JobSpec{Type: "long"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	<-started
	c, err := g.CancelJob(ctx, j.ID)
	if err != nil {
		t.Fatalf("CancelJob() = %v", err)
	}
	if c.State != gantry.StateRunning || !c.CancelRequested {
		t.Errorf("CancelJob() = state %s cancel_requested %t, want running, requested", c.State, c.CancelRequested)
	}
	j, err = g.Wait(ctx, j.ID)
	if err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	if j.State != gantry.StateCanceled {
		t.Errorf("state = %s, want canceled", j.State)
	}
	if cause != worker.ErrCancelRequested {
		t.Errorf("handler's context.Cause = %v, want %v", cause, worker.ErrCancelRequested)
	}
	if _, err := g.CancelJob(ctx, j.ID); !errors.Is(err, embedded.ErrConflict) {
		t.Errorf("CancelJob(canceled job) = %v, want ErrConflict", err)
	}

	// A job no worker runs is canceled at once.
	q, err := g.Submit(ctx, embedded.JobSpec{Type: "nobody-runs-this"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	if q, err = g.CancelJob(ctx, q.ID); err != nil || q.State != gantry.StateCanceled {
		t.Errorf("CancelJob(queued job) = %v, %v, want canceled", q, err)
	}
}

func TestShutdownReleasesJobToAnotherWorker(t *testing.T) {
	// With a 30s lease TTL, only the release on leave can hand the job
	// over before the test's deadline.
	g := open(t, embedded.Config{LeaseTTL: 30 * time.Second})
	ctx := deadline(t)
	started := make(chan struct{})
	stopA := runWorker(t, g, worker.Options{Name: "a", ShutdownGrace: 100 * time.Millisecond},
		map[string]gantry.HandlerFunc{
			"long": func(ctx context.Context, _ *gantry.Job) (any, error) {
				close(started)
				<-ctx.Done()
				return nil, ctx.Err()
			},
		})
	j, err := g.Submit(ctx, embedded.JobSpec{Type: "long", MaxAttempts: 1})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	<-started
	if err := stopA(); err != nil {
		t.Fatalf("worker a: Run() = %v", err)
	}
	if j, err = g.GetJob(ctx, j.ID); err != nil {
		t.Fatalf("GetJob() = %v", err)
	}
	if j.State != gantry.StateQueued || len(j.Attempts) != 1 || j.Attempts[0].Outcome != embedded.OutcomeReleased {
		t.Fatalf("after worker a left: state %s attempts %+v, want queued with one released attempt", j.State, j.Attempts)
	}

	runWorker(t, g, worker.Options{Name: "b"}, map[string]gantry.HandlerFunc{
		"long": func(context.Context, *gantry.Job) (any, error) { return "finished by b", nil },
	})
	if j, err = g.Wait(ctx, j.ID); err != nil {
		t.Fatalf("Wait() = %v", err)
	}
	// A released attempt does not count: MaxAttempts 1 still allows b's.
	if j.State != gantry.StateSucceeded || string(j.Result) != `"finished by b"` {
		t.Errorf("state %s result %s, want succeeded by b", j.State, j.Result)
	}
	if len(j.Attempts) != 2 || j.Attempts[0].WorkerID == j.Attempts[1].WorkerID {
		t.Errorf("attempts = %+v, want one by each worker", j.Attempts)
	}
}

func TestDrainWorker(t *testing.T) {
	g := open(t, embedded.Config{LeaseTTL: 3 * time.Second})
	ctx := deadline(t)
	started := make(chan struct{})
	release := make(chan struct{})
	w := worker.New(g.Transport(), worker.Options{Concurrency: 2, ShutdownGrace: time.Millisecond, Logger: testLogger(t)})
	w.RegisterFunc("long", func(context.Context, *gantry.Job) (any, error) {
		close(started)
		<-release
		return "finished", nil
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	j, err := g.Submit(ctx, embedded.JobSpec{Type: "long"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	<-started
	info, err := g.DrainWorker(ctx, w.ID())
	if err != nil {
		t.Fatalf("DrainWorker() = %v", err)
	}
	if info.State != embedded.WorkerDraining || len(info.JobIDs) != 1 || info.JobIDs[0] != j.ID {
		t.Errorf("DrainWorker() = %+v, want draining, running the job", info)
	}
	later, err := g.Submit(ctx, embedded.JobSpec{Type: "long"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	close(release)
	// The worker finishes its job, whatever its shutdown grace, and leaves.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("the drained worker did not leave")
	}
	if j, err = g.GetJob(ctx, j.ID); err != nil || j.State != gantry.StateSucceeded {
		t.Errorf("drained worker's job = %+v, %v, want succeeded", j, err)
	}
	if later, err = g.GetJob(ctx, later.ID); err != nil || later.State != gantry.StateQueued || later.Attempt != 0 {
		t.Errorf("job submitted during the drain = %+v, %v, want queued, never leased", later, err)
	}
	ws, err := g.Workers(ctx)
	if err != nil || len(ws) != 0 {
		t.Errorf("Workers() = %+v, %v, want none after the leave", ws, err)
	}
}

func TestProgressAndEvents(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	sub, err := g.Subscribe(ctx, embedded.EventFilter{Queue: "reports"}, -1)
	if err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	defer sub.Close()
	seen := make(chan struct{})
	runWorker(t, g, worker.Options{}, map[string]gantry.HandlerFunc{
		"render": func(ctx context.Context, j *gantry.Job) (any, error) {
			if err := j.Progress(ctx, 50, "page 1 of 2"); err != nil {
				return nil, err
			}
			select {
			case <-seen:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return nil, nil
		},
	})
	j, err := g.Submit(ctx, embedded.JobSpec{Type: "render", Queue: "reports"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	var kinds []string
	var progress *embedded.Progress
	for e := range sub.Events() {
		if e.JobID != j.ID {
			t.Errorf("event for job %s, want only %s", e.JobID, j.ID)
		}
		kinds = append(kinds, e.Kind)
		if e.Kind == embedded.EventProgress {
			progress = e.Progress
			close(seen)
		}
		if e.State.Terminal() {
			break
		}
	}
	want := []string{embedded.EventSubmitted, embedded.EventStarted, embedded.EventProgress, embedded.EventSucceeded}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("event kinds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&embedded.Progress{Percent: 50, Message: "page 1 of 2"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}

	// A subscription from 0 replays the stored events (not progress).
	replay, err := g.Subscribe(ctx, embedded.EventFilter{JobID: j.ID}, 0)
	if err != nil {
		t.Fatalf("Subscribe(after 0) = %v", err)
	}
	defer replay.Close()
	kinds = nil
	for len(kinds) < 3 {
		e, ok := replay.Next(ctx)
		if !ok {
			t.Fatalf("replay ended: %v", replay.Err())
		}
		kinds = append(kinds, e.Kind)
	}
	want = []string{embedded.EventSubmitted, embedded.EventStarted, embedded.EventSucceeded}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("replayed kinds (-want +got):\n%s", diff)
	}
}

func TestBatch(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	runWorker(t, g, worker.Options{}, map[string]gantry.HandlerFunc{
		"part":    func(context.Context, *gantry.Job) (any, error) { return nil, nil },
		"summary": func(context.Context, *gantry.Job) (any, error) { return "all done", nil },
	})
	b, ids, err := g.SubmitBatch(ctx, embedded.BatchSpec{
		Name:       "nightly",
		Jobs:       []embedded.JobSpec{{Type: "part"}, {Type: "part"}, {Type: "part"}},
		OnComplete: &embedded.JobSpec{Type: "summary"},
	})
	if err != nil {
		t.Fatalf("SubmitBatch() = %v", err)
	}
	if len(ids) != 3 || b.Total != 3 || !b.Closed {
		t.Fatalf("SubmitBatch() = %+v, %v, want a closed batch of 3", b, ids)
	}
	sub, err := g.Subscribe(ctx, embedded.EventFilter{BatchID: b.ID, Kinds: []string{embedded.EventBatchDone}}, 0)
	if err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	defer sub.Close()
	if _, ok := sub.Next(ctx); !ok {
		t.Fatalf("no batch.done event: %v", sub.Err())
	}
	b, err = g.GetBatch(ctx, b.ID)
	if err != nil {
		t.Fatalf("GetBatch() = %v", err)
	}
	if !b.Done || b.Counts[gantry.StateSucceeded] != 3 || b.OnCompleteJobID == "" {
		t.Fatalf("GetBatch() = %+v, want done with 3 succeeded and an on-complete job", b)
	}
	j, err := g.Wait(ctx, b.OnCompleteJobID)
	if err != nil || j.State != gantry.StateSucceeded || string(j.Result) != `"all done"` {
		t.Errorf("on-complete job = %+v, %v, want succeeded", j, err)
	}
	var batches []string
	for b, err := range g.ListBatches(ctx, "", 0) {
		if err != nil {
			t.Fatalf("ListBatches() = %v", err)
		}
		batches = append(batches, b.Name)
	}
	if diff := cmp.Diff([]string{"nightly"}, batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	tests := []struct {
		name      string
		call      func() error
		wantField string // a *FieldError naming this field, or:
		wantIs    error
	}{
		{
			name:      "missing type",
			call:      func() error { _, err := g.Submit(ctx, embedded.JobSpec{}); return err },
			wantField: "type",
		},
		{
			name: "unmarshalable params",
			call: func() error {
				_, err := g.Submit(ctx, embedded.JobSpec{Type: "t", Params: make(chan int)})
				return err
			},
			wantField: "params",
		},
		{
			name: "priority out of range",
			call: func() error {
				_, err := g.Submit(ctx, embedded.JobSpec{Type: "t", Priority: 101})
				return err
			},
			wantField: "priority",
		},
		{
			name: "bad job in a batch",
			call: func() error {
				_, _, err := g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: []embedded.JobSpec{{Type: "t"}, {Type: "bad type!"}}})
				return err
			},
			wantField: "jobs[1].type",
		},
		{
			name:   "unknown job",
			call:   func() error { _, err := g.GetJob(ctx, "0190b6c2-0000-7000-8000-000000000000"); return err },
			wantIs: embedded.ErrNotFound,
		},
		{
			name:   "unknown batch",
			call:   func() error { _, err := g.GetBatch(ctx, "0190b6c2-0000-7000-8000-000000000000"); return err },
			wantIs: embedded.ErrNotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.wantField != "" {
				var fe *embedded.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.wantField {
					t.Errorf("error = %v, want a FieldError for %q", err, tc.wantField)
				}
				return
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error = %v, want %v", err, tc.wantIs)
			}
		})
	}
	// Nothing invalid was stored.
	for j, err := range g.ListJobs(ctx, embedded.JobFilter{}) {
		t.Errorf("ListJobs() yielded %v, %v, want nothing", j, err)
	}
}

func TestTransportUnknownWorker(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	tr := g.Transport()
	const id = "0190b6c2-0000-7000-8000-000000000000"
	if _, err := tr.Lease(ctx, id, 1, 0); !errors.Is(err, worker.ErrUnknownWorker) {
		t.Errorf("Lease(unknown worker) = %v, want ErrUnknownWorker", err)
	}
	if _, err := tr.Heartbeat(ctx, id, nil); !errors.Is(err, worker.ErrUnknownWorker) {
		t.Errorf("Heartbeat(unknown worker) = %v, want ErrUnknownWorker", err)
	}
	if err := tr.Leave(ctx, id); !errors.Is(err, worker.ErrUnknownWorker) {
		t.Errorf("Leave(unknown worker) = %v, want ErrUnknownWorker", err)
	}
	reg, err := tr.Register(ctx, worker.Registration{Name: "w", LeaseTTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("Register() = %v", err)
	}
	if reg.LeaseTTL != 2*time.Second || reg.Heartbeat <= 0 || reg.Heartbeat >= reg.LeaseTTL {
		t.Errorf("Register() = %+v, want the asked TTL and a shorter heartbeat", reg)
	}
	if _, err := tr.Report(ctx, reg.ID, []worker.Outcome{{JobID: id, Token: 1, Outcome: "done"}}); err == nil {
		t.Errorf("Report(bad outcome kind) = nil, want an error")
	}
	oks, err := tr.Report(ctx, reg.ID, []worker.Outcome{{JobID: id, Token: 1, Outcome: worker.Succeeded}})
	if err != nil || len(oks) != 1 || oks[0] {
		t.Errorf("Report(unknown job) = %v, %v, want [false]", oks, err)
	}
	if err := tr.Leave(ctx, reg.ID); err != nil {
		t.Errorf("Leave() = %v", err)
	}
}

func TestClosed(t *testing.T) {
	g := open(t, embedded.Config{})
	if err := g.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	_, err := g.Submit(t.Context(), embedded.JobSpec{Type: "t"})
	if !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("Submit() after Close = %v, want ErrClosed", err)
	}
}

func TestUniqueKey(t *testing.T) {
	g := open(t, embedded.Config{})
	ctx := deadline(t)
	first, err := g.Submit(ctx, embedded.JobSpec{Type: "t", UniqueKey: "invoice-42"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	second, err := g.Submit(ctx, embedded.JobSpec{Type: "t", UniqueKey: "invoice-42"})
	if err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	if second.ID != first.ID {
		t.Errorf("second Submit with the same unique key = %s, want the first job %s", second.ID, first.ID)
	}
	n := 0
	for _, err := range g.ListJobs(ctx, embedded.JobFilter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("%d jobs stored, want 1", n)
	}
}
