package storetest

import (
	"github.com/gantryhq/gantry"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testOnChange(t *testing.T, newStore newStoreFunc) {
	t.Run("Hints", func(t *testing.T) {
		h := begin(t, newStore)
		c := newChanges()
		h.s.OnChange(c.record)
		w := h.worker(t0)

		j := h.submit(t0, job.Spec{Type: "t"})
		seq := h.lastEvent(j.ID).Seq
		c.waitFor(t, "JobsAvailable after inserting a queued job", func(ch store.Change) bool { return ch.JobsAvailable })
		c.waitFor(t, "LastSeq after inserting a job", func(ch store.Change) bool { return ch.LastSeq >= seq })

		c.reset()
		h.leaseJob(at(time.Second), w, j)
		seq = h.lastEvent(j.ID).Seq
		c.waitFor(t, "LastSeq after a lease", func(ch store.Change) bool { return ch.LastSeq >= seq })

		c.reset()
		h.rescue(at(time.Second + ttl))
		c.waitFor(t, "JobsAvailable after a rescue", func(ch store.Change) bool { return ch.JobsAvailable })

		c.reset()
		f := h.inState(at(time.Minute), gantry.StateFailed, job.Spec{Type: "failing"})
		c.reset()
		if _, err := h.s.RetryJob(t.Context(), "", f.ID, at(2*time.Minute)); err != nil {
			t.Fatalf("RetryJob: %v", err)
		}
		c.waitFor(t, "JobsAvailable after a manual retry", func(ch store.Change) bool { return ch.JobsAvailable })

		// The end of a running singleton job lets the next of its key run.
		for _, outcome := range []string{job.OutcomeSucceeded, job.OutcomeFailed} {
			sj := h.submit(at(time.Minute), job.Spec{Type: "single-" + outcome, SingletonKey: "k", MaxAttempts: 1})
			l := h.leaseJob(at(time.Minute), w, sj)
			c.reset()
			h.mustFinish(at(time.Minute), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: outcome, Error: "x"})
			c.waitFor(t, "JobsAvailable after a singleton job "+outcome, func(ch store.Change) bool { return ch.JobsAvailable })
		}

		s := h.submit(at(time.Minute), job.Spec{Type: "later", RunAt: at(time.Hour)})
		c.reset()
		if n, _ := h.promote(at(time.Hour), 10); n != 1 {
			t.Fatalf("PromoteDue promoted %d, want 1", n)
		}
		seq = h.lastEvent(s.ID).Seq
		c.waitFor(t, "JobsAvailable after a promotion", func(ch store.Change) bool { return ch.JobsAvailable })
		c.waitFor(t, "LastSeq after a promotion", func(ch store.Change) bool { return ch.LastSeq >= seq })
	})
}
