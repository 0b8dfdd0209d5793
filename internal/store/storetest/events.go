package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testEvents(t *testing.T, newStore newStoreFunc) {
	t.Run("Empty", func(t *testing.T) {
		h := begin(t, newStore)
		oldest, newest, err := h.s.EventBounds(t.Context())
		if err != nil || oldest != 0 || newest != 0 {
			t.Errorf("EventBounds of a new store = %d, %d, %v; want 0, 0, nil", oldest, newest, err)
		}
		if evs := h.events(); len(evs) != 0 {
			t.Errorf("ReadEvents of a new store = %+v, want none", evs)
		}
	})

	t.Run("LifecycleInOrder", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		b, jobs := h.newBatch(t0, tenantA, true, nil, job.Spec{Type: "render", Queue: "q", MaxAttempts: 3})
		j := jobs[0]
		l := h.leaseJob(at(1*time.Second), w, j)
		h.mustFinish(at(2*time.Second), store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e1", Retryable: true, RetryAfter: time.Second})
		h.promote(at(3*time.Second), 10)
		l = h.leaseJob(at(4*time.Second), w, j)
		h.mustFinish(at(5*time.Second), store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeSucceeded})

		ev := func(kind string, sec int, state gantry.State, attempt int) job.Event {
			return job.Event{
				Kind: kind, At: at(time.Duration(sec) * time.Second), Tenant: tenantA, JobID: j.ID, BatchID: b.ID,
				Type: "render", Queue: "q", State: state, Attempt: attempt,
			}
		}
		want := []job.Event{
			ev(job.EventSubmitted, 0, gantry.StateQueued, 0),
			ev(job.EventStarted, 1, gantry.StateRunning, 1),
			ev(job.EventRetrying, 2, gantry.StateRetrying, 1),
			ev(job.EventQueued, 3, gantry.StateQueued, 1),
			ev(job.EventStarted, 4, gantry.StateRunning, 2),
			ev(job.EventSucceeded, 5, gantry.StateSucceeded, 2),
		}
		got := h.events()
		if len(got) != len(want)+1 {
			t.Fatalf("events = %+v, want %d job events and batch.done", got, len(want))
		}
		// Whether a job's old error shows on later events is not specified.
		if diff := cmp.Diff(want, got[:len(want)], cmpOpts, ignoreSeq, cmpopts.IgnoreFields(job.Event{}, "Error")); diff != "" {
			t.Errorf("job events mismatch (-want +got):\n%s", diff)
		}
		if got[2].Error != "e1" {
			t.Errorf("job.retrying event error = %q, want %q", got[2].Error, "e1")
		}
		done := got[len(got)-1]
		if done.Kind != job.EventBatchDone || done.BatchID != b.ID || done.Tenant != tenantA || !done.At.Equal(at(5*time.Second)) {
			t.Errorf("last event = %+v, want batch.done of %s at %v", done, b.ID, at(5*time.Second))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq <= got[i-1].Seq {
				t.Errorf("event %d has seq %d after %d: want strictly increasing", i, got[i].Seq, got[i-1].Seq)
			}
		}
	})

	t.Run("FailedEventCarriesError", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Tenant: tenantB, Type: "t"})
		l := h.leaseJob(t0, w, j)
		h.mustFinish(at(time.Second), store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "disk full"})
		want := job.Event{Kind: job.EventFailed, At: at(time.Second), Tenant: tenantB, JobID: j.ID, Type: "t", Queue: job.DefaultQueue, State: gantry.StateFailed, Attempt: 1, Error: "disk full"}
		if diff := cmp.Diff(want, h.lastEvent(j.ID), cmpOpts, ignoreSeq); diff != "" {
			t.Errorf("job.failed event mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		h := begin(t, newStore)
		for i := range 25 {
			h.submit(at(time.Duration(i)*time.Second), job.Spec{Type: "t"})
		}
		all := h.events()
		if len(all) != 25 {
			t.Fatalf("%d events after 25 inserts, want 25", len(all))
		}
		for _, limit := range []int{1, 7, 25, 100} {
			var got []job.Event
			var after int64
			for page := 0; ; page++ {
				if page > 30 {
					t.Fatalf("limit %d: ReadEvents never ran out", limit)
				}
				evs, err := h.s.ReadEvents(t.Context(), after, limit)
				if err != nil {
					t.Fatalf("ReadEvents(%d, %d): %v", after, limit, err)
				}
				if len(evs) > limit {
					t.Fatalf("ReadEvents(%d, %d) returned %d events", after, limit, len(evs))
				}
				if len(evs) == 0 {
					break
				}
				got = append(got, evs...)
				after = evs[len(evs)-1].Seq
			}
			if diff := cmp.Diff(all, got, cmpOpts); diff != "" {
				t.Errorf("limit %d: paged events mismatch (-all +paged):\n%s", limit, diff)
			}
		}
		// Resuming from the middle of the log gives exactly the rest.
		mid := all[11].Seq
		rest, err := h.s.ReadEvents(t.Context(), mid, 100)
		if err != nil {
			t.Fatalf("ReadEvents: %v", err)
		}
		if diff := cmp.Diff(all[12:], rest, cmpOpts); diff != "" {
			t.Errorf("ReadEvents(after %d) mismatch (-want +got):\n%s", mid, diff)
		}
	})

	t.Run("PagingWhileWriting", func(t *testing.T) {
		h := begin(t, newStore)
		var got []job.Event
		var after int64
		for i := range 20 {
			h.insert(at(time.Duration(i)*time.Second), job.Spec{Type: "t"}, job.Spec{Type: "u"})
			evs, err := h.s.ReadEvents(t.Context(), after, 3)
			if err != nil {
				t.Fatalf("ReadEvents: %v", err)
			}
			got = append(got, evs...)
			if len(evs) > 0 {
				after = evs[len(evs)-1].Seq
			}
		}
		for {
			evs, err := h.s.ReadEvents(t.Context(), after, 3)
			if err != nil {
				t.Fatalf("ReadEvents: %v", err)
			}
			if len(evs) == 0 {
				break
			}
			got = append(got, evs...)
			after = evs[len(evs)-1].Seq
		}
		if diff := cmp.Diff(h.events(), got, cmpOpts); diff != "" {
			t.Errorf("events read while writing mismatch (-all +read):\n%s", diff)
		}
	})

	t.Run("BoundsAndRetention", func(t *testing.T) {
		h := begin(t, newStore)
		for i := range 6 {
			h.submit(at(time.Duration(i)*time.Minute), job.Spec{Type: "t"})
		}
		all := h.events()
		wantBounds := func(what string, oldest, newest int64) {
			t.Helper()
			o, n, err := h.s.EventBounds(t.Context())
			if err != nil || o != oldest || n != newest {
				t.Errorf("%s: EventBounds = %d, %d, %v; want %d, %d, nil", what, o, n, err, oldest, newest)
			}
		}
		wantBounds("before retention", all[0].Seq, all[5].Seq)
		res, err := h.s.Retain(t.Context(), &store.RetainParams{EventsBefore: at(3 * time.Minute), Limit: 100})
		if err != nil {
			t.Fatalf("Retain: %v", err)
		}
		if res.Events != 3 {
			t.Errorf("Retain deleted %d events, want 3", res.Events)
		}
		wantBounds("after partial retention", all[3].Seq, all[5].Seq)
		if diff := cmp.Diff(all[3:], h.events(), cmpOpts); diff != "" {
			t.Errorf("events after retention mismatch (-want +got):\n%s", diff)
		}
		if _, err := h.s.Retain(t.Context(), &store.RetainParams{EventsBefore: at(time.Hour), Limit: 100}); err != nil {
			t.Fatalf("Retain: %v", err)
		}
		wantBounds("after all events were retained away", all[5].Seq+1, all[5].Seq)
		// New events continue the sequence.
		j := h.submit(at(2*time.Hour), job.Spec{Type: "t"})
		ev := h.lastEvent(j.ID)
		if ev.Seq <= all[5].Seq {
			t.Errorf("event after retention has seq %d, want above %d", ev.Seq, all[5].Seq)
		}
		wantBounds("after a new event", ev.Seq, ev.Seq)
	})

	t.Run("TailingReaderMissesNothing", func(t *testing.T) {
		// A reader following the log with ReadEvents(after last seen) while
		// writers commit concurrently must see every event: seqs are
		// assigned in commit order.
		h := begin(t, newStore)
		const writers, perWriter = 4, 40
		var (
			wg       sync.WaitGroup
			writing  atomic.Int32
			readErr  error
			seen     []job.Event
			readDone = make(chan struct{})
		)
		writing.Store(writers)
		go func() {
			defer close(readDone)
			var after int64
			for {
				stop := writing.Load() == 0
				evs, err := h.s.ReadEvents(t.Context(), after, 16)
				if err != nil {
					readErr = err
					return
				}
				seen = append(seen, evs...)
				if len(evs) > 0 {
					after = evs[len(evs)-1].Seq
				} else if stop {
					return
				}
			}
		}()
		for w := range writers {
			wg.Go(func() {
				defer writing.Add(-1)
				for i := range perWriter {
					now := at(time.Duration(i) * time.Millisecond)
					j := newRecord(t, now, job.Spec{Type: typeN("w", w)})
					if _, err := h.s.InsertJobs(t.Context(), &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}}); err != nil {
						t.Errorf("InsertJobs: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		<-readDone
		if readErr != nil {
			t.Fatalf("ReadEvents: %v", readErr)
		}
		all := h.events()
		if len(all) != writers*perWriter {
			t.Errorf("%d events stored, want %d", len(all), writers*perWriter)
		}
		for i := 1; i < len(all); i++ {
			if all[i].Seq <= all[i-1].Seq {
				t.Errorf("events out of order: seq %d after %d", all[i].Seq, all[i-1].Seq)
			}
		}
		if diff := cmp.Diff(all, seen, cmpOpts); diff != "" {
			t.Errorf("the tailing reader saw a different log (-stored +seen):\n%s", diff)
		}
	})
}
