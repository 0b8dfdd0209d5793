package engine_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// scheduleTicks returns the gantry.tick metadata of the schedule's jobs, in
// order, and fails the test on a job without it.
func scheduleTicks(t *testing.T, e *engine.Engine, name string) []time.Time {
	t.Helper()
	js, _, err := e.ListJobs(t.Context(), &store.ListJobsParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, j := range js {
		if j.Metadata[job.MetaSchedule] != name || j.Metadata[job.MetaTrigger] != job.TriggerCron {
			continue
		}
		tick, err := time.Parse(time.RFC3339Nano, j.Metadata[job.MetaTick])
		if err != nil {
			t.Fatalf("job %s has tick %q: %v", j.ID, j.Metadata[job.MetaTick], err)
		}
		out = append(out, tick)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

func (v *env) putSchedule(sp engine.ScheduleSpec) *job.Schedule {
	v.t.Helper()
	s, _, err := v.e.PutSchedule(v.t.Context(), sp)
	if err != nil {
		v.t.Fatalf("PutSchedule(%+v): %v", sp, err)
	}
	return s
}

// TestScheduleEvery: an @every schedule enqueues one job per interval,
// tick after tick, each job naming its schedule and tick.
func TestScheduleEvery(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		start := time.Now()
		s := v.putSchedule(engine.ScheduleSpec{Name: "beat", Cron: "@every 10s", Job: job.Spec{Type: "ping", Metadata: map[string]string{"k": "v"}}})
		if want := start.Add(10 * time.Second); !s.NextRunAt.Equal(want) {
			t.Fatalf("next run %v, want %v", s.NextRunAt, want)
		}
		settle(35 * time.Second)
		got := scheduleTicks(t, v.e, "beat")
		want := []time.Time{start.Add(10 * time.Second).UTC(), start.Add(20 * time.Second).UTC(), start.Add(30 * time.Second).UTC()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ticks (-want +got):\n%s", diff)
		}
		s, err := v.e.GetSchedule(t.Context(), "", "beat")
		if err != nil {
			t.Fatal(err)
		}
		last := v.get(s.LastJobID)
		if last.Type != "ping" || last.Metadata["k"] != "v" || last.Metadata[job.MetaTick] != want[2].Format(time.RFC3339Nano) {
			t.Errorf("last job %+v, want a ping of the last tick with the body's metadata", last)
		}
		if !s.NextRunAt.Equal(start.Add(40 * time.Second)) {
			t.Errorf("next run %v, want %v", s.NextRunAt, start.Add(40*time.Second))
		}
	})
}

// TestScheduleCatchUp: ticks missed while no engine ran are run once,
// not once each, and the schedule then resumes at its first tick after
// now.
func TestScheduleCatchUp(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		e1 := engine.New(st, engine.Config{Logger: testLogger(t)})
		e1.Start(context.Background())
		start := time.Now()
		if _, _, err := e1.PutSchedule(t.Context(), engine.ScheduleSpec{Name: "m", Cron: "* * * * *", Job: job.Spec{Type: "t"}}); err != nil {
			t.Fatal(err)
		}
		e1.Close()
		settle(10*time.Minute + 30*time.Second) // every server down for ten ticks
		e2 := engine.New(st, engine.Config{Logger: testLogger(t)})
		e2.Start(context.Background())
		defer e2.Close()
		settle(time.Second)
		first := start.Truncate(time.Minute).Add(time.Minute).UTC()
		if diff := cmp.Diff([]time.Time{first}, scheduleTicks(t, e2, "m")); diff != "" {
			t.Fatalf("ticks after the outage (-want +got):\n%s", diff)
		}
		s, err := e2.GetSchedule(t.Context(), "", "m")
		if err != nil {
			t.Fatal(err)
		}
		resume := time.Now().Truncate(time.Minute).Add(time.Minute).UTC()
		if !s.NextRunAt.Equal(resume) {
			t.Errorf("next run after catch-up %v, want %v", s.NextRunAt, resume)
		}
		settle(time.Minute)
		if diff := cmp.Diff([]time.Time{first, resume}, scheduleTicks(t, e2, "m")); diff != "" {
			t.Errorf("ticks after resuming (-want +got):\n%s", diff)
		}
	})
}

// TestScheduleTwoLeaders: two engines that both believe they lead (a
// leader that lost its reservation without noticing yet) fire each tick
// exactly once.
func TestScheduleTwoLeaders(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		var engines []*engine.Engine
		for range 2 {
			e := engine.New(st, engine.Config{Logger: testLogger(t), Leader: func() bool { return true }})
			e.Start(context.Background())
			defer e.Close()
			engines = append(engines, e)
		}
		start := time.Now()
		if _, _, err := engines[0].PutSchedule(t.Context(), engine.ScheduleSpec{Name: "s", Cron: "@every 1s", Job: job.Spec{Type: "t"}}); err != nil {
			t.Fatal(err)
		}
		settle(20*time.Second + 500*time.Millisecond)
		var want []time.Time
		for i := 1; i <= 20; i++ {
			want = append(want, start.Add(time.Duration(i)*time.Second).UTC())
		}
		if diff := cmp.Diff(want, scheduleTicks(t, engines[1], "s")); diff != "" {
			t.Errorf("ticks (-want +got):\n%s", diff)
		}
	})
}

