package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testRetention(t *testing.T, newStore newStoreFunc) {
	t.Run("TerminalJobsBeforeCutoff", func(t *testing.T) {
		h := begin(t, newStore)
		var gone, kept []*job.Job
		for i, st := range []gantry.State{gantry.StateSucceeded, gantry.StateFailed, gantry.StateCanceled} {
			gone = append(gone, h.inState(t0, st, job.Spec{Type: typeN("old", i)}))
		}
		for i, st := range []gantry.State{gantry.StateScheduled, gantry.StateQueued, gantry.StateRunning, gantry.StateRetrying} {
			kept = append(kept, h.inState(t0, st, job.Spec{Type: typeN("live", i)}))
		}
		for i, st := range []gantry.State{gantry.StateSucceeded, gantry.StateFailed, gantry.StateCanceled} {
			kept = append(kept, h.inState(at(2*time.Hour), st, job.Spec{Type: typeN("new", i)}))
		}
		seq := h.lastSeq()
		res, err := h.s.Retain(t.Context(), &store.RetainParams{JobsBefore: at(time.Hour), Limit: 100})
		if err != nil {
			t.Fatalf("Retain: %v", err)
		}
		if diff := cmp.Diff(store.RetainResult{Jobs: 3}, res); diff != "" {
			t.Errorf("Retain result mismatch (-want +got):\n%s", diff)
		}
		for _, j := range gone {
			if _, err := h.s.GetJob(t.Context(), "", j.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("old %s job after Retain: error %v, want ErrNotFound", j.State, err)
			}
		}
		for _, j := range kept {
			if diff := cmp.Diff(j, h.get(j.ID), cmpOpts); diff != "" {
				t.Errorf("Retain changed a %s job created at %v (-before +after):\n%s", j.State, j.CreatedAt, diff)
			}
		}
		if got := h.lastSeq(); got != seq {
			t.Errorf("Retain without EventsBefore changed the newest event seq from %d to %d", seq, got)
		}
		if n := len(h.events()); n == 0 {
			t.Error("Retain without EventsBefore deleted every event")
		}
	})

	t.Run("Limit", func(t *testing.T) {
		h := begin(t, newStore)
		for i := range 5 {
			h.inState(t0, gantry.StateSucceeded, job.Spec{Type: typeN("t", i)})
		}
		var got []int
		for range 4 {
			res, err := h.s.Retain(t.Context(), &store.RetainParams{JobsBefore: at(time.Hour), Limit: 2})
			if err != nil {
				t.Fatalf("Retain: %v", err)
			}
			got = append(got, res.Jobs)
		}
		if diff := cmp.Diff([]int{2, 2, 1, 0}, got); diff != "" {
			t.Errorf("jobs deleted per Retain(Limit 2) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("DoneBatches", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		done, doneJobs := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "a"})
		h.succeed(t0, w, doneJobs[0])
		open, openJobs := h.newBatch(t0, tenantA, false, nil, job.Spec{Type: "b"})
		h.succeed(t0, w, openJobs[0])
		busy, _ := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "c"})
		recent, recentJobs := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "d"})
		h.succeed(at(2*time.Hour), w, recentJobs[0])
		if !h.batch(done.ID).Done || !h.batch(recent.ID).Done {
			t.Fatal("batches not done")
		}
		res, err := h.s.Retain(t.Context(), &store.RetainParams{JobsBefore: at(time.Hour), Limit: 100})
		if err != nil {
			t.Fatalf("Retain: %v", err)
		}
		if res.Batches != 1 {
			t.Errorf("Retain deleted %d batches, want 1", res.Batches)
		}
		_, err = h.s.GetBatch(t.Context(), "", done.ID)
		wantErr(t, "GetBatch(retained done batch)", err, store.ErrNotFound)
		for _, b := range []*job.Batch{open, busy, recent} {
			if _, err := h.s.GetBatch(t.Context(), "", b.ID); err != nil {
				t.Errorf("GetBatch(batch that must stay): %v", err)
			}
		}
	})

	t.Run("EventsOnly", func(t *testing.T) {
		h := begin(t, newStore)
		old := h.inState(t0, gantry.StateSucceeded, job.Spec{Type: "old"})
		h.submit(at(2*time.Hour), job.Spec{Type: "new"})
		res, err := h.s.Retain(t.Context(), &store.RetainParams{EventsBefore: at(time.Hour), Limit: 100})
		if err != nil {
			t.Fatalf("Retain: %v", err)
		}
		if res.Jobs != 0 || res.Events != 3 {
			t.Errorf("Retain(EventsBefore only) = %+v, want 0 jobs, 3 events", res)
		}
		h.get(old.ID) // still there
		evs := h.events()
		if len(evs) != 1 || evs[0].Kind != job.EventSubmitted || !evs[0].At.Equal(at(2*time.Hour)) {
			t.Errorf("events after retention = %+v, want the one newer submission", evs)
		}
	})
}
