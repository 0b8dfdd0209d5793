package embedded

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

// JobSpec is a job to submit. Only Type is required.
type JobSpec struct {
	// Type says which handler runs the job: 1 to 128 of A-Z a-z 0-9 . _ : -.
	Type string
	// Name is a display name.
	Name string
	// Tenant owns the job. Defaults to "default".
	Tenant string
	// Queue is the queue the job waits in. Defaults to "default".
	Queue string
	// Priority orders the queue: -100 to 100, higher first. Defaults to 0.
	Priority int
	// Params are the job's input, marshaled to JSON (a json.RawMessage is
	// used as is). Nil for none.
	Params any
	// Package is the job package that runs the job, if any.
	Package string
	// BatchID adds the job to an open batch.
	BatchID string
	// RunAt delays the job until then; Delay does the same relative to
	// now. At most one of them may be set.
	RunAt time.Time
	Delay time.Duration
	// MaxAttempts bounds the attempts. Defaults to 5.
	MaxAttempts int
	// Timeout bounds each attempt. Zero means none.
	Timeout time.Duration
	// UniqueKey, while an unfinished job of the tenant has the same one,
	// makes Submit return that job instead of creating another.
	UniqueKey string
	// SingletonKey keeps jobs with the same key from running at once.
	SingletonKey string
	// Tags label the job, for filtering.
	Tags []string
	// Metadata is free-form data kept with the job.
	Metadata map[string]string
}

// spec converts s to the engine's spec; field names in errors are those of
// the HTTP API.
func (s *JobSpec) spec() (job.Spec, error) {
	var params json.RawMessage
	switch p := s.Params.(type) {
	case nil:
	case json.RawMessage:
		params = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return job.Spec{}, &FieldError{Field: "params", Problem: fmt.Sprintf("cannot be marshaled to JSON: %v", err)}
		}
		params = b
	}
	return job.Spec{
		Tenant: s.Tenant, Type: s.Type, Name: s.Name, Queue: s.Queue, Priority: s.Priority,
		Params: params, Package: s.Package, BatchID: s.BatchID, RunAt: s.RunAt, Delay: s.Delay,
		MaxAttempts: s.MaxAttempts, Timeout: s.Timeout, UniqueKey: s.UniqueKey,
		SingletonKey: s.SingletonKey, Tags: slices.Clone(s.Tags), Metadata: maps.Clone(s.Metadata),
	}, nil
}

// specs converts a list of specs, naming the index of a bad one.
func specs(in []JobSpec, field string) ([]job.Spec, error) {
	out := make([]job.Spec, len(in))
	for i := range in {
		s, err := in[i].spec()
		if err != nil {
			fe := err.(*FieldError)
			return nil, &FieldError{Field: fmt.Sprintf("%s[%d].%s", field, i, fe.Field), Problem: fe.Problem}
		}
		out[i] = s
	}
	return out, nil
}

// Progress is a running job's latest progress report.
type Progress struct {
	Percent int    // 0 to 100
	Message string // free text
}

// JobInfo is a job as stored: what was submitted and what happened to it.
type JobInfo struct {
	ID           string
	Tenant       string
	Type         string
	Name         string
	Queue        string
	Priority     int
	Params       json.RawMessage
	Package      string
	BatchID      string
	RunAt        time.Time // when a scheduled or retrying job is due; zero otherwise
	MaxAttempts  int
	Timeout      time.Duration
	UniqueKey    string
	SingletonKey string
	Tags         []string
	Metadata     map[string]string

	State gantry.State
	// Attempt is the number of attempts so far, the running one included.
	Attempt         int
	Progress        Progress
	Result          json.RawMessage
	Error           string
	CancelRequested bool
	CreatedAt       time.Time
	StartedAt       time.Time // start of the latest attempt
	FinishedAt      time.Time // when it reached a terminal state
	WorkerID        string    // the worker running it
	// Attempts is the history of attempts, oldest first. [Gantry.GetJob]
	// and [Gantry.Wait] fill it; lists leave it empty.
	Attempts []Attempt
}

// DecodeResult unmarshals the job's result into v.
func (j *JobInfo) DecodeResult(v any) error {
	if err := json.Unmarshal(j.Result, v); err != nil {
		return fmt.Errorf("embedded: decode result of job %s: %w", j.ID, err)
	}
	return nil
}