// TestSchedulePausedAndLeader: a paused schedule and a non-leader engine
// fire nothing; resuming starts from the next tick.
func TestSchedulePausedAndLeader(t *testing.T) {
	var leader atomic.Bool
	run(t, engine.Config{Leader: leader.Load}, func(t *testing.T, v *env) {
		v.putSchedule(engine.ScheduleSpec{Name: "p", Cron: "@every 5s", Job: job.Spec{Type: "t"}, Paused: true})
		v.putSchedule(engine.ScheduleSpec{Name: "f", Cron: "@every 5s", Job: job.Spec{Type: "t"}})
		settle(time.Minute)
		if n := len(scheduleTicks(t, v.e, "f")); n != 0 {
			t.Fatalf("a follower fired %d ticks", n)
		}
		leader.Store(true)
		settle(time.Minute)
		if n := len(scheduleTicks(t, v.e, "p")); n != 0 {
			t.Fatalf("a paused schedule fired %d ticks", n)
		}
		if _, err := v.e.TriggerSchedule(t.Context(), "", "p"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("TriggerSchedule(paused) = %v, want ErrConflict", err)
		}
		resumed := time.Now()
		s, err := v.e.ResumeSchedule(t.Context(), "", "p")
		if err != nil || !s.NextRunAt.Equal(resumed.Add(5*time.Second)) {
			t.Fatalf("ResumeSchedule = %+v, %v; want next run %v", s, err, resumed.Add(5*time.Second))
		}
		settle(6 * time.Second)
		if diff := cmp.Diff([]time.Time{resumed.Add(5 * time.Second).UTC()}, scheduleTicks(t, v.e, "p")); diff != "" {
			t.Errorf("ticks after resume (-want +got):\n%s", diff)
		}
	})
}

// TestTriggerSchedule: a trigger enqueues one job at once, whatever the
// overlap policy, and leaves the next run alone.
func TestTriggerSchedule(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		s := v.putSchedule(engine.ScheduleSpec{Tenant: "acme", Name: "daily", Cron: "0 3 * * *", Timezone: "Europe/Berlin", Overlap: job.OverlapSkip, Job: job.Spec{Type: "t"}})
		for range 2 {
			j, err := v.e.TriggerSchedule(t.Context(), "acme", "daily")
			if err != nil {
				t.Fatal(err)
			}
			if j.Tenant != "acme" || j.Metadata[job.MetaTrigger] != job.TriggerManual || j.Metadata[job.MetaSchedule] != "daily" {
				t.Errorf("triggered job %+v, want acme's, manual, of daily", j)
			}
		}
		got, err := v.e.GetSchedule(t.Context(), "acme", "daily")
		if err != nil {
			t.Fatal(err)
		}
		if !got.NextRunAt.Equal(s.NextRunAt) || got.LastJobID == "" {
			t.Errorf("after triggers: next run %v (want %v), last job %q", got.NextRunAt, s.NextRunAt, got.LastJobID)
		}
		if _, err := v.e.TriggerSchedule(t.Context(), "other", "daily"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TriggerSchedule(other tenant) = %v, want ErrNotFound", err)
		}
	})
}

func TestPutScheduleErrors(t *testing.T) {
	ok := engine.ScheduleSpec{Name: "n", Cron: "* * * * *", Job: job.Spec{Type: "t"}}
	tests := []struct {
		field string
		edit  func(*engine.ScheduleSpec)
	}{
		{"name", func(s *engine.ScheduleSpec) { s.Name = "a b" }},
		{"name", func(s *engine.ScheduleSpec) { s.Name = "" }},
		{"cron", func(s *engine.ScheduleSpec) { s.Cron = "every day" }},
		{"cron", func(s *engine.ScheduleSpec) { s.Cron = "" }},
		{"timezone", func(s *engine.ScheduleSpec) { s.Timezone = "Berlin" }},
		{"overlap", func(s *engine.ScheduleSpec) { s.Overlap = "queue" }},
		{"job.type", func(s *engine.ScheduleSpec) { s.Job.Type = "" }},
		{"job.priority", func(s *engine.ScheduleSpec) { s.Job.Priority = 1000 }},
		{"job.batch_id", func(s *engine.ScheduleSpec) { s.Job.BatchID = job.NewID(time.Now()) }},
		{"job.run_at", func(s *engine.ScheduleSpec) { s.Job.RunAt = time.Now().Add(time.Hour) }},
		{"job.delay_seconds", func(s *engine.ScheduleSpec) { s.Job.Delay = time.Minute }},
		{"job.tenant", func(s *engine.ScheduleSpec) { s.Job.Tenant = "other" }},
		{"job.metadata", func(s *engine.ScheduleSpec) { s.Job.Metadata = map[string]string{job.MetaTick: "x"} }},
	}
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		for _, tt := range tests {
			sp := ok
			tt.edit(&sp)
			_, _, err := v.e.PutSchedule(t.Context(), sp)
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("PutSchedule(%+v) = %v, want a field error naming %s", sp, err, tt.field)
			}
		}
		ss, _, err := v.e.ListSchedules(t.Context(), &store.ListSchedulesParams{})
		if err != nil || len(ss) != 0 {
			t.Errorf("bad puts stored %d schedules (%v)", len(ss), err)
		}
	})
}
