package storetest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// onCompleteType is the type of the suite's batch on_complete jobs.
const onCompleteType = "batch.finished"

// onComplete returns a normalized on_complete spec for tenant.
func onComplete(tenant string) *job.Spec {
	sp := &job.Spec{Tenant: tenant, Type: onCompleteType, Params: json.RawMessage(`{"notify":"ops"}`), Priority: 2}
	sp.Normalize(t0)
	return sp
}

// newBatch creates a batch of tenant at now with one job per spec (each
// given the batch's ID and tenant) and returns it and the job records.
func (h *harness) newBatch(now time.Time, tenant string, closed bool, oc *job.Spec, specs ...job.Spec) (*job.Batch, []*job.Job) {
	h.t.Helper()
	b := &job.Batch{ID: job.NewID(now), Tenant: tenant, Name: "batch", CreatedAt: now, Closed: closed, OnComplete: oc}
	jobs := make([]*job.Job, len(specs))
	for i, sp := range specs {
		sp.Tenant, sp.BatchID = tenant, b.ID
		jobs[i] = h.record(now, sp)
	}
	res := h.insertJobs(&store.InsertJobsParams{Now: now, Jobs: jobs, NewBatch: b})
	for i, r := range res {
		if !r.Created {
			h.t.Fatalf("batch job %d not created", i)
		}
	}
	return b, jobs
}

// batchDone checks that batch id is done since at, with exactly one
// on_complete job (if the batch has one) and one batch.done event.
func (h *harness) batchDone(id string, at time.Time, wantOnComplete bool) {
	h.t.Helper()
	b := h.batch(id)
	if !b.Closed || !b.Done || !b.FinishedAt.Equal(at) {
		h.t.Errorf("batch: closed %v, done %v, finished at %v; want true, true, %v", b.Closed, b.Done, b.FinishedAt, at)
	}
	done := h.eventsSince(0, func(e *job.Event) bool { return e.Kind == job.EventBatchDone })
	if len(done) != 1 || done[0].BatchID != id || done[0].Tenant != b.Tenant || !done[0].At.Equal(at) {
		h.t.Errorf("batch.done events = %+v, want one for batch %s of %s at %v", done, id, b.Tenant, at)
	}
	onc := h.listAll(store.ListJobsParams{Type: onCompleteType, Limit: 100})
	if !wantOnComplete {
		if b.OnCompleteJobID != "" || len(onc) != 0 {
			h.t.Errorf("batch without on_complete: OnCompleteJobID %q, on_complete jobs %v", b.OnCompleteJobID, ids(onc))
		}
		return
	}
	if len(onc) != 1 || b.OnCompleteJobID != onc[0].ID {
		h.t.Errorf("on_complete jobs = %v, batch OnCompleteJobID %q; want exactly that one job", ids(onc), b.OnCompleteJobID)
		return
	}
	j := h.get(b.OnCompleteJobID)
	want := onComplete(b.Tenant)
	if j.Tenant != b.Tenant || j.Type != want.Type || j.State != gantry.StateQueued || j.Priority != want.Priority || !jsonEqual(j.Params, want.Params) || !j.CreatedAt.Equal(at) {
		h.t.Errorf("on_complete job = %+v, want a queued %s job of %s with params %s created at %v", j, want.Type, b.Tenant, want.Params, at)
	}
}

// batchNotDone checks that batch id is not done and nothing was enqueued.
func (h *harness) batchNotDone(id string) {
	h.t.Helper()
	b := h.batch(id)
	if b.Done || !b.FinishedAt.IsZero() || b.OnCompleteJobID != "" {
		h.t.Errorf("batch: done %v, finished at %v, on_complete job %q; want false, zero, none", b.Done, b.FinishedAt, b.OnCompleteJobID)
	}
	if evs := h.eventsSince(0, func(e *job.Event) bool { return e.Kind == job.EventBatchDone }); len(evs) != 0 {
		h.t.Errorf("batch.done emitted for a batch not done: %+v", evs)
	}
	if onc := h.listAll(store.ListJobsParams{Type: onCompleteType, Limit: 100}); len(onc) != 0 {
		h.t.Errorf("on_complete enqueued for a batch not done: %v", ids(onc))
	}
}

