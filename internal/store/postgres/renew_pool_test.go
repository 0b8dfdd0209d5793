package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
)

// TestRenewalsDoNotStarve holds every connection of the main pool, as a
// burst of submissions and claims would, and checks that heartbeats and
// reservation renewals still go through on the reserved pool while other
// writes wait.
func TestRenewalsDoNotStarve(t *testing.T) {
	url := needDB(t)
	s := open(t, url, freshSchema(t, url))
	ctx := t.Context()
	now := time.Now()
	sp := job.Spec{Type: "t"}
	sp.Normalize(now)
	j := job.NewFromSpec(&sp, job.NewID(now), now)
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}}); err != nil {
		t.Fatal(err)
	}
	leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, WorkerID: "w", Max: 1, TTL: time.Minute})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseJobs = %v, %v", leased, err)
	}
	r, err := s.AcquireReservation(ctx, &store.AcquireReservationParams{Name: "leader", Holder: "a", TTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}

	release := postgres.HoldMainPool(t, s)
	defer release()

	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := s.HeartbeatJobs(short, &store.HeartbeatJobsParams{Now: now.Add(time.Second), WorkerID: "w",
		Leases: []store.HeartbeatLease{{JobID: j.ID, Token: leased[0].Token}}})
	if err != nil || !res[0].OK {
		t.Fatalf("HeartbeatJobs with the main pool exhausted = %+v, %v; want OK", res, err)
	}
	if _, err := s.RenewReservation(short, &store.RenewReservationParams{Name: "leader", Holder: "a", Token: r.Token, TTL: time.Minute, Now: now.Add(time.Second)}); err != nil {
		t.Fatalf("RenewReservation with the main pool exhausted: %v", err)
	}
	blocked, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	sp2 := job.Spec{Type: "t2"}
	sp2.Normalize(now)
	_, err = s.InsertJobs(blocked, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{job.NewFromSpec(&sp2, job.NewID(now), now)}})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("InsertJobs with the main pool exhausted = %v, want it to wait for a connection (deadline exceeded)", err)
	}
}
