package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gantryhq/gantry"
)

// Transport is how a [Worker] talks to Gantry. Two implementations exist:
// the local one over an in-process engine (package embedded) and the remote
// one over the HTTP worker protocol (package client). The worker runtime
// knows nothing else of the system.
type Transport interface {
	// Register announces a worker and returns its identity and lease timing.
	Register(ctx context.Context, r Registration) (Registered, error)
	// Lease leases up to max jobs, waiting up to wait for one to be
	// available (long poll). It returns as soon as it has at least one job.
	Lease(ctx context.Context, workerID string, max int, wait time.Duration) (LeaseResult, error)
	// Heartbeat renews leases and reports progress, all in one call.
	Heartbeat(ctx context.Context, workerID string, renewals []Renewal) (HeartbeatResult, error)
	// Report records the outcomes of attempts, all in one call. The answer
	// has one entry per outcome, in order: false means the lease was stale
	// and the outcome was not recorded.
	Report(ctx context.Context, workerID string, outcomes []Outcome) ([]bool, error)
	// Leave unregisters the worker; jobs it still holds are released to
	// other workers at once.
	Leave(ctx context.Context, workerID string) error
}

// Registration describes a worker to [Transport.Register].
type Registration struct {
	Name     string
	Host     string
	Types    []string // empty: all
	Queues   []string // empty: all
	Capacity int
	Labels   map[string]string
	// LeaseTTL asks for a lease TTL; zero takes the server's default.
	LeaseTTL time.Duration
}

// Registered is the answer to [Transport.Register].
type Registered struct {
	ID        string
	LeaseTTL  time.Duration
	Heartbeat time.Duration
}

// Lease is one leased job. Its lease is valid for TTL counted from when the
// lease request was sent plus Waited (never from a server timestamp).
type Lease struct {
	Job   gantry.Job
	Token int64
	TTL   time.Duration
	// Waited is how long the server held the request (long poll) before
	// granting the lease: the lease started that much after the request
	// was sent, so a lease granted late in a long wait is not taken for
	// expired on arrival. Renewals count from their own sending.
	Waited time.Duration
}

// LeaseResult is the answer to [Transport.Lease].
type LeaseResult struct {
	Leases []Lease
	// Drain is set when the worker has been asked to drain: it must lease
	// no more, finish what it runs, and leave.
	Drain bool
}

// Renewal is one lease renewed by [Transport.Heartbeat].
type Renewal struct {
	JobID    string
	Token    int64
	Progress *Progress // nil: no new report
}

// Progress is a progress report.
type Progress struct {
	Percent int
	Message string
}

// HeartbeatResult is the answer to [Transport.Heartbeat].
type HeartbeatResult struct {
	// Leases has one entry per renewal, in order.
	Leases []RenewalResult
	Drain  bool
}

// RenewalResult is one lease's renewal.
type RenewalResult struct {
	JobID string
	// OK false means the lease is lost: stop the job, report nothing.
	OK              bool
	CancelRequested bool
}

// Outcome kinds.
const (
	Succeeded = "succeeded"
	Failed    = "failed"
	Canceled  = "canceled"
)

// Outcome is how an attempt ended.
type Outcome struct {
	JobID      string
	Token      int64
	Outcome    string // Succeeded, Failed or Canceled
	Result     json.RawMessage
	Error      string
	Retryable  bool
	RetryAfter time.Duration // zero: the server's backoff policy
}
