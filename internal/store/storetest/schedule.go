package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// schedule is a schedule of tenant and name firing every minute from
// next, as the engine would put it at now.
func schedule(tenant, name string, next, now time.Time) *job.Schedule {
	return &job.Schedule{
		Tenant: tenant, Name: name, Cron: "* * * * *", Timezone: "UTC",
		Job: job.Spec{Tenant: tenant, Type: "report", Queue: "default", MaxAttempts: 3, Params: json.RawMessage(`{"k":1}`),
			Tags: []string{"cron"}, Metadata: map[string]string{"owner": "ops"}, Timeout: time.Minute},
		Overlap: job.OverlapAllow, NextRunAt: next, CreatedAt: now, UpdatedAt: now,
	}
}

func (h *harness) putSchedule(s *job.Schedule) (*job.Schedule, bool) {
	h.t.Helper()
	got, created, err := h.s.PutSchedule(h.t.Context(), s)
	if err != nil {
		h.t.Fatalf("PutSchedule(%s/%s): %v", s.Tenant, s.Name, err)
	}
	return got, created
}

func (h *harness) getSchedule(tenant, name string) *job.Schedule {
	h.t.Helper()
	s, err := h.s.GetSchedule(h.t.Context(), tenant, name)
	if err != nil {
		h.t.Fatalf("GetSchedule(%s/%s): %v", tenant, name, err)
	}
	return s
}

// fire fires s's tick (zero: a manual trigger) at now with a fresh job
// from s's spec, the next tick one minute after the tick.
func (h *harness) fire(s *job.Schedule, tick, now time.Time) (store.FireResult, error) {
	h.t.Helper()
	p := &store.FireScheduleParams{Tenant: s.Tenant, Name: s.Name, Version: s.Version, Tick: tick, Job: h.record(now, s.Job), Now: now}
	if !tick.IsZero() {
		p.Next = tick.Add(time.Minute)
	}
	return h.s.FireSchedule(h.t.Context(), p)
}

func (h *harness) mustFire(s *job.Schedule, tick, now time.Time) store.FireResult {
	h.t.Helper()
	res, err := h.fire(s, tick, now)
	if err != nil {
		h.t.Fatalf("FireSchedule(%s, tick %v): %v", s.Name, tick, err)
	}
	return res
}

// countJobs counts a tenant's jobs.
func (h *harness) countJobs(tenant string) int {
	h.t.Helper()
	js, _, err := h.s.ListJobs(h.t.Context(), &store.ListJobsParams{Tenant: tenant, Limit: 1000})
	if err != nil {
		h.t.Fatalf("ListJobs: %v", err)
	}
	return len(js)
}

