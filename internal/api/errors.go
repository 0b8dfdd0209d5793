package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// ProblemType returns the problem type URI of a slug, e.g.
// "urn:gantry:problem:not-found". The slugs are: invalid-request,
// unauthorized, forbidden, not-found, method-not-allowed, conflict,
// stale-lease, reservation-held, reservation-lost, too-large,
// too-many-items, quota, too-many-streams, events-too-old, unavailable and
// internal.
func ProblemType(slug string) string { return "urn:gantry:problem:" + slug }

// retryAfter is the Retry-After of a 503, in seconds.
const retryAfter = "1"

// apiError is an error with its HTTP answer.
type apiError struct {
	status int
	slug   string // "" for the status's default
	detail string
	field  string
	// holder and expiresAt describe who holds a reservation (409).
	holder    string
	expiresAt *wire.Time
}

func (e *apiError) Error() string { return e.detail }

// badInput is the 400 error of a request that cannot be decoded (see
// [decode]) or of a bad query parameter: fe names the field.
func badInput(fe *job.FieldError) error {
	return &apiError{status: http.StatusBadRequest, field: fe.Field, detail: fe.Field + " " + fe.Problem}
}

func errUnauthorized(detail string) error {
	return &apiError{status: http.StatusUnauthorized, detail: detail}
}

// notFound is the error of a path naming no object.
func notFound(kind, id string) error {
	return &apiError{status: http.StatusNotFound, detail: "not found: " + kind + " " + id}
}

// staleLease is the error of a per-job shortcut with a token that is not
// the job's current lease.
func staleLease(id string) error {
	return &apiError{status: http.StatusConflict, slug: "stale-lease",
		detail: "the lease of job " + id + " is not current: its token is stale or the job is not running"}
}

func defaultSlug(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid-request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too-large"
	case http.StatusUnprocessableEntity:
		return "too-many-items"
	case http.StatusTooManyRequests:
		return "too-many-streams"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal"
}

// problem maps err to its problem document. Errors that are not the
// client's fault and not a known outage are 500s, with a generic detail.
func (a *API) problem(r *http.Request, err error) wire.Problem {
	var (
		ae *apiError
		fe *job.FieldError
		me *http.MaxBytesError
	)
	p := func(status int, slug, detail, field string) wire.Problem {
		if slug == "" {
			slug = defaultSlug(status)
		}
		return wire.Problem{Type: ProblemType(slug), Title: http.StatusText(status), Status: status, Detail: detail, Field: field}
	}
	switch {
	case errors.As(err, &ae):
		pr := p(ae.status, ae.slug, ae.detail, ae.field)
		pr.Holder, pr.ExpiresAt = ae.holder, ae.expiresAt
		return pr
	case errors.As(err, &me):
		return p(http.StatusRequestEntityTooLarge, "", "the request body is larger than "+byteSize(me.Limit), "body")
	case errors.Is(err, engine.ErrTooLarge) && errors.As(err, &fe):
		return p(http.StatusUnprocessableEntity, "too-many-items", fe.Field+" "+fe.Problem, fe.Field)
	case errors.As(err, &fe) && fe.TooLarge:
		return p(http.StatusRequestEntityTooLarge, "too-large", fe.Field+" "+fe.Problem, fe.Field)
	case errors.As(err, &fe):
		// A value that decoded but is not acceptable (priority 101, a bad
		// type name): bad input naming the field, 400 — as API.md says of
		// an invalid job in a batch ("400 naming its index"). 422 is kept
		// for requests that are well-formed but exceed what the server
		// accepts as a whole (too many items, a quota).
		return p(http.StatusBadRequest, "invalid-request", fe.Field+" "+fe.Problem, fe.Field)
	case errors.Is(err, ErrQuota):
		return p(http.StatusUnprocessableEntity, "quota", "quota reached: "+innerDetail(err, ErrQuota), "")
	case errors.Is(err, store.ErrInvalidCursor):
		return p(http.StatusBadRequest, "", "cursor is not a cursor of this list", "cursor")
	case errors.Is(err, store.ErrNotFound):
		return p(http.StatusNotFound, "", "not found: "+innerDetail(err, store.ErrNotFound), "")
	case errors.Is(err, store.ErrConflict):
		return p(http.StatusConflict, "", "conflict: "+innerDetail(err, store.ErrConflict), "")
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrClosed),
		errors.Is(err, engine.ErrClosed), errors.Is(err, event.ErrClosed):
		return p(http.StatusServiceUnavailable, "", "the server cannot reach its store or is shutting down; retry later", "")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away or the server is shutting down.
		return p(http.StatusServiceUnavailable, "", "the request was interrupted; retry later", "")
	}
	a.log.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	return p(http.StatusInternalServerError, "", "internal server error", "")
}

// fail answers the request with err's problem.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	pr := a.problem(r, err)
	switch pr.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="gantry"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
	}
	if pr.Status >= 500 && r.Context().Err() == nil {
		a.log.Warn("api: request failed", "method", r.Method, "path", r.URL.Path, "status", pr.Status, "err", err)
	}
	body, _ := json.Marshal(pr) // a Problem always marshals
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(pr.Status)
	_, _ = w.Write(append(body, '\n'))
}

// innerDetail returns the message of the error that wraps sentinel
// directly, without its package prefix and the sentinel's own text: for
// "engine: cancel job X: sqlite: job X is succeeded: store: conflict" it
// is "job X is succeeded".
func innerDetail(err, sentinel error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == sentinel {
			msg := strings.TrimSuffix(e.Error(), ": "+sentinel.Error())
			if _, rest, ok := strings.Cut(msg, ": "); ok && !strings.Contains(msg[:len(msg)-len(rest)-2], " ") {
				msg = rest // drop a "pkg: " prefix
			}
			return msg
		}
	}
	return sentinel.Error()
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}
