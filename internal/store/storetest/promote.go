package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testPromote(t *testing.T, newStore newStoreFunc) {
	t.Run("DueJobs", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		sched := h.submit(t0, job.Spec{Tenant: tenantA, Type: "sched", RunAt: at(10 * time.Second)})
		later := h.submit(t0, job.Spec{Type: "later", RunAt: at(time.Hour)})
		retry := h.submit(t0, job.Spec{Type: "retry"})
		l := h.leaseJob(t0, w, retry)
		h.mustFinish(at(time.Second), store.Outcome{JobID: retry.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e", Retryable: true, RetryAfter: 20 * time.Second})
		queued := h.submit(t0, job.Spec{Type: "queued"})

		// Nothing is due yet.
		n, next := h.promote(at(5*time.Second), 100)
		if n != 0 || !next.Equal(at(10*time.Second)) {
			t.Errorf("PromoteDue before anything is due = %d, %v; want 0, %v", n, next, at(10*time.Second))
		}
		// Exactly at RunAt the scheduled job is due.
		n, next = h.promote(at(10*time.Second), 100)
		if n != 1 || !next.Equal(at(21*time.Second)) {
			t.Errorf("PromoteDue at the first RunAt = %d, %v; want 1, %v", n, next, at(21*time.Second))
		}
		n, next = h.promote(at(30*time.Second), 100)
		if n != 1 || !next.Equal(at(time.Hour)) {
			t.Errorf("PromoteDue at 30s = %d, %v; want 1, %v", n, next, at(time.Hour))
		}
		for _, tt := range []struct {
			j    *job.Job
			want gantry.State
		}{{sched, gantry.StateQueued}, {retry, gantry.StateQueued}, {later, gantry.StateScheduled}, {queued, gantry.StateQueued}} {
			if got := h.state(tt.j.ID); got != tt.want {
				t.Errorf("job %s is %s, want %s", tt.j.Type, got, tt.want)
			}
		}
		h.wantEvent(h.get(sched.ID), job.EventQueued, at(10*time.Second))
		h.wantEvent(h.get(retry.ID), job.EventQueued, at(30*time.Second))
		// Promoted jobs lease; the retried one as attempt 2.
		got := h.lease(at(31*time.Second), w, 10)
		if diff := cmp.Diff([]string{sched.ID, retry.ID, queued.ID}, ids(got), sortStrings); diff != "" {
			t.Errorf("LeaseJobs after promotion mismatch (-want +got):\n%s", diff)
		}
		for _, j := range got {
			if j.ID == retry.ID && j.Attempt != 2 {
				t.Errorf("promoted retrying job leased as attempt %d, want 2", j.Attempt)
			}
		}
		n, next = h.promote(at(2*time.Hour), 100)
		if n != 1 || !next.IsZero() {
			t.Errorf("PromoteDue of the last job = %d, %v; want 1, zero", n, next)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		h := begin(t, newStore)
		h.submit(t0, job.Spec{Type: "t"})
		if n, next := h.promote(at(time.Hour), 100); n != 0 || !next.IsZero() {
			t.Errorf("PromoteDue with nothing scheduled = %d, %v; want 0, zero", n, next)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		h := begin(t, newStore)
		runAts := []time.Duration{5 * time.Second, 3 * time.Second, 4 * time.Second, time.Hour}
		var jobs []*job.Job
		for i, d := range runAts {
			jobs = append(jobs, h.submit(t0, job.Spec{Type: typeN("t", i), RunAt: at(d)}))
		}
		now := at(time.Minute)
		n, next := h.promote(now, 2)
		if n != 2 {
			t.Fatalf("PromoteDue(limit 2) with 3 due = %d, want 2", n)
		}
		// The earliest RunAt still pending is the due job left behind.
		var pending []time.Time
		for i, j := range jobs {
			if h.state(j.ID) == gantry.StateScheduled {
				pending = append(pending, at(runAts[i]))
			}
		}
		if len(pending) != 2 {
			t.Fatalf("%d jobs still scheduled, want 2", len(pending))
		}
		earliest := pending[0]
		for _, p := range pending {
			if p.Before(earliest) {
				earliest = p
			}
		}
		if !next.Equal(earliest) {
			t.Errorf("PromoteDue(limit 2) next = %v, want the earliest pending RunAt %v", next, earliest)
		}
		if n, next := h.promote(now, 2); n != 1 || !next.Equal(at(time.Hour)) {
			t.Errorf("second PromoteDue = %d, %v; want 1, %v", n, next, at(time.Hour))
		}
	})
}