func testSchedule(t *testing.T, newStore newStoreFunc) {
	t.Run("PutGetReplace", func(t *testing.T) {
		h := begin(t, newStore)
		in := schedule(tenantA, "nightly", at(time.Minute), at(0))
		got, created := h.putSchedule(in)
		want := *in
		want.Version = 1
		if diff := cmp.Diff(&want, got, cmpOpts); diff != "" || !created {
			t.Errorf("PutSchedule created %t (want true), mismatch (-want +got):\n%s", created, diff)
		}
		if diff := cmp.Diff(&want, h.getSchedule(tenantA, "nightly"), cmpOpts); diff != "" {
			t.Errorf("GetSchedule mismatch (-want +got):\n%s", diff)
		}
		// A new job body, same cron: the pending tick stays.
		in2 := schedule(tenantA, "nightly", at(2*time.Minute), at(time.Second))
		in2.Job.Type, in2.Overlap = "report2", job.OverlapSkip
		got, created = h.putSchedule(in2)
		want2 := *in2
		want2.Version, want2.CreatedAt, want2.NextRunAt = 2, at(0), at(time.Minute)
		if diff := cmp.Diff(&want2, got, cmpOpts); diff != "" || created {
			t.Errorf("replacing PutSchedule created %t (want false), mismatch (-want +got):\n%s", created, diff)
		}
		// A new cron: the new next run.
		in3 := schedule(tenantA, "nightly", at(time.Hour), at(2*time.Second))
		in3.Cron = "0 * * * *"
		if got, _ = h.putSchedule(in3); !got.NextRunAt.Equal(at(time.Hour)) || got.Version != 3 {
			t.Errorf("PutSchedule with a new cron: next run %v version %d, want %v and 3", got.NextRunAt, got.Version, at(time.Hour))
		}
		// Paused: no next run.
		in4 := schedule(tenantA, "nightly", at(time.Hour), at(3*time.Second))
		in4.Paused = true
		if got, _ = h.putSchedule(in4); !got.NextRunAt.IsZero() || !got.Paused {
			t.Errorf("paused PutSchedule: next run %v paused %t, want none and true", got.NextRunAt, got.Paused)
		}
	})

	t.Run("TenantsAndNotFound", func(t *testing.T) {
		h := begin(t, newStore)
		h.putSchedule(schedule(tenantA, "s", at(time.Minute), at(0)))
		h.putSchedule(schedule(tenantB, "s", at(2*time.Minute), at(0)))
		if got := h.getSchedule(tenantB, "s"); !got.NextRunAt.Equal(at(2 * time.Minute)) {
			t.Errorf("tenants share a schedule name: %+v", got)
		}
		if _, err := h.s.GetSchedule(t.Context(), tenantA, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSchedule(unknown) = %v, want ErrNotFound", err)
		}
		if err := h.s.DeleteSchedule(t.Context(), tenantA, "other"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("DeleteSchedule(unknown) = %v, want ErrNotFound", err)
		}
		if err := h.s.DeleteSchedule(t.Context(), tenantA, "s"); err != nil {
			t.Fatalf("DeleteSchedule: %v", err)
		}
		if _, err := h.s.GetSchedule(t.Context(), tenantA, "s"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSchedule(deleted) = %v, want ErrNotFound", err)
		}
		h.getSchedule(tenantB, "s")
	})

	t.Run("ListPaging", func(t *testing.T) {
		h := begin(t, newStore)
		names := []string{"b", "A", "a", "c-1", "c.0", "Z"}
		for _, n := range names {
			h.putSchedule(schedule(tenantA, n, at(time.Minute), at(0)))
		}
		h.putSchedule(schedule(tenantB, "0", at(time.Minute), at(0)))
		list := func(tenant string, limit int) []string {
			var got []string
			cursor := ""
			for range 20 {
				page, next, err := h.s.ListSchedules(t.Context(), &store.ListSchedulesParams{Tenant: tenant, Limit: limit, Cursor: cursor})
				if err != nil {
					t.Fatalf("ListSchedules: %v", err)
				}
				if len(page) > limit {
					t.Fatalf("ListSchedules returned %d items for limit %d", len(page), limit)
				}
				for _, s := range page {
					got = append(got, s.Tenant+"/"+s.Name)
				}
				if next == "" {
					return got
				}
				cursor = next
			}
			t.Fatal("ListSchedules never ended")
			return nil
		}
		want := []string{"acme/A", "acme/Z", "acme/a", "acme/b", "acme/c-1", "acme/c.0"}
		if diff := cmp.Diff(want, list(tenantA, 2)); diff != "" {
			t.Errorf("ListSchedules(acme) by 2 (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(append(want, "globex/0"), list("", 4)); diff != "" {
			t.Errorf("ListSchedules(all) by 4 (-want +got):\n%s", diff)
		}
		if _, _, err := h.s.ListSchedules(t.Context(), &store.ListSchedulesParams{Cursor: "garbage!"}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListSchedules(bad cursor) = %v, want ErrInvalidCursor", err)
		}
	})

	t.Run("Due", func(t *testing.T) {
		h := begin(t, newStore)
		h.putSchedule(schedule(tenantA, "late", at(2*time.Second), at(0)))
		h.putSchedule(schedule(tenantA, "early", at(time.Second), at(0)))
		h.putSchedule(schedule(tenantB, "future", at(time.Hour), at(0)))
		p := schedule(tenantA, "paused", at(time.Second), at(0))
		p.Paused = true
		h.putSchedule(p)
		due, next, err := h.s.DueSchedules(t.Context(), at(2*time.Second), 10)
		if err != nil {
			t.Fatalf("DueSchedules: %v", err)
		}
		var names []string
		for _, s := range due {
			names = append(names, s.Name)
		}
		if diff := cmp.Diff([]string{"early", "late"}, names); diff != "" || !next.Equal(at(time.Hour)) {
			t.Errorf("DueSchedules next %v (want %v), names (-want +got):\n%s", next, at(time.Hour), diff)
		}
		if due, _, _ := h.s.DueSchedules(t.Context(), at(2*time.Second), 1); len(due) != 1 || due[0].Name != "early" {
			t.Errorf("DueSchedules limit 1 = %d schedules, want early alone", len(due))
		}
	})

	t.Run("FireOnce", func(t *testing.T) {
		h := begin(t, newStore)
		s, _ := h.putSchedule(schedule(tenantA, "s", at(time.Minute), at(0)))
		now := at(time.Minute + 10*time.Millisecond)
		res := h.mustFire(s, at(time.Minute), now)
		if !res.Fired || res.Skipped || !res.Created || res.Job == nil {
			t.Fatalf("FireSchedule = %+v, want fired with a new job", res)
		}
		j := h.get(res.Job.ID)
		if j.Type != "report" || j.State != gantry.StateQueued || j.Tenant != tenantA {
			t.Errorf("fired job = %s %s %s, want report queued of %s", j.Type, j.State, j.Tenant, tenantA)
		}
		got := h.getSchedule(tenantA, "s")
		if !got.NextRunAt.Equal(at(2*time.Minute)) || !got.LastRunAt.Equal(now) || got.LastJobID != j.ID {
			t.Errorf("after fire: next %v last %v job %s; want %v, %v, %s", got.NextRunAt, got.LastRunAt, got.LastJobID, at(2*time.Minute), now, j.ID)
		}
		evs, err := h.s.ReadEvents(t.Context(), 0, 100)
		if err != nil || len(evs) != 1 || evs[0].Kind != job.EventSubmitted || evs[0].JobID != j.ID {
			t.Errorf("events after fire = %+v, %v; want one job.submitted", evs, err)
		}
		// The same tick again (a second server, a second leader): lost.
		again := h.mustFire(s, at(time.Minute), now)
		if again.Fired || again.Skipped {
			t.Errorf("second FireSchedule of one tick = %+v, want lost", again)
		}
		if n := h.countJobs(tenantA); n != 1 {
			t.Errorf("%d jobs after two fires of one tick, want 1", n)
		}
		// A stale version is lost too.
		h.putSchedule(schedule(tenantA, "s", at(2*time.Minute), at(time.Second)))
		if res := h.mustFire(s, at(2*time.Minute), at(2*time.Minute)); res.Fired || res.Skipped {
			t.Errorf("FireSchedule with a stale version = %+v, want lost", res)
		}
		if _, err := h.fire(schedule(tenantA, "gone", time.Time{}, at(0)), at(time.Minute), at(time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FireSchedule(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("FireConcurrentExactlyOnce", func(t *testing.T) {
		h := begin(t, newStore)
		s, _ := h.putSchedule(schedule(tenantA, "s", at(time.Minute), at(0)))
		const callers, ticks = 8, 5
		for k := range ticks {
			tick := at(time.Duration(k+1) * time.Minute)
			jobs := make([]*job.Job, callers)
			for i := range jobs {
				jobs[i] = h.record(tick, s.Job)
			}
			var wg sync.WaitGroup
			results := make([]store.FireResult, callers)
			errs := make([]error, callers)
			for i := range callers {
				wg.Go(func() {
					results[i], errs[i] = h.s.FireSchedule(t.Context(), &store.FireScheduleParams{
						Tenant: tenantA, Name: "s", Version: s.Version, Tick: tick, Next: tick.Add(time.Minute), Job: jobs[i], Now: tick,
					})
				})
			}
			wg.Wait()
			fired := 0
			for i := range callers {
				if errs[i] != nil {
					t.Fatalf("tick %d caller %d: %v", k, i, errs[i])
				}
				if results[i].Fired {
					fired++
				}
			}
			if fired != 1 {
				t.Fatalf("tick %d fired %d times by %d concurrent callers, want once", k, fired, callers)
			}
		}
		if n := h.countJobs(tenantA); n != ticks {
			t.Errorf("%d jobs after %d ticks, want %d", n, ticks, ticks)
		}
	})

	t.Run("OverlapSkip", func(t *testing.T) {
		h := begin(t, newStore)
		in := schedule(tenantA, "s", at(time.Minute), at(0))
		in.Overlap = job.OverlapSkip
		s, _ := h.putSchedule(in)
		first := h.mustFire(s, at(time.Minute), at(time.Minute))
		if !first.Fired {
			t.Fatalf("first tick = %+v, want fired", first)
		}
		second := h.mustFire(s, at(2*time.Minute), at(2*time.Minute))
		if second.Fired || !second.Skipped {
			t.Fatalf("tick while the job is queued = %+v, want skipped", second)
		}
		got := h.getSchedule(tenantA, "s")
		if got.Skipped != 1 || !got.LastSkippedAt.Equal(at(2*time.Minute)) || !got.NextRunAt.Equal(at(3*time.Minute)) || got.LastJobID != first.Job.ID {
			t.Errorf("after a skip: %+v; want 1 skip at %v, next %v, last job kept", got, at(2*time.Minute), at(3*time.Minute))
		}
		// A manual trigger ignores the overlap policy.
		manual := h.mustFire(s, time.Time{}, at(2*time.Minute+time.Second))
		if !manual.Fired {
			t.Errorf("manual trigger while a job runs = %+v, want fired", manual)
		}
		if got := h.getSchedule(tenantA, "s"); !got.NextRunAt.Equal(at(3*time.Minute)) || got.LastJobID != manual.Job.ID {
			t.Errorf("manual trigger moved next run to %v (want %v) or kept last job %s", got.NextRunAt, at(3*time.Minute), got.LastJobID)
		}
		// Once the last job is terminal, ticks fire again.
		w := h.worker(at(2 * time.Minute))
		for _, l := range h.lease(at(2*time.Minute+2*time.Second), w, 10) {
			h.mustFinish(at(2*time.Minute+3*time.Second), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded})
		}
		if third := h.mustFire(s, at(3*time.Minute), at(3*time.Minute)); !third.Fired {
			t.Errorf("tick after the jobs ended = %+v, want fired", third)
		}
		// Overlap allow fires whatever the last job's state.
		a, _ := h.putSchedule(schedule(tenantA, "allow", at(time.Minute), at(0)))
		h.mustFire(a, at(time.Minute), at(time.Minute))
		if res := h.mustFire(a, at(2*time.Minute), at(2*time.Minute)); !res.Fired {
			t.Errorf("overlap allow with a queued job = %+v, want fired", res)
		}
	})

	t.Run("PausedNeverFires", func(t *testing.T) {
		h := begin(t, newStore)
		s, _ := h.putSchedule(schedule(tenantA, "s", at(time.Minute), at(0)))
		p, err := h.s.SetSchedulePaused(t.Context(), &store.PauseScheduleParams{Tenant: tenantA, Name: "s", Paused: true, Now: at(time.Second)})
		if err != nil || !p.Paused || !p.NextRunAt.IsZero() || p.Version != s.Version+1 {
			t.Fatalf("pause = %+v, %v; want paused, no next run, version %d", p, err, s.Version+1)
		}
		if due, _, _ := h.s.DueSchedules(t.Context(), at(time.Hour), 10); len(due) != 0 {
			t.Errorf("DueSchedules lists %d paused schedules", len(due))
		}
		// The tick read before the pause is lost, old or new version.
		for _, v := range []int64{s.Version, p.Version} {
			res, err := h.s.FireSchedule(t.Context(), &store.FireScheduleParams{Tenant: tenantA, Name: "s", Version: v,
				Tick: at(time.Minute), Next: at(2 * time.Minute), Job: h.record(at(time.Minute), s.Job), Now: at(time.Minute)})
			if err != nil || res.Fired || res.Skipped {
				t.Errorf("FireSchedule(paused, version %d) = %+v, %v; want lost", v, res, err)
			}
		}
		if _, err := h.fire(p, time.Time{}, at(time.Minute)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("manual trigger of a paused schedule = %v, want ErrConflict", err)
		}
		if n := h.countJobs(tenantA); n != 0 {
			t.Errorf("a paused schedule made %d jobs", n)
		}
		again, err := h.s.SetSchedulePaused(t.Context(), &store.PauseScheduleParams{Tenant: tenantA, Name: "s", Paused: true, Now: at(2 * time.Second)})
		if err != nil || again.Version != p.Version {
			t.Errorf("pausing a paused schedule = %+v, %v; want no change", again, err)
		}
		r, err := h.s.SetSchedulePaused(t.Context(), &store.PauseScheduleParams{Tenant: tenantA, Name: "s", Paused: false, NextRunAt: at(time.Hour), Now: at(3 * time.Second)})
		if err != nil || r.Paused || !r.NextRunAt.Equal(at(time.Hour)) {
			t.Fatalf("resume = %+v, %v; want next run %v", r, err, at(time.Hour))
		}
		if res := h.mustFire(r, at(time.Hour), at(time.Hour)); !res.Fired {
			t.Errorf("tick after resume = %+v, want fired", res)
		}
		if _, err := h.s.SetSchedulePaused(t.Context(), &store.PauseScheduleParams{Tenant: tenantB, Name: "s", Paused: true, Now: at(0)}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pausing another tenant's schedule = %v, want ErrNotFound", err)
		}
	})

	t.Run("UniqueKeyRecordsExistingJob", func(t *testing.T) {
		h := begin(t, newStore)
		in := schedule(tenantA, "s", at(time.Minute), at(0))
		in.Job.UniqueKey = "only-one"
		s, _ := h.putSchedule(in)
		first := h.mustFire(s, at(time.Minute), at(time.Minute))
		second := h.mustFire(s, at(2*time.Minute), at(2*time.Minute))
		if !second.Fired || second.Created || second.Job.ID != first.Job.ID {
			t.Errorf("tick with a held unique key = %+v, want fired with the existing job %s", second, first.Job.ID)
		}
		if got := h.getSchedule(tenantA, "s"); !got.NextRunAt.Equal(at(3 * time.Minute)) {
			t.Errorf("next run %v, want %v", got.NextRunAt, at(3*time.Minute))
		}
		if n := h.countJobs(tenantA); n != 1 {
			t.Errorf("%d jobs, want 1", n)
		}
	})
}
