package job

import (
	"encoding/json"
	"time"

	"github.com/gantryhq/gantry"
)

// Progress is a running job's latest progress report.
type Progress struct {
	Percent int    `json:"percent"`
	Message string `json:"message,omitempty"`
}

// Attempt outcomes, as recorded in [Attempt.Outcome].
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCanceled  = "canceled"
	OutcomeExpired   = "expired"  // the lease expired: the worker was lost
	OutcomeReleased  = "released" // the worker left gracefully before finishing
)

// Attempt is one lease of a job: who ran it, with which fencing token, and
// how it ended. A running attempt has no FinishedAt and no Outcome.
type Attempt struct {
	Attempt    int       `json:"attempt"`
	WorkerID   string    `json:"worker_id,omitempty"`
	Token      int64     `json:"token"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Outcome    string    `json:"outcome,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Job is a stored job: its [Spec] and everything that happened to it.
type Job struct {
	ID           string
	Tenant       string
	Type         string
	Name         string
	Queue        string
	Priority     int
	Params       json.RawMessage
	Package      string
	BatchID      string
	RunAt        time.Time // when a scheduled or retrying job becomes queued; zero otherwise
	MaxAttempts  int
	Timeout      time.Duration
	UniqueKey    string
	SingletonKey string
	Tags         []string
	Metadata     map[string]string

	State   gantry.State
	Attempt int // attempts granted so far (counted at lease grant)
	// AttemptBase is the number of attempts that do not count against
	// MaxAttempts: those before a manual retry, and released ones.
	AttemptBase     int
	Progress        Progress
	Result          json.RawMessage
	Error           string
	CancelRequested bool
	CreatedAt       time.Time
	StartedAt       time.Time // start of the latest attempt
	FinishedAt      time.Time // when it reached a terminal state
	WorkerID        string    // holder of the current lease (running only)
	Token           int64     // fencing token of the latest lease
	LeaseExpiresAt  time.Time // running only
	LeaseTTL        time.Duration
	// Attempts is the history of leases, oldest first, the running one last.
	// Lists may leave it empty; Get fills it.
	Attempts []Attempt
}

// NewFromSpec makes the record of a newly submitted, normalized spec.
func NewFromSpec(s *Spec, id string, now time.Time) *Job {
	j := &Job{
		ID: id, Tenant: s.Tenant, Type: s.Type, Name: s.Name, Queue: s.Queue,
		Priority: s.Priority, Params: s.Params, Package: s.Package, BatchID: s.BatchID,
		MaxAttempts: s.MaxAttempts, Timeout: s.Timeout, UniqueKey: s.UniqueKey,
		SingletonKey: s.SingletonKey, Tags: s.Tags, Metadata: s.Metadata,
		State: gantry.StateQueued, CreatedAt: now,
	}
	if s.RunAt.After(now) {
		j.State = gantry.StateScheduled
		j.RunAt = s.RunAt
	}
	return j
}

// Handler returns the view of the job a handler gets.
func (j *Job) Handler() gantry.Job {
	return gantry.Job{
		ID: j.ID, Tenant: j.Tenant, Type: j.Type, Name: j.Name, Queue: j.Queue,
		Priority: j.Priority, Params: j.Params, BatchID: j.BatchID, Attempt: j.Attempt,
		MaxAttempts: j.MaxAttempts, Timeout: j.Timeout, Tags: j.Tags, Metadata: j.Metadata,
		CreatedAt: j.CreatedAt,
	}
}

// Batch is a group of jobs followed as one.
type Batch struct {
	ID        string
	Tenant    string
	Name      string
	CreatedAt time.Time
	Closed    bool
	// Total is the number of jobs in the batch.
	Total int
	// Counts is the number of the batch's jobs in each state; states with no
	// job are absent.
	Counts map[gantry.State]int
	// Done is set once the batch is closed and every job is terminal.
	Done       bool
	FinishedAt time.Time
	// OnComplete is enqueued once when the batch is done; nil for none.
	OnComplete *Spec
	// OnCompleteJobID is the job enqueued when the batch became done.
	OnCompleteJobID string
}

// Worker states.
const (
	WorkerActive   = "active"
	WorkerDraining = "draining"
	WorkerLost     = "lost"
)

// Worker is a registered worker process.
type Worker struct {
	ID       string
	Tenant   string // "" for a worker of all tenants
	Name     string
	Host     string
	Types    []string // empty: all
	Queues   []string // empty: all
	Capacity int
	Labels   map[string]string
	LeaseTTL time.Duration
	State    string
	// Running is the number of jobs it holds; JobIDs lists them.
	Running   int
	JobIDs    []string
	CreatedAt time.Time
	LastSeen  time.Time
	IdleSince time.Time // zero while it holds jobs
	DrainedAt time.Time
}

// Queue is a queue of a tenant, with the number of its jobs in each state.
type Queue struct {
	Tenant string
	Name   string
	Paused bool
	Counts map[gantry.State]int
	// OldestQueued is when the oldest queued job was created; zero if none.
	OldestQueued time.Time
}

// Webhook is a subscription that POSTs matching events to a URL.
type Webhook struct {
	ID        string
	Tenant    string
	URL       string
	Kinds     []string // empty: every kind
	BatchID   string   // "": every batch
	Secret    string   // HMAC-SHA256 key for the Gantry-Signature header
	CreatedAt time.Time
	// Cursor is the Seq of the last event handled (delivered, or given up
	// on): delivery resumes after it.
	Cursor int64
	// Delivery status, for display.
	LastDeliveredAt time.Time
	LastError       string
	Failures        int // consecutive failed attempts
}