// Attempt outcomes, as recorded in [Attempt.Outcome].
const (
	OutcomeSucceeded = job.OutcomeSucceeded
	OutcomeFailed    = job.OutcomeFailed
	OutcomeCanceled  = job.OutcomeCanceled
	// OutcomeExpired: the lease expired; the worker was lost.
	OutcomeExpired = job.OutcomeExpired
	// OutcomeReleased: the worker left before finishing; the attempt does
	// not count against MaxAttempts.
	OutcomeReleased = job.OutcomeReleased
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

func jobInfo(j *job.Job) *JobInfo {
	if j == nil {
		return nil
	}
	info := &JobInfo{
		ID: j.ID, Tenant: j.Tenant, Type: j.Type, Name: j.Name, Queue: j.Queue, Priority: j.Priority,
		Params: j.Params, Package: j.Package, BatchID: j.BatchID, RunAt: j.RunAt,
		MaxAttempts: j.MaxAttempts, Timeout: j.Timeout, UniqueKey: j.UniqueKey,
		SingletonKey: j.SingletonKey, Tags: j.Tags, Metadata: j.Metadata,
		State: j.State, Attempt: j.Attempt,
		Progress: Progress{Percent: j.Progress.Percent, Message: j.Progress.Message},
		Result:   j.Result, Error: j.Error, CancelRequested: j.CancelRequested,
		CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt, WorkerID: j.WorkerID,
	}
	if len(j.Attempts) > 0 {
		info.Attempts = make([]Attempt, len(j.Attempts))
		for i, a := range j.Attempts {
			info.Attempts[i] = Attempt(a)
		}
	}
	return info
}

// JobFilter selects jobs for [Gantry.ListJobs]. Empty fields match all.
type JobFilter struct {
	Tenant  string
	State   gantry.State
	Type    string
	Queue   string
	BatchID string
	Tag     string
	// PageSize is the number of jobs read at a time: 1 to 1000. Defaults
	// to 50.
	PageSize int
}

// BatchSpec is a batch of jobs to submit, all or nothing.
type BatchSpec struct {
	Name   string
	Tenant string // defaults to "default"; the jobs' tenant
	Jobs   []JobSpec
	// Open keeps the batch open for [Gantry.AddToBatch]; a batch is done
	// once closed and all its jobs are finished.
	Open bool
	// OnComplete, if set, is submitted once when the batch is done.
	OnComplete *JobSpec
}

// BatchInfo is a batch with the number of its jobs in each state.
type BatchInfo struct {
	ID        string
	Tenant    string
	Name      string
	CreatedAt time.Time
	Closed    bool
	Total     int
	// Counts is the number of jobs in each state; states with none are
	// absent.
	Counts     map[gantry.State]int
	Done       bool
	FinishedAt time.Time
	// OnCompleteJobID is the job submitted when the batch was done.
	OnCompleteJobID string
}

func batchInfo(b *job.Batch) *BatchInfo {
	if b == nil {
		return nil
	}
	return &BatchInfo{
		ID: b.ID, Tenant: b.Tenant, Name: b.Name, CreatedAt: b.CreatedAt, Closed: b.Closed,
		Total: b.Total, Counts: b.Counts, Done: b.Done, FinishedAt: b.FinishedAt,
		OnCompleteJobID: b.OnCompleteJobID,
	}
}

// QueueInfo is a queue with the number of its jobs in each state.
type QueueInfo struct {
	Tenant string
	Name   string
	Paused bool
	Counts map[gantry.State]int
	// OldestQueued is when the oldest queued job was created; zero if none.
	OldestQueued time.Time
}

func queueInfo(q *job.Queue) *QueueInfo {
	return &QueueInfo{Tenant: q.Tenant, Name: q.Name, Paused: q.Paused, Counts: q.Counts, OldestQueued: q.OldestQueued}
}

// Worker states, as in [WorkerInfo.State].
const (
	WorkerActive   = job.WorkerActive
	WorkerDraining = job.WorkerDraining
	WorkerLost     = job.WorkerLost
)

// WorkerInfo is a registered worker.
type WorkerInfo struct {
	ID       string
	Name     string
	Host     string
	Types    []string // empty: all
	Queues   []string // empty: all
	Capacity int
	Labels   map[string]string
	LeaseTTL time.Duration
	State    string // WorkerActive, WorkerDraining or WorkerLost
	// JobIDs are the jobs it runs.
	JobIDs    []string
	CreatedAt time.Time
	LastSeen  time.Time
	IdleSince time.Time // zero while it runs jobs
}

func workerInfo(w *job.Worker) *WorkerInfo {
	return &WorkerInfo{
		ID: w.ID, Name: w.Name, Host: w.Host, Types: w.Types, Queues: w.Queues,
		Capacity: w.Capacity, Labels: w.Labels, LeaseTTL: w.LeaseTTL, State: w.State,
		JobIDs: w.JobIDs, CreatedAt: w.CreatedAt, LastSeen: w.LastSeen, IdleSince: w.IdleSince,
	}
}
