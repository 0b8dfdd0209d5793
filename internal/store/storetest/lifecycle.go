package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testLifecycle(t *testing.T, newStore newStoreFunc) {
	t.Run("Ping", func(t *testing.T) {
		h := begin(t, newStore)
		if err := h.s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})

	t.Run("CallsAfterClose", func(t *testing.T) {
		h := begin(t, newStore)
		j := h.submit(t0, job.Spec{Type: "t"})
		if err := h.s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		ctx := t.Context()
		calls := []struct {
			name string
			call func() error
		}{
			{"Ping", func() error { return h.s.Ping(ctx) }},
			{"GetJob", func() error { _, err := h.s.GetJob(ctx, "", j.ID); return err }},
			{"InsertJobs", func() error {
				_, err := h.s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, Jobs: []*job.Job{h.record(t0, job.Spec{Type: "t"})}})
				return err
			}},
			{"LeaseJobs", func() error {
				_, err := h.s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: t0, WorkerID: "w", Max: 1, TTL: ttl})
				return err
			}},
			{"ReadEvents", func() error { _, err := h.s.ReadEvents(ctx, 0, 10); return err }},
			{"PromoteDue", func() error { _, _, err := h.s.PromoteDue(ctx, at(time.Hour), 10); return err }},
		}
		for _, c := range calls {
			if err := c.call(); !errors.Is(err, store.ErrClosed) {
				t.Errorf("%s after Close: error %v, want ErrClosed", c.name, err)
			}
		}
	})
}
