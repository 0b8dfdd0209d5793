package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

func testQueue(t *testing.T, newStore newStoreFunc) {
	t.Run("PauseAndResume", func(t *testing.T) {
		h := begin(t, newStore)
		got, err := h.s.SetQueuePaused(t.Context(), tenantA, "reports", true)
		if err != nil {
			t.Fatalf("SetQueuePaused(true): %v", err)
		}
		if got.Tenant != tenantA || got.Name != "reports" || !got.Paused {
			t.Errorf("SetQueuePaused(true) = %+v, want %s/reports paused", got, tenantA)
		}
		want := []*job.Queue{{Tenant: tenantA, Name: "reports", Paused: true}}
		h.wantQueues(tenantA, want)
		// Pausing twice is harmless.
		if _, err := h.s.SetQueuePaused(t.Context(), tenantA, "reports", true); err != nil {
			t.Fatalf("second SetQueuePaused(true): %v", err)
		}
		h.wantQueues(tenantA, want)
		h.wantQueues(tenantB, nil)
		got, err = h.s.SetQueuePaused(t.Context(), tenantA, "reports", false)
		if err != nil {
			t.Fatalf("SetQueuePaused(false): %v", err)
		}
		if got.Paused {
			t.Errorf("SetQueuePaused(false) = %+v, want resumed", got)
		}
		want[0].Paused = false
		h.wantQueues(tenantA, want)
	})

	t.Run("CountsAndOldest", func(t *testing.T) {
		h := begin(t, newStore)
		h.inState(t0, gantry.StateRunning, job.Spec{Tenant: tenantA, Queue: "q1", Type: "r"})
		h.submit(at(1*time.Second), job.Spec{Tenant: tenantA, Queue: "q1", Type: "x"})
		h.submit(at(2*time.Second), job.Spec{Tenant: tenantA, Queue: "q1", Type: "x"})
		h.inState(at(3*time.Second), gantry.StateScheduled, job.Spec{Tenant: tenantA, Queue: "q1", Type: "s"})
		h.inState(at(4*time.Second), gantry.StateSucceeded, job.Spec{Tenant: tenantA, Queue: "q2", Type: "ok"})
		h.inState(at(4*time.Second), gantry.StateFailed, job.Spec{Tenant: tenantA, Queue: "q2", Type: "bad"})
		h.submit(at(5*time.Second), job.Spec{Tenant: tenantB, Queue: "q1", Type: "x"})
		if _, err := h.s.SetQueuePaused(t.Context(), tenantB, "q0", true); err != nil {
			t.Fatalf("SetQueuePaused: %v", err)
		}
		aq1 := &job.Queue{Tenant: tenantA, Name: "q1", Counts: map[gantry.State]int{gantry.StateRunning: 1, gantry.StateQueued: 2, gantry.StateScheduled: 1}, OldestQueued: at(1 * time.Second)}
		aq2 := &job.Queue{Tenant: tenantA, Name: "q2", Counts: map[gantry.State]int{gantry.StateSucceeded: 1, gantry.StateFailed: 1}}
		bq0 := &job.Queue{Tenant: tenantB, Name: "q0", Paused: true}
		bq1 := &job.Queue{Tenant: tenantB, Name: "q1", Counts: map[gantry.State]int{gantry.StateQueued: 1}, OldestQueued: at(5 * time.Second)}
		h.wantQueues(tenantA, []*job.Queue{aq1, aq2})
		h.wantQueues(tenantB, []*job.Queue{bq0, bq1})
		h.wantQueues("", []*job.Queue{aq1, aq2, bq0, bq1})
		h.wantQueues("initech", nil)
	})
}

// wantQueues checks ListQueues(tenant).
func (h *harness) wantQueues(tenant string, want []*job.Queue) {
	h.t.Helper()
	got, err := h.s.ListQueues(h.t.Context(), tenant)
	if err != nil {
		h.t.Fatalf("ListQueues(%q): %v", tenant, err)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		h.t.Errorf("ListQueues(%q) mismatch (-want +got):\n%s", tenant, diff)
	}
}
