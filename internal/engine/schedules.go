package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/cron"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// ScheduleSpec is a schedule to put: its job is enqueued at every tick of
// Cron in Timezone.
type ScheduleSpec struct {
	Tenant   string // "" is job.DefaultTenant
	Name     string
	Cron     string
	Timezone string // "" is UTC
	Job      job.Spec
	Overlap  string // "" is job.OverlapAllow
	Paused   bool
}

// scheduleMetaKeys are the metadata keys a schedule sets on its jobs.
var scheduleMetaKeys = []string{job.MetaSchedule, job.MetaTick, job.MetaTrigger}

// PutSchedule validates sp and creates or replaces the schedule, returning
// it and whether it was created. A bad field gives a *job.FieldError
// naming it: name, cron, timezone, overlap, or job.<field> for the job
// body, which may not carry run_at, delay_seconds or batch_id (a tick
// enqueues its job at once, alone). The next run is the first tick after
// now; replacing a schedule without changing its cron expression, time
// zone or pause keeps its pending tick.
func (e *Engine) PutSchedule(ctx context.Context, sp ScheduleSpec) (*job.Schedule, bool, error) {
	now := e.now()
	s, c, err := e.prepareSchedule(sp, now)
	if err != nil {
		return nil, false, err
	}
	if !s.Paused {
		s.NextRunAt = c.Next(now)
	}
	got, created, err := e.st.PutSchedule(ctx, s)
	if err != nil {
		return nil, false, fmt.Errorf("engine: put schedule %s: %w", sp.Name, err)
	}
	e.wakeScheduler()
	return got, created, nil
}

