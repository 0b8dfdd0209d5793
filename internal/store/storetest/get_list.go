package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testGetList(t *testing.T, newStore newStoreFunc) {
	t.Run("GetJobNotFound", func(t *testing.T) {
		h := begin(t, newStore)
		j := h.submit(t0, job.Spec{Tenant: tenantA, Type: "a"})
		tests := []struct{ tenant, id string }{
			{"", job.NewID(t0)},
			{tenantA, job.NewID(t0)},
			{tenantB, j.ID},
		}
		for _, tt := range tests {
			_, err := h.s.GetJob(t.Context(), tt.tenant, tt.id)
			wantErr(t, "GetJob("+tt.tenant+", "+tt.id+")", err, store.ErrNotFound)
		}
	})

	t.Run("NewestFirst", func(t *testing.T) {
		h := begin(t, newStore)
		var jobs []*job.Job
		for i := range 7 {
			jobs = append(jobs, h.submit(at(time.Duration(i)*time.Second), job.Spec{Type: typeN("t", i), Priority: i % 3}))
		}
		page, next, err := h.s.ListJobs(t.Context(), &store.ListJobsParams{Limit: 1000})
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		if next != "" {
			t.Errorf("ListJobs(limit 1000) over 7 jobs: next cursor %q, want \"\"", next)
		}
		if diff := cmp.Diff(reversed(jobs), ids(page)); diff != "" {
			t.Errorf("ListJobs order mismatch (-want +got):\n%s", diff)
		}
		// Listed jobs are whole records (attempts aside).
		for i, got := range page {
			want := jobs[len(jobs)-1-i]
			if diff := cmp.Diff(want, got, cmpOpts, ignoreAttempts); diff != "" {
				t.Errorf("ListJobs item %d mismatch (-want +got):\n%s", i, diff)
			}
		}
	})

	t.Run("CursorPaging", func(t *testing.T) {
		for _, limit := range []int{1, 3, 5, 10, 11} {
			t.Run(title(typeN("limit", limit)), func(t *testing.T) {
				h := begin(t, newStore)
				var jobs []*job.Job
				for i := range 10 {
					jobs = append(jobs, h.submit(at(time.Duration(i)*time.Second), job.Spec{Type: "t"}))
				}
				var got []string
				p := store.ListJobsParams{Limit: limit}
				for page := 0; ; page++ {
					if page > 20 {
						t.Fatal("ListJobs never returned an empty cursor")
					}
					jobsPage, next, err := h.s.ListJobs(t.Context(), &p)
					if err != nil {
						t.Fatalf("ListJobs(%+v): %v", p, err)
					}
					if len(jobsPage) > limit {
						t.Fatalf("ListJobs(limit %d) returned %d jobs", limit, len(jobsPage))
					}
					if next != "" && len(jobsPage) == 0 {
						t.Fatalf("ListJobs returned an empty page with a next cursor")
					}
					got = append(got, ids(jobsPage)...)
					// Newer jobs inserted between pages must not shift the pages.
					h.submit(at(time.Duration(100+page)*time.Second), job.Spec{Type: "t"})
					if next == "" {
						break
					}
					p.Cursor = next
				}
				if diff := cmp.Diff(reversed(jobs), got); diff != "" {
					t.Errorf("paged ListJobs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Filters", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j1 := h.submit(at(1*time.Second), job.Spec{Tenant: tenantA, Type: "a", Queue: "q1", Tags: []string{"red"}})
		b := &job.Batch{ID: job.NewID(at(2 * time.Second)), Tenant: tenantA, Name: "b", CreatedAt: at(2 * time.Second)}
		j2 := h.record(at(2*time.Second), job.Spec{Tenant: tenantA, Type: "b", Queue: "q1", Tags: []string{"red", "blue"}, BatchID: b.ID})
		j3 := h.record(at(2*time.Second), job.Spec{Tenant: tenantA, Type: "a", Queue: "q2", Tags: []string{"blue"}, BatchID: b.ID, RunAt: at(time.Hour)})
		h.insertJobs(&store.InsertJobsParams{Now: at(2 * time.Second), Jobs: []*job.Job{j2, j3}, NewBatch: b})
		j4 := h.submit(at(3*time.Second), job.Spec{Tenant: tenantB, Type: "a", Queue: "q1", Tags: []string{"red"}})
		j5 := h.submit(at(4*time.Second), job.Spec{Tenant: tenantA, Type: "c", Queue: "q2"})
		h.leaseJob(at(5*time.Second), w, j5)
		j6 := h.submit(at(6*time.Second), job.Spec{Tenant: tenantB, Type: "d", Queue: "q1"})
		h.succeed(at(7*time.Second), w, j6)

		tests := []struct {
			name string
			p    store.ListJobsParams
			want []*job.Job
		}{
			{"All", store.ListJobsParams{}, []*job.Job{j6, j5, j4, j3, j2, j1}},
			{"Tenant", store.ListJobsParams{Tenant: tenantA}, []*job.Job{j5, j3, j2, j1}},
			{"StateQueued", store.ListJobsParams{State: gantry.StateQueued}, []*job.Job{j4, j2, j1}},
			{"StateRunning", store.ListJobsParams{State: gantry.StateRunning}, []*job.Job{j5}},
			{"StateScheduled", store.ListJobsParams{State: gantry.StateScheduled}, []*job.Job{j3}},
			{"StateSucceeded", store.ListJobsParams{State: gantry.StateSucceeded}, []*job.Job{j6}},
			{"StateFailed", store.ListJobsParams{State: gantry.StateFailed}, nil},
			{"Type", store.ListJobsParams{Type: "a"}, []*job.Job{j4, j3, j1}},
			{"Queue", store.ListJobsParams{Queue: "q2"}, []*job.Job{j5, j3}},
			{"Batch", store.ListJobsParams{BatchID: b.ID}, []*job.Job{j3, j2}},
			{"TagRed", store.ListJobsParams{Tag: "red"}, []*job.Job{j4, j2, j1}},
			{"TagBlue", store.ListJobsParams{Tag: "blue"}, []*job.Job{j3, j2}},
			{"TagUnknown", store.ListJobsParams{Tag: "re"}, nil},
			{"TenantTagQueue", store.ListJobsParams{Tenant: tenantA, Tag: "red", Queue: "q1"}, []*job.Job{j2, j1}},
			{"OtherTenantState", store.ListJobsParams{Tenant: tenantB, State: gantry.StateSucceeded}, []*job.Job{j6}},
			{"OtherTenantBatch", store.ListJobsParams{Tenant: tenantB, BatchID: b.ID}, nil},
			{"TypeUnknown", store.ListJobsParams{Type: "nope"}, nil},
		}
		for _, tt := range tests {
			for _, limit := range []int{2, 1000} {
				p := tt.p
				p.Limit = limit
				got := h.listAll(p)
				if diff := cmp.Diff(ids(tt.want), ids(got), equateEmpty()); diff != "" {
					t.Errorf("%s: ListJobs(%+v) mismatch (-want +got):\n%s", tt.name, p, diff)
				}
			}
		}
	})

	t.Run("ListJobsAfterDelete", func(t *testing.T) {
		// A cursor pointing at a deleted job still resumes right after it.
		h := begin(t, newStore)
		w := h.worker(t0)
		var jobs []*job.Job
		for i := range 6 {
			jobs = append(jobs, h.submit(at(time.Duration(i)*time.Second), job.Spec{Type: typeN("t", i)}))
		}
		page, next, err := h.s.ListJobs(t.Context(), &store.ListJobsParams{Limit: 2})
		if err != nil || next == "" {
			t.Fatalf("ListJobs(limit 2) = %d jobs, next %q, %v; want a next cursor", len(page), next, err)
		}
		last := page[len(page)-1]
		h.succeed(at(time.Minute), w, last)
		if err := h.s.DeleteJob(t.Context(), "", last.ID); err != nil {
			t.Fatalf("DeleteJob: %v", err)
		}
		rest := h.listAll(store.ListJobsParams{Limit: 2, Cursor: next})
		if diff := cmp.Diff(reversed(jobs[:4]), ids(rest)); diff != "" {
			t.Errorf("pages after the cursor's job was deleted mismatch (-want +got):\n%s", diff)
		}
	})
}
