package sqlite

import (
	"encoding/json"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// jobCols are the columns scanJob reads, in order.
const jobCols = `id, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, state, attempt,
	attempt_base, progress_pct, progress_msg, result, error, cancel_requested, created_at,
	started_at, finished_at, worker_id, token, lease_expires_at, lease_ttl_ms, attempt_worker, attempt_outcome`

// jobColsWithAttempts adds the attempt history.
const jobColsWithAttempts = jobCols + `, attempts`

type scanner interface{ Scan(dest ...any) error }

func scanJob(r scanner, withAttempts bool) (*job.Job, error) {
	var (
		j                                                    job.Job
		params, result                                       []byte
		runAt, timeout, created, started, finished, exp, ttl int64
		tags, meta, state, attempts, aWorker, aOutcome       string
	)
	dest := []any{&j.ID, &j.Tenant, &j.Type, &j.Name, &j.Queue, &j.Priority, &params, &j.Package,
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
	if err := rowscan.TagsMeta(&j, tags, meta); err != nil {
		return nil, err
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

// jsonOrEmpty encodes v, or "" for an empty slice or map.

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}
