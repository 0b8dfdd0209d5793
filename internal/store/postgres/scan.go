package postgres

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// jobCols are the columns scanJob reads, in order.
const jobCols = `id::text, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, state, attempt,
	attempt_base, progress_pct, progress_msg, result, error, cancel_requested, created_at,
	started_at, finished_at, worker_id, token, lease_expires_at, lease_ttl_ms, attempt_worker, attempt_outcome`

// uuidArgs gives job ids as the 16 bytes of uuid parameters, which pgx
// sends in binary. Strings bound to a uuid[] parameter first fail pgx's
// binary plan, which formats an error quoting the whole list, and then go
// as text that PostgreSQL parses again: under load a tenth of the store's
// parameter encoding and some of the server's CPU. Callers pass ids that
// job.ValidID accepted; anything else becomes the nil UUID, which no job
// has.
func uuidArgs(ids []string) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			out[i] = u
		}
	}
	return out
}

// jobColsWithAttempts adds the attempt history.
const jobColsWithAttempts = jobCols + `, attempts::text`

// qualified prefixes every column of jobCols with "jobs." for statements
// that join another relation.
const jobColsQualified = `jobs.id::text, jobs.tenant, jobs.type, jobs.name, jobs.queue, jobs.priority, jobs.params,
	jobs.package, jobs.batch_id, jobs.run_at, jobs.max_attempts, jobs.timeout_ms, jobs.unique_key,
	jobs.singleton_key, jobs.tags, jobs.metadata, jobs.state, jobs.attempt, jobs.attempt_base,
	jobs.progress_pct, jobs.progress_msg, jobs.result, jobs.error, jobs.cancel_requested, jobs.created_at,
	jobs.started_at, jobs.finished_at, jobs.worker_id, jobs.token, jobs.lease_expires_at, jobs.lease_ttl_ms,
	jobs.attempt_worker, jobs.attempt_outcome`

type scanner interface{ Scan(dest ...any) error }

func scanJob(r scanner, withAttempts bool) (*job.Job, error) {
	var (
		j                                                    job.Job
		params, result                                       []byte
		priority                                             int16
		runAt, timeout, created, started, finished, exp, ttl int64
		tags, meta, state, attempts, aWorker, aOutcome       string
	)
	dest := []any{&j.ID, &j.Tenant, &j.Type, &j.Name, &j.Queue, &priority, &params, &j.Package,
		&j.BatchID, &runAt, &j.MaxAttempts, &timeout, &j.UniqueKey, &j.SingletonKey, &tags, &meta,
		&state, &j.Attempt, &j.AttemptBase, &j.Progress.Percent, &j.Progress.Message, &result,
		&j.Error, &j.CancelRequested, &created, &started, &finished, &j.WorkerID, &j.Token, &exp, &ttl,
		&aWorker, &aOutcome}
	if withAttempts {
		dest = append(dest, &attempts)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	j.Priority = int(priority)
	if len(params) > 0 {
		j.Params = json.RawMessage(params)
	}
	if len(result) > 0 {
		j.Result = json.RawMessage(result)
	}
	j.RunAt, j.CreatedAt, j.StartedAt, j.FinishedAt, j.LeaseExpiresAt = i2t(runAt), i2t(created), i2t(started), i2t(finished), i2t(exp)
	j.Timeout = time.Duration(timeout) * time.Millisecond
	j.LeaseTTL = time.Duration(ttl) * time.Millisecond
	j.State = gantry.State(state)
	if tags != "" {
		if err := json.Unmarshal([]byte(tags), &j.Tags); err != nil {
			return nil, err
		}
	}
	if meta != "" {
		if err := json.Unmarshal([]byte(meta), &j.Metadata); err != nil {
			return nil, err
		}
	}
	if withAttempts {
		if attempts != "" && attempts != "[]" {
			if err := json.Unmarshal([]byte(attempts), &j.Attempts); err != nil {
				return nil, err
			}
		}
		if a, ok := rowscan.LatestAttempt(&j, aWorker, aOutcome); ok {
			j.Attempts = append(j.Attempts, a)
		}
	}
	return &j, nil
}

// jsonOrEmpty encodes v, or "" for an empty slice.

// jsonMapOrEmpty encodes m, or "" for an empty map.

// nullBytes returns b, or nil (NULL) when it is empty.
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func marshalJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
