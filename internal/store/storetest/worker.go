package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// ignoreIdleSince leaves IdleSince, which the store may derive, out of
// worker comparisons.
var ignoreIdleSince = cmpopts.IgnoreFields(job.Worker{}, "IdleSince")

// sortJobIDs compares Worker.JobIDs as sets.
var sortJobIDs = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// fullWorker returns a worker record with every field set.
func fullWorker(now time.Time, tenant, name string) *job.Worker {
	return &job.Worker{
		ID: job.NewID(now), Tenant: tenant, Name: name, Host: "node-7.example",
		Types: []string{"render", "email"}, Queues: []string{"q1"}, Capacity: 8,
		Labels: map[string]string{"zone": "eu-1", "gpu": "yes"}, LeaseTTL: 45 * time.Second,
		State: job.WorkerActive, CreatedAt: now, LastSeen: now,
	}
}

func (h *harness) register(w *job.Worker) {
	h.t.Helper()
	if err := h.s.RegisterWorker(h.t.Context(), w); err != nil {
		h.t.Fatalf("RegisterWorker: %v", err)
	}
}

// getWorker returns GetWorker's answer, after checking that LookupWorker
// gives the same worker without its jobs.
func (h *harness) getWorker(id string) *job.Worker {
	h.t.Helper()
	w, err := h.s.GetWorker(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("GetWorker(%s): %v", id, err)
	}
	l, err := h.s.LookupWorker(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("LookupWorker(%s): %v", id, err)
	}
	want := *w
	want.Running, want.JobIDs = 0, nil
	if diff := cmp.Diff(&want, l, cmpOpts, ignoreIdleSince); diff != "" {
		h.t.Errorf("LookupWorker(%s) is not GetWorker without the jobs (-want +got):\n%s", id, diff)
	}
	return w
}

