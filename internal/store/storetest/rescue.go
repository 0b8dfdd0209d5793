package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testRescue(t *testing.T, newStore newStoreFunc) {
	t.Run("ExpiredToQueued", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Tenant: tenantA, Type: "t", MaxAttempts: 3})
		l := h.leaseJob(t0, w, j)
		now := at(ttl)
		got := h.rescue(now)
		if len(got) != 1 || got[0].ID != j.ID {
			t.Fatalf("RescueExpired = %v, want [%s]", ids(got), j.ID)
		}
		stored := h.get(j.ID)
		if diff := cmp.Diff(stored, got[0], cmpOpts, ignoreAttempts); diff != "" {
			t.Errorf("RescueExpired's job differs from the stored one (-stored +result):\n%s", diff)
		}
		want := jobView{State: gantry.StateQueued, Attempt: 1}
		gotView := viewOf(stored)
		gotView.Error = "" // the store may say why the attempt was lost
		if diff := cmp.Diff(want, gotView, cmpOpts); diff != "" {
			t.Errorf("rescued job mismatch (-want +got):\n%s", diff)
		}
		wantAttempts := []job.Attempt{{Attempt: 1, WorkerID: w, Token: l.Token, StartedAt: t0, FinishedAt: now, Outcome: job.OutcomeExpired}}
		if diff := cmp.Diff(wantAttempts, sansLossErrors(stored.Attempts), cmpOpts); diff != "" {
			t.Errorf("attempts mismatch (-want +got):\n%s", diff)
		}
		ev := h.lastEvent(j.ID)
		if ev.Kind != job.EventRetrying || ev.State != gantry.StateQueued || ev.Attempt != 1 || !ev.At.Equal(now) || ev.Tenant != tenantA {
			t.Errorf("rescue event = %+v, want job.retrying, state queued, attempt 1, at %v, tenant %s", ev, now, tenantA)
		}
		// The job is leasable again at once; the old token is dead.
		l2 := h.leaseJob(now, w, j)
		if l2.Attempt != 2 || l2.Token <= l.Token {
			t.Errorf("re-lease after rescue: attempt %d, token %d; want 2, above %d", l2.Attempt, l2.Token, l.Token)
		}
		if r := h.finish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeSucceeded}); r.OK {
			t.Error("report with the rescued lease's token: OK true, want false")
		}
	})

	t.Run("NotYetExpired", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		h.leaseJob(t0, w, j)
		before := h.get(j.ID)
		if got := h.rescue(at(ttl - time.Millisecond)); len(got) != 0 {
			t.Errorf("RescueExpired 1ms before expiry rescued %v", ids(got))
		}
		if diff := cmp.Diff(before, h.get(j.ID), cmpOpts); diff != "" {
			t.Errorf("RescueExpired changed an unexpired job (-before +after):\n%s", diff)
		}
	})

	t.Run("OnlyRunningJobs", func(t *testing.T) {
		h := begin(t, newStore)
		var others []*job.Job
		for i, st := range gantry.States {
			others = append(others, h.inState(t0, st, job.Spec{Type: typeN("t", i)}))
		}
		got := h.rescue(at(time.Hour))
		var running string
		for _, j := range others {
			if j.State == gantry.StateRunning {
				running = j.ID
			}
		}
		if diff := cmp.Diff([]string{running}, ids(got)); diff != "" {
			t.Errorf("RescueExpired mismatch (-want +got):\n%s", diff)
		}
		for _, j := range others {
			if j.ID == running {
				continue
			}
			if diff := cmp.Diff(j, h.get(j.ID), cmpOpts); diff != "" {
				t.Errorf("RescueExpired changed a %s job (-before +after):\n%s", j.State, diff)
			}
		}
	})

	t.Run("ExhaustedToFailed", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 1})
		h.leaseJob(t0, w, j)
		now := at(time.Minute)
		got := h.rescue(now)
		if len(got) != 1 || got[0].State != gantry.StateFailed {
			t.Fatalf("RescueExpired of an exhausted job = %+v, want it failed", got)
		}
		stored := h.get(j.ID)
		if stored.State != gantry.StateFailed || !stored.FinishedAt.Equal(now) || stored.Attempts[0].Outcome != job.OutcomeExpired {
			t.Errorf("job: state %s, FinishedAt %v, attempt outcome %q; want failed, %v, expired", stored.State, stored.FinishedAt, stored.Attempts[0].Outcome, now)
		}
		if ev := h.lastEvent(j.ID); ev.Kind != job.EventFailed || ev.State != gantry.StateFailed || !ev.At.Equal(now) {
			t.Errorf("event = %+v, want job.failed, state failed at %v", ev, now)
		}
	})

	t.Run("CancelRequestedToCanceled", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 5})
		h.leaseJob(t0, w, j)
		h.cancel(at(time.Second), j.ID)
		now := at(time.Minute)
		got := h.rescue(now)
		if len(got) != 1 || got[0].State != gantry.StateCanceled {
			t.Fatalf("RescueExpired of a job with a cancel request = %+v, want it canceled", got)
		}
		stored := h.get(j.ID)
		if stored.State != gantry.StateCanceled || !stored.FinishedAt.Equal(now) || stored.Attempts[0].Outcome != job.OutcomeExpired {
			t.Errorf("job: state %s, FinishedAt %v, attempt outcome %q; want canceled, %v, expired", stored.State, stored.FinishedAt, stored.Attempts[0].Outcome, now)
		}
		if ev := h.lastEvent(j.ID); ev.Kind != job.EventCanceled || ev.State != gantry.StateCanceled || !ev.At.Equal(now) {
			t.Errorf("event = %+v, want job.canceled, state canceled at %v", ev, now)
		}
	})

	t.Run("StartupGrace", func(t *testing.T) {
		now := at(2 * time.Minute) // every lease below expired long ago
		tests := []struct {
			name    string
			upFor   time.Duration
			rescued bool
		}{
			{"JustStarted", 0, false},
			{"UpLessThanTTL", ttl - time.Second, false},
			{"UpExactlyTTL", ttl, true},
			{"UpLong", time.Hour, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				w := h.worker(t0)
				j := h.submit(t0, job.Spec{Type: "t"})
				h.leaseJob(t0, w, j)
				got := h.rescueP(&store.RescueParams{Now: now, UpSince: now.Add(-tt.upFor), Limit: 100})
				if (len(got) == 1) != tt.rescued || len(got) > 1 {
					t.Errorf("RescueExpired up for %v with a %v lease rescued %v, want rescued %v", tt.upFor, ttl, ids(got), tt.rescued)
				}
			})
		}
		t.Run("PerLeaseTTL", func(t *testing.T) {
			h := begin(t, newStore)
			w := h.worker(t0)
			short := h.submit(t0, job.Spec{Type: "short"})
			long := h.submit(t0, job.Spec{Type: "long"})
			h.leaseType(t0, w, "short", 10*time.Second)
			h.leaseType(t0, w, "long", 60*time.Second)
			now := at(70 * time.Second)
			got := h.rescueP(&store.RescueParams{Now: now, UpSince: now.Add(-20 * time.Second), Limit: 100})
			if diff := cmp.Diff([]string{short.ID}, ids(got)); diff != "" {
				t.Errorf("RescueExpired up 20s: rescued mismatch (-want +got):\n%s", diff)
			}
			if s := h.state(long.ID); s != gantry.StateRunning {
				t.Errorf("job with a 60s lease is %s after 20s of uptime, want running", s)
			}
		})
	})

	t.Run("HeartbeatWins", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		if r := h.heartbeat(at(20*time.Second), w, store.HeartbeatLease{JobID: j.ID, Token: l.Token})[0]; !r.OK {
			t.Fatal("heartbeat OK false")
		}
		if got := h.rescue(at(35 * time.Second)); len(got) != 0 {
			t.Errorf("RescueExpired after a renewal rescued %v", ids(got))
		}
		if r := h.heartbeat(at(40*time.Second), w, store.HeartbeatLease{JobID: j.ID, Token: l.Token})[0]; !r.OK {
			t.Error("heartbeat after a lost rescue race: OK false, want true")
		}
		if got := h.rescue(at(70 * time.Second)); len(got) != 1 {
			t.Errorf("RescueExpired at the renewed expiry rescued %v, want the job", ids(got))
		}
	})

	t.Run("Limit", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		for i := range 3 {
			h.submit(t0, job.Spec{Type: typeN("t", i)})
		}
		h.lease(t0, w, 10)
		var got []int
		for i := range 3 {
			got = append(got, len(h.rescueP(&store.RescueParams{Now: at(time.Minute + time.Duration(i)*time.Second), UpSince: upSince, Limit: 2})))
		}
		if diff := cmp.Diff([]int{2, 1, 0}, got); diff != "" {
			t.Errorf("jobs rescued per call with Limit 2 mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("PoisonJob", func(t *testing.T) {
		for _, maxAttempts := range []int{1, 3, 5} {
			h := begin(t, newStore)
			w := h.worker(t0)
			j := h.submit(t0, job.Spec{Type: "poison", MaxAttempts: maxAttempts})
			leases := 0
			now := t0
			for range maxAttempts + 5 {
				got := h.leaseP(&store.LeaseJobsParams{Now: now, WorkerID: w, Max: 1, TTL: ttl})
				if len(got) == 0 {
					break
				}
				leases++
				now = now.Add(ttl) // the worker dies every time
				h.rescue(now)
				now = now.Add(time.Second)
			}
			stored := h.get(j.ID)
			if leases != maxAttempts || stored.State != gantry.StateFailed || stored.Attempt != maxAttempts {
				t.Errorf("poison job with max_attempts %d: leased %d times, ends %s at attempt %d; want %d leases, failed", maxAttempts, leases, stored.State, stored.Attempt, maxAttempts)
			}
			if n := len(stored.Attempts); n != maxAttempts {
				t.Errorf("poison job with max_attempts %d: %d attempts recorded", maxAttempts, n)
			}
		}
	})

	t.Run("RacesWithFinish", func(t *testing.T) {
		// Reports and the rescuer race on leases that just expired: for
		// each job exactly one of them wins, and the job shows that one.
		h := begin(t, newStore)
		w := h.worker(t0)
		const n = 30
		specs := make([]job.Spec, n)
		for i := range specs {
			specs[i] = job.Spec{Type: "t", MaxAttempts: 5}
		}
		h.insert(t0, specs...)
		leases := h.lease(t0, w, n)
		if len(leases) != n {
			t.Fatalf("leased %d jobs, want %d", len(leases), n)
		}
		now := at(ttl)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			finished = map[string]bool{}
			rescued  = map[string]bool{}
		)
		for _, l := range leases {
			wg.Go(func() {
				res, err := h.s.FinishJobs(t.Context(), &store.FinishJobsParams{Now: now, Backoff: backoff, Outcomes: []store.Outcome{{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded}}})
				if err != nil {
					t.Errorf("FinishJobs: %v", err)
					return
				}
				mu.Lock()
				finished[l.ID] = res[0].OK
				mu.Unlock()
			})
		}
		for range 3 {
			wg.Go(func() {
				got, err := h.s.RescueExpired(t.Context(), &store.RescueParams{Now: now, UpSince: upSince, Limit: 10})
				if err != nil {
					t.Errorf("RescueExpired: %v", err)
					return
				}
				mu.Lock()
				for _, j := range got {
					if rescued[j.ID] {
						t.Errorf("job %s rescued twice", j.ID)
					}
					rescued[j.ID] = true
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		for _, l := range leases {
			j := h.get(l.ID)
			switch {
			case finished[l.ID] == rescued[l.ID]:
				t.Errorf("job %s: report accepted %v, rescued %v; want exactly one", l.ID, finished[l.ID], rescued[l.ID])
			case finished[l.ID] && (j.State != gantry.StateSucceeded || j.Attempts[0].Outcome != job.OutcomeSucceeded):
				t.Errorf("job %s: report accepted but state %s, attempt outcome %q", l.ID, j.State, j.Attempts[0].Outcome)
			case rescued[l.ID] && (j.State != gantry.StateQueued || j.Attempts[0].Outcome != job.OutcomeExpired):
				t.Errorf("job %s: rescued but state %s, attempt outcome %q", l.ID, j.State, j.Attempts[0].Outcome)
			}
		}
	})
}
