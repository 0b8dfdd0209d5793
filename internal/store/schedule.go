package store

import (
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

// ListSchedulesParams page [Store.ListSchedules].
type ListSchedulesParams struct {
	Tenant string // "" all tenants
	Limit  int
	Cursor string
}

// PauseScheduleParams are the arguments of [Store.SetSchedulePaused].
type PauseScheduleParams struct {
	Tenant    string
	Name      string
	Paused    bool
	NextRunAt time.Time // the next tick from Now, when resuming
	Now       time.Time
}

// FireScheduleParams are the arguments of [Store.FireSchedule]. In one
// transaction the store reads the schedule (ErrNotFound if it is gone)
// and then:
//
//   - for a tick (Tick set): unless the schedule is unpaused, at Version
//     and has NextRunAt == Tick, nothing changes and the fire is lost
//     (another server fired that tick, or the schedule changed). With
//     overlap skip and a last job that exists and is not terminal, the tick
//     is skipped: NextRunAt becomes Next, Skipped grows by one and
//     LastSkippedAt becomes Now. Otherwise Job is inserted as
//     [Store.InsertJobs] inserts jobs (events, wake-ups), NextRunAt becomes
//     Next, LastRunAt Now and LastJobID the job's ID;
//   - for a manual trigger (Tick zero): a paused schedule is ErrConflict; a
//     schedule not at Version is lost; otherwise Job is inserted and
//     LastRunAt and LastJobID set, NextRunAt unchanged, whatever the
//     overlap policy.
//
// A job whose unique key matches a non-terminal job is not created (as in
// InsertJobs): the fire records that job as LastJobID.
type FireScheduleParams struct {
	Tenant  string
	Name    string
	Version int64
	Tick    time.Time
	Next    time.Time
	Job     *job.Job
	Now     time.Time
}

// FireResult is the fate of a [Store.FireSchedule] call: Fired (with Job,
// Created as in InsertJobs), Skipped, or neither (lost).
type FireResult struct {
	Fired    bool
	Skipped  bool
	Job      *job.Job
	Created  bool
	Schedule *job.Schedule // the schedule after the call, unless lost
}

// KeepNextRun reports whether replacing schedule old by s keeps old's
// NextRunAt: when neither is paused and the cron expression and time zone
// are unchanged, so that editing a schedule's job body neither moves nor
// drops a pending tick.
func KeepNextRun(old, s *job.Schedule) bool {
	return !old.Paused && !s.Paused && !old.NextRunAt.IsZero() && old.Cron == s.Cron && old.Timezone == s.Timezone
}

// PutScheduleRecord returns the record that putting s over old (nil when
// the name is new) stores, and whether it creates the schedule: a new one
// starts at version 1 with no runs; a replaced one keeps its creation
// time, its run history and, per KeepNextRun, its pending tick, with its
// version bumped. A paused schedule has no next run.
func PutScheduleRecord(old, s *job.Schedule) (n job.Schedule, created bool) {
	n = *s
	if old != nil {
		n.Version, n.CreatedAt = old.Version+1, old.CreatedAt
		n.LastRunAt, n.LastJobID, n.Skipped, n.LastSkippedAt = old.LastRunAt, old.LastJobID, old.Skipped, old.LastSkippedAt
		if KeepNextRun(old, s) {
			n.NextRunAt = old.NextRunAt
		}
	} else {
		n.Version, n.LastRunAt, n.LastJobID, n.Skipped, n.LastSkippedAt = 1, time.Time{}, "", 0, time.Time{}
		created = true
	}
	if n.Paused {
		n.NextRunAt = time.Time{}
	}
	return n, created
}
