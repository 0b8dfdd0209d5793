package embedded

import (
	"context"
	"iter"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
)

// Event kinds.
const (
	EventSubmitted = job.EventSubmitted
	// EventQueued: a scheduled or retrying job came due, or a finished job
	// was retried by hand.
	EventQueued    = job.EventQueued
	EventStarted   = job.EventStarted
	EventProgress  = job.EventProgress
	EventSucceeded = job.EventSucceeded
	EventRetrying  = job.EventRetrying
	EventFailed    = job.EventFailed
	EventCanceled  = job.EventCanceled
	EventBatchDone = job.EventBatchDone
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

func publicEvent(e *job.Event) Event {
	ev := Event{
		Seq: e.Seq, Kind: e.Kind, At: e.At, Tenant: e.Tenant, JobID: e.JobID, BatchID: e.BatchID,
		Type: e.Type, Queue: e.Queue, State: e.State, Attempt: e.Attempt, Error: e.Error,
	}
	if e.Progress != nil {
		ev.Progress = &Progress{Percent: e.Progress.Percent, Message: e.Progress.Message}
	}
	return ev
}

// EventFilter selects events. Empty fields match all.
type EventFilter struct {
	Tenant  string
	JobID   string
	BatchID string
	Queue   string
	Kinds   []string
}

// Subscription is a stream of events from [Gantry.Subscribe].
type Subscription struct {
	sub *event.Subscription
}

// Subscribe follows the events that match f. With after >= 0 it first
// replays the stored events with Seq > after (0: all those retained), then
// continues live, without gap or duplicate; if some were already removed
// by retention it returns [ErrTooOld]. With after < 0 it delivers only
// events from now on. The subscription ends when ctx is done or on
// [Subscription.Close].
func (g *Gantry) Subscribe(ctx context.Context, f EventFilter, after int64) (*Subscription, error) {
	sub, err := g.eng.Subscribe(ctx, event.Filter{
		Tenant: f.Tenant, JobID: f.JobID, BatchID: f.BatchID, Queue: f.Queue, Kinds: slices.Clone(f.Kinds),
	}, after)
	if err != nil {
		return nil, publicError(err)
	}
	return &Subscription{sub: sub}, nil
}

// Events returns the events in Seq order, until the subscription ends;
// then [Subscription.Err] says why. Stopping the iteration early does not
// end the subscription.
func (s *Subscription) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for e := range s.sub.C() {
			if !yield(publicEvent(&e)) {
				return
			}
		}
	}
}

// Next returns the next event, waiting up to ctx for it; false means the
// subscription ended or ctx is done.
func (s *Subscription) Next(ctx context.Context) (Event, bool) {
	select {
	case e, ok := <-s.sub.C():
		if !ok {
			return Event{}, false
		}
		return publicEvent(&e), true
	case <-ctx.Done():
		return Event{}, false
	}
}

// Err returns why the subscription ended: [ErrTooOld] when it fell behind
// the retention window, [ErrClosed] when it or the Gantry was closed, or
// the context's error. It is nil while the subscription runs.
func (s *Subscription) Err() error { return publicError(s.sub.Err()) }

// Close ends the subscription.
func (s *Subscription) Close() { s.sub.Close() }