func testWorker(t *testing.T, newStore newStoreFunc) {
	t.Run("RegisterAndGet", func(t *testing.T) {
		h := begin(t, newStore)
		want := fullWorker(t0, tenantA, "renderer")
		h.register(want)
		if diff := cmp.Diff(want, h.getWorker(want.ID), cmpOpts, ignoreIdleSince); diff != "" {
			t.Errorf("GetWorker mismatch (-want +got):\n%s", diff)
		}
		_, err := h.s.GetWorker(t.Context(), job.NewID(t0))
		wantErr(t, "GetWorker(unknown)", err, store.ErrNotFound)
		_, err = h.s.LookupWorker(t.Context(), job.NewID(t0))
		wantErr(t, "LookupWorker(unknown)", err, store.ErrNotFound)
	})

	t.Run("SightingsWithinSlackAreNotRewritten", func(t *testing.T) {
		// A worker's row records its sightings (leases, finishes,
		// heartbeats) to within a tenth of its lease TTL, at most a
		// second: closer ones are not written.
		h := begin(t, newStore)
		w := h.worker(t0) // lease TTL ttl: slack min(ttl/10, 1s)
		slack := min(ttl/10, time.Second)
		a := h.submit(t0, job.Spec{Type: "a"})
		b := h.submit(t0, job.Spec{Type: "b"})
		c := h.submit(t0, job.Spec{Type: "c"})
		h.leaseJob(at(slack/2), w, a)
		if got := h.getWorker(w).LastSeen; !got.Equal(t0) {
			t.Errorf("after a lease %v after registering: LastSeen = %v, want unchanged %v", slack/2, got, t0)
		}
		h.leaseJob(at(2*slack), w, b)
		if got := h.getWorker(w).LastSeen; !got.Equal(at(2 * slack)) {
			t.Errorf("after a lease %v after registering: LastSeen = %v, want %v", 2*slack, got, at(2*slack))
		}
		lc := h.leaseJob(at(2*slack+slack/2), w, c)
		if got := h.getWorker(w).LastSeen; !got.Equal(at(2 * slack)) {
			t.Errorf("after a lease within the slack of the last sighting: LastSeen = %v, want unchanged %v", got, at(2*slack))
		}
		h.mustFinish(at(4*slack), store.Outcome{JobID: lc.ID, Token: lc.Token, Outcome: job.OutcomeSucceeded})
		if got := h.getWorker(w).LastSeen; !got.Equal(at(4 * slack)) {
			t.Errorf("after a finish past the slack: LastSeen = %v, want %v", got, at(4*slack))
		}
	})

	t.Run("JobsHeld", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		other := h.worker(t0)
		a := h.submit(t0, job.Spec{Type: "a"})
		b := h.submit(t0, job.Spec{Type: "b"})
		c := h.submit(t0, job.Spec{Type: "c"})
		la := h.leaseJob(at(time.Second), w, a)
		h.leaseJob(at(time.Second), w, b)
		h.leaseJob(at(time.Second), other, c)
		check := func(when string, want []string) {
			t.Helper()
			got := h.getWorker(w)
			if diff := cmp.Diff(want, got.JobIDs, sortJobIDs, equateEmpty()); diff != "" || got.Running != len(want) {
				t.Errorf("%s: GetWorker running %d, jobs (-want +got):\n%s", when, got.Running, diff)
			}
			if len(want) > 0 && !got.IdleSince.IsZero() {
				t.Errorf("%s: IdleSince = %v while the worker holds jobs, want zero", when, got.IdleSince)
			}
			ws, err := h.s.ListWorkers(t.Context(), "")
			if err != nil {
				t.Fatalf("ListWorkers: %v", err)
			}
			for _, lw := range ws {
				if lw.ID == w {
					if diff := cmp.Diff(want, lw.JobIDs, sortJobIDs, equateEmpty()); diff != "" || lw.Running != len(want) {
						t.Errorf("%s: ListWorkers running %d, jobs (-want +got):\n%s", when, lw.Running, diff)
					}
				}
			}
		}
		check("after leasing two", []string{a.ID, b.ID})
		h.mustFinish(at(2*time.Second), store.Outcome{JobID: a.ID, Token: la.Token, Outcome: job.OutcomeSucceeded})
		check("after one finished", []string{b.ID})
		h.rescue(at(time.Hour))
		check("after its lease expired", nil)
	})

	t.Run("ListWorkers", func(t *testing.T) {
		h := begin(t, newStore)
		w1 := fullWorker(at(1*time.Second), tenantA, "one")
		w2 := fullWorker(at(2*time.Second), tenantB, "two")
		w3 := fullWorker(at(3*time.Second), tenantA, "three")
		for _, w := range []*job.Worker{w1, w2, w3} {
			h.register(w)
		}
		tests := []struct {
			tenant string
			want   []*job.Worker
		}{
			{"", []*job.Worker{w1, w2, w3}},
			{tenantA, []*job.Worker{w1, w3}},
			{tenantB, []*job.Worker{w2}},
			{"initech", nil},
		}
		for _, tt := range tests {
			got, err := h.s.ListWorkers(t.Context(), tt.tenant)
			if err != nil {
				t.Fatalf("ListWorkers(%q): %v", tt.tenant, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts, ignoreIdleSince); diff != "" {
				t.Errorf("ListWorkers(%q) mismatch (-want +got):\n%s", tt.tenant, diff)
			}
		}
	})

	t.Run("Drain", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		h.submit(t0, job.Spec{Type: "t"})
		now := at(time.Minute)
		got, err := h.s.DrainWorker(t.Context(), w, now)
		if err != nil {
			t.Fatalf("DrainWorker: %v", err)
		}
		if got.State != job.WorkerDraining || !got.DrainedAt.Equal(now) {
			t.Errorf("DrainWorker result: state %s, drained at %v; want draining, %v", got.State, got.DrainedAt, now)
		}
		if s := h.getWorker(w); s.State != job.WorkerDraining || !s.DrainedAt.Equal(now) {
			t.Errorf("GetWorker after drain: state %s, drained at %v; want draining, %v", s.State, s.DrainedAt, now)
		}
		if got := h.lease(at(2*time.Minute), w, 10); len(got) != 0 {
			t.Errorf("a draining worker was leased %v", ids(got))
		}
		if got := h.lease(at(2*time.Minute), h.worker(t0), 10); len(got) != 1 {
			t.Errorf("an active worker was leased %d jobs, want 1", len(got))
		}
		_, err = h.s.DrainWorker(t.Context(), job.NewID(t0), now)
		wantErr(t, "DrainWorker(unknown)", err, store.ErrNotFound)
	})

	t.Run("DeleteReleasesJobs", func(t *testing.T) {
		h := begin(t, newStore)
		w1, w2 := h.worker(t0), h.worker(t0)
		one := h.submit(t0, job.Spec{Type: "one", MaxAttempts: 1})
		two := h.submit(t0, job.Spec{Type: "two", MaxAttempts: 3})
		kept := h.submit(t0, job.Spec{Type: "kept"})
		l1 := h.leaseJob(at(time.Second), w1, one)
		l2 := h.leaseJob(at(time.Second), w1, two)
		lk := h.leaseJob(at(time.Second), w2, kept)
		now := at(5 * time.Second)
		released, err := h.s.DeleteWorker(t.Context(), w1, now)
		if err != nil {
			t.Fatalf("DeleteWorker: %v", err)
		}
		if diff := cmp.Diff([]string{one.ID, two.ID}, ids(released), sortStrings); diff != "" {
			t.Errorf("DeleteWorker released mismatch (-want +got):\n%s", diff)
		}
		_, err = h.s.GetWorker(t.Context(), w1)
		wantErr(t, "GetWorker(deleted)", err, store.ErrNotFound)
		for _, l := range []*job.Job{l1, l2} {
			j := h.get(l.ID)
			if j.State != gantry.StateQueued || j.Attempt != 1 || store.Exhausted(j) {
				t.Errorf("released job %s: state %s, attempt %d, exhausted %v; want queued, 1, false", j.Type, j.State, j.Attempt, store.Exhausted(j))
			}
			want := []job.Attempt{{Attempt: 1, WorkerID: w1, Token: l.Token, StartedAt: at(time.Second), FinishedAt: now, Outcome: job.OutcomeReleased}}
			if diff := cmp.Diff(want, sansLossErrors(j.Attempts), cmpOpts); diff != "" {
				t.Errorf("released job %s attempts mismatch (-want +got):\n%s", j.Type, diff)
			}
		}
		if s := h.get(kept.ID); s.State != gantry.StateRunning || s.Token != lk.Token {
			t.Errorf("another worker's job: state %s, token %d; want running, %d", s.State, s.Token, lk.Token)
		}
		// The released jobs lease again at once, the max_attempts 1 one included.
		got := h.lease(now, w2, 10)
		if diff := cmp.Diff([]string{one.ID, two.ID}, ids(got), sortStrings); diff != "" {
			t.Errorf("LeaseJobs after release mismatch (-want +got):\n%s", diff)
		}
		for _, j := range got {
			if j.Attempt != 2 {
				t.Errorf("re-leased job %s: attempt %d, want 2", j.Type, j.Attempt)
			}
		}
		// The deleted worker's tokens are dead.
		if r := h.finish(now, store.Outcome{JobID: one.ID, Token: l1.Token, Outcome: job.OutcomeSucceeded}); r.OK {
			t.Error("report with a released lease's token: OK true, want false")
		}
		_, err = h.s.DeleteWorker(t.Context(), job.NewID(t0), now)
		wantErr(t, "DeleteWorker(unknown)", err, store.ErrNotFound)
	})

	t.Run("Prune", func(t *testing.T) {
		h := begin(t, newStore)
		busy := fullWorker(t0, "", "busy")
		idle := fullWorker(t0, "", "idle")
		fresh := fullWorker(at(2*time.Hour), "", "fresh")
		fresh.CreatedAt = t0
		for _, w := range []*job.Worker{busy, idle, fresh} {
			h.register(w)
		}
		j := h.submit(t0, job.Spec{Type: "render"})
		h.leaseJob(t0, busy.ID, j)
		n, err := h.s.PruneWorkers(t.Context(), at(time.Hour))
		if err != nil {
			t.Fatalf("PruneWorkers: %v", err)
		}
		if n != 1 {
			t.Errorf("PruneWorkers = %d, want 1", n)
		}
		ws, err := h.s.ListWorkers(t.Context(), "")
		if err != nil {
			t.Fatalf("ListWorkers: %v", err)
		}
		var names []string
		for _, w := range ws {
			names = append(names, w.Name)
		}
		if diff := cmp.Diff([]string{"busy", "fresh"}, names, sortStrings); diff != "" {
			t.Errorf("workers after prune mismatch (-want +got):\n%s", diff)
		}
		if s := h.state(j.ID); s != gantry.StateRunning {
			t.Errorf("the busy worker's job is %s after prune, want running", s)
		}
	})
}
