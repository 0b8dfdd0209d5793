package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testCancelRetryDelete(t *testing.T, newStore newStoreFunc) {
	t.Run("Cancel", func(t *testing.T) {
		tests := []struct {
			from    gantry.State
			wantErr error
			want    gantry.State // state after the call
		}{
			{gantry.StateScheduled, nil, gantry.StateCanceled},
			{gantry.StateQueued, nil, gantry.StateCanceled},
			{gantry.StateRetrying, nil, gantry.StateCanceled},
			{gantry.StateRunning, nil, gantry.StateRunning},
			{gantry.StateSucceeded, store.ErrConflict, gantry.StateSucceeded},
			{gantry.StateFailed, store.ErrConflict, gantry.StateFailed},
			{gantry.StateCanceled, store.ErrConflict, gantry.StateCanceled},
		}
		for _, tt := range tests {
			t.Run(title(tt.from), func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, tt.from, job.Spec{Tenant: tenantA, Type: "t"})
				seq := h.lastSeq()
				now := at(time.Minute)
				got, err := h.s.CancelJob(t.Context(), tenantA, j.ID, now)
				stored := h.get(j.ID)
				if tt.wantErr != nil {
					wantErr(t, "CancelJob", err, tt.wantErr)
					if diff := cmp.Diff(j, stored, cmpOpts); diff != "" {
						t.Errorf("rejected CancelJob changed the job (-before +after):\n%s", diff)
					}
					if h.lastSeq() != seq {
						t.Error("rejected CancelJob appended events")
					}
					return
				}
				if err != nil {
					t.Fatalf("CancelJob: %v", err)
				}
				if diff := cmp.Diff(stored, got, cmpOpts, ignoreAttempts); diff != "" {
					t.Errorf("CancelJob's result differs from the stored job (-stored +result):\n%s", diff)
				}
				if stored.State != tt.want {
					t.Errorf("CancelJob on a %s job: state %s, want %s", tt.from, stored.State, tt.want)
				}
				if tt.from == gantry.StateRunning {
					if !stored.CancelRequested || stored.Token != j.Token || !stored.LeaseExpiresAt.Equal(j.LeaseExpiresAt) {
						t.Errorf("CancelJob on a running job: CancelRequested %v, token %d, expiry %v; want true, %d, %v", stored.CancelRequested, stored.Token, stored.LeaseExpiresAt, j.Token, j.LeaseExpiresAt)
					}
					if h.lastSeq() != seq {
						t.Error("CancelJob on a running job appended events, want none")
					}
					return
				}
				if !stored.FinishedAt.Equal(now) {
					t.Errorf("canceled job's FinishedAt = %v, want %v", stored.FinishedAt, now)
				}
				h.wantEvent(stored, job.EventCanceled, now)
				if got := h.lease(at(2*time.Hour), h.defaultWorker(), 10); len(got) != 0 {
					t.Errorf("a canceled job was leased: %v", ids(got))
				}
				if n, _ := h.promote(at(2*time.Hour), 10); n != 0 {
					t.Errorf("PromoteDue promoted %d canceled jobs", n)
				}
			})
		}
	})

	t.Run("Retry", func(t *testing.T) {
		tests := []struct {
			from    gantry.State
			wantErr error
		}{
			{gantry.StateScheduled, store.ErrConflict},
			{gantry.StateQueued, store.ErrConflict},
			{gantry.StateRunning, store.ErrConflict},
			{gantry.StateRetrying, store.ErrConflict},
			{gantry.StateSucceeded, store.ErrConflict},
			{gantry.StateFailed, nil},
			{gantry.StateCanceled, nil},
		}
		for _, tt := range tests {
			t.Run(title(tt.from), func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, tt.from, job.Spec{Tenant: tenantA, Type: "t"})
				seq := h.lastSeq()
				now := at(time.Minute)
				got, err := h.s.RetryJob(t.Context(), tenantA, j.ID, now)
				stored := h.get(j.ID)
				if tt.wantErr != nil {
					wantErr(t, "RetryJob", err, tt.wantErr)
					if diff := cmp.Diff(j, stored, cmpOpts); diff != "" {
						t.Errorf("rejected RetryJob changed the job (-before +after):\n%s", diff)
					}
					if h.lastSeq() != seq {
						t.Error("rejected RetryJob appended events")
					}
					return
				}
				if err != nil {
					t.Fatalf("RetryJob: %v", err)
				}
				if diff := cmp.Diff(stored, got, cmpOpts, ignoreAttempts); diff != "" {
					t.Errorf("RetryJob's result differs from the stored job (-stored +result):\n%s", diff)
				}
				if stored.State != gantry.StateQueued || store.Exhausted(stored) || !stored.FinishedAt.IsZero() {
					t.Errorf("retried job: state %s, exhausted %v, FinishedAt %v; want queued, false, zero", stored.State, store.Exhausted(stored), stored.FinishedAt)
				}
				h.wantEvent(stored, job.EventQueued, now)
				l := h.leaseJob(at(2*time.Minute), h.defaultWorker(), j)
				if l.Attempt != j.Attempt+1 {
					t.Errorf("first lease after retry: attempt %d, want %d (numbering continues)", l.Attempt, j.Attempt+1)
				}
				if l.Token <= j.Token {
					t.Errorf("lease after retry: token %d, want above %d", l.Token, j.Token)
				}
				if n := len(h.get(j.ID).Attempts); n != j.Attempt+1 {
					t.Errorf("attempt history has %d entries after retry and lease, want %d", n, j.Attempt+1)
				}
			})
		}
	})

	t.Run("RetryGivesFreshBudget", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 2})
		fail := func(now time.Time) *job.Job {
			l := h.leaseJob(now, w, j)
			return h.mustFinish(now.Add(time.Second), store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e", Retryable: true})
		}
		fail(at(1 * time.Minute))
		h.promote(at(2*time.Minute), 10)
		if got := fail(at(2 * time.Minute)); got.State != gantry.StateFailed {
			t.Fatalf("after 2 of 2 attempts: state %s, want failed", got.State)
		}
		got, err := h.s.RetryJob(t.Context(), "", j.ID, at(3*time.Minute))
		if err != nil {
			t.Fatalf("RetryJob: %v", err)
		}
		if store.Exhausted(got) {
			t.Errorf("store.Exhausted(retried job) = true (attempt %d, base %d, max %d)", got.Attempt, got.AttemptBase, got.MaxAttempts)
		}
		// Two more attempts: the first failure retries, the second dead-letters.
		if got := fail(at(4 * time.Minute)); got.State != gantry.StateRetrying || got.Attempt != 3 {
			t.Errorf("first failure after retry: state %s, attempt %d; want retrying, 3", got.State, got.Attempt)
		}
		h.promote(at(5*time.Minute), 10)
		if got := fail(at(5 * time.Minute)); got.State != gantry.StateFailed || got.Attempt != 4 {
			t.Errorf("second failure after retry: state %s, attempt %d; want failed, 4", got.State, got.Attempt)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		for _, st := range gantry.States {
			t.Run(title(st), func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, st, job.Spec{Tenant: tenantA, Type: "t"})
				err := h.s.DeleteJob(t.Context(), tenantA, j.ID)
				if !st.Terminal() {
					wantErr(t, "DeleteJob", err, store.ErrConflict)
					if diff := cmp.Diff(j, h.get(j.ID), cmpOpts); diff != "" {
						t.Errorf("rejected DeleteJob changed the job (-before +after):\n%s", diff)
					}
					return
				}
				if err != nil {
					t.Fatalf("DeleteJob(%s job): %v", st, err)
				}
				_, err = h.s.GetJob(t.Context(), "", j.ID)
				wantErr(t, "GetJob(deleted)", err, store.ErrNotFound)
				if got := h.listAll(store.ListJobsParams{Limit: 100}); len(got) != 0 {
					t.Errorf("ListJobs after delete = %v, want none", ids(got))
				}
				wantErr(t, "DeleteJob(deleted)", h.s.DeleteJob(t.Context(), tenantA, j.ID), store.ErrNotFound)
			})
		}
	})

	t.Run("TenantScoping", func(t *testing.T) {
		type op struct {
			name string
			call func(h *harness, tenant, id string) error
		}
		ops := []op{
			{"GetJob", func(h *harness, tenant, id string) error {
				_, err := h.s.GetJob(h.t.Context(), tenant, id)
				return err
			}},
			{"CancelJob", func(h *harness, tenant, id string) error {
				_, err := h.s.CancelJob(h.t.Context(), tenant, id, at(time.Minute))
				return err
			}},
			{"RetryJob", func(h *harness, tenant, id string) error {
				_, err := h.s.RetryJob(h.t.Context(), tenant, id, at(time.Minute))
				return err
			}},
			{"DeleteJob", func(h *harness, tenant, id string) error {
				return h.s.DeleteJob(h.t.Context(), tenant, id)
			}},
		}
		// The job's state lets each operation succeed for its own tenant.
		states := map[string]gantry.State{"GetJob": gantry.StateQueued, "CancelJob": gantry.StateQueued, "RetryJob": gantry.StateFailed, "DeleteJob": gantry.StateSucceeded}
		for _, o := range ops {
			t.Run(o.name, func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, states[o.name], job.Spec{Tenant: tenantA, Type: "t"})
				wantErr(t, o.name+"(unknown id)", o.call(h, tenantA, job.NewID(t0)), store.ErrNotFound)
				wantErr(t, o.name+"(unknown id, admin)", o.call(h, "", job.NewID(t0)), store.ErrNotFound)
				wantErr(t, o.name+"(other tenant)", o.call(h, tenantB, j.ID), store.ErrNotFound)
				if diff := cmp.Diff(j, h.get(j.ID), cmpOpts); diff != "" {
					t.Errorf("%s by another tenant changed the job (-before +after):\n%s", o.name, diff)
				}
				if err := o.call(h, tenantA, j.ID); err != nil {
					t.Errorf("%s by its own tenant: %v", o.name, err)
				}
			})
		}
		t.Run("Admin", func(t *testing.T) {
			h := begin(t, newStore)
			for i, o := range ops {
				j := h.inState(t0, states[o.name], job.Spec{Tenant: tenantA, Type: typeN("t", i)})
				if err := o.call(h, "", j.ID); err != nil {
					t.Errorf("%s by an admin (tenant \"\"): %v", o.name, err)
				}
			}
		})
	})
}
