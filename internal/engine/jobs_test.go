package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func TestSubmitLeaseComplete(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		sub, err := v.e.Subscribe(ctx, event.Filter{Tenant: "acme"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()

		j := v.submit(job.Spec{Tenant: "acme", Type: "email", Params: json.RawMessage(`{"to":"x"}`)})
		if j.State != gantry.StateQueued || j.Queue != job.DefaultQueue || j.MaxAttempts != job.DefaultMaxAttempts {
			t.Errorf("Submit = state %s queue %s max attempts %d, want queued, default, %d", j.State, j.Queue, j.MaxAttempts, job.DefaultMaxAttempts)
		}
		w := v.register(job.Worker{Tenant: "acme", Name: "w1"})
		res, err := v.e.Lease(ctx, w.ID, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Jobs) != 1 || res.Jobs[0].ID != j.ID || res.TTL != 30*time.Second || res.Drain {
			t.Fatalf("Lease = %+v, want job %s with TTL 30s", res, j.ID)
		}
		leased := res.Jobs[0]
		if leased.State != gantry.StateRunning || leased.Attempt != 1 || leased.Token <= 0 || leased.WorkerID != w.ID {
			t.Errorf("leased job = state %s attempt %d token %d worker %s", leased.State, leased.Attempt, leased.Token, leased.WorkerID)
		}

		hb, err := v.e.Heartbeat(ctx, w.ID, []store.HeartbeatLease{{JobID: j.ID, Token: leased.Token, Progress: &job.Progress{Percent: 50, Message: "half"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(hb.Leases) != 1 || !hb.Leases[0].OK || hb.Leases[0].CancelRequested || hb.Drain {
			t.Fatalf("Heartbeat = %+v, want one OK lease", hb)
		}

		done := v.report(w.ID, succeeded(leased, `{"sent":true}`))
		if done.State != gantry.StateSucceeded {
			t.Errorf("after Report state = %s, want succeeded", done.State)
		}
		// The same outcome again is stale and changes nothing.
		again, err := v.e.Report(ctx, w.ID, []store.Outcome{succeeded(leased, `{"sent":false}`)})
		if err != nil || len(again) != 1 || again[0].OK {
			t.Errorf("second Report = %+v, %v, want OK false", again, err)
		}

		got := v.get(j.ID)
		if got.State != gantry.StateSucceeded || string(got.Result) != `{"sent":true}` {
			t.Errorf("GetJob = state %s result %s, want succeeded {\"sent\":true}", got.State, got.Result)
		}
		if len(got.Attempts) != 1 || got.Attempts[0].Outcome != job.OutcomeSucceeded || got.Attempts[0].WorkerID != w.ID {
			t.Errorf("attempts = %+v, want one succeeded attempt by %s", got.Attempts, w.ID)
		}

		type ev struct {
			Kind     string
			State    gantry.State
			Progress *job.Progress
		}
		want := []ev{
			{job.EventSubmitted, gantry.StateQueued, nil},
			{job.EventStarted, gantry.StateRunning, nil},
			{job.EventProgress, gantry.StateRunning, &job.Progress{Percent: 50, Message: "half"}},
			{job.EventSucceeded, gantry.StateSucceeded, nil},
		}
		var gotEvents []ev
		for range want {
			select {
			case e := <-sub.C():
				if e.JobID != j.ID {
					t.Errorf("event %+v is not of job %s", e, j.ID)
				}
				gotEvents = append(gotEvents, ev{e.Kind, e.State, e.Progress})
			case <-time.After(time.Minute):
				t.Fatalf("got events %+v, then nothing", gotEvents)
			}
		}
		if diff := cmp.Diff(want, gotEvents); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestSubmitValidation(t *testing.T) {
	tests := []struct {
		name  string
		spec  job.Spec
		field string
	}{
		{"no type", job.Spec{}, "type"},
		{"bad type", job.Spec{Type: "a b"}, "type"},
		{"priority", job.Spec{Type: "a", Priority: 101}, "priority"},
		{"params", job.Spec{Type: "a", Params: json.RawMessage(`{`)}, "params"},
		{"delay and run_at", job.Spec{Type: "a", Delay: time.Second, RunAt: time.Unix(1, 0)}, "delay_seconds"},
		{"max attempts", job.Spec{Type: "a", MaxAttempts: 100000}, "max_attempts"},
		{"batch id", job.Spec{Type: "a", BatchID: "nope"}, "batch_id"},
	}
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		for _, tt := range tests {
			_, _, err := v.e.Submit(t.Context(), tt.spec)
			fe, ok := err.(*job.FieldError)
			if !ok {
				t.Errorf("%s: Submit error = %#v, want a *job.FieldError as is", tt.name, err)
				continue
			}
			if fe.Field != tt.field {
				t.Errorf("%s: Submit error field = %q, want %q", tt.name, fe.Field, tt.field)
			}
		}
		jobs, _, err := v.e.ListJobs(t.Context(), &store.ListJobsParams{})
		if err != nil || len(jobs) != 0 {
			t.Errorf("ListJobs after invalid submits = %d jobs, %v; want none", len(jobs), err)
		}
	})
}

func TestSubmitUniqueAndScheduled(t *testing.T) {
	run(t, engine.Config{PromoteInterval: time.Hour}, func(t *testing.T, v *env) {
		first := v.submit(job.Spec{Type: "a", UniqueKey: "k"})
		again, created, err := v.e.Submit(t.Context(), job.Spec{Type: "a", UniqueKey: "k"})
		if err != nil || created || again.ID != first.ID {
			t.Errorf("Submit of a duplicate = %s, %t, %v; want %s, false", again.ID, created, err, first.ID)
		}

		// A delayed job is promoted at its due time, not at the next poll.
		later := v.submit(job.Spec{Type: "a", Delay: 90 * time.Second})
		if later.State != gantry.StateScheduled {
			t.Fatalf("delayed job state = %s, want scheduled", later.State)
		}
		settle(89 * time.Second)
		if s := v.get(later.ID).State; s != gantry.StateScheduled {
			t.Errorf("state 1s before due = %s, want scheduled", s)
		}
		settle(time.Second)
		if s := v.get(later.ID).State; s != gantry.StateQueued {
			t.Errorf("state when due = %s, want queued", s)
		}
	})
}

func TestRetryBackoffThenSucceed(t *testing.T) {
	cfg := engine.Config{
		Backoff:         engine.Backoff{Base: 10 * time.Second, Jitter: engine.JitterNone},
		PromoteInterval: time.Hour, // only the exact wake-up can promote in time
	}
	run(t, cfg, func(t *testing.T, v *env) {
		j := v.submit(job.Spec{Type: "flaky", MaxAttempts: 3})
		w := v.register(job.Worker{})

		first := v.leaseOne(w.ID)
		failedAt := time.Now()
		got := v.report(w.ID, store.Outcome{JobID: j.ID, Token: first.Token, Outcome: job.OutcomeFailed, Error: "boom", Retryable: true})
		if got.State != gantry.StateRetrying || !got.RunAt.Equal(failedAt.Add(10*time.Second)) {
			t.Fatalf("after a retryable failure = %s due %v, want retrying due %v", got.State, got.RunAt, failedAt.Add(10*time.Second))
		}
		settle(10*time.Second - time.Millisecond)
		if s := v.get(j.ID).State; s != gantry.StateRetrying {
			t.Errorf("state before the backoff passed = %s, want retrying", s)
		}
		settle(time.Millisecond)
		if s := v.get(j.ID).State; s != gantry.StateQueued {
			t.Fatalf("state when the backoff passed = %s, want queued", s)
		}

		second := v.leaseOne(w.ID)
		if second.Attempt != 2 || second.Token <= first.Token {
			t.Errorf("second lease attempt %d token %d, want 2 and > %d", second.Attempt, second.Token, first.Token)
		}
		// RetryAfter overrides the policy.
		v.report(w.ID, store.Outcome{JobID: j.ID, Token: second.Token, Outcome: job.OutcomeFailed, Error: "slow down", Retryable: true, RetryAfter: time.Minute})
		retriedAt := time.Now()
		res, err := v.e.Lease(t.Context(), w.ID, 1, 5*time.Minute)
		if err != nil || len(res.Jobs) != 1 {
			t.Fatalf("Lease waiting for the retry = %+v, %v", res, err)
		}
		if waited := time.Since(retriedAt); waited < time.Minute {
			t.Errorf("retry leased after %v, before its RetryAfter of 1m", waited)
		}
		third := res.Jobs[0]
		v.report(w.ID, succeeded(third, `1`))

		final := v.get(j.ID)
		var outcomes []string
		for _, a := range final.Attempts {
			outcomes = append(outcomes, a.Outcome)
		}
		if diff := cmp.Diff([]string{job.OutcomeFailed, job.OutcomeFailed, job.OutcomeSucceeded}, outcomes); diff != "" {
			t.Errorf("attempt outcomes (-want +got):\n%s", diff)
		}
		if final.State != gantry.StateSucceeded {
			t.Errorf("final state = %s, want succeeded", final.State)
		}

		// A non-retryable failure is final at once.
		p := v.submit(job.Spec{Type: "flaky", MaxAttempts: 3})
		l := v.leaseOne(w.ID)
		if got := v.report(w.ID, store.Outcome{JobID: p.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "bad input"}); got.State != gantry.StateFailed {
			t.Errorf("after a permanent failure state = %s, want failed", got.State)
		}
	})
}

func TestCancel(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		w := v.register(job.Worker{})
		j := v.submit(job.Spec{Type: "long"})
		l := v.leaseOne(w.ID)

		c, err := v.e.CancelJob(ctx, "", j.ID)
		if err != nil || c.State != gantry.StateRunning || !c.CancelRequested {
			t.Fatalf("CancelJob(running) = %+v, %v; want running with cancel requested", c, err)
		}
		hb, err := v.e.Heartbeat(ctx, w.ID, []store.HeartbeatLease{{JobID: j.ID, Token: l.Token}})
		if err != nil || len(hb.Leases) != 1 || !hb.Leases[0].OK || !hb.Leases[0].CancelRequested {
			t.Fatalf("Heartbeat after cancel = %+v, %v; want OK with cancel requested", hb, err)
		}
		if got := v.report(w.ID, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeCanceled}); got.State != gantry.StateCanceled {
			t.Errorf("after reporting canceled state = %s, want canceled", got.State)
		}
		if _, err := v.e.CancelJob(ctx, "", j.ID); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CancelJob(canceled) error = %v, want ErrConflict", err)
		}

		q := v.submit(job.Spec{Type: "later", Delay: time.Hour})
		if c, err := v.e.CancelJob(ctx, "", q.ID); err != nil || c.State != gantry.StateCanceled {
			t.Errorf("CancelJob(scheduled) = %v, %v; want canceled", c, err)
		}
		// Retry brings it back with a fresh budget; Delete needs a terminal job.
		if r, err := v.e.RetryJob(ctx, "", q.ID); err != nil || r.State != gantry.StateQueued {
			t.Errorf("RetryJob(canceled) = %v, %v; want queued", r, err)
		}
		if err := v.e.DeleteJob(ctx, "", q.ID); !errors.Is(err, store.ErrConflict) {
			t.Errorf("DeleteJob(queued) error = %v, want ErrConflict", err)
		}
		if err := v.e.DeleteJob(ctx, "", j.ID); err != nil {
			t.Errorf("DeleteJob(canceled) = %v", err)
		}
		if _, err := v.e.GetJob(ctx, "", j.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetJob(deleted) error = %v, want ErrNotFound", err)
		}
	})
}

func TestBatch(t *testing.T) {
	run(t, engine.Config{MaxBatch: 3}, func(t *testing.T, v *env) {
		ctx := t.Context()
		w := v.register(job.Worker{})

		b, ids, err := v.e.SubmitBatch(ctx, engine.BatchSpec{
			Tenant: "acme", Name: "nightly",
			Jobs:       []job.Spec{{Type: "part"}, {Type: "part"}},
			OnComplete: &job.Spec{Type: "summary"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !b.Closed || b.Total != 2 || len(ids) != 2 || b.Tenant != "acme" {
			t.Fatalf("SubmitBatch = %+v, %v; want closed with 2 jobs of acme", b, ids)
		}
		for range 2 {
			l := v.leaseOne(w.ID)
			if l.BatchID != b.ID || l.Tenant != "acme" {
				t.Errorf("batch job batch %q tenant %q, want %q acme", l.BatchID, l.Tenant, b.ID)
			}
			v.report(w.ID, succeeded(l, `null`))
		}
		got, err := v.e.GetBatch(ctx, "acme", b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Done || got.OnCompleteJobID == "" || got.Counts[gantry.StateSucceeded] != 2 {
			t.Fatalf("GetBatch = %+v, want done with an on_complete job", got)
		}
		oc := v.leaseOne(w.ID)
		if oc.ID != got.OnCompleteJobID || oc.Type != "summary" || oc.Tenant != "acme" {
			t.Errorf("leased %s %s of %s, want the on_complete job %s", oc.ID, oc.Type, oc.Tenant, got.OnCompleteJobID)
		}
		if _, err := v.e.GetBatch(ctx, "other", b.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBatch of another tenant error = %v, want ErrNotFound", err)
		}

		// An open batch takes more jobs until closed.
		open, _, err := v.e.SubmitBatch(ctx, engine.BatchSpec{Tenant: "acme", Open: true})
		if err != nil {
			t.Fatal(err)
		}
		added, err := v.e.AddToBatch(ctx, "", open.ID, []job.Spec{{Type: "late"}})
		if err != nil || len(added) != 1 {
			t.Fatalf("AddToBatch = %v, %v", added, err)
		}
		if j := v.get(added[0]); j.Tenant != "acme" || j.BatchID != open.ID {
			t.Errorf("added job tenant %q batch %q, want acme %q", j.Tenant, j.BatchID, open.ID)
		}
		if _, err := v.e.CloseBatch(ctx, "acme", open.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := v.e.AddToBatch(ctx, "acme", open.ID, []job.Spec{{Type: "late"}}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("AddToBatch(closed) error = %v, want ErrConflict", err)
		}
		c, err := v.e.CancelBatch(ctx, "acme", open.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Done || c.Counts[gantry.StateCanceled] != 1 {
			t.Errorf("CancelBatch = %+v, want done with its job canceled", c)
		}
		bs, _, err := v.e.ListBatches(ctx, &store.ListBatchesParams{Tenant: "acme"})
		if err != nil || len(bs) != 2 {
			t.Errorf("ListBatches = %d batches, %v; want 2", len(bs), err)
		}
	})
}

func TestBatchValidation(t *testing.T) {
	tests := []struct {
		name     string
		b        engine.BatchSpec
		field    string
		tooLarge bool
	}{
		{"bad job names its index", engine.BatchSpec{Jobs: []job.Spec{{Type: "a"}, {Type: "a"}, {}}}, "jobs[2].type", false},
		{"bad job param", engine.BatchSpec{Jobs: []job.Spec{{Type: "a", Priority: -500}}}, "jobs[0].priority", false},
		{"job of another tenant", engine.BatchSpec{Tenant: "a", Jobs: []job.Spec{{Type: "a", Tenant: "b"}}}, "jobs[0].tenant", false},
		{"bad on_complete", engine.BatchSpec{Jobs: []job.Spec{{Type: "a"}}, OnComplete: &job.Spec{}}, "on_complete.type", false},
		{"empty closed batch", engine.BatchSpec{}, "jobs", false},
		{"too many jobs", engine.BatchSpec{Jobs: make([]job.Spec, 4)}, "jobs", true},
	}
	run(t, engine.Config{MaxBatch: 3}, func(t *testing.T, v *env) {
		for _, tt := range tests {
			_, _, err := v.e.SubmitBatch(t.Context(), tt.b)
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("%s: SubmitBatch error = %v, want a field error on %s", tt.name, err, tt.field)
			}
			if errors.Is(err, engine.ErrTooLarge) != tt.tooLarge {
				t.Errorf("%s: errors.Is(%v, ErrTooLarge) = %t, want %t", tt.name, err, !tt.tooLarge, tt.tooLarge)
			}
		}
		jobs, _, err := v.e.ListJobs(t.Context(), &store.ListJobsParams{})
		if err != nil || len(jobs) != 0 {
			t.Errorf("ListJobs after rejected batches = %d jobs, %v; want none (all or nothing)", len(jobs), err)
		}
	})
}

func TestWait(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		w := v.register(job.Worker{})
		j := v.submit(job.Spec{Type: "a", Tenant: "acme"})

		type result struct {
			j   *job.Job
			err error
		}
		done := make(chan result, 1)
		go func() {
			j, err := v.e.Wait(ctx, "acme", j.ID)
			done <- result{j, err}
		}()
		l := v.leaseOne(w.ID)
		v.e.Heartbeat(ctx, w.ID, []store.HeartbeatLease{{JobID: j.ID, Token: l.Token, Progress: &job.Progress{Percent: 1}}})
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("Wait returned %+v before the job ended", r)
		default:
		}
		v.report(w.ID, succeeded(l, `7`))
		synctest.Wait()
		select {
		case r := <-done:
			if r.err != nil || r.j.State != gantry.StateSucceeded || string(r.j.Result) != "7" {
				t.Errorf("Wait = %+v, %v; want the succeeded job", r.j, r.err)
			}
		default:
			t.Fatal("Wait did not return when the job succeeded")
		}

		// Terminal already: at once. Another tenant's job: not found.
		if got, err := v.e.Wait(ctx, "acme", j.ID); err != nil || got.State != gantry.StateSucceeded {
			t.Errorf("Wait(terminal) = %v, %v", got, err)
		}
		if _, err := v.e.Wait(ctx, "other", j.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Wait(other tenant) error = %v, want ErrNotFound", err)
		}
		q := v.submit(job.Spec{Type: "a"})
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := v.e.Wait(cctx, "", q.ID); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait past its context error = %v, want DeadlineExceeded", err)
		}
	})
}

// TestWaitWithoutEvents checks that Wait notices the end of a job even
// when no event reaches it (here: the engine's hub was never started).
func TestWaitWithoutEvents(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		e := engine.New(st, engine.Config{Logger: testLogger(t)})
		defer e.Close()
		v := &env{t: t, st: st, e: e}
		w := v.register(job.Worker{})
		j := v.submit(job.Spec{Type: "a"})
		done := make(chan *job.Job, 1)
		go func() {
			got, err := e.Wait(t.Context(), "", j.ID)
			if err != nil {
				t.Errorf("Wait: %v", err)
			}
			done <- got
		}()
		v.report(w.ID, succeeded(v.leaseOne(w.ID), `1`))
		select {
		case got := <-done:
			if got.State != gantry.StateSucceeded {
				t.Errorf("Wait = state %s, want succeeded", got.State)
			}
		case <-time.After(time.Minute):
			t.Fatal("Wait did not notice the job ended within a minute")
		}
	})
}
