package storetest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testInsert(t *testing.T, newStore newStoreFunc) {
	t.Run("RoundTripEveryField", func(t *testing.T) {
		h := begin(t, newStore)
		full := job.Spec{
			Tenant: tenantA, Type: "email.send", Name: "welcome mail", Queue: "mail", Priority: 7,
			Params:      json.RawMessage(`{"to":"a@example.com","n":[1,2,3],"nested":{"ok":true}}`),
			Package:     "mailer@sha256:" + strings.Repeat("ab", 32),
			MaxAttempts: 3, Timeout: 90 * time.Second, UniqueKey: "welcome:42", SingletonKey: "mailer",
			Tags: []string{"blue", "green"}, Metadata: map[string]string{"owner": "ops", "ticket": "T-1"},
		}
		minimal := job.Spec{Type: "noop"}
		scheduled := job.Spec{Type: "later", Priority: -3, RunAt: at(time.Hour)}
		for _, sp := range []job.Spec{full, minimal, scheduled} {
			want := h.record(t0, sp)
			res := h.insertJobs(&store.InsertJobsParams{Now: t0, Jobs: []*job.Job{want}})
			if !res[0].Created {
				t.Errorf("InsertJobs(%s).Created = false, want true", sp.Type)
			}
			if diff := cmp.Diff(want, res[0].Job, cmpOpts); diff != "" {
				t.Errorf("InsertJobs(%s) result mismatch (-want +got):\n%s", sp.Type, diff)
			}
			got, err := h.s.GetJob(t.Context(), want.Tenant, want.ID)
			if err != nil {
				t.Fatalf("GetJob(%s, %s): %v", want.Tenant, want.ID, err)
			}
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("GetJob(%s) mismatch (-want +got):\n%s", sp.Type, diff)
			}
			if diff := cmp.Diff(want, h.get(want.ID), cmpOpts); diff != "" {
				t.Errorf("GetJob(\"\", %s) (admin) mismatch (-want +got):\n%s", sp.Type, diff)
			}
		}
	})

	t.Run("QueuedOrScheduledByRunAt", func(t *testing.T) {
		tests := []struct {
			name      string
			runAt     time.Time
			delay     time.Duration
			wantState gantry.State
			wantRunAt time.Time
		}{
			{name: "none", wantState: gantry.StateQueued},
			{name: "past", runAt: at(-time.Minute), wantState: gantry.StateQueued},
			{name: "now", runAt: t0, wantState: gantry.StateQueued},
			{name: "future", runAt: at(time.Minute), wantState: gantry.StateScheduled, wantRunAt: at(time.Minute)},
			{name: "delay", delay: 90 * time.Second, wantState: gantry.StateScheduled, wantRunAt: at(90 * time.Second)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				j := h.submit(t0, job.Spec{Type: "t", RunAt: tt.runAt, Delay: tt.delay})
				got := h.get(j.ID)
				if got.State != tt.wantState || !got.RunAt.Equal(tt.wantRunAt) {
					t.Errorf("inserted job: state %s, run_at %v; want %s, %v", got.State, got.RunAt, tt.wantState, tt.wantRunAt)
				}
			})
		}
	})

	t.Run("SubmittedEvents", func(t *testing.T) {
		h := begin(t, newStore)
		jobs := h.insert(t0,
			job.Spec{Tenant: tenantA, Type: "a", Queue: "q1"},
			job.Spec{Tenant: tenantA, Type: "b", RunAt: at(time.Hour)},
			job.Spec{Tenant: tenantA, Type: "c", Priority: 5},
		)
		var want []job.Event
		for _, j := range jobs {
			want = append(want, job.EventFor(job.EventSubmitted, j, t0))
		}
		got := h.events()
		if diff := cmp.Diff(want, got, cmpOpts, ignoreSeq); diff != "" {
			t.Errorf("events after InsertJobs mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("UniqueKey", func(t *testing.T) {
		t.Run("StoredDuplicate", func(t *testing.T) {
			h := begin(t, newStore)
			first := h.submit(t0, job.Spec{Tenant: tenantA, Type: "a", UniqueKey: "k"})
			before := h.lastSeq()
			dup := h.record(at(time.Second), job.Spec{Tenant: tenantA, Type: "b", UniqueKey: "k"})
			res := h.insertJobs(&store.InsertJobsParams{Now: at(time.Second), Jobs: []*job.Job{dup}})
			if res[0].Created || res[0].Job == nil || res[0].Job.ID != first.ID {
				t.Fatalf("InsertJobs(duplicate key) = %+v, want the existing job %s with Created false", res[0], first.ID)
			}
			if diff := cmp.Diff(first, res[0].Job, cmpOpts, ignoreAttempts); diff != "" {
				t.Errorf("InsertJobs(duplicate key) returned job mismatch (-want +got):\n%s", diff)
			}
			if _, err := h.s.GetJob(t.Context(), "", dup.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetJob(deduplicated id) error = %v, want ErrNotFound", err)
			}
			if evs := h.eventsSince(before, func(*job.Event) bool { return true }); len(evs) != 0 {
				t.Errorf("a deduplicated insert emitted events: %+v", evs)
			}
		})
		t.Run("DuplicateWithinOneCall", func(t *testing.T) {
			h := begin(t, newStore)
			a := h.record(t0, job.Spec{Tenant: tenantA, Type: "a", UniqueKey: "k"})
			b := h.record(t0, job.Spec{Tenant: tenantA, Type: "b", UniqueKey: "k"})
			c := h.record(t0, job.Spec{Tenant: tenantA, Type: "c", UniqueKey: "other"})
			d := h.record(t0, job.Spec{Tenant: tenantA, Type: "d", UniqueKey: "k"})
			res := h.insertJobs(&store.InsertJobsParams{Now: t0, Jobs: []*job.Job{a, b, c, d}})
			type fate struct {
				ID      string
				Created bool
			}
			var got []fate
			for _, r := range res {
				got = append(got, fate{r.Job.ID, r.Created})
			}
			want := []fate{{a.ID, true}, {a.ID, false}, {c.ID, true}, {a.ID, false}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("InsertJobs results mismatch (-want +got):\n%s", diff)
			}
			all := h.listAll(store.ListJobsParams{Limit: 100})
			if diff := cmp.Diff([]string{c.ID, a.ID}, ids(all)); diff != "" {
				t.Errorf("stored jobs mismatch (-want +got):\n%s", diff)
			}
			if n := len(h.events()); n != 2 {
				t.Errorf("%d events after inserting 2 distinct jobs, want 2", n)
			}
		})
		t.Run("OtherTenant", func(t *testing.T) {
			h := begin(t, newStore)
			// submit fails the test unless each job is created.
			h.submit(t0, job.Spec{Tenant: tenantA, Type: "a", UniqueKey: "k"})
			h.submit(t0, job.Spec{Tenant: tenantB, Type: "a", UniqueKey: "k"})
			if n := len(h.listAll(store.ListJobsParams{Limit: 100})); n != 2 {
				t.Errorf("%d jobs stored, want 2", n)
			}
		})
		t.Run("EmptyKeyNeverDedupes", func(t *testing.T) {
			h := begin(t, newStore)
			h.insert(t0, job.Spec{Type: "a"}, job.Spec{Type: "a"})
			h.submit(t0, job.Spec{Type: "a"})
		})
		for _, st := range gantry.States {
			t.Run("ExistingJob"+title(st), func(t *testing.T) {
				h := begin(t, newStore)
				first := h.inState(t0, st, job.Spec{Tenant: tenantA, Type: "first", UniqueKey: "k"})
				dup := h.record(at(time.Minute), job.Spec{Tenant: tenantA, Type: "second", UniqueKey: "k"})
				res := h.insertJobs(&store.InsertJobsParams{Now: at(time.Minute), Jobs: []*job.Job{dup}})
				if st.Terminal() {
					if !res[0].Created || res[0].Job.ID != dup.ID {
						t.Errorf("InsertJobs(key of a %s job) = {%s, Created %v}, want a new job %s", st, res[0].Job.ID, res[0].Created, dup.ID)
					}
					return
				}
				if res[0].Created || res[0].Job.ID != first.ID {
					t.Errorf("InsertJobs(key of a %s job) = {%s, Created %v}, want the %s job %s not created", st, res[0].Job.ID, res[0].Created, st, first.ID)
				}
				if res[0].Job.State != st {
					t.Errorf("InsertJobs(key of a %s job) returned it in state %s", st, res[0].Job.State)
				}
			})
		}
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		closedBatch := func(h *harness) *job.Batch {
			b := &job.Batch{ID: job.NewID(t0), Tenant: tenantA, Name: "closed", CreatedAt: t0, Closed: true}
			j := h.record(t0, job.Spec{Tenant: tenantA, Type: "member", BatchID: b.ID})
			h.insertJobs(&store.InsertJobsParams{Now: t0, Jobs: []*job.Job{j}, NewBatch: b})
			return b
		}
		tests := []struct {
			name    string
			tenant  string
			batchID func(h *harness) string
			wantErr error
		}{
			{
				name:   "ClosedBatch",
				tenant: tenantA, batchID: func(h *harness) string { return closedBatch(h).ID },
				wantErr: store.ErrConflict,
			},
			{
				name:   "UnknownBatch",
				tenant: tenantA, batchID: func(*harness) string { return job.NewID(t0) },
				wantErr: store.ErrNotFound,
			},
			{
				name:   "OtherTenantsBatch",
				tenant: tenantB, batchID: func(h *harness) string {
					b := &job.Batch{ID: job.NewID(t0), Tenant: tenantA, Name: "open", CreatedAt: t0}
					j := h.record(t0, job.Spec{Tenant: tenantA, Type: "member", BatchID: b.ID})
					h.insertJobs(&store.InsertJobsParams{Now: t0, Jobs: []*job.Job{j}, NewBatch: b})
					return b.ID
				},
				wantErr: store.ErrNotFound,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				batchID := tt.batchID(h)
				jobsBefore := ids(h.listAll(store.ListJobsParams{Limit: 100}))
				seqBefore := h.lastSeq()
				now := at(time.Minute)
				jobs := []*job.Job{
					h.record(now, job.Spec{Tenant: tt.tenant, Type: "x", BatchID: batchID}),
					h.record(now, job.Spec{Tenant: tt.tenant, Type: "y", BatchID: batchID, UniqueKey: "u"}),
				}
				_, err := h.s.InsertJobs(t.Context(), &store.InsertJobsParams{Now: now, Jobs: jobs, AddToBatch: batchID})
				wantErr(t, "InsertJobs(AddToBatch)", err, tt.wantErr)
				for _, j := range jobs {
					if _, err := h.s.GetJob(t.Context(), "", j.ID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("GetJob(%s) after a failed insert: error %v, want ErrNotFound", j.ID, err)
					}
				}
				if diff := cmp.Diff(jobsBefore, ids(h.listAll(store.ListJobsParams{Limit: 100}))); diff != "" {
					t.Errorf("jobs changed by a failed insert (-before +after):\n%s", diff)
				}
				if seq := h.lastSeq(); seq != seqBefore {
					t.Errorf("newest event seq %d after a failed insert, want %d (no events)", seq, seqBefore)
				}
				// The unique key of the rejected job must not be taken.
				h.submit(at(2*time.Minute), job.Spec{Tenant: tt.tenant, Type: "z", UniqueKey: "u"})
			})
		}
	})
}

// title returns s with its first letter upper-cased.
func title[S ~string](s S) string {
	if s == "" {
		return ""
	}
	return strings.ToUpper(string(s[:1])) + string(s[1:])
}
