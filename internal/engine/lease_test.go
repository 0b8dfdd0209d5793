package engine_test

import (
	"context"
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

// leaseCall is a Lease call running in its own goroutine.
type leaseCall struct {
	start time.Time
	done  chan struct{}
	res   engine.LeaseResult
	err   error
}

func (v *env) leaseAsync(ctx context.Context, workerID string, n int, wait time.Duration) *leaseCall {
	c := &leaseCall{start: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.res, c.err = v.e.Lease(ctx, workerID, n, wait)
	}()
	return c
}

func (c *leaseCall) returned() bool {
	synctest.Wait()
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Waiting lease calls wake on a submit (the store's hint), not on polling:
// the poll interval is longer than the test.
func TestLeaseWaitsForJobs(t *testing.T) {
	run(t, engine.Config{LeasePollInterval: time.Hour}, func(t *testing.T, v *env) {
		ctx := t.Context()
		var calls []*leaseCall
		for range 3 {
			w := v.register(job.Worker{})
			calls = append(calls, v.leaseAsync(ctx, w.ID, 1, 10*time.Minute))
		}
		settle(time.Minute)
		for i, c := range calls {
			if c.returned() {
				t.Fatalf("call %d returned %+v, %v with no job available", i, c.res, c.err)
			}
		}
		ids := map[string]bool{}
		for range calls {
			ids[v.submit(job.Spec{Type: "a"}).ID] = true
		}
		for i, c := range calls {
			if !c.returned() {
				t.Fatalf("call %d still waits after 3 submits", i)
			}
			if c.err != nil || len(c.res.Jobs) != 1 || !ids[c.res.Jobs[0].ID] {
				t.Fatalf("call %d = %+v, %v; want one of the submitted jobs", i, c.res, c.err)
			}
			delete(ids, c.res.Jobs[0].ID)
			if waited := time.Since(c.start); waited != time.Minute {
				t.Errorf("call %d waited %v, want it to return at the submit, 1m after it began", i, waited)
			}
		}

		// With nothing to lease, a call returns empty when its wait ends.
		w := v.register(job.Worker{})
		c := v.leaseAsync(ctx, w.ID, 1, 30*time.Second)
		settle(30 * time.Second)
		if !c.returned() || c.err != nil || len(c.res.Jobs) != 0 || c.res.Drain {
			t.Errorf("Lease after its wait = %+v, %v; want empty", c.res, c.err)
		}
	})
}

// deafStore is a store whose change hints never arrive, as when a hint
// from another server is lost.
type deafStore struct{ store.Store }

func (deafStore) OnChange(func(store.Change)) {}

// TestLeasePollsWithoutHints checks the backup poll: a waiting call finds
// a job that no hint announced at its next poll.
func TestLeasePollsWithoutHints(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		e := engine.New(deafStore{st}, engine.Config{LeasePollInterval: 5 * time.Second, Logger: testLogger(t)})
		e.Start(context.Background())
		defer e.Close()
		v := &env{t: t, st: st, e: e}
		w := v.register(job.Worker{})
		c := v.leaseAsync(t.Context(), w.ID, 1, time.Minute)
		settle(time.Second)
		j := v.submit(job.Spec{Type: "a"})
		if c.returned() {
			t.Fatalf("Lease returned %+v, %v without a hint or a poll", c.res, c.err)
		}
		settle(4 * time.Second)
		if !c.returned() || c.err != nil || len(c.res.Jobs) != 1 || c.res.Jobs[0].ID != j.ID {
			t.Fatalf("Lease after its poll interval = %+v, %v; want job %s", c.res, c.err, j.ID)
		}
	})
}

func TestLeaseDrainAndRemove(t *testing.T) {
	run(t, engine.Config{LeasePollInterval: time.Hour}, func(t *testing.T, v *env) {
		ctx := t.Context()
		holder := v.register(job.Worker{Tenant: "acme"})
		waiter := v.register(job.Worker{Tenant: "acme"})
		j := v.submit(job.Spec{Type: "a", Tenant: "acme"})
		l := v.leaseOne(holder.ID)

		// Removing the holder releases its job to the waiting worker at once.
		c := v.leaseAsync(ctx, waiter.ID, 1, 10*time.Minute)
		if c.returned() {
			t.Fatalf("waiter returned %+v, %v while the job was held", c.res, c.err)
		}
		if err := v.e.RemoveWorker(ctx, "other", holder.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RemoveWorker by another tenant error = %v, want ErrNotFound", err)
		}
		if err := v.e.RemoveWorker(ctx, "acme", holder.ID); err != nil {
			t.Fatal(err)
		}
		if !c.returned() || c.err != nil || len(c.res.Jobs) != 1 || c.res.Jobs[0].ID != j.ID {
			t.Fatalf("waiter after RemoveWorker = %+v, %v; want job %s", c.res, c.err, j.ID)
		}
		released := c.res.Jobs[0]
		if released.Token <= l.Token {
			t.Errorf("re-leased token %d, want > %d", released.Token, l.Token)
		}
		if _, err := v.e.Lease(ctx, holder.ID, 1, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lease by a removed worker error = %v, want ErrNotFound", err)
		}

		// Draining ends a waiting lease call with Drain set, and heartbeats say so.
		c = v.leaseAsync(ctx, waiter.ID, 1, 10*time.Minute)
		if c.returned() {
			t.Fatal("lease returned with nothing to lease")
		}
		if _, err := v.e.DrainWorker(ctx, "other", waiter.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DrainWorker by another tenant error = %v, want ErrNotFound", err)
		}
		dw, err := v.e.DrainWorker(ctx, "acme", waiter.ID)
		if err != nil || dw.State != job.WorkerDraining {
			t.Fatalf("DrainWorker = %+v, %v", dw, err)
		}
		if !c.returned() || c.err != nil || !c.res.Drain || len(c.res.Jobs) != 0 {
			t.Errorf("waiting Lease after drain = %+v, %v; want Drain and no job", c.res, c.err)
		}
		v.submit(job.Spec{Type: "a", Tenant: "acme"})
		if res, err := v.e.Lease(ctx, waiter.ID, 1, 0); err != nil || !res.Drain || len(res.Jobs) != 0 {
			t.Errorf("Lease by a draining worker = %+v, %v; want Drain and no job", res, err)
		}
		hb, err := v.e.Heartbeat(ctx, waiter.ID, []store.HeartbeatLease{{JobID: j.ID, Token: released.Token}})
		if err != nil || !hb.Drain || len(hb.Leases) != 1 || !hb.Leases[0].OK {
			t.Errorf("Heartbeat by a draining worker = %+v, %v; want its lease kept and Drain", hb, err)
		}
		// The old holder's token is stale.
		if hb, err := v.e.Heartbeat(ctx, waiter.ID, []store.HeartbeatLease{{JobID: j.ID, Token: l.Token}}); err != nil || hb.Leases[0].OK {
			t.Errorf("Heartbeat with a stale token = %+v, %v; want not OK", hb, err)
		}
	})
}

func TestRegisterWorker(t *testing.T) {
	tests := []struct {
		ask, want time.Duration
	}{
		{0, 30 * time.Second},
		{100 * time.Millisecond, time.Second},
		{5 * time.Second, 5 * time.Second},
		{2 * time.Hour, time.Hour},
	}
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		for _, tt := range tests {
			w := v.register(job.Worker{Name: "w", LeaseTTL: tt.ask})
			if w.LeaseTTL != tt.want || w.ID == "" || w.State != job.WorkerActive {
				t.Errorf("RegisterWorker(TTL %v) = TTL %v id %q state %s, want TTL %v, an id, active", tt.ask, w.LeaseTTL, w.ID, w.State, tt.want)
			}
			if got := v.e.HeartbeatInterval(w.LeaseTTL); got != w.LeaseTTL/3 {
				t.Errorf("HeartbeatInterval(%v) = %v, want %v", w.LeaseTTL, got, w.LeaseTTL/3)
			}
		}
		if _, err := v.e.RegisterWorker(t.Context(), &job.Worker{Queues: []string{"bad queue"}}); err == nil {
			t.Error("RegisterWorker with a bad queue name succeeded")
		}
	})
}

