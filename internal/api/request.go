package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/wire"
)

// decode reads r's body (bounded by the MaxBytesReader of [API.handle])
// into v strictly. A body over the limit is a *http.MaxBytesError (413);
// malformed JSON a *job.FieldError (400).
func decode(r *http.Request, v any) error {
	if r.Body == nil {
		return wire.DecodeBytes(nil, v)
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return me
		}
		return &job.FieldError{Field: "body", Problem: "could not be read: " + err.Error()}
	}
	return wire.DecodeBytes(data, v)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("api: encode answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// pathID returns the {id} path parameter, or a 404 naming kind when it
// cannot be an ID.
func pathID(r *http.Request, kind string) (string, error) {
	id := r.PathValue("id")
	if !job.ValidID(id) {
		return "", notFound(kind, strconv.Quote(id))
	}
	return id, nil
}

// tenantFor returns the tenant a principal acts for when a request names
// one: an admin may name any (empty: def), others only their own.
func tenantFor(p auth.Principal, requested, def string) (string, error) {
	if p.Admin() {
		if requested == "" {
			return def, nil
		}
		return requested, nil
	}
	if requested != "" && requested != p.Tenant {
		return "", &apiError{status: http.StatusForbidden, field: "tenant",
			detail: "tenant: the credential may act only for its own tenant"}
	}
	return p.Tenant, nil
}

func badField(field, problem string) error {
	return &job.FieldError{Field: field, Problem: problem}
}

// page reads the limit and cursor parameters of a list.
func page(q url.Values) (limit int, cursor string, err error) {
	limit = engine.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > engine.MaxPageSize {
			return 0, "", badField("limit", fmt.Sprintf("must be an integer from 1 to %d", engine.MaxPageSize))
		}
		limit = n
	}
	cursor = q.Get("cursor")
	if len(cursor) > 1024 || !utf8.ValidString(cursor) {
		return 0, "", badField("cursor", "is not a cursor of this list")
	}
	return limit, cursor, nil
}

// stateParam reads an optional job state parameter.
func stateParam(q url.Values) (gantry.State, error) {
	s := gantry.State(q.Get("state"))
	if s != "" && !s.Valid() {
		return "", badField("state", "must be one of scheduled, queued, running, retrying, succeeded, failed, canceled")
	}
	return s, nil
}

// nameParam reads an optional queue or type name parameter.
func nameParam(q url.Values, field string) (string, error) {
	s := q.Get(field)
	if s != "" && !job.ValidName(s) {
		return "", badField(field, "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	return s, nil
}

// idParam reads an optional ID parameter.
func idParam(q url.Values, field string) (string, error) {
	s := q.Get(field)
	if s != "" && !job.ValidID(s) {
		return "", badField(field, "must be an ID")
	}
	return s, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
