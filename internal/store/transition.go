package store

import (
	"fmt"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

// This file holds the decisions of the state machine that every store
// makes the same way, so that no engine can drift from another.

// Exhausted reports whether a job has used its attempt budget.
func Exhausted(j *job.Job) bool { return j.Attempt-j.AttemptBase >= j.MaxAttempts }

// FailedTransition decides where running job j goes when its attempt
// fails with outcome o (see [Outcome]): canceled if cancellation was
// requested; retrying at runAt if o is retryable and attempts remain;
// else failed (the dead letter). It returns the new state and its event.
func FailedTransition(j *job.Job, o *Outcome, now time.Time, backoff func(attempt int) time.Duration) (state gantry.State, kind string, runAt time.Time) {
	switch {
	case j.CancelRequested:
		return gantry.StateCanceled, job.EventCanceled, time.Time{}
	case o.Retryable && !Exhausted(j):
		delay := o.RetryAfter
		if delay <= 0 && backoff != nil {
			delay = backoff(j.Attempt)
		}
		return gantry.StateRetrying, job.EventRetrying, now.Add(delay)
	default:
		return gantry.StateFailed, job.EventFailed, time.Time{}
	}
}

// ExpiredTransition decides where running job j goes when its lease
// expired (see [Store.RescueExpired]), with the error to record.
func ExpiredTransition(j *job.Job) (state gantry.State, kind, errText string) {
	switch {
	case j.CancelRequested:
		return gantry.StateCanceled, job.EventCanceled, "lease expired after cancellation was requested"
	case Exhausted(j):
		return gantry.StateFailed, job.EventFailed, fmt.Sprintf("lease expired: worker %s lost during attempt %d, no attempts left", j.WorkerID, j.Attempt)
	default:
		return gantry.StateQueued, job.EventRetrying, fmt.Sprintf("lease expired: worker %s lost during attempt %d", j.WorkerID, j.Attempt)
	}
}
