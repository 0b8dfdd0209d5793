package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/wire"
)

// decode reads r's body (bounded by the MaxBytesReader of [API.handle])
// into v strictly. A body over the limit is a *http.MaxBytesError (413);
// malformed JSON, a type mismatch or an unknown field a 400 naming the
// field (see [badInput]).
func decode(r *http.Request, v any) error {
	data, err := body(r)
	if err != nil {
		return err
	}
	return decodeErr(wire.DecodeBytes(data, v), "")
}

// body reads r's body; see [decode].
func body(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var me *http.MaxBytesError
		if errors.As(err, &me) {
			return nil, me
		}
		return nil, badInput(&job.FieldError{Field: "body", Problem: "could not be read: " + err.Error()})
	}
	return data, nil
}

// decodeErr turns an error of package wire's decoding into a 400 naming
// the field, prefixed with prefix (e.g. "jobs[3]."): an error about a
// nested value as a whole (field "body") names the value itself.
func decodeErr(err error, prefix string) error {
	if err == nil {
		return nil
	}
	var fe *job.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	if prefix != "" {
		if fe.Field == "body" {
			fe = &job.FieldError{Field: strings.TrimSuffix(prefix, "."), Problem: fe.Problem}
		} else {
			fe = fe.Prefix(prefix)
		}
	}
	return badInput(fe)
}

// decodeJob decodes a job body (a request's, or a nested one named by
// prefix, e.g. "jobs[3].") strictly, and checks its required fields.
func decodeJob(data []byte, prefix string) (wire.JobRequest, error) {
	var req wire.JobRequest
	if err := wire.DecodeJob(data, &req); err != nil {
		return req, decodeErr(err, prefix)
	}
	return req, nil
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

// badField is the error of a body value that decoded but is not
// acceptable (422).
func badField(field, problem string) error {
	return &job.FieldError{Field: field, Problem: problem}
}

// badParam is the error of a bad query parameter or header (400).
func badParam(field, problem string) error {
	return badInput(&job.FieldError{Field: field, Problem: problem})
}

// page reads the limit and cursor parameters of a list.
func page(q url.Values) (limit int, cursor string, err error) {
	limit = engine.DefaultPageSize
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > engine.MaxPageSize {
			return 0, "", badParam("limit", fmt.Sprintf("must be an integer from 1 to %d", engine.MaxPageSize))
		}
		limit = n
	}
	cursor = q.Get("cursor")
	if len(cursor) > 1024 || !utf8.ValidString(cursor) {
		return 0, "", badParam("cursor", "is not a cursor of this list")
	}
	return limit, cursor, nil
}

// stateParam reads an optional job state parameter.
func stateParam(q url.Values) (gantry.State, error) {
	s := gantry.State(q.Get("state"))
	if s != "" && !s.Valid() {
		return "", badParam("state", "must be one of scheduled, queued, running, retrying, succeeded, failed, canceled")
	}
	return s, nil
}

// nameParam reads an optional queue or type name parameter.
func nameParam(q url.Values, field string) (string, error) {
	s := q.Get(field)
	if s != "" && !job.ValidName(s) {
		return "", badParam(field, "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	return s, nil
}

// idParam reads an optional ID parameter.
func idParam(q url.Values, field string) (string, error) {
	s := q.Get(field)
	if s != "" && !job.ValidID(s) {
		return "", badParam(field, "must be an ID")
	}
	return s, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// decodeItems decodes each element of a list strictly into out (of the
// same length), naming a bad element's index: "outcomes[2].token".
func decodeItems[T any](raws []json.RawMessage, field string, out []T) error {
	for i, raw := range raws {
		if err := decodeErr(wire.DecodeBytes(raw, &out[i]), fmt.Sprintf("%s[%d].", field, i)); err != nil {
			return err
		}
	}
	return nil
}
