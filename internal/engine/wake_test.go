package engine_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// countingStore counts LeaseJobs calls.
type countingStore struct {
	store.Store
	leases atomic.Int64
}

func (s *countingStore) LeaseJobs(ctx context.Context, p *store.LeaseJobsParams) ([]*job.Job, error) {
	s.leases.Add(1)
	return s.Store.LeaseJobs(ctx, p)
}

// TestWakeDoesNotStampede checks that a job submitted while many workers
// of one kind long-poll is leased by one of them with a few store queries,
// not one per waiting worker, and that every worker still gets a job when
// as many jobs arrive.
func TestWakeDoesNotStampede(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := &countingStore{Store: openStore(t, dir)}
		e := engine.New(st, engine.Config{Logger: testLogger(t), LeasePollInterval: time.Hour})
		e.Start(context.Background())
		defer e.Close()
		v := &env{t: t, e: e}

		const waiters = 100
		ids := make([]string, waiters)
		for i := range ids {
			ids[i] = v.register(job.Worker{Name: "w", Capacity: 1, LeaseTTL: 30 * time.Second}).ID
		}
		var (
			mu  sync.Mutex
			got = map[string]int{} // job id -> leases
			wg  sync.WaitGroup
		)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		for _, id := range ids {
			wg.Go(func() {
				for ctx.Err() == nil {
					res, err := e.Lease(ctx, id, 1, 10*time.Minute)
					if err != nil {
						return
					}
					mu.Lock()
					for _, j := range res.Jobs {
						got[j.ID]++
					}
					mu.Unlock()
					if len(res.Jobs) > 0 {
						return // one job each at most
					}
				}
			})
		}
		synctest.Wait() // every worker waits
		before := st.leases.Load()

		v.submit(job.Spec{Type: "t"})
		synctest.Wait()
		if n := st.leases.Load() - before; n > 8 {
			t.Errorf("one submit made %d lease queries with %d workers waiting, want a few", n, waiters)
		}
		mu.Lock()
		if len(got) != 1 {
			t.Errorf("%d jobs leased after one submit, want 1", len(got))
		}
		mu.Unlock()

		// As many jobs as waiting workers: each is leased exactly once.
		for range waiters - 1 {
			v.submit(job.Spec{Type: "t"})
		}
		synctest.Wait()
		mu.Lock()
		if len(got) != waiters {
			t.Errorf("%d of %d jobs leased", len(got), waiters)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("job %s leased %d times", id, n)
			}
		}
		mu.Unlock()
		cancel()
		wg.Wait()
	})
}