func testBatch(t *testing.T, newStore newStoreFunc) {
	t.Run("CreateAndGet", func(t *testing.T) {
		h := begin(t, newStore)
		oc := onComplete(tenantA)
		b, jobs := h.newBatch(t0, tenantA, false, oc,
			job.Spec{Type: "a"}, job.Spec{Type: "b"}, job.Spec{Type: "c", RunAt: at(time.Hour)})
		want := &job.Batch{
			ID: b.ID, Tenant: tenantA, Name: "batch", CreatedAt: t0, Total: 3,
			Counts: map[gantry.State]int{gantry.StateQueued: 2, gantry.StateScheduled: 1}, OnComplete: oc,
		}
		got, err := h.s.GetBatch(t.Context(), tenantA, b.ID)
		if err != nil {
			t.Fatalf("GetBatch: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Errorf("GetBatch mismatch (-want +got):\n%s", diff)
		}
		for _, j := range jobs {
			if got := h.get(j.ID).BatchID; got != b.ID {
				t.Errorf("job %s BatchID = %q, want %q", j.Type, got, b.ID)
			}
			if ev := h.lastEvent(j.ID); ev.BatchID != b.ID {
				t.Errorf("job %s submitted event BatchID = %q, want %q", j.Type, ev.BatchID, b.ID)
			}
		}
		_, err = h.s.GetBatch(t.Context(), tenantB, b.ID)
		wantErr(t, "GetBatch(other tenant)", err, store.ErrNotFound)
		_, err = h.s.GetBatch(t.Context(), "", job.NewID(t0))
		wantErr(t, "GetBatch(unknown)", err, store.ErrNotFound)
	})

	t.Run("CountsFollowJobs", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, false, nil,
			job.Spec{Type: "a"}, job.Spec{Type: "b"}, job.Spec{Type: "c"}, job.Spec{Type: "d"}, job.Spec{Type: "e"})
		h.leaseJob(t0, w, jobs[0])
		h.succeed(t0, w, jobs[1])
		h.inStateFrom(t0, w, jobs[2], gantry.StateRetrying)
		h.cancel(t0, jobs[3].ID)
		got := h.batch(b.ID)
		want := map[gantry.State]int{gantry.StateRunning: 1, gantry.StateSucceeded: 1, gantry.StateRetrying: 1, gantry.StateCanceled: 1, gantry.StateQueued: 1}
		if diff := cmp.Diff(want, got.Counts); diff != "" {
			t.Errorf("batch counts mismatch (-want +got):\n%s", diff)
		}
		if got.Total != 5 {
			t.Errorf("batch Total = %d, want 5", got.Total)
		}
	})

	t.Run("OpenBatchNotDoneUntilClosed", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, false, onComplete(tenantA), job.Spec{Type: "a"}, job.Spec{Type: "b"})
		for _, j := range jobs {
			h.succeed(t0, w, j)
		}
		h.batchNotDone(b.ID)
		now := at(time.Minute)
		got, err := h.s.CloseBatch(t.Context(), tenantA, b.ID, now)
		if err != nil {
			t.Fatalf("CloseBatch: %v", err)
		}
		if !got.Closed || !got.Done || got.OnCompleteJobID == "" {
			t.Errorf("CloseBatch result: closed %v, done %v, on_complete job %q; want true, true, set", got.Closed, got.Done, got.OnCompleteJobID)
		}
		h.batchDone(b.ID, now, true)
		// Closing again is a no-op: nothing is enqueued twice.
		if _, err := h.s.CloseBatch(t.Context(), tenantA, b.ID, at(2*time.Minute)); err != nil {
			t.Fatalf("second CloseBatch: %v", err)
		}
		h.batchDone(b.ID, now, true)
	})

	t.Run("CloseWithUnfinishedJobs", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, false, onComplete(tenantA), job.Spec{Type: "a"}, job.Spec{Type: "b"})
		h.succeed(t0, w, jobs[0])
		got, err := h.s.CloseBatch(t.Context(), "", b.ID, at(time.Minute))
		if err != nil {
			t.Fatalf("CloseBatch: %v", err)
		}
		if !got.Closed || got.Done {
			t.Errorf("CloseBatch with a queued job: closed %v, done %v; want true, false", got.Closed, got.Done)
		}
		h.batchNotDone(b.ID)
		h.succeed(at(2*time.Minute), w, jobs[1])
		h.batchDone(b.ID, at(2*time.Minute+time.Second), true)
	})

	t.Run("DoneWhenLastJobEnds", func(t *testing.T) {
		type fixture struct {
			h    *harness
			w    string
			b    *job.Batch
			jobs []*job.Job
		}
		tests := []struct {
			name string
			// end makes the batch's remaining jobs terminal and returns when.
			end func(f *fixture) time.Time
		}{
			{"Succeeded", func(f *fixture) time.Time {
				f.h.succeed(at(time.Minute), f.w, f.jobs[1])
				return at(time.Minute + time.Second)
			}},
			{"FailedNonRetryable", func(f *fixture) time.Time {
				l := f.h.leaseJob(at(time.Minute), f.w, f.jobs[1])
				f.h.mustFinish(at(2*time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "x"})
				return at(2 * time.Minute)
			}},
			{"FailedAfterRetries", func(f *fixture) time.Time {
				l := f.h.leaseJob(at(time.Minute), f.w, f.jobs[1])
				f.h.mustFinish(at(2*time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "x", Retryable: true})
				f.h.batchNotDone(f.b.ID)
				f.h.promote(at(time.Hour), 10)
				l = f.h.leaseJob(at(time.Hour), f.w, f.jobs[1])
				f.h.mustFinish(at(2*time.Hour), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "x", Retryable: true})
				return at(2 * time.Hour)
			}},
			{"CanceledByWorker", func(f *fixture) time.Time {
				l := f.h.leaseJob(at(time.Minute), f.w, f.jobs[1])
				f.h.mustFinish(at(2*time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeCanceled})
				return at(2 * time.Minute)
			}},
			{"CancelJob", func(f *fixture) time.Time {
				f.h.cancel(at(time.Minute), f.jobs[1].ID)
				return at(time.Minute)
			}},
			{"CancelJobRunningThenReport", func(f *fixture) time.Time {
				l := f.h.leaseJob(at(time.Minute), f.w, f.jobs[1])
				f.h.cancel(at(2*time.Minute), f.jobs[1].ID)
				f.h.batchNotDone(f.b.ID)
				f.h.mustFinish(at(3*time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "stopped", Retryable: true})
				return at(3 * time.Minute)
			}},
			{"RescueExhausted", func(f *fixture) time.Time {
				f.h.leaseJob(at(time.Minute), f.w, f.jobs[1])
				f.h.rescue(at(time.Minute + ttl))
				f.h.batchNotDone(f.b.ID) // attempts left: queued again
				f.h.leaseJob(at(2*time.Minute), f.w, f.jobs[1])
				if got := f.h.rescue(at(2*time.Minute + ttl)); len(got) != 1 || got[0].State != gantry.StateFailed {
					f.h.t.Fatalf("second rescue = %+v, want the job failed", got)
				}
				return at(2*time.Minute + ttl)
			}},
			{"CancelBatch", func(f *fixture) time.Time {
				if _, err := f.h.s.CancelBatch(f.h.t.Context(), tenantA, f.b.ID, at(time.Minute)); err != nil {
					f.h.t.Fatalf("CancelBatch: %v", err)
				}
				return at(time.Minute)
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				w := h.worker(t0)
				b, jobs := h.newBatch(t0, tenantA, true, onComplete(tenantA), job.Spec{Type: "a"}, job.Spec{Type: "b", MaxAttempts: 2})
				h.succeed(t0, w, jobs[0])
				h.batchNotDone(b.ID)
				when := tt.end(&fixture{h: h, w: w, b: b, jobs: jobs})
				h.batchDone(b.ID, when, true)
				if got := h.batch(b.ID); got.Total != 2 || got.Counts[gantry.StateSucceeded]+got.Counts[gantry.StateFailed]+got.Counts[gantry.StateCanceled] != 2 {
					t.Errorf("done batch: total %d, counts %v; want 2 terminal jobs", got.Total, got.Counts)
				}
			})
		}
	})

	t.Run("LastJobsEndTogether", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, true, onComplete(tenantA), job.Spec{Type: "a"}, job.Spec{Type: "b"}, job.Spec{Type: "c"})
		var outs []store.Outcome
		for _, j := range jobs {
			l := h.leaseJob(t0, w, j)
			outs = append(outs, store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded})
		}
		for _, r := range h.finishP(&store.FinishJobsParams{Now: at(time.Second), Outcomes: outs}) {
			if !r.OK {
				t.Errorf("outcome of %s rejected", r.JobID)
			}
		}
		h.batchDone(b.ID, at(time.Second), true)
	})

	t.Run("LastJobsEndConcurrently", func(t *testing.T) {
		for round := range 5 {
			h := begin(t, newStore)
			w := h.worker(t0)
			specs := make([]job.Spec, 6)
			for i := range specs {
				specs[i] = job.Spec{Type: typeN("t", i)}
			}
			b, jobs := h.newBatch(t0, tenantA, true, onComplete(tenantA), specs...)
			leases := make([]*job.Job, len(jobs))
			for i, j := range jobs {
				leases[i] = h.leaseJob(t0, w, j)
			}
			var wg sync.WaitGroup
			for _, l := range leases {
				wg.Go(func() {
					res, err := h.s.FinishJobs(t.Context(), &store.FinishJobsParams{Now: at(time.Second), Backoff: backoff, Outcomes: []store.Outcome{{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded}}})
					if err != nil || !res[0].OK {
						t.Errorf("round %d: FinishJobs(%s) = %+v, %v", round, l.ID, res, err)
					}
				})
			}
			wg.Wait()
			h.batchDone(b.ID, at(time.Second), true)
		}
	})

	t.Run("SettleFindsNothingWhenConsistent", func(t *testing.T) {
		// Batches are settled as their last job ends: the sweep for
		// batches a crash left unmarked finds none, whether done, still
		// running or open, and emits nothing.
		h := begin(t, newStore)
		w := h.worker(t0)
		done, dj := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "a"})
		h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "b"})
		h.newBatch(t0, tenantA, false, nil, job.Spec{Type: "c"})
		h.succeed(t0, w, dj[0])
		h.batchDone(done.ID, at(time.Second), false)
		last := h.lastSeq()
		n, err := h.s.SettleBatches(t.Context(), at(time.Minute), 100)
		if err != nil || n != 0 {
			t.Errorf("SettleBatches = %d, %v; want 0, nil", n, err)
		}
		if evs := h.eventsSince(last, func(*job.Event) bool { return true }); len(evs) != 0 {
			t.Errorf("SettleBatches emitted %+v, want nothing", evs)
		}
	})

	t.Run("WithoutOnComplete", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "a"})
		h.succeed(t0, w, jobs[0])
		h.batchDone(b.ID, at(time.Second), false)
	})

	t.Run("AddToBatch", func(t *testing.T) {
		h := begin(t, newStore)
		b, first := h.newBatch(t0, tenantA, false, nil, job.Spec{Type: "a"})
		now := at(time.Minute)
		withID := h.record(now, job.Spec{Tenant: tenantA, Type: "b", BatchID: b.ID})
		withoutID := h.record(now, job.Spec{Tenant: tenantA, Type: "c"})
		res := h.insertJobs(&store.InsertJobsParams{Now: now, Jobs: []*job.Job{withID, withoutID}, AddToBatch: b.ID})
		for i, r := range res {
			if !r.Created || r.Job.BatchID != b.ID {
				t.Errorf("AddToBatch result %d: created %v, batch %q; want true, %q", i, r.Created, r.Job.BatchID, b.ID)
			}
		}
		for _, j := range []*job.Job{withID, withoutID} {
			if got := h.get(j.ID).BatchID; got != b.ID {
				t.Errorf("added job %s BatchID = %q, want %q", j.Type, got, b.ID)
			}
		}
		got := h.batch(b.ID)
		if got.Total != 3 || got.Counts[gantry.StateQueued] != 3 {
			t.Errorf("batch after AddToBatch: total %d, counts %v; want 3 queued", got.Total, got.Counts)
		}
		listed := h.listAll(store.ListJobsParams{BatchID: b.ID, Limit: 100})
		if diff := cmp.Diff([]string{first[0].ID, withID.ID, withoutID.ID}, ids(listed), sortStrings); diff != "" {
			t.Errorf("ListJobs(batch) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("CancelBatch", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, false, onComplete(tenantA),
			job.Spec{Type: "queued"}, job.Spec{Type: "scheduled", RunAt: at(time.Hour)}, job.Spec{Type: "running"}, job.Spec{Type: "done"}, job.Spec{Type: "retrying"})
		l := h.leaseJob(t0, w, jobs[2])
		h.succeed(t0, w, jobs[3])
		h.inStateFrom(t0, w, jobs[4], gantry.StateRetrying)
		other := h.submit(t0, job.Spec{Tenant: tenantA, Type: "other"})

		_, err := h.s.CancelBatch(t.Context(), tenantB, b.ID, at(time.Minute))
		wantErr(t, "CancelBatch(other tenant)", err, store.ErrNotFound)
		now := at(time.Minute)
		got, err := h.s.CancelBatch(t.Context(), tenantA, b.ID, now)
		if err != nil {
			t.Fatalf("CancelBatch: %v", err)
		}
		if !got.Closed || got.Done {
			t.Errorf("CancelBatch with a running job: closed %v, done %v; want true, false", got.Closed, got.Done)
		}
		for _, tt := range []struct {
			j               *job.Job
			state           gantry.State
			cancelRequested bool
		}{
			{jobs[0], gantry.StateCanceled, false},
			{jobs[1], gantry.StateCanceled, false},
			{jobs[2], gantry.StateRunning, true},
			{jobs[3], gantry.StateSucceeded, false},
			{jobs[4], gantry.StateCanceled, false},
			{other, gantry.StateQueued, false},
		} {
			j := h.get(tt.j.ID)
			if j.State != tt.state || j.CancelRequested != tt.cancelRequested {
				t.Errorf("job %s after CancelBatch: state %s, cancel requested %v; want %s, %v", tt.j.Type, j.State, j.CancelRequested, tt.state, tt.cancelRequested)
			}
		}
		h.batchNotDone(b.ID)
		h.mustFinish(at(2*time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeCanceled})
		h.batchDone(b.ID, at(2*time.Minute), true)
	})

	t.Run("CloseBatchScoping", func(t *testing.T) {
		h := begin(t, newStore)
		b, _ := h.newBatch(t0, tenantA, false, nil, job.Spec{Type: "a"})
		_, err := h.s.CloseBatch(t.Context(), tenantB, b.ID, at(time.Minute))
		wantErr(t, "CloseBatch(other tenant)", err, store.ErrNotFound)
		_, err = h.s.CloseBatch(t.Context(), tenantA, job.NewID(t0), at(time.Minute))
		wantErr(t, "CloseBatch(unknown)", err, store.ErrNotFound)
		_, err = h.s.CancelBatch(t.Context(), "", job.NewID(t0), at(time.Minute))
		wantErr(t, "CancelBatch(unknown)", err, store.ErrNotFound)
		if h.batch(b.ID).Closed {
			t.Error("CloseBatch by another tenant closed the batch")
		}
	})

	t.Run("ListBatches", func(t *testing.T) {
		h := begin(t, newStore)
		var mine []*job.Batch
		for i := range 5 {
			now := at(time.Duration(i) * time.Second)
			tenant := tenantA
			if i == 2 {
				tenant = tenantB
			}
			specs := make([]job.Spec, i+1)
			for k := range specs {
				specs[k] = job.Spec{Type: "t"}
			}
			b, _ := h.newBatch(now, tenant, false, nil, specs...)
			if tenant == tenantA {
				mine = append(mine, b)
			}
		}
		var got []*job.Batch
		p := store.ListBatchesParams{Tenant: tenantA, Limit: 2}
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatal("ListBatches never returned an empty cursor")
			}
			items, next, err := h.s.ListBatches(t.Context(), &p)
			if err != nil {
				t.Fatalf("ListBatches: %v", err)
			}
			if len(items) > 2 {
				t.Fatalf("ListBatches(limit 2) returned %d batches", len(items))
			}
			got = append(got, items...)
			if next == "" {
				break
			}
			p.Cursor = next
		}
		var wantIDs, gotIDs []string
		for i := len(mine) - 1; i >= 0; i-- {
			wantIDs = append(wantIDs, mine[i].ID)
		}
		for _, b := range got {
			gotIDs = append(gotIDs, b.ID)
		}
		if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
			t.Errorf("ListBatches(%s) mismatch (-want +got):\n%s", tenantA, diff)
		}
		for _, b := range got {
			if b.Total == 0 || b.Counts[gantry.StateQueued] != b.Total || b.Tenant != tenantA {
				t.Errorf("listed batch %s: tenant %s, total %d, counts %v; want %s with all jobs queued", b.ID, b.Tenant, b.Total, b.Counts, tenantA)
			}
		}
		all, _, err := h.s.ListBatches(t.Context(), &store.ListBatchesParams{Limit: 100})
		if err != nil {
			t.Fatalf("ListBatches(all): %v", err)
		}
		if len(all) != 5 {
			t.Errorf("ListBatches(all tenants) returned %d batches, want 5", len(all))
		}
	})
}

// inStateFrom drives the queued job j (leased by its unique type) into
// state st at now: running or retrying.
func (h *harness) inStateFrom(now time.Time, workerID string, j *job.Job, st gantry.State) {
	h.t.Helper()
	l := h.leaseJob(now, workerID, j)
	if st == gantry.StateRetrying {
		h.mustFinish(now, store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e", Retryable: true})
	}
}
