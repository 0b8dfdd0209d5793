package wire

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

// JobRequest is the body of POST /v1/jobs, and one job of a batch.
type JobRequest struct {
	Type           string            `json:"type"`
	Name           string            `json:"name,omitempty"`
	Tenant         string            `json:"tenant,omitempty"`
	Queue          string            `json:"queue,omitempty"`
	Priority       int               `json:"priority,omitempty"`
	Params         json.RawMessage   `json:"params,omitempty"`
	Package        string            `json:"package,omitempty"`
	BatchID        string            `json:"batch_id,omitempty"`
	RunAt          *Time             `json:"run_at,omitempty"`
	DelaySeconds   *float64          `json:"delay_seconds,omitempty"`
	MaxAttempts    int               `json:"max_attempts,omitempty"`
	TimeoutSeconds *float64          `json:"timeout_seconds,omitempty"`
	UniqueKey      string            `json:"unique_key,omitempty"`
	SingletonKey   string            `json:"singleton_key,omitempty"`
	Tags           []string          `json:"tags,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// DecodeJob decodes a job body strictly (see [DecodeBytes]) into r and
// checks that its required field, type, is present. Errors are
// *[job.FieldError]s naming the field.
func DecodeJob(data []byte, r *JobRequest) error {
	if err := DecodeBytes(data, r); err != nil {
		return err
	}
	if r.Type == "" {
		return &job.FieldError{Field: "type", Problem: "is required"}
	}
	return nil
}

// Spec converts r to a job spec. It checks only what the conversion needs
// (signs of durations, both run_at and delay_seconds); the engine validates
// the rest.
func (r *JobRequest) Spec() (job.Spec, error) {
	s := job.Spec{
		Tenant: r.Tenant, Type: r.Type, Name: r.Name, Queue: r.Queue, Priority: r.Priority,
		Params: r.Params, Package: r.Package, BatchID: r.BatchID, MaxAttempts: r.MaxAttempts,
		UniqueKey: r.UniqueKey, SingletonKey: r.SingletonKey, Tags: r.Tags, Metadata: r.Metadata,
	}
	if string(r.Params) == "null" {
		s.Params = nil
	}
	if r.RunAt != nil && r.DelaySeconds != nil {
		return s, &job.FieldError{Field: "delay_seconds", Problem: "cannot be combined with run_at"}
	}
	if r.RunAt != nil {
		s.RunAt = r.RunAt.Time
	}
	if r.DelaySeconds != nil {
		if *r.DelaySeconds < 0 {
			return s, &job.FieldError{Field: "delay_seconds", Problem: "must not be negative"}
		}
		s.Delay = Seconds(r.DelaySeconds)
	}
	if r.TimeoutSeconds != nil {
		if *r.TimeoutSeconds < 0 {
			return s, &job.FieldError{Field: "timeout_seconds", Problem: "must not be negative"}
		}
		s.Timeout = Seconds(r.TimeoutSeconds)
	}
	if r.MaxAttempts < 0 {
		return s, &job.FieldError{Field: "max_attempts", Problem: "must be at least 1"}
	}
	return s, nil
}

// FromSpec is the inverse of [JobRequest.Spec], for clients.
func FromSpec(s *job.Spec) JobRequest {
	r := JobRequest{
		Type: s.Type, Name: s.Name, Tenant: s.Tenant, Queue: s.Queue, Priority: s.Priority,
		Params: s.Params, Package: s.Package, BatchID: s.BatchID, MaxAttempts: s.MaxAttempts,
		UniqueKey: s.UniqueKey, SingletonKey: s.SingletonKey, Tags: s.Tags, Metadata: s.Metadata,
		RunAt: T(s.RunAt),
	}
	if s.Delay > 0 {
		d := S(s.Delay)
		r.DelaySeconds = &d
	}
	if s.Timeout > 0 {
		t := S(s.Timeout)
		r.TimeoutSeconds = &t
	}
	return r
}

// Progress is a job's progress.
type Progress struct {
	Percent int    `json:"percent"`
	Message string `json:"message"`
}

// Attempt is one lease of a job.
type Attempt struct {
	Attempt    int    `json:"attempt"`
	WorkerID   string `json:"worker_id"`
	Token      int64  `json:"token"`
	StartedAt  *Time  `json:"started_at"`
	FinishedAt *Time  `json:"finished_at"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error"`
}

