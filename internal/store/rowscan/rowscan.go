// Package rowscan holds what both SQL stores share about rows: the column
// lists of the tables whose columns they share, scanning those rows into
// the job model, and the encodings of times (Unix nanoseconds, 0 for none)
// and JSON-valued columns ("" for empty). It knows no driver: rows are
// anything with Scan, as database/sql's and pgx's are.
package rowscan

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// Scanner is a row: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows all are.
type Scanner interface{ Scan(dest ...any) error }

// Nanos encodes t as Unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time decodes [Nanos].
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// JSONSlice encodes v as JSON, or "" for an empty slice.
func JSONSlice[T any](v []T) string {
	if len(v) == 0 {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// JSONMap encodes m as JSON, or "" for an empty map.
func JSONMap(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// unmarshal decodes s into v unless s is "".
func unmarshal(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// TagsMeta decodes the tags and metadata columns into j.
func TagsMeta(j *job.Job, tags, meta string) error {
	if err := unmarshal(tags, &j.Tags); err != nil {
		return err
	}
	return unmarshal(meta, &j.Metadata)
}

// WorkerCols are the columns of the workers table that [Worker] reads.
const WorkerCols = `id, tenant, name, host, types, queues, capacity, labels, lease_ttl_ms, state, created_at, last_seen, last_active_at, drained_at`

// Worker scans a row of [WorkerCols].
func Worker(r Scanner) (*job.Worker, error) {
	var w job.Worker
	var types, queues, labels string
	var ttl, created, seen, active, drained int64
	if err := r.Scan(&w.ID, &w.Tenant, &w.Name, &w.Host, &types, &queues, &w.Capacity, &labels, &ttl, &w.State, &created, &seen, &active, &drained); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s string
		v any
	}{{types, &w.Types}, {queues, &w.Queues}, {labels, &w.Labels}} {
		if err := unmarshal(f.s, f.v); err != nil {
			return nil, err
		}
	}
	w.LeaseTTL = time.Duration(ttl) * time.Millisecond
	w.CreatedAt, w.LastSeen, w.IdleSince, w.DrainedAt = Time(created), Time(seen), Time(active), Time(drained)
	return &w, nil
}

// BatchCols are the columns of the batches table that [Batch] reads.
const BatchCols = `id, tenant, name, created_at, closed, done, finished_at, on_complete, on_complete_job_id`

// Batch scans a row of [BatchCols] (without counts).
func Batch(r Scanner) (*job.Batch, error) {
	var b job.Batch
	var created, finished int64
	var onComplete string
	if err := r.Scan(&b.ID, &b.Tenant, &b.Name, &created, &b.Closed, &b.Done, &finished, &onComplete, &b.OnCompleteJobID); err != nil {
		return nil, err
	}
	b.CreatedAt, b.FinishedAt = Time(created), Time(finished)
	if onComplete != "" {
		b.OnComplete = new(job.Spec)
		if err := json.Unmarshal([]byte(onComplete), b.OnComplete); err != nil {
			return nil, err
		}
	}
	return &b, nil
}

// The attempt history is kept in two parts: the attempts that the job ran
// again after are a JSON array column; the latest attempt lives in the
// row's own columns (attempt, worker, token, start, and — once it ended the
// job — its outcome, error and finish), so the hot path writes no JSON.

// LatestAttempt describes the job's latest attempt from its columns, when
// it is not in the attempts array: while it runs, and after it ended the
// job (outcome set).
func LatestAttempt(j *job.Job, worker, outcome string) (job.Attempt, bool) {
	a := job.Attempt{Attempt: j.Attempt, WorkerID: worker, Token: j.Token, StartedAt: j.StartedAt}
	switch {
	case j.State == gantry.StateRunning:
		return a, true
	case outcome != "":
		a.FinishedAt, a.Outcome, a.Error = j.FinishedAt, outcome, j.Error
		return a, true
	}
	return a, false
}

// EndedAttempt returns how running job j's attempt, ending now with
// outcome and the job going to state, is recorded: as JSON to append to
// the attempts array when the job will run again, or as the row's attempt
// outcome when it ends the job.
func EndedAttempt(j *job.Job, state gantry.State, now time.Time, outcome, errText string) (appendJSON, rowOutcome string) {
	if state.Terminal() {
		return "", outcome
	}
	b, _ := json.Marshal(job.Attempt{Attempt: j.Attempt, WorkerID: j.WorkerID, Token: j.Token,
		StartedAt: j.StartedAt, FinishedAt: now, Outcome: outcome, Error: errText})
	return string(b), ""
}

// Cursor makes the opaque page cursor that resumes a list after id; prefix
// tells lists apart ("j:" jobs, "b:" batches).
func Cursor(prefix, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(prefix + id))
}

// ParseCursor returns the id a cursor made by [Cursor] with prefix resumes
// after ("" for no cursor), or an error wrapping store.ErrInvalidCursor.
func ParseCursor(c, prefix string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), prefix) {
		return "", fmt.Errorf("store: bad cursor: %w", store.ErrInvalidCursor)
	}
	return strings.TrimPrefix(string(b), prefix), nil
}

// PageSize clamps a list's limit: 50 when unset, at most 1000.
func PageSize(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, 1000)
}
