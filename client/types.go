package client

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/wire"
)

// JobRequest is a job to submit. Only Type is required.
type JobRequest struct {
	// Type says which handler runs the job: 1 to 128 of A-Z a-z 0-9 . _ : -.
	Type string
	// Name is a display name.
	Name string
	// Tenant owns the job; only admin tokens may set it. Defaults to the
	// token's tenant ("default" for the admin token).
	Tenant string
	// Queue is the queue the job waits in. Defaults to "default".
	Queue string
	// Priority orders the queue: -100 to 100, higher first. Defaults to 0.
	Priority int
	// Params are the job's input, marshaled to JSON (a json.RawMessage is
	// sent as is). Nil for none.
	Params any
	// Package is the job package that runs the job, if any.
	Package string
	// BatchID adds the job to an open batch.
	BatchID string
	// RunAt delays the job until then; Delay does the same relative to
	// the server's clock when it receives the request. At most one of them
	// may be set.
	RunAt time.Time
	Delay time.Duration
	// MaxAttempts bounds the attempts. Defaults to 5.
	MaxAttempts int
	// Timeout bounds each attempt. Zero means none.
	Timeout time.Duration
	// UniqueKey, while an unfinished job of the tenant has the same one,
	// makes [Client.Submit] return that job instead of creating another.
	UniqueKey string
	// SingletonKey keeps jobs with the same key from running at once.
	SingletonKey string
	// Tags label the job, for filtering.
	Tags []string
	// Metadata is free-form data kept with the job.
	Metadata map[string]string
}

// wire converts r to its JSON shape; field prefixes errors' field names.
func (r *JobRequest) wire(field string) (wire.JobRequest, error) {
	var params json.RawMessage
	switch p := r.Params.(type) {
	case nil:
	case json.RawMessage:
		params = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return wire.JobRequest{}, fmt.Errorf("%w: %sparams cannot be marshaled to JSON: %w", ErrInvalid, field, err)
		}
		params = b
	}
	w := wire.JobRequest{
		Type: r.Type, Name: r.Name, Tenant: r.Tenant, Queue: r.Queue, Priority: r.Priority,
		Params: params, Package: r.Package, BatchID: r.BatchID, RunAt: wire.T(r.RunAt),
		MaxAttempts: r.MaxAttempts, UniqueKey: r.UniqueKey, SingletonKey: r.SingletonKey,
		Tags: slices.Clone(r.Tags), Metadata: maps.Clone(r.Metadata),
	}
	if r.Delay > 0 {
		d := wire.S(r.Delay)
		w.DelaySeconds = &d
	}
	if r.Timeout > 0 {
		t := wire.S(r.Timeout)
		w.TimeoutSeconds = &t
	}
	return w, nil
}

