package test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/worker"
)

func TestClientRemoteWorker(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c := s.c
	started := make(chan string, 10)
	var causeMu sync.Mutex
	causes := map[string]error{}
	w := startClientWorker(t, c, worker.Options{Name: "remote-1", Concurrency: 4}, func(w *worker.Worker) {
		w.RegisterFunc("echo", func(ctx context.Context, j *gantry.Job) (any, error) {
			var p map[string]any
			if err := j.Decode(&p); err != nil {
				return nil, err
			}
			if err := j.Progress(ctx, 50, "half way"); err != nil {
				return nil, err
			}
			return p, nil
		})
		w.RegisterFunc("flaky", func(ctx context.Context, j *gantry.Job) (any, error) {
			if j.Attempt == 1 {
				return nil, errors.New("transient outage")
			}
			return fmt.Sprintf("ok on attempt %d", j.Attempt), nil
		})
		w.RegisterFunc("bad", func(ctx context.Context, j *gantry.Job) (any, error) {
			return nil, gantry.Permanent(errors.New("bad input"))
		})
		w.RegisterFunc("block", func(ctx context.Context, j *gantry.Job) (any, error) {
			started <- j.ID
			<-ctx.Done()
			causeMu.Lock()
			causes[j.ID] = context.Cause(ctx)
			causeMu.Unlock()
			return nil, context.Cause(ctx)
		})
	})

	t.Run("success", func(t *testing.T) {
		j := clientSubmit(t, c, client.JobRequest{Type: "echo", Params: map[string]int{"n": 3}})
		j = clientWaitJob(t, c, j.ID)
		var res map[string]int
		if err := j.DecodeResult(&res); err != nil || res["n"] != 3 {
			t.Errorf("result = %v, %v; want n=3", res, err)
		}
		if j.State != gantry.StateSucceeded || j.Attempt != 1 || len(j.Attempts) != 1 {
			t.Fatalf("job = %s attempt %d, attempts %+v; want succeeded at once", j.State, j.Attempt, j.Attempts)
		}
		a := j.Attempts[0]
		if a.Outcome != client.OutcomeSucceeded || a.WorkerID != w.w.ID() || a.Token == 0 || a.FinishedAt.IsZero() {
			t.Errorf("attempt = %+v, want succeeded by worker %s with a token", a, w.w.ID())
		}
		if j.Progress.Percent != 50 && j.Progress.Percent != 100 {
			t.Logf("progress = %+v", j.Progress) // reported with the next heartbeat, which may come after the outcome
		}
	})

	t.Run("retry", func(t *testing.T) {
		j := clientSubmit(t, c, client.JobRequest{Type: "flaky", MaxAttempts: 3})
		j = clientWaitJob(t, c, j.ID)
		if j.State != gantry.StateSucceeded || j.Attempt != 2 || len(j.Attempts) != 2 {
			t.Fatalf("job = %s attempt %d, attempts %+v; want succeeded on attempt 2", j.State, j.Attempt, j.Attempts)
		}
		if a := j.Attempts[0]; a.Outcome != client.OutcomeFailed || a.Error != "transient outage" {
			t.Errorf("first attempt = %+v, want failed with the handler's error", a)
		}
		var res string
		if err := j.DecodeResult(&res); err != nil || res != "ok on attempt 2" {
			t.Errorf("result = %q, %v", res, err)
		}
	})

	t.Run("permanent failure", func(t *testing.T) {
		j := clientSubmit(t, c, client.JobRequest{Type: "bad", MaxAttempts: 5})
		j = clientWaitJob(t, c, j.ID)
		if j.State != gantry.StateFailed || j.Attempt != 1 || !strings.Contains(j.Error, "bad input") {
			t.Errorf("job = %s attempt %d error %q; want failed at once with bad input", j.State, j.Attempt, j.Error)
		}
	})

	t.Run("cancel a running job", func(t *testing.T) {
		j := clientSubmit(t, c, client.JobRequest{Type: "block"})
		select {
		case id := <-started:
			if id != j.ID {
				t.Fatalf("started job %s, want %s", id, j.ID)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the job did not start")
		}
		cj, err := c.CancelJob(t.Context(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cj.State != gantry.StateRunning || !cj.CancelRequested {
			t.Errorf("CancelJob(running) = %s cancel requested %t, want running with the request", cj.State, cj.CancelRequested)
		}
		j = clientWaitJob(t, c, j.ID)
		if j.State != gantry.StateCanceled {
			t.Errorf("job = %s, want canceled", j.State)
		}
		causeMu.Lock()
		defer causeMu.Unlock()
		if !errors.Is(causes[j.ID], worker.ErrCancelRequested) {
			t.Errorf("the handler's context ended with %v, want ErrCancelRequested", causes[j.ID])
		}
	})

	t.Run("workers list", func(t *testing.T) {
		ws, err := c.ListWorkers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var found *client.Worker
		for _, x := range ws {
			if x.ID == w.w.ID() {
				found = x
			}
		}
		if found == nil || found.Name != "remote-1" || found.State != client.WorkerActive || found.Capacity != 4 {
			t.Errorf("ListWorkers() = %+v, want active worker remote-1 of capacity 4", ws)
		}
	})

	t.Run("drain", func(t *testing.T) {
		dw, err := c.DrainWorker(t.Context(), w.w.ID())
		if err != nil {
			t.Fatal(err)
		}
		if dw.State != client.WorkerDraining {
			t.Errorf("DrainWorker() state = %q, want draining", dw.State)
		}
		// The worker learns of the drain on its next lease or heartbeat,
		// finishes what it runs and leaves by itself.
		select {
		case <-w.done:
			if w.err != nil {
				t.Errorf("drained worker: Run = %v", w.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the drained worker did not leave")
		}
		ws, err := c.ListWorkers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ws {
			if x.ID == w.w.ID() {
				t.Errorf("the drained worker is still listed: %+v", x)
			}
		}
	})
}

func TestClientWorkerShutdownReleasesJob(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c := s.c
	startedA := make(chan string, 1)
	// Worker A holds its leases for an hour: only its graceful leave can
	// give the job to B in time.
	a := startClientWorker(t, c, worker.Options{Name: "a", Concurrency: 1, LeaseTTL: time.Hour, ShutdownGrace: 50 * time.Millisecond},
		func(w *worker.Worker) {
			w.RegisterFunc("long", func(ctx context.Context, j *gantry.Job) (any, error) {
				startedA <- j.ID
				<-ctx.Done()
				return nil, context.Cause(ctx)
			})
		})
	j := clientSubmit(t, c, client.JobRequest{Type: "long"})
	select {
	case <-startedA:
	case <-time.After(30 * time.Second):
		t.Fatal("worker a did not start the job")
	}
	b := startClientWorker(t, c, worker.Options{Name: "b", Concurrency: 1}, func(w *worker.Worker) {
		w.RegisterFunc("long", func(ctx context.Context, j *gantry.Job) (any, error) { return "quick", nil })
	})
	aID := a.w.ID()
	if err := a.Stop(); err != nil {
		t.Fatalf("worker a: Run = %v", err)
	}
	j = clientWaitJob(t, c, j.ID)
	if j.State != gantry.StateSucceeded || len(j.Attempts) != 2 {
		t.Fatalf("job = %s, attempts %+v; want succeeded on the second", j.State, j.Attempts)
	}
	if first := j.Attempts[0]; first.WorkerID != aID || first.Outcome != client.OutcomeReleased {
		t.Errorf("first attempt = %+v, want released by a (%s)", first, aID)
	}
	if second := j.Attempts[1]; second.WorkerID != b.w.ID() || second.Outcome != client.OutcomeSucceeded {
		t.Errorf("second attempt = %+v, want succeeded by b (%s)", second, b.w.ID())
	}
	ws, err := c.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == aID {
			t.Errorf("worker a is still listed after leaving: %+v", w)
		}
	}
}

func TestClientWorkerRegistersAgain(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c := s.c
	w := startClientWorker(t, c, worker.Options{Name: "phoenix", LeaseTTL: 2 * time.Second}, func(w *worker.Worker) {
		w.RegisterFunc("noop", func(ctx context.Context, j *gantry.Job) (any, error) { return nil, nil })
	})
	old := w.w.ID()
	if err := c.RemoveWorker(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	// The server answers the removed worker's next call with 404; the
	// remote transport makes that worker.ErrUnknownWorker and the worker
	// registers again.
	clientWaitFor(t, "the worker to register again", func() bool { return w.w.ID() != old })
	// The first job may still go to the long poll that the worker sent
	// under its old identity; the next lease requests use the new one.
	if j := clientWaitJob(t, c, clientSubmit(t, c, client.JobRequest{Type: "noop"}).ID); j.State != gantry.StateSucceeded {
		t.Errorf("first job after the removal = %s, want succeeded", j.State)
	}
	j := clientWaitJob(t, c, clientSubmit(t, c, client.JobRequest{Type: "noop"}).ID)
	if j.State != gantry.StateSucceeded || j.Attempts[0].WorkerID != w.w.ID() {
		t.Errorf("job = %s by %s, want succeeded by the new identity %s", j.State, j.Attempts[0].WorkerID, w.w.ID())
	}
}

func TestClientPausedQueue(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	q, err := c.PauseQueue(ctx, "", "paused")
	if err != nil {
		t.Fatal(err)
	}
	if !q.Paused || q.Name != "paused" || q.Tenant != "default" {
		t.Errorf("PauseQueue() = %+v, want queue paused of tenant default", q)
	}
	startClientWorker(t, c, worker.Options{Name: "q"}, func(w *worker.Worker) {
		w.RegisterFunc("noop", func(ctx context.Context, j *gantry.Job) (any, error) { return nil, nil })
	})
	held := clientSubmit(t, c, client.JobRequest{Type: "noop", Queue: "paused"})
	// A job of another queue runs: the worker is leasing, but not from the
	// paused queue.
	clientWaitJob(t, c, clientSubmit(t, c, client.JobRequest{Type: "noop", Queue: "open"}).ID)
	if j, err := c.GetJob(ctx, held.ID); err != nil || j.State != gantry.StateQueued {
		t.Fatalf("job of the paused queue = %+v, %v; want queued", j, err)
	}
	qs, err := c.ListQueues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed *client.Queue
	for _, x := range qs {
		if x.Name == "paused" {
			listed = x
		}
	}
	if listed == nil || !listed.Paused || listed.Counts[gantry.StateQueued] != 1 {
		t.Errorf("ListQueues() = %+v, want paused with 1 queued job", listed)
	}
	if q, err := c.ResumeQueue(ctx, "", "paused"); err != nil || q.Paused {
		t.Fatalf("ResumeQueue() = %+v, %v", q, err)
	}
	if j := clientWaitJob(t, c, held.ID); j.State != gantry.StateSucceeded {
		t.Errorf("job of the resumed queue = %s, want succeeded", j.State)
	}
	if q, err := c.PauseQueue(ctx, "acme", "other"); err != nil || q.Tenant != "acme" {
		t.Errorf("PauseQueue(tenant acme) = %+v, %v; want acme's queue", q, err)
	}
}

// TestClientPerJobCalls drives the per-job calls of the worker protocol,
// leasing through the remote transport as a hand-written worker would.
func TestClientPerJobCalls(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	tr := c.WorkerTransport()
	reg, err := tr.Register(ctx, worker.Registration{Name: "by-hand", Types: []string{"manual"}, Capacity: 2, LeaseTTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID == "" || reg.LeaseTTL != 5*time.Second || reg.Heartbeat <= 0 || reg.Heartbeat >= reg.LeaseTTL {
		t.Errorf("Register() = %+v, want an id, the TTL asked for and a shorter heartbeat", reg)
	}
	ok := clientSubmit(t, c, client.JobRequest{Type: "manual", Params: map[string]int{"n": 1}})
	bad := clientSubmit(t, c, client.JobRequest{Type: "manual", MaxAttempts: 5})
	var leases []worker.Lease
	clientWaitFor(t, "both jobs to be leased", func() bool {
		res, err := tr.Lease(ctx, reg.ID, 2-len(leases), time.Second)
		if err != nil {
			t.Fatalf("Lease() = %v", err)
		}
		leases = append(leases, res.Leases...)
		return len(leases) == 2
	})
	tokens := map[string]int64{}
	for _, l := range leases {
		tokens[l.Job.ID] = l.Token
		if l.TTL != 5*time.Second || l.Job.Attempt != 1 || l.Job.Type != "manual" {
			t.Errorf("lease = %+v, want attempt 1 of a manual job with a 5s TTL", l)
		}
	}

	if _, err := c.HeartbeatJob(ctx, ok.ID, tokens[ok.ID]+1000, nil); !errors.Is(err, client.ErrConflict) {
		t.Errorf("HeartbeatJob(stale token) = %v, want ErrConflict", err)
	}
	cancelReq, err := c.HeartbeatJob(ctx, ok.ID, tokens[ok.ID], &client.Progress{Percent: 70, Message: "nearly"})
	if err != nil || cancelReq {
		t.Fatalf("HeartbeatJob() = %t, %v", cancelReq, err)
	}
	if j, err := c.GetJob(ctx, ok.ID); err != nil || j.Progress != (client.Progress{Percent: 70, Message: "nearly"}) {
		t.Errorf("job after a heartbeat = %+v, %v; want its progress", j, err)
	}
	if _, err := c.CancelJob(ctx, ok.ID); err != nil {
		t.Fatal(err)
	}
	if cancelReq, err := c.HeartbeatJob(ctx, ok.ID, tokens[ok.ID], nil); err != nil || !cancelReq {
		t.Errorf("HeartbeatJob(after cancel) = %t, %v; want the cancel request", cancelReq, err)
	}

	j, err := c.CompleteJob(ctx, ok.ID, tokens[ok.ID], map[string]string{"done": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]string
	// A job whose cancellation was requested ends canceled (API.md), even
	// when its worker completes it; the result is kept.
	if j.State != gantry.StateCanceled || j.DecodeResult(&res) != nil || res["done"] != "yes" {
		t.Errorf("CompleteJob() = %s result %s, want canceled with the result kept", j.State, j.Result)
	}
	if _, err := c.CompleteJob(ctx, ok.ID, tokens[ok.ID], nil); !errors.Is(err, client.ErrConflict) {
		t.Errorf("CompleteJob(again) = %v, want ErrConflict", err)
	}

	j, err = c.FailJob(ctx, bad.ID, tokens[bad.ID], client.Failure{Error: "corrupt input", Permanent: true})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != gantry.StateFailed || j.Error != "corrupt input" {
		t.Errorf("FailJob(permanent) = %s %q, want failed", j.State, j.Error)
	}
	var p struct{ N int }
	if err := ok.DecodeParams(&p); err != nil || p.N != 1 {
		t.Errorf("DecodeParams() = %+v, %v", p, err)
	}
	if err := tr.Leave(ctx, reg.ID); err != nil {
		t.Errorf("Leave() = %v", err)
	}
	if err := tr.Leave(ctx, reg.ID); !errors.Is(err, worker.ErrUnknownWorker) {
		t.Errorf("Leave(again) = %v, want ErrUnknownWorker", err)
	}
}
