package gantry

// State is where a job is in its life. See [State.Terminal] and the
// transitions in docs/architecture.md.
type State string

// The states of a job.
const (
	// StateScheduled is a job waiting for its run_at time.
	StateScheduled State = "scheduled"
	// StateQueued is a job ready to be leased by a worker.
	StateQueued State = "queued"
	// StateRunning is a job leased by a worker.
	StateRunning State = "running"
	// StateRetrying is a failed attempt waiting for its backoff to pass.
	StateRetrying State = "retrying"
	// StateSucceeded is a job that completed. Terminal.
	StateSucceeded State = "succeeded"
	// StateFailed is a job that failed with no attempts left, or with a
	// non-retryable error: the dead-letter state. Terminal.
	StateFailed State = "failed"
	// StateCanceled is a job canceled by a user. Terminal.
	StateCanceled State = "canceled"
)

// States lists every state, in lifecycle order.
var States = []State{StateScheduled, StateQueued, StateRunning, StateRetrying, StateSucceeded, StateFailed, StateCanceled}

// Terminal reports whether s is a final state: succeeded, failed or canceled.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCanceled
}

// Valid reports whether s is one of [States].
func (s State) Valid() bool {
	switch s {
	case StateScheduled, StateQueued, StateRunning, StateRetrying, StateSucceeded, StateFailed, StateCanceled:
		return true
	}
	return false
}
