package rowscan

import (
	"encoding/json"

	"github.com/gantryhq/gantry/internal/job"
)

// ScheduleCols are the columns of the schedules table that [Schedule]
// reads.
const ScheduleCols = `tenant, name, cron, timezone, spec, overlap, paused, version, next_run_at,
	last_run_at, last_job_id, skipped, last_skipped_at, created_at, updated_at`

// Schedule scans a row of [ScheduleCols].
func Schedule(r Scanner) (*job.Schedule, error) {
	var s job.Schedule
	var spec string
	var next, last, lastSkipped, created, updated int64
	if err := r.Scan(&s.Tenant, &s.Name, &s.Cron, &s.Timezone, &spec, &s.Overlap, &s.Paused, &s.Version, &next,
		&last, &s.LastJobID, &s.Skipped, &lastSkipped, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(spec), &s.Job); err != nil {
		return nil, err
	}
	s.NextRunAt, s.LastRunAt, s.LastSkippedAt, s.CreatedAt, s.UpdatedAt = Time(next), Time(last), Time(lastSkipped), Time(created), Time(updated)
	return &s, nil
}

// ScheduleSpec encodes a schedule's job spec for its spec column.
func ScheduleSpec(s *job.Schedule) string {
	b, _ := json.Marshal(s.Job)
	return string(b)
}

// ScheduleCursorKey is the key a schedules page resumes after: tenant and
// name, which never holds "/".
func ScheduleCursorKey(s *job.Schedule) string { return s.Tenant + "/" + s.Name }