func TestListWorkersAndLost(t *testing.T) {
	run(t, engine.Config{WorkerLostAfter: 30 * time.Second}, func(t *testing.T, v *env) {
		ctx := t.Context()
		a := v.register(job.Worker{Tenant: "a", Name: "a1"})
		b := v.register(job.Worker{Tenant: "b", Name: "b1"})
		long := v.register(job.Worker{Tenant: "b", Name: "b2", LeaseTTL: 10 * time.Minute})

		names := func(tenant string) []string {
			ws, err := v.e.ListWorkers(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, w := range ws {
				out = append(out, w.Name+":"+w.State)
			}
			return out
		}
		if diff := cmp.Diff([]string{"b1:active", "b2:active"}, names("b")); diff != "" {
			t.Errorf("ListWorkers(b) (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"a1:active", "b1:active", "b2:active"}, names("")); diff != "" {
			t.Errorf("ListWorkers(admin) (-want +got):\n%s", diff)
		}

		// a keeps long-polling; b falls silent; long has a 10m lease TTL.
		c := v.leaseAsync(ctx, a.ID, 1, 40*time.Second)
		settle(31 * time.Second)
		if diff := cmp.Diff([]string{"a1:active", "b1:lost", "b2:active"}, names("")); diff != "" {
			t.Errorf("ListWorkers after 31s (-want +got):\n%s", diff)
		}
		if _, err := v.e.Lease(ctx, b.ID, 1, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lease by a lost worker error = %v, want ErrNotFound", err)
		}
		if _, err := v.e.Lease(ctx, long.ID, 1, 0); err != nil {
			t.Errorf("Lease by a worker with a long TTL: %v", err)
		}
		if _, err := v.e.Lease(ctx, "no-such-worker", 1, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lease by an unknown worker error = %v, want ErrNotFound", err)
		}
		settle(10 * time.Second)
		if !c.returned() || c.err != nil {
			t.Errorf("long poll = %+v, %v", c.res, c.err)
		}
	})
}

func TestQueuePause(t *testing.T) {
	run(t, engine.Config{LeasePollInterval: time.Hour}, func(t *testing.T, v *env) {
		ctx := t.Context()
		w := v.register(job.Worker{})
		if q, err := v.e.PauseQueue(ctx, "acme", "mail"); err != nil || !q.Paused {
			t.Fatalf("PauseQueue = %+v, %v", q, err)
		}
		j := v.submit(job.Spec{Type: "a", Tenant: "acme", Queue: "mail"})
		c := v.leaseAsync(ctx, w.ID, 1, time.Hour)
		if c.returned() {
			t.Fatalf("Lease from a paused queue = %+v, %v", c.res, c.err)
		}
		if q, err := v.e.ResumeQueue(ctx, "acme", "mail"); err != nil || q.Paused {
			t.Fatalf("ResumeQueue = %+v, %v", q, err)
		}
		if !c.returned() || len(c.res.Jobs) != 1 || c.res.Jobs[0].ID != j.ID {
			t.Fatalf("Lease after resume = %+v, %v; want job %s", c.res, c.err, j.ID)
		}
		qs, err := v.e.ListQueues(ctx, "acme")
		if err != nil || len(qs) != 1 || qs[0].Name != "mail" || qs[0].Counts[gantry.StateRunning] != 1 {
			t.Errorf("ListQueues = %+v, %v; want mail with 1 running", qs, err)
		}
		if _, err := v.e.PauseQueue(ctx, "acme", "bad name"); err == nil {
			t.Error("PauseQueue with a bad name succeeded")
		}
	})
}

// TestSlowSubscriberDoesNotBlock fills a subscription nobody reads while
// jobs run, then reads it: every event arrives, in order.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	run(t, engine.Config{EventBuffer: 2}, func(t *testing.T, v *env) {
		sub, err := v.e.Subscribe(t.Context(), event.Filter{}, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		synctest.Wait()
		w := v.register(job.Worker{})
		const n = 40
		for range n {
			v.submit(job.Spec{Type: "a"})
			v.report(w.ID, succeeded(v.leaseOne(w.ID), `1`))
		}
		var kinds []string
		last := int64(0)
		for len(kinds) < 3*n {
			select {
			case ev := <-sub.C():
				if ev.Seq <= last {
					t.Fatalf("event seq %d after %d", ev.Seq, last)
				}
				last = ev.Seq
				kinds = append(kinds, ev.Kind)
			case <-time.After(time.Minute):
				t.Fatalf("got %d of %d events", len(kinds), 3*n)
			}
		}
		for i := 0; i < len(kinds); i += 3 {
			if diff := cmp.Diff([]string{job.EventSubmitted, job.EventStarted, job.EventSucceeded}, kinds[i:i+3]); diff != "" {
				t.Fatalf("events of job %d (-want +got):\n%s", i/3, diff)
			}
		}
	})
}