// prepareSchedule validates sp into a schedule record (without NextRunAt).
func (e *Engine) prepareSchedule(sp ScheduleSpec, now time.Time) (*job.Schedule, *cron.Schedule, error) {
	bad := func(field, problem string) error { return &job.FieldError{Field: field, Problem: problem} }
	if sp.Tenant == "" {
		sp.Tenant = job.DefaultTenant
	}
	if sp.Timezone == "" {
		sp.Timezone = "UTC"
	}
	if sp.Overlap == "" {
		sp.Overlap = job.OverlapAllow
	}
	switch {
	case !job.ValidName(sp.Name):
		return nil, nil, bad("name", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	case !job.ValidName(sp.Tenant):
		return nil, nil, bad("tenant", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	c, err := cron.Parse(sp.Cron, sp.Timezone)
	if err != nil {
		var ce *cron.Error
		if errors.As(err, &ce) {
			return nil, nil, bad(ce.Field, ce.Problem)
		}
		return nil, nil, err
	}
	if sp.Overlap != job.OverlapAllow && sp.Overlap != job.OverlapSkip {
		return nil, nil, bad("overlap", `must be "allow" or "skip"`)
	}
	spec := sp.Job
	switch {
	case spec.Tenant != "" && spec.Tenant != sp.Tenant:
		return nil, nil, bad("job.tenant", "must be empty or the schedule's tenant")
	case spec.BatchID != "":
		return nil, nil, bad("job.batch_id", "must not be set: a schedule's jobs join no batch")
	case !spec.RunAt.IsZero():
		return nil, nil, bad("job.run_at", "must not be set: a schedule's job runs at its tick")
	case spec.Delay != 0:
		return nil, nil, bad("job.delay_seconds", "must not be set: a schedule's job runs at its tick")
	}
	for k := range spec.Metadata {
		if strings.HasPrefix(k, "gantry.") {
			return nil, nil, bad("job.metadata", "keys starting with gantry. are set by the schedule")
		}
	}
	spec.Tenant = sp.Tenant
	spec.Normalize(now)
	limits := e.cfg.Limits
	if limits.MaxMetadata <= 0 {
		limits.MaxMetadata = job.DefaultLimits.MaxMetadata
	}
	if len(spec.Metadata)+len(scheduleMetaKeys) > limits.MaxMetadata {
		return nil, nil, bad("job.metadata", fmt.Sprintf("has %d entries, more than the limit of %d less the %d the schedule adds",
			len(spec.Metadata), limits.MaxMetadata, len(scheduleMetaKeys)))
	}
	if err := spec.Validate(now, limits); err != nil {
		var fe *job.FieldError
		if errors.As(err, &fe) {
			return nil, nil, fe.Prefix("job.")
		}
		return nil, nil, err
	}
	return &job.Schedule{
		Tenant: sp.Tenant, Name: sp.Name, Cron: c.String(), Timezone: sp.Timezone, Job: spec,
		Overlap: sp.Overlap, Paused: sp.Paused, CreatedAt: now, UpdatedAt: now,
	}, c, nil
}

// GetSchedule returns a tenant's schedule.
func (e *Engine) GetSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error) {
	s, err := e.st.GetSchedule(ctx, orDefaultTenant(tenant), name)
	if err != nil {
		return nil, fmt.Errorf("engine: schedule %s: %w", name, err)
	}
	return s, nil
}

// ListSchedules returns a page of a tenant's ("" all) schedules by tenant
// and name.
func (e *Engine) ListSchedules(ctx context.Context, p *store.ListSchedulesParams) ([]*job.Schedule, string, error) {
	ss, next, err := e.st.ListSchedules(ctx, p)
	if err != nil {
		return nil, "", fmt.Errorf("engine: list schedules: %w", err)
	}
	return ss, next, nil
}

// DeleteSchedule deletes a tenant's schedule; its jobs stay.
func (e *Engine) DeleteSchedule(ctx context.Context, tenant, name string) error {
	if err := e.st.DeleteSchedule(ctx, orDefaultTenant(tenant), name); err != nil {
		return fmt.Errorf("engine: delete schedule %s: %w", name, err)
	}
	return nil
}

// PauseSchedule pauses a schedule: it fires nothing, and has no next run,
// until resumed. Pausing a paused schedule changes nothing.
func (e *Engine) PauseSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error) {
	s, err := e.st.SetSchedulePaused(ctx, &store.PauseScheduleParams{Tenant: orDefaultTenant(tenant), Name: name, Paused: true, Now: e.now()})
	if err != nil {
		return nil, fmt.Errorf("engine: pause schedule %s: %w", name, err)
	}
	return s, nil
}

// ResumeSchedule resumes a paused schedule from its first tick after now:
// ticks that passed while it was paused are not run.
func (e *Engine) ResumeSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error) {
	tenant = orDefaultTenant(tenant)
	cur, err := e.st.GetSchedule(ctx, tenant, name)
	if err != nil {
		return nil, fmt.Errorf("engine: resume schedule %s: %w", name, err)
	}
	c, err := cron.Parse(cur.Cron, cur.Timezone)
	if err != nil {
		return nil, fmt.Errorf("engine: resume schedule %s: stored expression: %w", name, err)
	}
	now := e.now()
	s, err := e.st.SetSchedulePaused(ctx, &store.PauseScheduleParams{Tenant: tenant, Name: name, Paused: false, NextRunAt: c.Next(now), Now: now})
	if err != nil {
		return nil, fmt.Errorf("engine: resume schedule %s: %w", name, err)
	}
	e.wakeScheduler()
	return s, nil
}

// triggerTries bounds how often TriggerSchedule reads the schedule again
// when it changed between the read and the fire.
const triggerTries = 5

// TriggerSchedule enqueues the schedule's job at once, whatever the
// overlap policy, without moving its next run; it becomes the schedule's
// last job. A paused schedule is store.ErrConflict.
func (e *Engine) TriggerSchedule(ctx context.Context, tenant, name string) (*job.Job, error) {
	tenant = orDefaultTenant(tenant)
	for range triggerTries {
		s, err := e.st.GetSchedule(ctx, tenant, name)
		if err != nil {
			return nil, fmt.Errorf("engine: trigger schedule %s: %w", name, err)
		}
		now := e.now()
		res, err := e.st.FireSchedule(ctx, &store.FireScheduleParams{
			Tenant: tenant, Name: name, Version: s.Version, Job: scheduleJob(s, now, job.TriggerManual, now), Now: now,
		})
		if err != nil {
			return nil, fmt.Errorf("engine: trigger schedule %s: %w", name, err)
		}
		if res.Fired {
			return res.Job, nil
		}
	}
	return nil, fmt.Errorf("engine: trigger schedule %s: it changed %d times meanwhile: %w", name, triggerTries, store.ErrConflict)
}

