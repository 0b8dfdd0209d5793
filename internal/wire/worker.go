package wire

import (
	"encoding/json"
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

// WorkerRequest is the body of POST /v1/workers.
type WorkerRequest struct {
	Name            string            `json:"name,omitempty"`
	Host            string            `json:"host,omitempty"`
	Tenant          string            `json:"tenant,omitempty"`
	Types           []string          `json:"types,omitempty"`
	Queues          []string          `json:"queues,omitempty"`
	Capacity        int               `json:"capacity,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	LeaseTTLSeconds *float64          `json:"lease_ttl_seconds,omitempty"`
}

// WorkerRegistered is the answer to POST /v1/workers.
type WorkerRegistered struct {
	ID               string  `json:"id"`
	LeaseTTLSeconds  float64 `json:"lease_ttl_seconds"`
	HeartbeatSeconds float64 `json:"heartbeat_seconds"`
}

// Worker is the worker object of GET /v1/workers.
type Worker struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Host      string            `json:"host"`
	Tenant    string            `json:"tenant"`
	State     string            `json:"state"`
	Types     []string          `json:"types"`
	Queues    []string          `json:"queues"`
	Capacity  int               `json:"capacity"`
	Labels    map[string]string `json:"labels"`
	Running   int               `json:"running"`
	JobIDs    []string          `json:"job_ids"`
	LastSeen  *Time             `json:"last_seen"`
	IdleSince *Time             `json:"idle_since"`
	CreatedAt *Time             `json:"created_at"`
}

// FromWorker converts a stored worker.
func FromWorker(w *job.Worker) Worker {
	o := Worker{ID: w.ID, Name: w.Name, Host: w.Host, Tenant: w.Tenant, State: w.State, Types: w.Types,
		Queues: w.Queues, Capacity: w.Capacity, Labels: w.Labels, Running: w.Running, JobIDs: w.JobIDs,
		LastSeen: T(w.LastSeen), IdleSince: T(w.IdleSince), CreatedAt: T(w.CreatedAt)}
	if o.Types == nil {
		o.Types = []string{}
	}
	if o.Queues == nil {
		o.Queues = []string{}
	}
	if o.JobIDs == nil {
		o.JobIDs = []string{}
	}
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	return o
}

// LeaseRequest is the body of POST /v1/workers/{id}/lease.
type LeaseRequest struct {
	Max         int      `json:"max"`
	WaitSeconds *float64 `json:"wait_seconds,omitempty"`
}

// LeaseResponse is its answer.
type LeaseResponse struct {
	Jobs  []Job `json:"jobs"`
	Drain bool  `json:"drain"`
	// WaitedSeconds is how long the server held the request (long poll)
	// before granting the leases. A worker counts a lease's ttl_seconds
	// from when it sent the request plus this wait; counting from the send
	// alone would make a lease granted after a long wait look expired.
	WaitedSeconds float64 `json:"waited_seconds"`
}

// HeartbeatLease is one lease in a heartbeat.
type HeartbeatLease struct {
	JobID    string    `json:"job_id"`
	Token    int64     `json:"token"`
	Progress *Progress `json:"progress,omitempty"`
}

// HeartbeatRequest is the body of POST /v1/workers/{id}/heartbeat.
type HeartbeatRequest struct {
	Leases []HeartbeatLease `json:"leases"`
}

// HeartbeatResult is one lease's renewal.
type HeartbeatResult struct {
	JobID           string `json:"job_id"`
	OK              bool   `json:"ok"`
	ExpiresAt       *Time  `json:"expires_at"`
	CancelRequested bool   `json:"cancel_requested"`
}

// HeartbeatResponse is the answer to a heartbeat.
type HeartbeatResponse struct {
	Leases []HeartbeatResult `json:"leases"`
	Drain  bool              `json:"drain"`
}

// Outcome is one attempt's outcome in a report.
type Outcome struct {
	JobID             string          `json:"job_id"`
	Token             int64           `json:"token"`
	Outcome           string          `json:"outcome"`
	Result            json.RawMessage `json:"result,omitempty"`
	Error             string          `json:"error,omitempty"`
	Retryable         *bool           `json:"retryable,omitempty"`
	RetryAfterSeconds *float64        `json:"retry_after_seconds,omitempty"`
}

// RetryableOr returns Retryable, or def when it is absent.
func (o *Outcome) RetryableOr(def bool) bool {
	if o.Retryable == nil {
		return def
	}
	return *o.Retryable
}

// RetryAfter returns the requested retry delay.
func (o *Outcome) RetryAfter() time.Duration { return Seconds(o.RetryAfterSeconds) }

// ReportRequest is the body of POST /v1/workers/{id}/report.
type ReportRequest struct {
	Outcomes []Outcome `json:"outcomes"`
}

// OutcomeResult is one outcome's fate.
type OutcomeResult struct {
	JobID string `json:"job_id"`
	OK    bool   `json:"ok"`
}

// ReportResponse is the answer to a report.
type ReportResponse struct {
	Outcomes []OutcomeResult `json:"outcomes"`
}

// JobHeartbeatRequest is the body of POST /v1/jobs/{id}/heartbeat.
type JobHeartbeatRequest struct {
	Token    int64     `json:"token"`
	Progress *Progress `json:"progress,omitempty"`
}

// JobCompleteRequest is the body of POST /v1/jobs/{id}/complete.
type JobCompleteRequest struct {
	Token  int64           `json:"token"`
	Result json.RawMessage `json:"result,omitempty"`
}

// JobFailRequest is the body of POST /v1/jobs/{id}/fail.
type JobFailRequest struct {
	Token             int64    `json:"token"`
	Error             string   `json:"error"`
	Retryable         *bool    `json:"retryable,omitempty"`
	RetryAfterSeconds *float64 `json:"retry_after_seconds,omitempty"`
}

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the request field at fault, for 400 and 422.
	Field string `json:"field,omitempty"`
	// Holder and ExpiresAt describe who holds a reservation, for 409.
	Holder    string `json:"holder,omitempty"`
	ExpiresAt *Time  `json:"expires_at,omitempty"`
}

// Error makes a Problem usable as an error by clients.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}
