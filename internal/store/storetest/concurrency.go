package storetest

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testConcurrency(t *testing.T, newStore newStoreFunc) {
	t.Run("SubmitLeaseFinish", func(t *testing.T) {
		// A producer inserts while consumers lease and complete: every job
		// ends succeeded, its outcome accepted exactly once.
		h := begin(t, newStore)
		const chunks, perChunk, consumers = 20, 10, 4
		var (
			wg       sync.WaitGroup
			produced atomic.Bool
			mu       sync.Mutex
			accepted = map[string]int{}
		)
		wg.Go(func() {
			defer produced.Store(true)
			for c := range chunks {
				now := at(time.Duration(c) * time.Millisecond)
				jobs := make([]*job.Job, perChunk)
				for i := range jobs {
					jobs[i] = newRecord(t, now, job.Spec{Type: "t", Priority: i % 3})
				}
				if _, err := h.s.InsertJobs(t.Context(), &store.InsertJobsParams{Now: now, Jobs: jobs}); err != nil {
					t.Errorf("InsertJobs: %v", err)
					return
				}
			}
		})
		for range consumers {
			w := h.worker(t0)
			wg.Go(func() {
				// Consumers stop at the first empty lease after the producer is
				// done, so a lost job cannot make them spin forever.
				for {
					done := produced.Load()
					leased, err := h.s.LeaseJobs(t.Context(), &store.LeaseJobsParams{Now: at(time.Second), WorkerID: w, Max: 5, TTL: time.Hour})
					if err != nil {
						t.Errorf("LeaseJobs: %v", err)
						return
					}
					if len(leased) == 0 {
						if done {
							return
						}
						runtime.Gosched()
						continue
					}
					outs := make([]store.Outcome, len(leased))
					for i, l := range leased {
						outs[i] = store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded}
					}
					res, err := h.s.FinishJobs(t.Context(), &store.FinishJobsParams{Now: at(2 * time.Second), Outcomes: outs, Backoff: backoff})
					if err != nil {
						t.Errorf("FinishJobs: %v", err)
						return
					}
					mu.Lock()
					for _, r := range res {
						if r.OK {
							accepted[r.JobID]++
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		all := h.listAll(store.ListJobsParams{Limit: 1000})
		if len(all) != chunks*perChunk {
			t.Errorf("%d jobs stored, want %d", len(all), chunks*perChunk)
		}
		for _, j := range all {
			if j.State != gantry.StateSucceeded || j.Attempt != 1 || accepted[j.ID] != 1 {
				t.Errorf("job %s: state %s, attempt %d, outcomes accepted %d; want succeeded, 1, 1", j.ID, j.State, j.Attempt, accepted[j.ID])
			}
		}
		succeeded := h.eventsSince(0, func(e *job.Event) bool { return e.Kind == job.EventSucceeded })
		if len(succeeded) != chunks*perChunk {
			t.Errorf("%d job.succeeded events, want %d", len(succeeded), chunks*perChunk)
		}
	})
}
