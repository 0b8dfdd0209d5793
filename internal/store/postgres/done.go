package postgres

import (
	"fmt"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// Finished jobs live in jobs_done (migration 003): every transaction that
// ends jobs moves them there before it commits, so the hot jobs table holds
// only scheduled, queued, running and retrying rows. Reads of a job by id,
// lists, batch counts and retention look at both tables; the claim,
// promotion, rescue, unique keys and batch completion (which only care
// about unfinished jobs) read jobs alone.

// terminalStates are the states of the rows of jobs_done.
const terminalStates = `('succeeded', 'failed', 'canceled')`

// moveDoneSQL moves the named jobs that are finished from jobs to
// jobs_done (the tables have the same columns in the same order).
const moveDoneSQL = `WITH moved AS (DELETE FROM jobs WHERE id = ANY($1::uuid[]) AND state IN ` + terminalStates + ` RETURNING *)
	INSERT INTO jobs_done SELECT * FROM moved`

// reviveSQL moves a finished job back from jobs_done to jobs.
const reviveSQL = `WITH moved AS (DELETE FROM jobs_done WHERE id = $1 RETURNING *)
	INSERT INTO jobs SELECT * FROM moved`

// moveDone moves the jobs ids, ended in this transaction, to jobs_done.
func (t *ptx) moveDone(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := t.exec(moveDoneSQL, uuidArgs(ids))
	return err
}

// getJobAnywhere reads and locks a job of either table; done reports
// that it is in jobs_done. A job that moves between the tables while it is
// looked for is looked for again in the other.
func (t *ptx) getJobAnywhere(tenant, id string) (j *job.Job, done bool, err error) {
	if !job.ValidID(id) {
		return nil, false, fmt.Errorf("postgres: job %s: %w", id, store.ErrNotFound)
	}
	for _, table := range []string{"jobs", "jobs_done", "jobs"} {
		j, err = scanJob(t.queryRow(`SELECT `+jobColsWithAttempts+` FROM `+table+` WHERE id = $1 AND ($2 = '' OR tenant = $2) FOR UPDATE`, id, tenant), true)
		if err == nil {
			return j, table == "jobs_done", nil
		}
		if !isNoRows(err) {
			return nil, false, err
		}
	}
	return nil, false, fmt.Errorf("postgres: job %s: %w", id, store.ErrNotFound)
}

// The transactions that apply many outcomes or renewals by job id (here,
// finishUpdateSQL, heartbeatSQL) run without sequential scans (see
// preferIndexes): with the statistics of a queue table, the planner may
// otherwise scan the table, or the jobs_lease index with every dead entry
// that finished and renewed jobs left there until vacuum, instead of
// looking the ids up.

// finishMoveSQL ends attempts whose outcome decides the state alone
// (succeeded, canceled) and moves their jobs to jobs_done in one
// statement: each a compare-and-swap on (id, token, state) that deletes
// the running row and inserts its finished version, so the hot table
// gets one dead tuple per job, not two. It returns what their events need
// and, for jobs of a batch, what settling the batch needs to know (see
// batchState), which saves the transaction a round trip.
const finishMoveSQL = `WITH moved AS (
	DELETE FROM jobs USING unnest($2::uuid[], $3::bigint[], $4::text[], $5::bytea[], $6::text[]) AS u(id, token, state, result, error)
	WHERE jobs.id = u.id AND jobs.token = u.token AND jobs.state = 'running' AND ($7 = '' OR jobs.worker_id = $7)
	RETURNING jobs.*, CASE WHEN jobs.cancel_requested THEN 'canceled' ELSE u.state END AS end_state,
		u.result AS end_result, u.error AS end_error),
ins AS (INSERT INTO jobs_done (id, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, state, attempt,
	attempt_base, progress_pct, progress_msg, result, error, cancel_requested, created_at,
	started_at, finished_at, worker_id, token, lease_expires_at, lease_ttl_ms, attempt_worker, attempt_outcome, attempts)
	SELECT id, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, end_state, attempt,
	attempt_base, progress_pct, progress_msg, end_result, end_error, cancel_requested, created_at,
	started_at, $1::bigint, '', token, 0, lease_ttl_ms, attempt_worker, end_state, attempts FROM moved),
-- The batches of the moved jobs: whether they still have jobs waiting, or
-- running other than these (this statement's snapshot still shows these
-- as running), as settleIfLast would ask.
bs AS MATERIALIZED (SELECT b.batch_id,
		EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.batch_id AND jobs.batch_id <> '' AND state IN ('scheduled', 'queued', 'retrying')) AS waiting,
		EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.batch_id AND jobs.batch_id <> '' AND state = 'running' AND jobs.id <> ALL($2::uuid[])) AS running
	FROM (SELECT DISTINCT batch_id FROM moved WHERE batch_id <> '') AS b)
SELECT m.id::text, m.tenant, m.type, m.queue, m.batch_id, m.attempt, m.attempt_worker, m.end_state, m.singleton_key,
	coalesce(bs.waiting, false), coalesce(bs.running, false)
FROM moved AS m LEFT JOIN bs ON bs.batch_id = m.batch_id`

// endedByFailure returns the ids of the jobs that failed outcomes ended (the
// others, ended by finishMoveSQL, are already in jobs_done).
func endedByFailure(outcomes []store.Outcome, results []store.FinishResult) []string {
	var ids []string
	for i, r := range results {
		if r.OK && r.Job != nil && r.Job.State.Terminal() && outcomes[i].Outcome == job.OutcomeFailed {
			ids = append(ids, r.JobID)
		}
	}
	return ids
}