// wireJobs converts job requests, naming the index of one that fails.
func wireJobs(reqs []JobRequest, field string) ([]wire.JobRequest, error) {
	out := make([]wire.JobRequest, len(reqs))
	for i := range reqs {
		w, err := reqs[i].wire(fmt.Sprintf("%s[%d].", field, i))
		if err != nil {
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

// Progress is a running job's latest progress report.
type Progress struct {
	Percent int    // 0 to 100
	Message string // free text
}

// Attempt outcomes, as in [Attempt.Outcome].
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCanceled  = "canceled"
	// OutcomeExpired: the lease expired; the worker was lost.
	OutcomeExpired = "expired"
	// OutcomeReleased: the worker left before finishing; the attempt does
	// not count against MaxAttempts.
	OutcomeReleased = "released"
)

// Attempt is one attempt of a job: one lease to a worker.
type Attempt struct {
	Attempt    int
	WorkerID   string
	Token      int64 // the lease's fencing token
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Outcome    string    // empty while running
	Error      string
}

// Job is a job as the server keeps it: what was submitted and what
// happened to it.
type Job struct {
	ID           string
	Tenant       string
	Type         string
	Name         string
	Queue        string
	Priority     int
	Params       json.RawMessage // nil for none
	Package      string
	BatchID      string
	RunAt        time.Time // when a scheduled or retrying job is due; zero otherwise
	MaxAttempts  int
	Timeout      time.Duration // per attempt; zero for none
	UniqueKey    string
	SingletonKey string
	Tags         []string
	Metadata     map[string]string

	State gantry.State
	// Attempt is the number of attempts so far, the running one included.
	Attempt         int
	Progress        Progress
	Result          json.RawMessage // nil for none
	Error           string
	CancelRequested bool
	CreatedAt       time.Time
	StartedAt       time.Time // start of the latest attempt
	FinishedAt      time.Time // when it reached a terminal state
	WorkerID        string    // the worker running it
	// Attempts is the history of attempts, oldest first. [Client.GetJob]
	// and [Client.Wait] fill it; lists leave it empty.
	Attempts []Attempt

	// Deduplicated is set on the job [Client.Submit] returns when its
	// unique key matched an unfinished job, which it returned instead of
	// creating one (HTTP 200 rather than 201). It is false elsewhere.
	Deduplicated bool
}

// DecodeResult unmarshals the job's result into v.
func (j *Job) DecodeResult(v any) error {
	if len(j.Result) == 0 {
		return fmt.Errorf("client: job %s has no result", j.ID)
	}
	if err := json.Unmarshal(j.Result, v); err != nil {
		return fmt.Errorf("client: decode result of job %s: %w", j.ID, err)
	}
	return nil
}

// DecodeParams unmarshals the job's params into v.
func (j *Job) DecodeParams(v any) error {
	if len(j.Params) == 0 {
		return fmt.Errorf("client: job %s has no params", j.ID)
	}
	if err := json.Unmarshal(j.Params, v); err != nil {
		return fmt.Errorf("client: decode params of job %s: %w", j.ID, err)
	}
	return nil
}

// tm converts an API time (nil: zero).
func tm(t *wire.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// raw returns nil for an absent or null JSON value.
func raw(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

func fromWireJob(w *wire.Job) *Job {
	j := &Job{
		ID: w.ID, Tenant: w.Tenant, Type: w.Type, Name: w.Name, Queue: w.Queue, Priority: w.Priority,
		Params: raw(w.Params), Package: w.Package, BatchID: w.BatchID, RunAt: tm(w.RunAt),
		MaxAttempts: w.MaxAttempts, Timeout: wire.Seconds(w.TimeoutSeconds), UniqueKey: w.UniqueKey,
		SingletonKey: w.SingletonKey, Tags: w.Tags, Metadata: w.Metadata, State: w.State,
		Attempt: w.Attempt, Progress: Progress(w.Progress), Result: raw(w.Result), Error: w.Error,
		CancelRequested: w.CancelRequested, CreatedAt: tm(w.CreatedAt), StartedAt: tm(w.StartedAt),
		FinishedAt: tm(w.FinishedAt), WorkerID: w.WorkerID,
	}
	if len(w.Attempts) > 0 {
		j.Attempts = make([]Attempt, len(w.Attempts))
		for i, a := range w.Attempts {
			j.Attempts[i] = Attempt{Attempt: a.Attempt, WorkerID: a.WorkerID, Token: a.Token,
				StartedAt: tm(a.StartedAt), FinishedAt: tm(a.FinishedAt), Outcome: a.Outcome, Error: a.Error}
		}
	}
	return j
}

// BatchRequest is a batch of jobs to submit, all or nothing.
type BatchRequest struct {
	Name string
	// Tenant owns the batch and its jobs; only admin tokens may set it.
	Tenant string
	Jobs   []JobRequest
	// Open keeps the batch open for [Client.AddToBatch]; a batch is done
	// once closed and all its jobs are finished.
	Open bool
	// OnComplete, if set, is submitted once when the batch is done.
	OnComplete *JobRequest
}

// Batch is a batch with the number of its jobs in each state.
type Batch struct {
	ID        string
	Name      string
	Tenant    string
	CreatedAt time.Time
	Closed    bool
	Total     int
	// Counts is the number of jobs in each state.
	Counts     map[gantry.State]int
	Done       bool
	FinishedAt time.Time
	// OnCompleteJobID is the job submitted when the batch was done.
	OnCompleteJobID string
}

func fromWireBatch(w *wire.Batch) *Batch {
	return &Batch{ID: w.ID, Name: w.Name, Tenant: w.Tenant, CreatedAt: tm(w.CreatedAt), Closed: w.Closed,
		Total: w.Total, Counts: w.Counts, Done: w.Done, FinishedAt: tm(w.FinishedAt), OnCompleteJobID: w.OnCompleteJobID}
}

// BatchCreated is the answer to [Client.CreateBatch].
type BatchCreated struct {
	Batch *Batch
	// JobIDs are the IDs of the batch's jobs, in the order submitted.
	JobIDs []string
}

// Event kinds.
const (
	EventSubmitted = "job.submitted"
	// EventQueued: a scheduled or retrying job came due, or a finished job
	// was retried by hand.
	EventQueued    = "job.queued"
	EventStarted   = "job.started"
	EventProgress  = "job.progress"
	EventSucceeded = "job.succeeded"
	EventRetrying  = "job.retrying"
	EventFailed    = "job.failed"
	EventCanceled  = "job.canceled"
	EventBatchDone = "batch.done"
)

// Event is one transition of a job or batch. Seq strictly increases in the
// order the transitions happened; progress events are not stored and carry
// the Seq of the last stored event before them.
type Event struct {
	Seq      int64
	Kind     string
	At       time.Time
	Tenant   string
	JobID    string
	BatchID  string
	Type     string
	Queue    string
	State    gantry.State
	Attempt  int
	Progress *Progress // job.progress events only
	Error    string
}

func fromWireEvent(w *wire.Event) Event {
	e := Event{Seq: w.Seq, Kind: w.Kind, At: tm(w.At), Tenant: w.Tenant, JobID: w.JobID, BatchID: w.BatchID,
		Type: w.Type, Queue: w.Queue, State: w.State, Attempt: w.Attempt, Error: w.Error}
	if w.Progress != nil {
		e.Progress = &Progress{Percent: w.Progress.Percent, Message: w.Progress.Message}
	}
	return e
}

// Worker states, as in [Worker.State].
const (
	WorkerActive   = "active"
	WorkerDraining = "draining"
	WorkerLost     = "lost"
)

// Worker is a registered worker.
type Worker struct {
	ID       string
	Name     string
	Host     string
	Tenant   string   // "" for a worker of every tenant
	State    string   // WorkerActive, WorkerDraining or WorkerLost
	Types    []string // empty: all
	Queues   []string // empty: all
	Capacity int
	Labels   map[string]string
	// Running is the number of jobs it holds; JobIDs lists them.
	Running   int
	JobIDs    []string
	LastSeen  time.Time
	IdleSince time.Time // zero while it runs jobs
	CreatedAt time.Time
}

func fromWireWorker(w *wire.Worker) *Worker {
	return &Worker{ID: w.ID, Name: w.Name, Host: w.Host, Tenant: w.Tenant, State: w.State, Types: w.Types,
		Queues: w.Queues, Capacity: w.Capacity, Labels: w.Labels, Running: w.Running, JobIDs: w.JobIDs,
		LastSeen: tm(w.LastSeen), IdleSince: tm(w.IdleSince), CreatedAt: tm(w.CreatedAt)}
}

// Queue is a queue with the number of its jobs in each state.
type Queue struct {
	Name   string
	Tenant string
	Paused bool
	Counts map[gantry.State]int
	// OldestQueuedAge is how long the oldest queued job has been waiting,
	// by the server's clock; zero if none is queued.
	OldestQueuedAge time.Duration
}

func fromWireQueue(w *wire.Queue) *Queue {
	return &Queue{Name: w.Name, Tenant: w.Tenant, Paused: w.Paused, Counts: w.Counts,
		OldestQueuedAge: time.Duration(w.OldestQueuedSeconds * float64(time.Second))}
}

// Page is one page of a list, and the cursor of the next page ("" at the
// end).
type Page[T any] struct {
	Items      []T
	NextCursor string
}
