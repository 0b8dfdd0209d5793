package client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Errors the methods of [Client] return, wrapped with context; test them
// with errors.Is. An answer of the server with an error status is an
// *[Error], which matches the sentinel of its status.
var (
	// ErrInvalid: the request was refused as malformed or with values
	// the server does not accept (HTTP 400 or 422); [Error.Field] names
	// the field at fault.
	ErrInvalid = errors.New("client: invalid request")
	// ErrUnauthorized: the token is missing or wrong (HTTP 401).
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrForbidden: the token may not do this (HTTP 403).
	ErrForbidden = errors.New("client: forbidden")
	// ErrNotFound: no such job, batch, worker, queue or webhook, or another
	// tenant's (HTTP 404).
	ErrNotFound = errors.New("client: not found")
	// ErrConflict: the object's state forbids the operation, e.g. canceling
	// a finished job, adding to a closed batch or reporting with a stale
	// lease token (HTTP 409).
	ErrConflict = errors.New("client: conflict")
	// ErrTooLarge: the request body or one of its lists is too large
	// (HTTP 413).
	ErrTooLarge = errors.New("client: request too large")
	// ErrTooManyRequests: a quota or a limit on concurrent requests, such
	// as event streams per token, was reached (HTTP 429).
	ErrTooManyRequests = errors.New("client: too many requests")
	// ErrUnavailable: the server or its store cannot serve the request now
	// (HTTP 503). Idempotent reads are retried a few times, honoring
	// Retry-After, before this is returned.
	ErrUnavailable = errors.New("client: server unavailable")
	// ErrTooOld: an event subscription's resume point is older than the
	// events the server retains, so events were lost.
	ErrTooOld = errors.New("client: resume point is older than the retained events")
	// ErrClosed: the event subscription was closed.
	ErrClosed = errors.New("client: subscription closed")
)

// Error is an error answer of the server: an RFC 9457 problem document and
// its HTTP status. errors.Is matches it against the sentinel of its status
// ([ErrNotFound] for 404, and so on).
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is a URI reference that identifies the problem type.
	Type string
	// Title is a short summary of the problem type.
	Title string
	// Detail explains this occurrence of the problem.
	Detail string
	// Field names the request field at fault, for 400 and 422.
	Field string
	// Holder and ExpiresAt, for a 409 about a reservation, name who holds
	// it and until when (by the server's clock: compare it with nothing).
	Holder    string
	ExpiresAt time.Time
	// RetryAfter is the delay the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Method and Path are the request's.
	Method, Path string
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("client: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	fmt.Fprintf(&b, "%d", e.Status)
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	if title != "" {
		b.WriteString(" " + title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Field != "" && !strings.Contains(e.Detail, e.Field) {
		b.WriteString(" (field " + e.Field + ")")
	}
	return b.String()
}

// Is reports whether target is the sentinel error of e's status.
func (e *Error) Is(target error) bool {
	return target != nil && target == statusSentinel(e.Status)
}

// statusSentinel returns the sentinel error of an HTTP status, or nil.
func statusSentinel(status int) error {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusTooManyRequests:
		return ErrTooManyRequests
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}
