package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

// TestReservationTokensGrowAcrossReopen checks that a reservation's token
// after a restart is greater than every token issued before it, for
// reservations and job leases alike (RELIABILITY.md rule 2).
func TestReservationTokensGrowAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "g.db")
	var last int64
	for i := range 3 {
		s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		now := t0.Add(time.Duration(i) * time.Hour)
		r, err := s.AcquireReservation(ctx, &store.AcquireReservationParams{Name: "n", Holder: "h", TTL: time.Minute, Now: now})
		if err != nil {
			s.Close()
			t.Fatalf("open %d: AcquireReservation: %v", i, err)
		}
		if r.Token <= last {
			t.Errorf("open %d: reservation token %d, want > %d", i, r.Token, last)
		}
		j := newJob(t, "a", now)
		if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}}); err != nil {
			s.Close()
			t.Fatalf("InsertJobs: %v", err)
		}
		leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, WorkerID: "w", Max: 1, TTL: time.Second})
		if err != nil || len(leased) != 1 {
			s.Close()
			t.Fatalf("LeaseJobs = %v, %v", leased, err)
		}
		if leased[0].Token <= r.Token {
			t.Errorf("open %d: lease token %d, want > reservation token %d", i, leased[0].Token, r.Token)
		}
		last = leased[0].Token
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}