// Job is the job object.
type Job struct {
	ID              string            `json:"id"`
	Tenant          string            `json:"tenant"`
	Type            string            `json:"type"`
	Name            string            `json:"name"`
	Queue           string            `json:"queue"`
	Priority        int               `json:"priority"`
	Params          json.RawMessage   `json:"params"`
	Package         string            `json:"package"`
	BatchID         string            `json:"batch_id"`
	RunAt           *Time             `json:"run_at"`
	MaxAttempts     int               `json:"max_attempts"`
	TimeoutSeconds  *float64          `json:"timeout_seconds"`
	UniqueKey       string            `json:"unique_key"`
	SingletonKey    string            `json:"singleton_key"`
	Tags            []string          `json:"tags"`
	Metadata        map[string]string `json:"metadata"`
	State           gantry.State      `json:"state"`
	Attempt         int               `json:"attempt"`
	Progress        Progress          `json:"progress"`
	Result          json.RawMessage   `json:"result"`
	Error           string            `json:"error"`
	CancelRequested bool              `json:"cancel_requested"`
	CreatedAt       *Time             `json:"created_at"`
	StartedAt       *Time             `json:"started_at"`
	FinishedAt      *Time             `json:"finished_at"`
	WorkerID        string            `json:"worker_id"`
	Attempts        []Attempt         `json:"attempts,omitzero"`
	// Lease is set on jobs handed to a worker by a lease.
	Lease *Lease `json:"lease,omitempty"`
}

// Lease is a worker's lease on a job.
type Lease struct {
	Token      int64   `json:"token"`
	ExpiresAt  *Time   `json:"expires_at"`
	TTLSeconds float64 `json:"ttl_seconds"`
}

var null = json.RawMessage("null")

