package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testLease(t *testing.T, newStore newStoreFunc) {
	t.Run("GrantsLease", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		rec := h.submit(t0, job.Spec{
			Tenant: tenantA, Type: "render", Name: "page", Queue: "q", Priority: 3,
			Params: json.RawMessage(`{"page":1}`), MaxAttempts: 4, Timeout: time.Minute,
			Tags: []string{"x"}, Metadata: map[string]string{"k": "v"},
		})
		now := at(5 * time.Second)
		leaseTTL := 45 * time.Second
		got := h.leaseType(now, w, "render", leaseTTL)
		if got.Token <= 0 {
			t.Errorf("leased job's token = %d, want > 0", got.Token)
		}
		want := clone(rec)
		want.State = gantry.StateRunning
		want.Attempt = 1
		want.WorkerID = w
		want.StartedAt = now
		want.LeaseExpiresAt = now.Add(leaseTTL)
		want.LeaseTTL = leaseTTL
		want.Token = got.Token
		if diff := cmp.Diff(want, got, cmpOpts, ignoreAttempts); diff != "" {
			t.Errorf("LeaseJobs result mismatch (-want +got):\n%s", diff)
		}
		want.Attempts = []job.Attempt{{Attempt: 1, WorkerID: w, Token: got.Token, StartedAt: now}}
		if diff := cmp.Diff(want, h.get(rec.ID), cmpOpts); diff != "" {
			t.Errorf("GetJob after lease mismatch (-want +got):\n%s", diff)
		}
		h.wantEvent(want, job.EventStarted, now)
	})

	t.Run("PriorityThenOldest", func(t *testing.T) {
		prios := []int{0, 10, -5, 10, 0, 100, -100}
		// Indexes into prios, in the order the jobs must be leased.
		order := []int{5, 1, 3, 0, 4, 2, 6}
		setup := func(t *testing.T) (*harness, string, []*job.Job) {
			h := begin(t, newStore)
			w := h.worker(t0)
			var jobs []*job.Job
			for i, p := range prios {
				jobs = append(jobs, h.submit(at(time.Duration(i)*time.Second), job.Spec{Type: "t", Priority: p}))
			}
			return h, w, jobs
		}
		t.Run("OneByOne", func(t *testing.T) {
			h, w, jobs := setup(t)
			var want, got []string
			for i, k := range order {
				want = append(want, jobs[k].ID)
				for _, j := range h.lease(at(time.Minute+time.Duration(i)*time.Second), w, 1) {
					got = append(got, j.ID)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lease order mismatch (-want +got):\n%s", diff)
			}
		})
		t.Run("Batch", func(t *testing.T) {
			h, w, jobs := setup(t)
			got := h.lease(at(time.Minute), w, 3)
			want := []string{jobs[order[0]].ID, jobs[order[1]].ID, jobs[order[2]].ID}
			if diff := cmp.Diff(want, ids(got), sortStrings); diff != "" {
				t.Errorf("LeaseJobs(Max 3) chose other jobs (-want +got):\n%s", diff)
			}
		})
		t.Run("SameCreationTime", func(t *testing.T) {
			// Jobs inserted in one call lease in insertion (ID) order.
			h := begin(t, newStore)
			w := h.worker(t0)
			jobs := h.insert(t0, job.Spec{Type: "t"}, job.Spec{Type: "t"}, job.Spec{Type: "t"}, job.Spec{Type: "t"})
			var got []string
			for range jobs {
				got = append(got, ids(h.lease(at(time.Second), w, 1))...)
			}
			if diff := cmp.Diff(ids(jobs), got); diff != "" {
				t.Errorf("lease order of jobs inserted together mismatch (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("MaxRespected", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		for i := range 5 {
			h.submit(at(time.Duration(i)*time.Millisecond), job.Spec{Type: "t"})
		}
		var got []int
		seen := map[string]bool{}
		for i := range 4 {
			jobs := h.lease(at(time.Second+time.Duration(i)*time.Second), w, 2)
			got = append(got, len(jobs))
			for _, j := range jobs {
				if seen[j.ID] {
					t.Errorf("job %s leased twice", j.ID)
				}
				seen[j.ID] = true
			}
		}
		if diff := cmp.Diff([]int{2, 2, 1, 0}, got); diff != "" {
			t.Errorf("jobs leased per call with Max 2 mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		type def struct {
			tenant, queue, typ string
		}
		defs := []def{
			{tenantA, "q1", "x"}, {tenantA, "q2", "x"}, {tenantA, "q3", "y"},
			{tenantB, "q1", "y"}, {tenantB, "q2", "z"}, {tenantA, "q1", "y"},
		}
		tests := []struct {
			name   string
			tenant string
			queues []string
			types  []string
			want   []int // indexes into defs
		}{
			{name: "None", want: []int{0, 1, 2, 3, 4, 5}},
			{name: "OneQueue", queues: []string{"q1"}, want: []int{0, 3, 5}},
			{name: "TwoQueues", queues: []string{"q1", "q3"}, want: []int{0, 2, 3, 5}},
			{name: "UnknownQueue", queues: []string{"nope"}},
			{name: "OneType", types: []string{"y"}, want: []int{2, 3, 5}},
			{name: "TwoTypes", types: []string{"x", "z"}, want: []int{0, 1, 4}},
			{name: "QueueAndType", queues: []string{"q1"}, types: []string{"y"}, want: []int{3, 5}},
			{name: "Tenant", tenant: tenantA, want: []int{0, 1, 2, 5}},
			{name: "OtherTenant", tenant: tenantB, want: []int{3, 4}},
			{name: "UnknownTenant", tenant: "initech"},
			{name: "TenantQueueType", tenant: tenantA, queues: []string{"q1", "q2"}, types: []string{"x"}, want: []int{0, 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				w := h.worker(t0)
				var jobs []*job.Job
				for i, d := range defs {
					jobs = append(jobs, h.submit(at(time.Duration(i)*time.Second), job.Spec{Tenant: d.tenant, Queue: d.queue, Type: d.typ}))
				}
				got := h.leaseP(&store.LeaseJobsParams{Now: at(time.Minute), WorkerID: w, Tenant: tt.tenant, Queues: tt.queues, Types: tt.types, Max: 100, TTL: ttl})
				var want []string
				for _, k := range tt.want {
					want = append(want, jobs[k].ID)
				}
				if diff := cmp.Diff(want, ids(got), sortStrings, equateEmpty()); diff != "" {
					t.Errorf("LeaseJobs(tenant %q, queues %v, types %v) mismatch (-want +got):\n%s", tt.tenant, tt.queues, tt.types, diff)
				}
			})
		}
	})

	t.Run("PausedQueue", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		if _, err := h.s.SetQueuePaused(t.Context(), tenantA, "q1", true); err != nil {
			t.Fatalf("SetQueuePaused: %v", err)
		}
		paused := h.submit(t0, job.Spec{Tenant: tenantA, Queue: "q1", Type: "t"})
		otherTenant := h.submit(t0, job.Spec{Tenant: tenantB, Queue: "q1", Type: "t"})
		otherQueue := h.submit(t0, job.Spec{Tenant: tenantA, Queue: "q2", Type: "t"})
		got := h.lease(at(time.Second), w, 100)
		if diff := cmp.Diff([]string{otherTenant.ID, otherQueue.ID}, ids(got), sortStrings); diff != "" {
			t.Errorf("LeaseJobs with %s/q1 paused mismatch (-want +got):\n%s", tenantA, diff)
		}
		if got := h.leaseP(&store.LeaseJobsParams{Now: at(2 * time.Second), WorkerID: w, Tenant: tenantA, Queues: []string{"q1"}, Max: 10, TTL: ttl}); len(got) != 0 {
			t.Errorf("LeaseJobs(paused queue) leased %v", ids(got))
		}
		if _, err := h.s.SetQueuePaused(t.Context(), tenantA, "q1", false); err != nil {
			t.Fatalf("SetQueuePaused(false): %v", err)
		}
		got = h.lease(at(3*time.Second), w, 100)
		if diff := cmp.Diff([]string{paused.ID}, ids(got)); diff != "" {
			t.Errorf("LeaseJobs after resume mismatch (-want +got):\n%s", diff)
		}
		// Pausing a queue that has queued jobs stops them too.
		later := h.submit(at(4*time.Second), job.Spec{Tenant: tenantB, Queue: "q9", Type: "t"})
		if _, err := h.s.SetQueuePaused(t.Context(), tenantB, "q9", true); err != nil {
			t.Fatalf("SetQueuePaused: %v", err)
		}
		if got := h.lease(at(5*time.Second), w, 100); len(got) != 0 {
			t.Errorf("LeaseJobs leased %v from a queue paused after they were queued", ids(got))
		}
		if s := h.state(later.ID); s != gantry.StateQueued {
			t.Errorf("job of a paused queue is %s, want queued", s)
		}
	})

	// A worker whose filter matched one queue at its last claim must still
	// see the queue paused, a second queue appear, and its own draining
	// (a store may claim on a guess of the queue, checked as it claims).
	t.Run("FilterOfOneQueueSeesChanges", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		lease := func(now time.Time) []*job.Job {
			return h.leaseP(&store.LeaseJobsParams{Now: now, WorkerID: w, Tenant: tenantA, Max: 10, TTL: ttl})
		}
		first := h.submit(t0, job.Spec{Tenant: tenantA, Queue: "q1", Type: "t"})
		if diff := cmp.Diff([]string{first.ID}, ids(lease(at(time.Second)))); diff != "" {
			t.Fatalf("first lease mismatch (-want +got):\n%s", diff)
		}
		if _, err := h.s.SetQueuePaused(t.Context(), tenantA, "q1", true); err != nil {
			t.Fatal(err)
		}
		second := h.submit(at(2*time.Second), job.Spec{Tenant: tenantA, Queue: "q1", Type: "t"})
		if got := lease(at(3 * time.Second)); len(got) != 0 {
			t.Errorf("leased %v from a paused queue", ids(got))
		}
		if _, err := h.s.SetQueuePaused(t.Context(), tenantA, "q1", false); err != nil {
			t.Fatal(err)
		}
		// A second queue of the tenant, with a job that goes first.
		urgent := h.submit(at(4*time.Second), job.Spec{Tenant: tenantA, Queue: "q2", Type: "t", Priority: 10})
		if diff := cmp.Diff([]string{urgent.ID}, ids(h.leaseP(&store.LeaseJobsParams{Now: at(5 * time.Second), WorkerID: w, Tenant: tenantA, Max: 1, TTL: ttl}))); diff != "" {
			t.Errorf("lease after a second queue appeared mismatch (-want +got):\n%s", diff)
		}
		if _, err := h.s.DrainWorker(t.Context(), w, at(6*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := lease(at(7 * time.Second)); len(got) != 0 {
			t.Errorf("a draining worker leased %v", ids(got))
		}
		if s := h.state(second.ID); s != gantry.StateQueued {
			t.Errorf("job is %s, want queued", s)
		}
	})

	t.Run("AttemptsAndTokensAcrossLeases", func(t *testing.T) {
		h := begin(t, newStore)
		w1, w2, w3 := h.worker(t0), h.worker(t0), h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 5})

		// Attempt 1 fails and is retried after its backoff.
		l1 := h.leaseJob(at(1*time.Second), w1, j)
		h.mustFinish(at(2*time.Second), store.Outcome{JobID: j.ID, Token: l1.Token, Outcome: job.OutcomeFailed, Error: "e1", Retryable: true})
		if n, _ := h.promote(at(2*time.Second+backoff(1)), 10); n != 1 {
			t.Fatalf("PromoteDue promoted %d jobs, want 1", n)
		}
		// Attempt 2 is lost and rescued.
		t2 := at(time.Minute)
		l2 := h.leaseJob(t2, w2, j)
		if got := h.rescue(t2.Add(ttl)); len(got) != 1 {
			t.Fatalf("RescueExpired rescued %d jobs, want 1", len(got))
		}
		// Attempt 3 runs.
		t3 := at(2 * time.Minute)
		l3 := h.leaseJob(t3, w3, j)

		if got := []int{l1.Attempt, l2.Attempt, l3.Attempt}; !cmp.Equal(got, []int{1, 2, 3}) {
			t.Errorf("attempts of successive leases = %v, want [1 2 3]", got)
		}
		if !(l1.Token < l2.Token && l2.Token < l3.Token) {
			t.Errorf("tokens of successive leases = %d, %d, %d; want strictly increasing", l1.Token, l2.Token, l3.Token)
		}
		want := []job.Attempt{
			{Attempt: 1, WorkerID: w1, Token: l1.Token, StartedAt: at(1 * time.Second), FinishedAt: at(2 * time.Second), Outcome: job.OutcomeFailed, Error: "e1"},
			{Attempt: 2, WorkerID: w2, Token: l2.Token, StartedAt: t2, FinishedAt: t2.Add(ttl), Outcome: job.OutcomeExpired},
			{Attempt: 3, WorkerID: w3, Token: l3.Token, StartedAt: t3},
		}
		if diff := cmp.Diff(want, sansLossErrors(h.get(j.ID).Attempts), cmpOpts); diff != "" {
			t.Errorf("attempt history mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Singleton", func(t *testing.T) {
		t.Run("OneRunningPerKeyAndTenant", func(t *testing.T) {
			h := begin(t, newStore)
			w := h.worker(t0)
			a := h.submit(at(1*time.Second), job.Spec{Tenant: tenantA, Type: "t", SingletonKey: "k"})
			b := h.submit(at(2*time.Second), job.Spec{Tenant: tenantA, Type: "t", SingletonKey: "k"})
			c := h.submit(at(3*time.Second), job.Spec{Tenant: tenantB, Type: "t", SingletonKey: "k"})
			d := h.submit(at(4*time.Second), job.Spec{Tenant: tenantA, Type: "t"})
			e := h.submit(at(5*time.Second), job.Spec{Tenant: tenantA, Type: "t", SingletonKey: "other"})
			got := h.lease(at(time.Minute), w, 10)
			if diff := cmp.Diff([]string{a.ID, c.ID, d.ID, e.ID}, ids(got), sortStrings); diff != "" {
				t.Errorf("first LeaseJobs mismatch (-want +got):\n%s", diff)
			}
			if got := h.lease(at(2*time.Minute), w, 10); len(got) != 0 {
				t.Errorf("LeaseJobs leased %v while singleton key k is running", ids(got))
			}
			la := got[0]
			for _, l := range got {
				if l.ID == a.ID {
					la = l
				}
			}
			h.mustFinish(at(3*time.Minute), store.Outcome{JobID: a.ID, Token: la.Token, Outcome: job.OutcomeSucceeded})
			got = h.lease(at(4*time.Minute), w, 10)
			if diff := cmp.Diff([]string{b.ID}, ids(got)); diff != "" {
				t.Errorf("LeaseJobs after the singleton finished mismatch (-want +got):\n%s", diff)
			}
		})
		t.Run("AcrossCalls", func(t *testing.T) {
			h := begin(t, newStore)
			w := h.worker(t0)
			a := h.submit(at(1*time.Second), job.Spec{Type: "t", SingletonKey: "k", Priority: 1})
			b := h.submit(at(2*time.Second), job.Spec{Type: "t", SingletonKey: "k"})
			if got := h.lease(at(time.Minute), w, 1); len(got) != 1 || got[0].ID != a.ID {
				t.Fatalf("LeaseJobs(Max 1) = %v, want [%s]", ids(got), a.ID)
			}
			if got := h.lease(at(time.Minute), w, 10); len(got) != 0 {
				t.Errorf("LeaseJobs leased %v while %s holds the singleton key", ids(got), a.ID)
			}
			// A failed attempt releases the key: the next one may run.
			l := h.get(a.ID)
			h.mustFinish(at(2*time.Minute), store.Outcome{JobID: a.ID, Token: l.Token, Outcome: job.OutcomeFailed, Retryable: true})
			if got := h.lease(at(2*time.Minute), w, 10); len(got) != 1 || got[0].ID != b.ID {
				t.Errorf("LeaseJobs after the holder failed = %v, want [%s]", ids(got), b.ID)
			}
		})
		t.Run("ReleasedByRescue", func(t *testing.T) {
			h := begin(t, newStore)
			w := h.worker(t0)
			a := h.submit(at(1*time.Second), job.Spec{Type: "t", SingletonKey: "k", MaxAttempts: 1})
			b := h.submit(at(2*time.Second), job.Spec{Type: "t", SingletonKey: "k"})
			h.leaseJob(at(time.Minute), w, a)
			h.rescue(at(time.Minute).Add(ttl))
			if got := h.lease(at(2*time.Minute), w, 10); len(got) != 1 || got[0].ID != b.ID {
				t.Errorf("LeaseJobs after the holder's lease expired = %v, want [%s]", ids(got), b.ID)
			}
		})
	})

	t.Run("OnlyQueuedJobs", func(t *testing.T) {
		h := begin(t, newStore)
		for i, st := range gantry.States {
			if st != gantry.StateQueued {
				h.inState(t0, st, job.Spec{Type: typeN("t", i)})
			}
		}
		if got := h.lease(at(time.Second), h.worker(t0), 100); len(got) != 0 {
			var states []string
			for _, j := range got {
				states = append(states, fmt.Sprintf("%s(%s)", j.ID, h.state(j.ID)))
			}
			t.Errorf("LeaseJobs leased non-queued jobs: %v", states)
		}
	})

	t.Run("ConcurrentLeasesNeverOverlap", func(t *testing.T) {
		h := begin(t, newStore)
		const nJobs, nWorkers, max = 300, 8, 3
		specs := make([]job.Spec, nJobs)
		for i := range specs {
			specs[i] = job.Spec{Type: "t", Priority: i % 4}
		}
		jobs := h.insert(t0, specs...)
		workers := make([]string, nWorkers)
		for i := range workers {
			workers[i] = h.worker(t0)
		}
		var (
			mu     sync.Mutex
			leased = map[string]string{} // job ID -> worker
			dups   []string
			wg     sync.WaitGroup
		)
		for _, w := range workers {
			wg.Go(func() {
				for range nJobs {
					got, err := h.s.LeaseJobs(t.Context(), &store.LeaseJobsParams{Now: at(time.Second), WorkerID: w, Max: max, TTL: ttl})
					if err != nil {
						t.Errorf("LeaseJobs: %v", err)
						return
					}
					if len(got) > max {
						t.Errorf("LeaseJobs(Max %d) leased %d jobs", max, len(got))
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, j := range got {
						if prev, ok := leased[j.ID]; ok {
							dups = append(dups, fmt.Sprintf("%s to %s and %s", j.ID, prev, w))
						}
						leased[j.ID] = w
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(dups) > 0 {
			t.Errorf("jobs leased twice: %v", dups)
		}
		var missing []string
		for _, j := range jobs {
			if _, ok := leased[j.ID]; !ok {
				missing = append(missing, j.ID)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%d of %d jobs never leased: %v", len(missing), nJobs, missing)
		}
		// Every job is running, held by the worker that got it.
		for _, j := range h.listAll(store.ListJobsParams{Limit: 1000}) {
			if j.State != gantry.StateRunning || j.WorkerID != leased[j.ID] || j.Attempt != 1 {
				t.Errorf("job %s: state %s, worker %s, attempt %d; want running, %s, 1", j.ID, j.State, j.WorkerID, j.Attempt, leased[j.ID])
			}
		}
	})
}
