package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
)

func openBench(b *testing.B) *postgres.Store {
	url := needDB(b)
	return open(b, url, freshSchema(b, url))
}

func makeJobs(n int, now time.Time) []*job.Job {
	jobs := make([]*job.Job, n)
	for i := range jobs {
		sp := job.Spec{Type: "noop"}
		sp.Normalize(now)
		jobs[i] = job.NewFromSpec(&sp, job.NewID(now), now)
	}
	return jobs
}

// BenchmarkInsert measures InsertJobs in batches; one op is one job.
func BenchmarkInsert(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openBench(b)
			ctx := b.Context()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				now := time.Now()
				if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: makeJobs(min(batch, b.N-i), now)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// BenchmarkLeaseFinish measures leasing and completing pre-inserted jobs
// with several concurrent workers, batches of 100; one op is one job.
func BenchmarkLeaseFinish(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := openBench(b)
			ctx := b.Context()
			now := time.Now()
			for i := 0; i < b.N; i += 1000 {
				if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: makeJobs(min(1000, b.N-i), now)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for {
						now := time.Now()
						js, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, WorkerID: fmt.Sprint("w", w), Max: 100, TTL: 30 * time.Second})
						if err != nil {
							b.Error(err)
							return
						}
						if len(js) == 0 {
							return
						}
						outs := make([]store.Outcome, len(js))
						for i, j := range js {
							outs[i] = store.Outcome{JobID: j.ID, Token: j.Token, Outcome: job.OutcomeSucceeded}
						}
						if _, err := s.FinishJobs(ctx, &store.FinishJobsParams{Now: now, Outcomes: outs}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