// FromJob converts a stored job to the API object; attempts are included
// when withAttempts is set.
func FromJob(j *job.Job, withAttempts bool) Job {
	w := Job{
		ID: j.ID, Tenant: j.Tenant, Type: j.Type, Name: j.Name, Queue: j.Queue, Priority: j.Priority,
		Params: j.Params, Package: j.Package, BatchID: j.BatchID, RunAt: T(j.RunAt),
		MaxAttempts: j.MaxAttempts, UniqueKey: j.UniqueKey, SingletonKey: j.SingletonKey,
		Tags: j.Tags, Metadata: j.Metadata, State: j.State, Attempt: j.Attempt,
		Progress: Progress{Percent: j.Progress.Percent, Message: j.Progress.Message},
		Result:   j.Result, Error: j.Error, CancelRequested: j.CancelRequested,
		CreatedAt: T(j.CreatedAt), StartedAt: T(j.StartedAt), FinishedAt: T(j.FinishedAt), WorkerID: j.WorkerID,
	}
	if len(w.Params) == 0 {
		w.Params = null
	}
	if len(w.Result) == 0 {
		w.Result = null
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	if w.Metadata == nil {
		w.Metadata = map[string]string{}
	}
	if j.Timeout > 0 {
		t := S(j.Timeout)
		w.TimeoutSeconds = &t
	}
	if withAttempts {
		w.Attempts = make([]Attempt, len(j.Attempts))
		for i, a := range j.Attempts {
			w.Attempts[i] = Attempt{Attempt: a.Attempt, WorkerID: a.WorkerID, Token: a.Token,
				StartedAt: T(a.StartedAt), FinishedAt: T(a.FinishedAt), Outcome: a.Outcome, Error: a.Error}
		}
	}
	return w
}

// Page is a page of a list. Every list answer has this shape, also the
// lists that are not paged (workers, queues, webhooks), whose NextCursor is
// always null.
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// NewPage makes a page; an empty cursor is written as null.
func NewPage[T any](items []T, next string) Page[T] {
	if items == nil {
		items = []T{}
	}
	p := Page[T]{Items: items}
	if next != "" {
		p.NextCursor = &next
	}
	return p
}

// BatchRequest is the body of POST /v1/batches.
type BatchRequest struct {
	Name       string       `json:"name,omitempty"`
	Tenant     string       `json:"tenant,omitempty"`
	Jobs       []JobRequest `json:"jobs"`
	Open       bool         `json:"open,omitempty"`
	OnComplete *JobRequest  `json:"on_complete,omitempty"`
}

// BatchJobsRequest is the body of POST /v1/batches/{id}/jobs.
type BatchJobsRequest struct {
	Jobs []JobRequest `json:"jobs"`
}

// Specs converts a list of job requests, naming the index of a bad one.
func Specs(reqs []JobRequest) ([]job.Spec, error) {
	specs := make([]job.Spec, len(reqs))
	for i := range reqs {
		s, err := reqs[i].Spec()
		if err != nil {
			if fe, ok := err.(*job.FieldError); ok {
				return nil, fe.Prefix(fmt.Sprintf("jobs[%d].", i))
			}
			return nil, err
		}
		specs[i] = s
	}
	return specs, nil
}

// BatchCreated is the answer to POST /v1/batches.
type BatchCreated struct {
	Batch  Batch    `json:"batch"`
	JobIDs []string `json:"job_ids"`
}

// JobIDs is the answer to POST /v1/batches/{id}/jobs.
type JobIDs struct {
	JobIDs []string `json:"job_ids"`
}

// Batch is the batch object.
type Batch struct {
	ID              string               `json:"id"`
	Name            string               `json:"name"`
	Tenant          string               `json:"tenant"`
	CreatedAt       *Time                `json:"created_at"`
	Closed          bool                 `json:"closed"`
	Total           int                  `json:"total"`
	Counts          map[gantry.State]int `json:"counts"`
	Done            bool                 `json:"done"`
	FinishedAt      *Time                `json:"finished_at"`
	OnCompleteJobID string               `json:"on_complete_job_id,omitempty"`
}

// FromBatch converts a stored batch.
func FromBatch(b *job.Batch) Batch {
	c := b.Counts
	if c == nil {
		c = map[gantry.State]int{}
	}
	return Batch{ID: b.ID, Name: b.Name, Tenant: b.Tenant, CreatedAt: T(b.CreatedAt), Closed: b.Closed,
		Total: b.Total, Counts: c, Done: b.Done, FinishedAt: T(b.FinishedAt), OnCompleteJobID: b.OnCompleteJobID}
}

// Event is one event, as sent in an SSE data line and to webhooks.
type Event struct {
	Seq      int64        `json:"seq"`
	Kind     string       `json:"kind"`
	At       *Time        `json:"at"`
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

// FromEvent converts an event.
func FromEvent(e *job.Event) Event {
	w := Event{Seq: e.Seq, Kind: e.Kind, At: T(e.At), Tenant: e.Tenant, JobID: e.JobID, BatchID: e.BatchID,
		Type: e.Type, Queue: e.Queue, State: e.State, Attempt: e.Attempt, Error: e.Error}
	if e.Progress != nil {
		w.Progress = &Progress{Percent: e.Progress.Percent, Message: e.Progress.Message}
	}
	return w
}

// Queue is a queue with its counts.
type Queue struct {
	Name                string               `json:"name"`
	Tenant              string               `json:"tenant"`
	Counts              map[gantry.State]int `json:"counts"`
	Paused              bool                 `json:"paused"`
	OldestQueuedSeconds float64              `json:"oldest_queued_seconds"`
}

// FromQueue converts a queue; now dates the age of its oldest queued job.
func FromQueue(q *job.Queue, now time.Time) Queue {
	w := Queue{Name: q.Name, Tenant: q.Tenant, Counts: q.Counts, Paused: q.Paused}
	if w.Counts == nil {
		w.Counts = map[gantry.State]int{}
	}
	if !q.OldestQueued.IsZero() {
		w.OldestQueuedSeconds = max(now.Sub(q.OldestQueued).Seconds(), 0)
	}
	return w
}