func orDefaultTenant(t string) string {
	if t == "" {
		return job.DefaultTenant
	}
	return t
}

// scheduleJob makes the record of the job schedule s enqueues for tick.
func scheduleJob(s *job.Schedule, tick time.Time, trigger string, now time.Time) *job.Job {
	spec := s.Job
	spec.Tenant = s.Tenant
	spec.Metadata = maps.Clone(spec.Metadata)
	if spec.Metadata == nil {
		spec.Metadata = map[string]string{}
	}
	spec.Metadata[job.MetaSchedule] = s.Name
	spec.Metadata[job.MetaTick] = tick.UTC().Format(time.RFC3339Nano)
	spec.Metadata[job.MetaTrigger] = trigger
	spec.Tags = append([]string(nil), spec.Tags...)
	spec.Normalize(now)
	return job.NewFromSpec(&spec, job.NewID(now), now)
}

// wakeScheduler makes the scheduler loop look for due schedules now.
func (e *Engine) wakeScheduler() {
	select {
	case e.cronWake <- struct{}{}:
	default:
	}
}

// cronLoop fires due schedules while this engine is the maintenance
// leader: every CronInterval (so that schedules put through other servers
// are seen) and exactly at the earliest next run it knows of.
func (e *Engine) cronLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		wait := e.cfg.CronInterval
		if e.cfg.Leader() {
			if next := e.fireDue(ctx); !next.IsZero() {
				wait = min(wait, max(next.Sub(e.now()), minPromoteWait))
			}
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-e.cronWake:
		case <-ctx.Done():
			return
		}
	}
}

// fireDue fires every due schedule and returns the earliest next run
// (zero if none is known). It stops between schedules when this engine
// stops being the leader; a tick that two leaders fire at once is fired
// once, by the store's compare-and-swap.
func (e *Engine) fireDue(ctx context.Context) time.Time {
	var earliest time.Time
	note := func(t time.Time) {
		if !t.IsZero() && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	for {
		now := e.now()
		due, next, err := e.st.DueSchedules(ctx, now, maintenanceLimit)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("engine: read due schedules", "err", err)
			}
			return earliest
		}
		note(next)
		for _, s := range due {
			if !e.cfg.Leader() || ctx.Err() != nil {
				return earliest
			}
			note(e.fire(ctx, s, now))
		}
		if len(due) < maintenanceLimit {
			return earliest
		}
	}
}

// fire enqueues the job of due schedule s's tick and returns its next run.
// Ticks missed while no server ran (or the leader was late by more than a
// period) collapse into this one: the next run is the first tick after
// now, not after the missed tick.
func (e *Engine) fire(ctx context.Context, s *job.Schedule, now time.Time) time.Time {
	c, err := cron.Parse(s.Cron, s.Timezone)
	if err != nil {
		e.log.Error("engine: stored schedule does not parse", "tenant", s.Tenant, "schedule", s.Name, "err", err)
		return time.Time{}
	}
	tick := s.NextRunAt
	next := c.Next(tick)
	if !next.IsZero() && !next.After(now) {
		next = c.Next(now)
	}
	res, err := e.st.FireSchedule(ctx, &store.FireScheduleParams{
		Tenant: s.Tenant, Name: s.Name, Version: s.Version, Tick: tick, Next: next,
		Job: scheduleJob(s, tick, job.TriggerCron, now), Now: now,
	})
	switch {
	case err != nil:
		if ctx.Err() == nil && !errors.Is(err, store.ErrNotFound) {
			e.log.Error("engine: fire schedule", "tenant", s.Tenant, "schedule", s.Name, "tick", tick, "err", err)
		}
		return time.Time{}
	case res.Fired:
		e.log.Debug("engine: schedule fired", "tenant", s.Tenant, "schedule", s.Name, "tick", tick, "job_id", res.Job.ID, "next", next)
	case res.Skipped:
		e.log.Info("engine: schedule tick skipped: its last job is not finished", "tenant", s.Tenant, "schedule", s.Name, "tick", tick, "last_job_id", s.LastJobID)
	default:
		// Lost: fired by another engine, or changed meanwhile.
		return time.Time{}
	}
	return next
}
