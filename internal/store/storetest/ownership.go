package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// testOwnership checks that only the lease's holder renews or finishes it
// (when the caller names itself), that a job whose cancellation was
// requested ends canceled whatever its worker reports, and that a closed
// batch with nothing left to run is done at once.
func testOwnership(t *testing.T, newStore newStoreFunc) {
	t.Run("OtherWorkerIsStale", func(t *testing.T) {
		h := begin(t, newStore)
		a, b := h.worker(t0), h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "own.a"})
		l := h.leaseJob(at(time.Second), a, j)
		before := h.get(j.ID)
		if r := h.heartbeat(at(2*time.Second), b, store.HeartbeatLease{JobID: l.ID, Token: l.Token, Progress: &job.Progress{Percent: 50}}); r[0].OK {
			t.Errorf("heartbeat by worker b of a's lease: OK true, want false")
		}
		for _, outcome := range []string{job.OutcomeSucceeded, job.OutcomeFailed, job.OutcomeCanceled} {
			r := h.finishP(&store.FinishJobsParams{Now: at(3 * time.Second), WorkerID: b, Backoff: backoff,
				Outcomes: []store.Outcome{{JobID: l.ID, Token: l.Token, Outcome: outcome, Retryable: true}}})
			if r[0].OK {
				t.Errorf("FinishJobs(%s) by worker b of a's lease: OK true, want false", outcome)
			}
		}
		after := h.get(j.ID)
		if after.State != gantry.StateRunning || !after.LeaseExpiresAt.Equal(before.LeaseExpiresAt) || after.Progress != before.Progress {
			t.Errorf("after worker b's calls: state %s, lease %v, progress %+v; want running, %v, %+v unchanged",
				after.State, after.LeaseExpiresAt, after.Progress, before.LeaseExpiresAt, before.Progress)
		}
		if r := h.heartbeat(at(4*time.Second), a, store.HeartbeatLease{JobID: l.ID, Token: l.Token}); !r[0].OK {
			t.Errorf("heartbeat by the holder: OK false, want true")
		}
		r := h.finishP(&store.FinishJobsParams{Now: at(5 * time.Second), WorkerID: a,
			Outcomes: []store.Outcome{{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded}}})
		if !r[0].OK || h.state(j.ID) != gantry.StateSucceeded {
			t.Errorf("FinishJobs by the holder: OK %v, state %s; want true, succeeded", r[0].OK, h.state(j.ID))
		}
	})

	t.Run("SucceededAfterCancelRequestEndsCanceled", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "own.c"})
		l := h.leaseJob(at(time.Second), w, j)
		h.cancel(at(2*time.Second), j.ID)
		res := json.RawMessage(`{"done":true}`)
		got := h.mustFinish(at(3*time.Second), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded, Result: res})
		if got.State != gantry.StateCanceled {
			t.Errorf("FinishResult.Job.State = %s, want canceled", got.State)
		}
		stored := h.get(j.ID)
		if stored.State != gantry.StateCanceled || !jsonEqual(stored.Result, res) {
			t.Errorf("stored job: state %s, result %s; want canceled, %s (the result is kept)", stored.State, stored.Result, res)
		}
		if n := len(stored.Attempts); n == 0 || stored.Attempts[n-1].Outcome != job.OutcomeCanceled {
			t.Errorf("attempts = %+v, want the last one canceled", stored.Attempts)
		}
		if ev := h.lastEvent(j.ID); ev.Kind != job.EventCanceled {
			t.Errorf("last event = %s, want %s", ev.Kind, job.EventCanceled)
		}
	})

	t.Run("ClosedBatchOfDuplicatesIsDone", func(t *testing.T) {
		h := begin(t, newStore)
		existing := h.submit(t0, job.Spec{Type: "own.u", UniqueKey: "k"})
		b := &job.Batch{ID: job.NewID(t0), Tenant: job.DefaultTenant, Name: "dups", CreatedAt: t0, Closed: true,
			OnComplete: &job.Spec{Type: "own.after"}}
		dup := h.record(at(time.Second), job.Spec{Type: "own.u", UniqueKey: "k"})
		dup.BatchID = b.ID
		res := h.insertJobs(&store.InsertJobsParams{Now: at(time.Second), NewBatch: b, Jobs: []*job.Job{dup}})
		if res[0].Created || res[0].Job.ID != existing.ID {
			t.Fatalf("insert of a duplicate: created %v, job %s; want false, %s", res[0].Created, res[0].Job.ID, existing.ID)
		}
		got := h.batch(b.ID)
		if !got.Done || got.OnCompleteJobID == "" {
			t.Errorf("closed batch with no job of its own: done %v, on_complete job %q; want done with an on_complete job", got.Done, got.OnCompleteJobID)
		}
	})
}
