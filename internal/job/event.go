package job

import (
	"time"

	"github.com/gantryhq/gantry"
)

// Event kinds.
const (
	EventSubmitted = "job.submitted"
	// EventQueued: a scheduled or retrying job came due, or a failed or
	// canceled job was retried by hand. (An extension of API.md's list.)
	EventQueued    = "job.queued"
	EventStarted   = "job.started"
	EventProgress  = "job.progress"
	EventSucceeded = "job.succeeded"
	EventRetrying  = "job.retrying"
	EventFailed    = "job.failed"
	EventCanceled  = "job.canceled"
	EventBatchDone = "batch.done"
)

// Kinds lists every event kind.
var Kinds = []string{EventSubmitted, EventQueued, EventStarted, EventProgress, EventSucceeded, EventRetrying, EventFailed, EventCanceled, EventBatchDone}

// Event is one transition of a job or batch. Seq strictly increases in the
// order transitions commit; it is assigned by the store. Progress events are
// not stored: they carry the Seq of the last stored event before them, so a
// subscriber resuming from it loses no stored event.
type Event struct {
	Seq      int64        `json:"seq"`
	Kind     string       `json:"kind"`
	At       time.Time    `json:"at"`
	Tenant   string       `json:"tenant"`
	JobID    string       `json:"job_id,omitempty"`
	BatchID  string       `json:"batch_id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Queue    string       `json:"queue,omitempty"`
	State    gantry.State `json:"state,omitempty"`
	Attempt  int          `json:"attempt,omitempty"`
	Progress *Progress    `json:"progress,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// EventFor returns an event of the given kind for job j as it is now.
func EventFor(kind string, j *Job, at time.Time) Event {
	return Event{
		Kind: kind, At: at, Tenant: j.Tenant, JobID: j.ID, BatchID: j.BatchID,
		Type: j.Type, Queue: j.Queue, State: j.State, Attempt: j.Attempt, Error: j.Error,
	}
}
