package job

import "time"

// Overlap policies of a [Schedule]: what a tick does while the job of the
// schedule's previous run is not terminal.
const (
	// OverlapAllow enqueues a job at every tick regardless. The default.
	OverlapAllow = "allow"
	// OverlapSkip skips the tick (no job; the skip is counted).
	OverlapSkip = "skip"
)

// Metadata that a schedule sets on the jobs it enqueues.
const (
	// MetaSchedule names the schedule.
	MetaSchedule = "gantry.schedule"
	// MetaTick is the tick the job is for (RFC 3339, UTC); for a manual
	// trigger, the time of the trigger.
	MetaTick = "gantry.tick"
	// MetaTrigger is "cron" for a tick, "manual" for a trigger.
	MetaTrigger = "gantry.trigger"
)

// Values of [MetaTrigger].
const (
	TriggerCron   = "cron"
	TriggerManual = "manual"
)

// Schedule is a stored cron schedule: a job spec enqueued at each tick of a
// cron expression in a time zone. Names are per tenant.
type Schedule struct {
	Tenant   string
	Name     string
	Cron     string
	Timezone string // IANA name; "UTC" by default
	// Job is the job body enqueued at each tick; its Tenant is the
	// schedule's and it has no RunAt, Delay or BatchID.
	Job     Spec
	Overlap string // OverlapAllow or OverlapSkip
	Paused  bool
	// Version grows with every change of the schedule (put, pause,
	// resume): a tick fires only with the version it was computed from.
	Version int64
	// NextRunAt is the next tick; zero while paused.
	NextRunAt time.Time
	// LastRunAt is when the schedule last enqueued a job (tick or
	// trigger), LastJobID that job.
	LastRunAt time.Time
	LastJobID string
	// Skipped counts the ticks skipped by the overlap policy;
	// LastSkippedAt is the latest.
	Skipped       int64
	LastSkippedAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}
