package gantry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Job is a job as a [Handler] sees it: what was submitted, and which attempt
// this is. Handlers must not keep it after Work returns.
type Job struct {
	ID          string
	Tenant      string
	Type        string
	Name        string
	Queue       string
	Priority    int
	Params      json.RawMessage
	BatchID     string
	Attempt     int
	MaxAttempts int
	// Timeout is the per-attempt limit; zero means none.
	Timeout   time.Duration
	Tags      []string
	Metadata  map[string]string
	CreatedAt time.Time

	progress ProgressFunc
}

// ProgressFunc receives a job's progress reports. See [Job.Progress].
type ProgressFunc func(ctx context.Context, percent int, message string) error

// WithProgress returns a copy of j whose [Job.Progress] calls f. Worker
// runtimes use it; so can tests of handlers, to observe progress.
func (j Job) WithProgress(f ProgressFunc) *Job {
	j.progress = f
	return &j
}

// Progress reports how far the job has come: percent is clamped to 0..100,
// message is free text. Reports are sent with the next heartbeat, so calling
// it often is cheap; only the latest report is kept.
func (j *Job) Progress(ctx context.Context, percent int, message string) error {
	if j.progress == nil {
		return nil
	}
	percent = min(max(percent, 0), 100)
	return j.progress(ctx, percent, message)
}

// Decode unmarshals the job's params into v.
func (j *Job) Decode(v any) error {
	if len(j.Params) == 0 {
		return nil
	}
	if err := json.Unmarshal(j.Params, v); err != nil {
		return Permanent(fmt.Errorf("decode params of job %s: %w", j.ID, err))
	}
	return nil
}

// Handler runs jobs of one type. Work returns the result (marshaled to
// JSON) or an error: a plain error is retried with backoff while attempts
// remain, [Permanent] fails at once, [RetryAfter] sets the delay. ctx is
// canceled when cancellation is requested, the lease is lost, the timeout
// passes or the worker shuts down; a handler must return promptly then.
type Handler interface {
	Work(ctx context.Context, job *Job) (result any, err error)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, job *Job) (any, error)

// Work calls f.
func (f HandlerFunc) Work(ctx context.Context, job *Job) (any, error) { return f(ctx, job) }
