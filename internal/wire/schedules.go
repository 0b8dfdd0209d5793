package wire

import "github.com/gantryhq/gantry/internal/job"

// ScheduleRequest is the body of PUT /v1/schedules/{name}. Job is a job
// body as for POST /v1/jobs, without run_at, delay_seconds or batch_id.
type ScheduleRequest struct {
	Cron     string     `json:"cron"`
	Timezone string     `json:"timezone,omitempty"`
	Job      JobRequest `json:"job"`
	Overlap  string     `json:"overlap,omitempty"`
	Paused   bool       `json:"paused,omitempty"`
}

// Schedule is the schedule object.
type Schedule struct {
	Name      string     `json:"name"`
	Tenant    string     `json:"tenant"`
	Cron      string     `json:"cron"`
	Timezone  string     `json:"timezone"`
	Job       JobRequest `json:"job"`
	Overlap   string     `json:"overlap"`
	Paused    bool       `json:"paused"`
	NextRunAt *Time      `json:"next_run_at"`
	LastRunAt *Time      `json:"last_run_at"`
	LastJobID *string    `json:"last_job_id"`
	// SkippedTicks counts the ticks skipped by overlap "skip";
	// LastSkippedAt is the latest.
	SkippedTicks  int64 `json:"skipped_ticks"`
	LastSkippedAt *Time `json:"last_skipped_at"`
	CreatedAt     *Time `json:"created_at"`
	UpdatedAt     *Time `json:"updated_at"`
}

// FromSchedule converts a stored schedule.
func FromSchedule(s *job.Schedule) Schedule {
	spec := s.Job
	spec.Tenant = "" // the schedule's
	out := Schedule{
		Name: s.Name, Tenant: s.Tenant, Cron: s.Cron, Timezone: s.Timezone, Job: FromSpec(&spec),
		Overlap: s.Overlap, Paused: s.Paused, NextRunAt: T(s.NextRunAt), LastRunAt: T(s.LastRunAt),
		SkippedTicks: s.Skipped, LastSkippedAt: T(s.LastSkippedAt), CreatedAt: T(s.CreatedAt), UpdatedAt: T(s.UpdatedAt),
	}
	if s.LastJobID != "" {
		id := s.LastJobID
		out.LastJobID = &id
	}
	return out
}
