package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// finishSelectSQL reads and locks the running jobs that failed outcomes name.
const finishSelectSQL = `SELECT ` + jobCols + ` FROM jobs WHERE id = ANY($1::uuid[]) AND state = 'running' ORDER BY jobs.id FOR UPDATE`

// finishUpdateSQL ends many failed attempts in one statement, each as a
// compare-and-swap on (id, token, state) (see endAttemptSQL).
const finishUpdateSQL = `UPDATE jobs SET state = u.state, result = NULL, error = u.error,
	finished_at = u.finished_at, run_at = CASE WHEN u.run_at = 0 THEN jobs.run_at ELSE u.run_at END,
	worker_id = '', lease_expires_at = 0, attempt_outcome = u.outcome,
	attempts = CASE WHEN u.aj = '' THEN jobs.attempts ELSE jobs.attempts || jsonb_build_array(u.aj::jsonb) END
	FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])
		AS u(id, token, state, error, finished_at, run_at, outcome, aj)
	WHERE jobs.id = u.id AND jobs.token = u.token AND jobs.state = 'running'`

// FinishJobs implements [store.Store]. Succeeded and canceled outcomes are
// applied in one statement; failed ones, whose fate depends on the job's
// attempts, are read (and locked) in one statement, decided, and applied
// in another.
func (s *Store) FinishJobs(ctx context.Context, p *store.FinishJobsParams) ([]store.FinishResult, error) {
	var (
		dIDs, dStates, dErrors []string
		dTokens                []int64
		dResults               [][]byte
		failedIDs              []string
	)
	first := make(map[string]int, len(p.Outcomes)) // job id -> index of its first outcome
	for i, o := range p.Outcomes {
		if _, dup := first[o.JobID]; dup {
			continue // a second outcome for one job is stale
		}
		first[o.JobID] = i
		if !job.ValidID(o.JobID) {
			continue // no such job: not OK
		}
		switch o.Outcome {
		case job.OutcomeSucceeded, job.OutcomeCanceled:
			dIDs, dTokens, dStates = append(dIDs, o.JobID), append(dTokens, o.Token), append(dStates, o.Outcome)
			dResults, dErrors = append(dResults, nullBytes(o.Result)), append(dErrors, o.Error)
		case job.OutcomeFailed:
			failedIDs = append(failedIDs, o.JobID)
		default:
			return nil, fmt.Errorf("postgres: finish job %s: unknown outcome %q: %w", o.JobID, o.Outcome, store.ErrConflict)
		}
	}
	var (
		out     []store.FinishResult
		batches []string // of the jobs that ended
		later   []string // batches to settle after the commit
	)
	err := s.write(ctx, "finish", func(t *ptx) error {
		if err := t.preferIndexes(); err != nil {
			return err
		}
		out = make([]store.FinishResult, len(p.Outcomes))
		for i, o := range p.Outcomes {
			out[i].JobID = o.JobID
		}
		var workers []string
		batches = nil
		known := map[string]batchState{} // what the move statement saw
		if len(dIDs) > 0 {
			rows, err := t.query(finishMoveSQL, t2i(p.Now), uuidArgs(dIDs), dTokens, dStates, dResults, dErrors, p.WorkerID)
			if err != nil {
				return err
			}
			type ended struct {
				j      *job.Job
				worker string
				state  string
			}
			var done []ended
			for rows.Next() {
				var (
					e                ended
					waiting, running bool
				)
				e.j = new(job.Job)
				if err := rows.Scan(&e.j.ID, &e.j.Tenant, &e.j.Type, &e.j.Queue, &e.j.BatchID, &e.j.Attempt, &e.worker, &e.state, &e.j.SingletonKey,
					&waiting, &running); err != nil {
					rows.Close()
					return err
				}
				if e.j.BatchID != "" {
					known[e.j.BatchID] = batchState{waiting: waiting, running: running}
				}
				if e.j.SingletonKey != "" {
					t.jobsAvailable = true // the next job of its key may run
				}
				done = append(done, e)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			// RETURNING gives no order; events follow the outcomes' order.
			slices.SortFunc(done, func(a, b ended) int { return first[a.j.ID] - first[b.j.ID] })
			t.expectEvents(len(done))
			for _, e := range done {
				j, worker := e.j, e.worker
				i := first[j.ID]
				o := &p.Outcomes[i]
				j.State, j.Error, j.FinishedAt, j.Token, j.Result = gantry.State(e.state), o.Error, p.Now, o.Token, o.Result
				kind := job.EventSucceeded
				if j.State == gantry.StateCanceled {
					kind = job.EventCanceled
				}
				t.emit(job.EventFor(kind, j, p.Now))
				out[i] = store.FinishResult{JobID: j.ID, OK: true, Job: j}
				if j.BatchID != "" && !slices.Contains(batches, j.BatchID) {
					batches = append(batches, j.BatchID)
				}
				workers = append(workers, worker)
			}
		}
		if len(failedIDs) > 0 {
			// What the move statement saw of a batch stays safe to act on
			// after failures of its jobs: they were running then (so at
			// worst the batch is checked again after the commit).
			if err := t.finishFailed(p, failedIDs, first, out, &workers, &batches); err != nil {
				return err
			}
		}
		if err := t.moveDone(endedByFailure(p.Outcomes, out)); err != nil {
			return err
		}
		later = later[:0]
		for _, b := range batches {
			st, ok := known[b]
			if !ok {
				var err error
				if st, err = t.batchState(b); err != nil {
					return err
				}
			}
			settleLater, err := t.settleIfLast(b, st, p.Now)
			if err != nil {
				return err
			}
			if settleLater {
				later = append(later, b)
			}
		}
		return t.touchWorkers(workers, p.Now, true)
	})
	if err != nil {
		return nil, err
	}
	// Of two transactions ending a batch's last jobs at once, neither may
	// have seen the other's committed: the one settling after both commits
	// sees them.
	if len(later) > 0 {
		if _, err := s.settleBatches(ctx, later, p.Now, len(later)); err != nil {
			s.log.Warn("postgres: settle batches after finishing their jobs; the maintenance sweep will", "err", err)
		}
	}
	return out, nil
}

// settleIfLast settles a batch whose jobs this transaction ended, without
// locking the batch row unless they were its last: finishers of a batch's
// jobs would otherwise all queue on that lock, commits included. When its
// only unfinished jobs are running, another transaction may be ending them
// right now without seeing this one's: settleLater asks for a check after
// the commit.
func (t *ptx) settleIfLast(batchID string, st batchState, now time.Time) (settleLater bool, err error) {
	switch {
	case st.waiting:
		return false, nil // their own ends will settle it
	case st.running:
		return true, nil
	}
	_, err = t.settle(batchID, now) // locks the batch and looks again
	return false, err
}

// batchState is what settleIfLast needs to know of a batch: whether it has
// jobs waiting (scheduled, queued, retrying), and jobs running.
type batchState struct{ waiting, running bool }

// batchState reads a batch's state, without locks.
func (t *ptx) batchState(batchID string) (batchState, error) {
	var st batchState
	err := t.queryRow(`SELECT
		EXISTS (SELECT 1 FROM jobs WHERE batch_id = $1 AND batch_id <> '' AND state IN ('scheduled', 'queued', 'retrying')),
		EXISTS (SELECT 1 FROM jobs WHERE batch_id = $1 AND batch_id <> '' AND state = 'running')`, batchID).Scan(&st.waiting, &st.running)
	return st, err
}

// finishFailed applies failed outcomes: retrying, canceled or failed.
func (t *ptx) finishFailed(p *store.FinishJobsParams, ids []string, first map[string]int, out []store.FinishResult, workers, batches *[]string) error {
	rows, err := t.query(finishSelectSQL, uuidArgs(ids))
	if err != nil {
		return err
	}
	byID := make(map[string]*job.Job, len(ids))
	for rows.Next() {
		j, err := scanJob(rows, false)
		if err != nil {
			rows.Close()
			return err
		}
		byID[j.ID] = j
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var (
		uIDs, uStates, uErrors, uOutcomes, uAJ []string
		uTokens, uFinished, uRunAt             []int64
	)
	for i, o := range p.Outcomes {
		if o.Outcome != job.OutcomeFailed || first[o.JobID] != i {
			continue
		}
		j, ok := byID[o.JobID]
		if !ok || j.Token != o.Token || (p.WorkerID != "" && j.WorkerID != p.WorkerID) {
			continue
		}
		state, kind, runAt := store.FailedTransition(j, &o, p.Now, p.Backoff)
		if j.SingletonKey != "" {
			t.jobsAvailable = true // the next job of its key may run
		}
		finished := time.Time{}
		if state.Terminal() {
			finished = p.Now
			if j.BatchID != "" && !slices.Contains(*batches, j.BatchID) {
				*batches = append(*batches, j.BatchID)
			}
		}
		aj, aOutcome := rowscan.EndedAttempt(j, state, p.Now, o.Outcome, o.Error)
		uIDs, uTokens, uStates, uErrors = append(uIDs, j.ID), append(uTokens, j.Token), append(uStates, string(state)), append(uErrors, o.Error)
		uFinished, uRunAt, uOutcomes, uAJ = append(uFinished, t2i(finished)), append(uRunAt, t2i(runAt)), append(uOutcomes, aOutcome), append(uAJ, aj)
		*workers = append(*workers, j.WorkerID)
		j.State, j.Result, j.Error, j.FinishedAt, j.WorkerID, j.LeaseExpiresAt = state, nil, o.Error, finished, "", time.Time{}
		if !runAt.IsZero() {
			j.RunAt = runAt
		}
		t.emit(job.EventFor(kind, j, p.Now))
		out[i] = store.FinishResult{JobID: o.JobID, OK: true, Job: j}
	}
	if len(uIDs) == 0 {
		return nil
	}
	tag, err := t.exec(finishUpdateSQL, uuidArgs(uIDs), uTokens, uStates, uErrors, uFinished, uRunAt, uOutcomes, uAJ)
	if err != nil {
		return err
	}
	if n := tag.RowsAffected(); int(n) != len(uIDs) {
		return fmt.Errorf("postgres: finish: updated %d of %d jobs: %w", n, len(uIDs), store.ErrUnavailable)
	}
	return nil
}

// runningJobs reads and locks running jobs matching where (which may use
// $1.. for args), skipping rows other transactions hold.
func (t *ptx) runningJobs(where string, args ...any) ([]*job.Job, error) {
	rows, err := t.query(`SELECT `+jobCols+` FROM jobs WHERE lease_expires_at > 0 AND state = 'running' AND `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*job.Job
	for rows.Next() {
		j, err := scanJob(rows, false)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// RescueExpired implements [store.Store].
func (s *Store) RescueExpired(ctx context.Context, p *store.RescueParams) ([]*job.Job, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	up := p.Now.Sub(p.UpSince)
	var out []*job.Job
	err := s.write(ctx, "rescue", func(t *ptx) error {
		out = nil
		jobs, err := t.runningJobs(`lease_expires_at <= $1 AND lease_ttl_ms <= $2 ORDER BY lease_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED`,
			t2i(p.Now), up.Milliseconds(), limit)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			state, kind, errText := store.ExpiredTransition(j)
			ok, err := t.endAttempt(j, p.Now, state, job.OutcomeExpired, kind, errText, false)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PromoteDue implements [store.Store].
func (s *Store) PromoteDue(ctx context.Context, now time.Time, limit int) (int, time.Time, error) {
	if limit <= 0 {
		limit = 1000
	}
	var n int
	var next time.Time
	err := s.write(ctx, "promote", func(t *ptx) error {
		n, next = 0, time.Time{}
		rows, err := t.query(`UPDATE jobs SET state = 'queued' WHERE id IN (
			SELECT id FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= $1 ORDER BY run_at LIMIT $2
			FOR UPDATE SKIP LOCKED) AND state IN ('scheduled', 'retrying')
			RETURNING `+jobCols, t2i(now), limit)
		if err != nil {
			return err
		}
		var promoted []*job.Job
		for rows.Next() {
			j, err := scanJob(rows, false)
			if err != nil {
				rows.Close()
				return err
			}
			promoted = append(promoted, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// RETURNING gives no order; events follow the due order.
		slices.SortStableFunc(promoted, func(a, b *job.Job) int { return a.RunAt.Compare(b.RunAt) })
		for _, j := range promoted {
			t.emit(job.EventFor(job.EventQueued, j, now))
		}
		n = len(promoted)
		if n > 0 {
			t.jobsAvailable = true
		}
		var due int64
		err = t.queryRow(`SELECT run_at FROM jobs WHERE state IN ('scheduled', 'retrying') ORDER BY run_at LIMIT 1`).Scan(&due)
		if err != nil && !isNoRows(err) {
			return err
		}
		next = i2t(due)
		return nil
	})
	return n, next, err
}
