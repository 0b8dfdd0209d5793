package embedded

import (
	"context"
	"errors"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// Errors the methods of [Gantry] return, wrapped with context; test them
// with errors.Is. A request with a bad field gives a *[FieldError].
var (
	// ErrNotFound: no such job, batch, worker or queue.
	ErrNotFound = errors.New("embedded: not found")
	// ErrConflict: the object's state forbids the operation, e.g.
	// canceling a finished job or adding to a closed batch.
	ErrConflict = errors.New("embedded: conflict")
	// ErrUnavailable: the database failed.
	ErrUnavailable = errors.New("embedded: database unavailable")
	// ErrClosed: the Gantry was closed.
	ErrClosed = errors.New("embedded: closed")
	// ErrTooOld: a subscription's resume point is older than the retained
	// events (see Config.EventRetention).
	ErrTooOld = errors.New("embedded: resume point is older than the retained events")
)

// FieldError says which field of a request is invalid and why.
type FieldError struct {
	Field   string
	Problem string
}

// Error implements error.
func (e *FieldError) Error() string { return "embedded: invalid " + e.Field + ": " + e.Problem }

// classified is an internal error that also matches a public sentinel.
type classified struct {
	kind error
	err  error
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return []error{e.kind, e.err} }

// publicError maps the internal packages' errors to this package's: a
// *job.FieldError becomes a *FieldError, and the internal sentinels match
// ErrNotFound, ErrConflict, ErrUnavailable, ErrClosed or ErrTooOld.
func publicError(err error) error {
	if err == nil {
		return nil
	}
	var fe *job.FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: fe.Field, Problem: fe.Problem}
	}
	var kind error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, store.ErrNotFound):
		kind = ErrNotFound
	case errors.Is(err, store.ErrConflict):
		kind = ErrConflict
	case errors.Is(err, store.ErrClosed), errors.Is(err, engine.ErrClosed), errors.Is(err, event.ErrClosed):
		kind = ErrClosed
	case errors.Is(err, event.ErrTooOld):
		kind = ErrTooOld
	case errors.Is(err, store.ErrUnavailable):
		kind = ErrUnavailable
	default:
		return err
	}
	return &classified{kind: kind, err: err}
}
