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

// TestPoisonJob: a job whose worker dies on every attempt (it never
// heartbeats nor reports) is failed by the rescuer after exactly
// max_attempts attempts (RELIABILITY.md rule 5).
func TestPoisonJob(t *testing.T) {
	run(t, engine.Config{RescueInterval: time.Second}, func(t *testing.T, v *env) {
		ctx := t.Context()
		j := v.submit(job.Spec{Type: "poison", MaxAttempts: 3})
		w := v.register(job.Worker{LeaseTTL: 2 * time.Second})
		leases := 0
		for {
			res, err := v.e.Lease(ctx, w.ID, 1, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Jobs) == 0 {
				break
			}
			leases++
			if leases > 3 {
				t.Fatalf("leased %d times, max_attempts is 3", leases)
			}
		}
		got := v.get(j.ID)
		if got.State != gantry.StateFailed || leases != 3 {
			t.Errorf("after %d leases state = %s, want 3 leases and failed", leases, got.State)
		}
		var outcomes []string
		for _, a := range got.Attempts {
			outcomes = append(outcomes, a.Outcome)
		}
		if diff := cmp.Diff([]string{job.OutcomeExpired, job.OutcomeExpired, job.OutcomeExpired}, outcomes); diff != "" {
			t.Errorf("attempt outcomes (-want +got):\n%s", diff)
		}
	})
}

// TestRescueTiming: an expired lease is re-leased within TTL + the rescue
// interval, and a heartbeating one never is.
func TestRescueTiming(t *testing.T) {
	run(t, engine.Config{RescueInterval: time.Second, LeasePollInterval: time.Hour}, func(t *testing.T, v *env) {
		ctx := t.Context()
		dead := v.register(job.Worker{LeaseTTL: 3 * time.Second})
		alive := v.register(job.Worker{LeaseTTL: 3 * time.Second})
		lost := v.submit(job.Spec{Type: "a"})
		kept := v.submit(job.Spec{Type: "a"})
		l1 := v.leaseOne(dead.ID)
		l2 := v.leaseOne(alive.ID)
		if l1.ID != lost.ID || l2.ID != kept.ID {
			t.Fatal("jobs leased out of order")
		}
		other := v.register(job.Worker{})
		leasedAt := time.Now()
		c := v.leaseAsync(ctx, other.ID, 1, time.Hour)
		for range 4 {
			settle(time.Second)
			if _, err := v.e.Heartbeat(ctx, alive.ID, []store.HeartbeatLease{{JobID: kept.ID, Token: l2.Token}}); err != nil {
				t.Fatal(err)
			}
		}
		if !c.returned() || len(c.res.Jobs) != 1 || c.res.Jobs[0].ID != lost.ID {
			t.Fatalf("waiting lease = %+v, %v; want the lost job re-leased", c.res, c.err)
		}
		if took := time.Since(leasedAt); took > 3*time.Second+time.Second {
			t.Errorf("re-leased after %v, want within TTL + rescue interval", took)
		}
		if s := v.get(kept.ID).State; s != gantry.StateRunning {
			t.Errorf("heartbeating job state = %s, want running", s)
		}
	})
}

// TestStartupGrace: after a restart, leases that expired while the server
// was down get one TTL of grace to be renewed (RELIABILITY.md rule 6).
func TestStartupGrace(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		cfg := engine.Config{RescueInterval: time.Second, Logger: testLogger(t)}
		first := engine.New(st, cfg)
		first.Start(context.Background())
		v := &env{t: t, st: st, e: first}
		w := v.register(job.Worker{LeaseTTL: 10 * time.Second})
		renewed := v.submit(job.Spec{Type: "a"})
		abandoned := v.submit(job.Spec{Type: "a"})
		leases := v.lease(w.ID, 2)
		if len(leases) != 2 {
			t.Fatalf("leased %d jobs, want 2", len(leases))
		}
		first.Close()

		time.Sleep(time.Hour) // the server is down; the leases expire

		second := engine.New(st, cfg)
		second.Start(context.Background())
		defer second.Close()
		v.e = second
		settle(5 * time.Second)
		for _, id := range []string{renewed.ID, abandoned.ID} {
			if s := v.get(id).State; s != gantry.StateRunning {
				t.Fatalf("job %s state %s 5s after the restart, want running (grace)", id, s)
			}
		}
		hb, err := second.Heartbeat(t.Context(), w.ID, []store.HeartbeatLease{{JobID: leases[0].ID, Token: leases[0].Token}})
		if err != nil || len(hb.Leases) != 1 || !hb.Leases[0].OK {
			t.Fatalf("Heartbeat in the grace period = %+v, %v; want OK", hb, err)
		}
		settle(6 * time.Second)
		if s := v.get(renewed.ID).State; s != gantry.StateRunning {
			t.Errorf("renewed job state = %s, want running", s)
		}
		got := v.get(abandoned.ID)
		if got.State != gantry.StateQueued || got.Attempts[0].Outcome != job.OutcomeExpired {
			t.Errorf("abandoned job = %s, attempts %+v; want queued after an expired attempt", got.State, got.Attempts)
		}
		if up := second.UpSince(); !up.Equal(time.Now().Add(-11 * time.Second)) {
			t.Errorf("UpSince = %v, want the second start", up)
		}
	})
}

func TestRetention(t *testing.T) {
	cfg := engine.Config{
		RetentionInterval: time.Minute,
		EventRetention:    time.Hour,
		// Less polling over the day this test sleeps.
		EventPollInterval: time.Minute,
		PromoteInterval:   time.Minute,
		RescueInterval:    time.Minute,
		CronInterval:      time.Minute,
		JobRetention:      24 * time.Hour,
	}
	run(t, cfg, func(t *testing.T, v *env) {
		ctx := t.Context()
		w := v.register(job.Worker{})
		done := v.submit(job.Spec{Type: "a"})
		v.report(w.ID, succeeded(v.leaseOne(w.ID), `1`))
		_, newest, err := v.st.EventBounds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		settle(2 * time.Hour)
		if _, err := v.e.Subscribe(ctx, event.Filter{}, 0); !errors.Is(err, event.ErrTooOld) {
			t.Errorf("Subscribe after retention error = %v, want ErrTooOld", err)
		}
		sub, err := v.e.Subscribe(ctx, event.Filter{}, newest)
		if err != nil {
			t.Errorf("Subscribe from the newest event: %v", err)
		} else {
			sub.Close()
		}
		if _, err := v.e.GetJob(ctx, "", done.ID); err != nil {
			t.Errorf("job deleted before JobRetention: %v", err)
		}
		settle(23 * time.Hour)
		if _, err := v.e.GetJob(ctx, "", done.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetJob after JobRetention error = %v, want ErrNotFound", err)
		}
		ws, err := v.e.ListWorkers(ctx, "")
		if err != nil || len(ws) != 0 {
			t.Errorf("ListWorkers a day after the worker left = %d workers, %v; want it pruned", len(ws), err)
		}
	})
}
