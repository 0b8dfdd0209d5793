package postgres_test

import (
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
)

// TestReservationTokensGrowAcrossReopen checks that a reservation's token
// after a restart is greater than every token issued before it, for
// reservations and job leases alike (RELIABILITY.md rule 2).
func TestReservationTokensGrowAcrossReopen(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	now := time.Now()
	var last int64
	for i := range 3 {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema})
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		at := now.Add(time.Duration(i) * time.Hour)
		r, err := s.AcquireReservation(t.Context(), &store.AcquireReservationParams{Name: "n", Holder: "h", TTL: time.Minute, Now: at})
		if err != nil {
			s.Close()
			t.Fatalf("open %d: AcquireReservation: %v", i, err)
		}
		if r.Token <= last {
			t.Errorf("open %d: reservation token %d, want > %d", i, r.Token, last)
		}
		submit(t, s, at)
		leased, err := s.LeaseJobs(t.Context(), &store.LeaseJobsParams{Now: at, WorkerID: "w", Max: 10, TTL: time.Minute})
		if err != nil || len(leased) != 1 {
			s.Close()
			t.Fatalf("open %d: LeaseJobs = %v, %v", i, leased, err)
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
