package sqlite

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

type candidate struct {
	rowid     int64
	priority  int
	tenant    string
	singleton string
}

const candidateSQL = `SELECT rowid, priority, tenant, singleton_key FROM jobs
	WHERE state = 'queued' AND tenant = ? AND queue = ?
	AND (?3 = '' OR type IN (SELECT value FROM json_each(?3)))
	ORDER BY priority DESC, rowid LIMIT ?4`

const leaseSQL = `UPDATE jobs SET state = 'running', attempt = attempt + 1, token = ?1, worker_id = ?2,
	lease_expires_at = ?3, lease_ttl_ms = ?4, started_at = ?5, progress_pct = 0, progress_msg = '',
	attempt_worker = ?2, attempt_outcome = ''
	WHERE rowid IN (SELECT value FROM json_each(?6)) AND state = 'queued'
	RETURNING rowid, id, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, attempt, attempt_base, created_at`

// leaseDirectSQL claims and leases the best ?10 queued jobs of tenant ?7
// and queue ?8 (of the types in ?9, a JSON array, unless it is empty) in
// one statement: for a claim in one queue when no job with a singleton key
// can be waiting, so that no candidate needs a check. ?6 is unused (the
// numbering follows leaseSQL's).
const leaseDirectSQL = `UPDATE jobs SET state = 'running', attempt = attempt + 1, token = ?1, worker_id = ?2,
	lease_expires_at = ?3, lease_ttl_ms = ?4, started_at = ?5, progress_pct = 0, progress_msg = '',
	attempt_worker = ?2, attempt_outcome = ''
	WHERE rowid IN (SELECT rowid FROM jobs WHERE state = 'queued' AND tenant = ?7 AND queue = ?8
		AND (?9 = '' OR type IN (SELECT value FROM json_each(?9)))
		ORDER BY priority DESC, rowid LIMIT ?10)
	RETURNING rowid, id, tenant, type, name, queue, priority, params, package, batch_id, run_at,
	max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, attempt, attempt_base, created_at`

// LeaseJobs implements [store.Store]. It reads the best candidates of every
// matching queue through the claim index, merges them by priority and age,
// skips singleton keys already running, and leases the chosen in one UPDATE.
func (s *Store) LeaseJobs(ctx context.Context, p *store.LeaseJobsParams) ([]*job.Job, error) {
	if p.Max <= 0 {
		return nil, nil
	}
	types := ""
	if len(p.Types) > 0 {
		types = marshalJSON(p.Types)
	}
	var out []*job.Job
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil
		if p.WorkerID != "" {
			var state string
			err := tx.w.queryRow(`SELECT state FROM workers WHERE id = ?`, p.WorkerID).Scan(&state)
			if err != nil && !isNoRows(err) {
				return unavailable("lease", err)
			}
			if state == job.WorkerDraining {
				return tx.touchWorker(p.WorkerID, p.Now, false)
			}
		}
		var queues []tenantQueue
		for tq, paused := range tx.w.queues {
			if paused || (p.Tenant != "" && tq.tenant != p.Tenant) || (len(p.Queues) > 0 && !slices.Contains(p.Queues, tq.queue)) {
				continue
			}
			queues = append(queues, tq)
		}
		if len(queues) == 1 && !tx.w.singletons {
			var err error
			out, err = tx.leaseDirect(p, queues[0], types)
			if err != nil || len(out) == 0 {
				return err
			}
			return tx.touchWorker(p.WorkerID, p.Now, true)
		}
		limit := p.Max + 8
		var chosen []candidate
		for {
			var cands []candidate
			more := false
			for _, tq := range queues {
				rows, err := tx.w.query(candidateSQL, tq.tenant, tq.queue, types, limit)
				if err != nil {
					return unavailable("lease", err)
				}
				n := 0
				for rows.Next() {
					var c candidate
					if err := rows.Scan(&c.rowid, &c.priority, &c.tenant, &c.singleton); err != nil {
						rows.Close()
						return unavailable("lease", err)
					}
					cands = append(cands, c)
					n++
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return unavailable("lease", err)
				}
				if n == limit {
					more = true
				}
			}
			slices.SortFunc(cands, func(a, b candidate) int {
				if c := cmp.Compare(b.priority, a.priority); c != 0 {
					return c
				}
				return cmp.Compare(a.rowid, b.rowid)
			})
			chosen = chosen[:0]
			var held map[[2]string]bool
			skipped := false
			for _, c := range cands {
				if len(chosen) == p.Max {
					break
				}
				if c.singleton != "" {
					k := [2]string{c.tenant, c.singleton}
					if held == nil {
						held = map[[2]string]bool{}
					}
					busy, ok := held[k]
					if !ok {
						if err := tx.w.queryRow(`SELECT EXISTS (SELECT 1 FROM jobs WHERE tenant = ? AND singleton_key = ? AND singleton_key <> '' AND state = 'running')`, c.tenant, c.singleton).Scan(&busy); err != nil {
							return unavailable("lease", err)
						}
					}
					if busy {
						skipped = true
						continue
					}
					held[k] = true
				}
				chosen = append(chosen, c)
			}
			if len(chosen) == p.Max || !more || !skipped {
				break
			}
			limit *= 4
		}
		if len(chosen) == 0 {
			return nil
		}
		ids := make([]int64, len(chosen))
		order := make(map[int64]int, len(chosen))
		for i, c := range chosen {
			ids[i] = c.rowid
			order[c.rowid] = i
		}
		token := tx.nextToken()
		exp := p.Now.Add(p.TTL)
		rows, err := tx.w.query(leaseSQL, token, p.WorkerID, t2i(exp), p.TTL.Milliseconds(), t2i(p.Now), marshalJSON(ids))
		if err != nil {
			return unavailable("lease", err)
		}
		out = make([]*job.Job, len(chosen))
		for rows.Next() {
			var rowid int64
			j, err := scanLeased(rows, &rowid)
			if err != nil {
				rows.Close()
				return unavailable("lease", err)
			}
			out[order[rowid]] = j
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("lease", err)
		}
		tx.expectEvents(len(out))
		for _, j := range out {
			if j == nil {
				return fmt.Errorf("sqlite: lease: a chosen job changed under the writer: %w", store.ErrUnavailable)
			}
			tx.started(j, p, token, exp)
		}
		return tx.touchWorker(p.WorkerID, p.Now, true)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// leaseDirect leases up to p.Max jobs of queue tq with leaseDirectSQL, in
// claim order (priority, then age).
func (tx *wtx) leaseDirect(p *store.LeaseJobsParams, tq tenantQueue, types string) ([]*job.Job, error) {
	token := tx.w.token + 1 // taken below if a job is leased
	exp := p.Now.Add(p.TTL)
	rows, err := tx.w.query(leaseDirectSQL, token, p.WorkerID, t2i(exp), p.TTL.Milliseconds(), t2i(p.Now), nil,
		tq.tenant, tq.queue, types, p.Max)
	if err != nil {
		return nil, unavailable("lease", err)
	}
	type leased struct {
		rowid int64
		j     *job.Job
	}
	var ls []leased
	for rows.Next() {
		var l leased
		l.j, err = scanLeased(rows, &l.rowid)
		if err != nil {
			rows.Close()
			return nil, unavailable("lease", err)
		}
		ls = append(ls, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, unavailable("lease", err)
	}
	if len(ls) == 0 {
		return nil, nil
	}
	if tx.nextToken() != token {
		return nil, fmt.Errorf("sqlite: lease: the fencing token moved under the writer: %w", store.ErrUnavailable)
	}
	// RETURNING gives no order; the claim's is priority, then age.
	slices.SortFunc(ls, func(a, b leased) int {
		return cmp.Or(cmp.Compare(b.j.Priority, a.j.Priority), cmp.Compare(a.rowid, b.rowid))
	})
	out := make([]*job.Job, len(ls))
	tx.expectEvents(len(ls))
	for i, l := range ls {
		tx.started(l.j, p, token, exp)
		out[i] = l.j
	}
	return out, nil
}

// started completes a job just leased under token until exp (the columns
// the lease statements do not return) and emits its job.started event.
func (tx *wtx) started(j *job.Job, p *store.LeaseJobsParams, token int64, exp time.Time) {
	j.State, j.WorkerID, j.Token, j.LeaseExpiresAt, j.LeaseTTL, j.StartedAt = gantry.StateRunning, p.WorkerID, token, exp, p.TTL.Truncate(time.Millisecond), p.Now
	j.Attempts = []job.Attempt{{Attempt: j.Attempt, WorkerID: p.WorkerID, Token: token, StartedAt: p.Now}}
	tx.emit(job.EventFor(job.EventStarted, j, p.Now))
}

// prefixed scans one extra leading column before a job's columns.
type prefixed struct {
	r     scanner
	first any
}

func (p prefixed) Scan(dest ...any) error { return p.r.Scan(append([]any{p.first}, dest...)...) }

// touchSlackSQL is how stale (in nanoseconds) a worker's last_seen and
// last_active_at may be before a lease, finish or heartbeat writes them
// again: a tenth of the worker's lease TTL, at most a second, as in the
// PostgreSQL store (lost-worker detection waits at least a lease TTL).
const touchSlackSQL = `min(1000000000, workers.lease_ttl_ms * 100000)`

func (tx *wtx) touchWorker(id string, now time.Time, active bool) error {
	if id == "" {
		return nil
	}
	q := `UPDATE workers SET last_seen = ?1 WHERE id = ?2 AND last_seen < ?1 - ` + touchSlackSQL
	if active {
		q = `UPDATE workers SET last_seen = ?1, last_active_at = ?1 WHERE id = ?2
			AND (last_seen < ?1 - ` + touchSlackSQL + ` OR last_active_at < ?1 - ` + touchSlackSQL + `)`
	}
	if _, err := tx.w.exec(q, t2i(now), id); err != nil {
		return unavailable("touch worker", err)
	}
	return nil
}

const heartbeatSQL = `UPDATE jobs SET lease_expires_at = ?1 + lease_ttl_ms * 1000000,
	progress_pct = CASE WHEN ?2 THEN ?3 ELSE progress_pct END,
	progress_msg = CASE WHEN ?2 THEN ?4 ELSE progress_msg END
	WHERE id = ?5 AND token = ?6 AND state = 'running' AND (?7 = '' OR worker_id = ?7)
	RETURNING ` + jobCols

// HeartbeatJobs implements [store.Store].
func (s *Store) HeartbeatJobs(ctx context.Context, p *store.HeartbeatJobsParams) ([]store.HeartbeatResult, error) {
	var out []store.HeartbeatResult
	err := s.w.do(ctx, func(tx *wtx) error {
		out = make([]store.HeartbeatResult, len(p.Leases))
		for i, l := range p.Leases {
			out[i].JobID = l.JobID
			var pct int
			var msg string
			if l.Progress != nil {
				pct, msg = l.Progress.Percent, l.Progress.Message
			}
			rows, err := tx.w.query(heartbeatSQL, t2i(p.Now), l.Progress != nil, pct, msg, l.JobID, l.Token, p.WorkerID)
			if err != nil {
				return unavailable("heartbeat", err)
			}
			if rows.Next() {
				j, err := scanJob(rows, false)
				if err != nil {
					rows.Close()
					return unavailable("heartbeat", err)
				}
				out[i] = store.HeartbeatResult{JobID: l.JobID, OK: true, ExpiresAt: j.LeaseExpiresAt, CancelRequested: j.CancelRequested, Job: j}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return unavailable("heartbeat", err)
			}
		}
		return tx.touchWorker(p.WorkerID, p.Now, false)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// endAttemptSQL ends the current attempt of a running job, as a
// compare-and-swap on (rowid, token, state). An attempt that ends the job
// stays described by the row's columns (?7 is its outcome); one after which
// the job runs again is appended to the attempts array (?6, JSON).
const endAttemptSQL = `UPDATE jobs SET state = ?1, result = ?2, error = ?3, finished_at = ?4,
	run_at = CASE WHEN ?5 = 0 THEN run_at ELSE ?5 END, worker_id = '', lease_expires_at = 0,
	attempts = CASE WHEN ?6 = '' THEN attempts ELSE json_insert(attempts, '$[#]', json(?6)) END,
	attempt_outcome = ?7, attempt_base = attempt_base + ?8
	WHERE rowid = ?9 AND token = ?10 AND state = 'running'`

// endAttempt moves running job j (read in this transaction, with its rowid)
// to state, recording outcome on its attempt, and emits kind.
func (tx *wtx) endAttempt(rowid int64, j *job.Job, now time.Time, state gantry.State, outcome, kind string, result json.RawMessage, errText string, runAt time.Time, giveBack bool) (bool, error) {
	finished := time.Time{}
	if state.Terminal() {
		finished = now
	}
	base := 0
	if giveBack {
		base = 1
	}
	aj, aOutcome := rowscan.EndedAttempt(j, state, now, outcome, errText)
	res, err := tx.w.exec(endAttemptSQL, string(state), nullBytes(result), errText, t2i(finished), t2i(runAt),
		aj, aOutcome, base, rowid, j.Token)
	if err != nil {
		return false, unavailable("end attempt", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	j.State, j.Result, j.Error, j.FinishedAt, j.WorkerID, j.LeaseExpiresAt = state, result, errText, finished, "", time.Time{}
	j.AttemptBase += base
	if !runAt.IsZero() {
		j.RunAt = runAt
	}
	tx.emit(job.EventFor(kind, j, now))
	if state == gantry.StateQueued || j.SingletonKey != "" {
		tx.jobsAvailable = true // it, or the next job of its singleton key, may run
	}
	if state.Terminal() {
		if err := tx.terminal(j.BatchID, now); err != nil {
			return false, err
		}
	}
	return true, nil
}

// finishSelectSQL reads the running jobs that outcomes name.
const finishSelectSQL = `SELECT rowid, ` + jobCols + ` FROM jobs
	WHERE id IN (SELECT value FROM json_each(?)) AND state = 'running'`

// finishUpdateSQL ends many attempts in one statement, each as a
// compare-and-swap on (rowid, token, state). Each element of the JSON array
// is [rowid, token, state, result, error, finished_at, run_at, attempt
// outcome, ended attempt JSON] (see endAttemptSQL).
const finishUpdateSQL = `UPDATE jobs SET state = u.state, result = u.result, error = u.error,
	finished_at = u.finished_at, run_at = CASE WHEN u.run_at = 0 THEN jobs.run_at ELSE u.run_at END,
	worker_id = '', lease_expires_at = 0, attempt_outcome = u.outcome,
	attempts = CASE WHEN u.aj = '' THEN jobs.attempts ELSE json_insert(jobs.attempts, '$[#]', json(u.aj)) END
	FROM (SELECT value->>0 AS rid, value->>1 AS token, value->>2 AS state, nullif(value->>3, '') AS result,
		value->>4 AS error, value->>5 AS finished_at, value->>6 AS run_at, value->>7 AS outcome, value->>8 AS aj
		FROM json_each(?)) AS u
	WHERE jobs.rowid = u.rid AND jobs.token = u.token AND jobs.state = 'running'`

// finishDirectSQL ends attempts whose outcome decides the state alone
// (succeeded, canceled) in one statement, as compare-and-swaps on (id,
// token, state), and returns what their events need. Each element of the
// JSON array is [id, token, state, result, error].
const finishDirectSQL = `UPDATE jobs SET
	state = CASE WHEN jobs.cancel_requested THEN 'canceled' ELSE u.state END,
	attempt_outcome = CASE WHEN jobs.cancel_requested THEN 'canceled' ELSE u.state END,
	result = u.result, error = u.error, finished_at = ?2, worker_id = '', lease_expires_at = 0
	FROM (SELECT value->>0 AS id, value->>1 AS token, value->>2 AS state, nullif(value->>3, '') AS result,
		value->>4 AS error FROM json_each(?1)) AS u
	WHERE jobs.id = u.id AND jobs.token = u.token AND jobs.state = 'running' AND (?3 = '' OR jobs.worker_id = ?3)
	RETURNING jobs.id, jobs.tenant, jobs.type, jobs.queue, jobs.batch_id, jobs.attempt, jobs.attempt_worker, jobs.state, jobs.singleton_key`

// FinishJobs implements [store.Store]. Succeeded and canceled outcomes are
// applied in one statement; failed ones, whose fate depends on the job's
// attempts, are read in one statement, decided, and applied in another.
func (s *Store) FinishJobs(ctx context.Context, p *store.FinishJobsParams) ([]store.FinishResult, error) {
	var direct []any
	var failedIDs []string
	first := make(map[string]int, len(p.Outcomes)) // job id -> index of its first outcome
	for i, o := range p.Outcomes {
		if _, dup := first[o.JobID]; dup {
			continue // a second outcome for one job is stale
		}
		first[o.JobID] = i
		switch o.Outcome {
		case job.OutcomeSucceeded, job.OutcomeCanceled:
			direct = append(direct, []any{o.JobID, o.Token, o.Outcome, string(o.Result), o.Error})
		case job.OutcomeFailed:
			failedIDs = append(failedIDs, o.JobID)
		default:
			return nil, fmt.Errorf("sqlite: finish job %s: unknown outcome %q: %w", o.JobID, o.Outcome, store.ErrConflict)
		}
	}
	var directJSON, idsJSON string
	if len(direct) > 0 {
		directJSON = marshalJSON(direct)
	}
	if len(failedIDs) > 0 {
		idsJSON = marshalJSON(failedIDs)
	}
	var out []store.FinishResult
	err := s.w.do(ctx, func(tx *wtx) error {
		out = make([]store.FinishResult, len(p.Outcomes))
		for i, o := range p.Outcomes {
			out[i].JobID = o.JobID
		}
		if directJSON != "" {
			if err := tx.finishDirect(p, directJSON, first, out); err != nil {
				return err
			}
		}
		if idsJSON == "" {
			return nil
		}
		rows, err := tx.w.query(finishSelectSQL, idsJSON)
		if err != nil {
			return unavailable("finish", err)
		}
		type running struct {
			rowid int64
			j     *job.Job
		}
		byID := make(map[string]running, len(p.Outcomes))
		for rows.Next() {
			var r running
			if r.j, err = scanJob(prefixed{rows, &r.rowid}, false); err != nil {
				rows.Close()
				return unavailable("finish", err)
			}
			byID[r.j.ID] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("finish", err)
		}
		updates := make([]any, 0, len(byID))
		workers := map[string]bool{}
		var batches []string
		for i, o := range p.Outcomes {
			if o.Outcome != job.OutcomeFailed || first[o.JobID] != i {
				continue
			}
			r, ok := byID[o.JobID]
			if !ok || r.j.Token != o.Token || (p.WorkerID != "" && r.j.WorkerID != p.WorkerID) {
				continue
			}
			delete(byID, o.JobID) // a second outcome for the job is stale
			j := r.j
			var (
				state gantry.State
				kind  string
				runAt time.Time
			)
			switch o.Outcome {
			case job.OutcomeSucceeded:
				state, kind, j.Result = gantry.StateSucceeded, job.EventSucceeded, o.Result
			case job.OutcomeCanceled:
				state, kind = gantry.StateCanceled, job.EventCanceled
			case job.OutcomeFailed:
				state, kind, runAt = store.FailedTransition(j, &o, p.Now, p.Backoff)
			default:
				return fmt.Errorf("sqlite: finish job %s: unknown outcome %q: %w", o.JobID, o.Outcome, store.ErrConflict)
			}
			finished := time.Time{}
			if state.Terminal() {
				finished = p.Now
				if j.BatchID != "" && !slices.Contains(batches, j.BatchID) {
					batches = append(batches, j.BatchID)
				}
			}
			if j.SingletonKey != "" {
				tx.jobsAvailable = true // the next job of its key may run
			}
			aj, aOutcome := rowscan.EndedAttempt(j, state, p.Now, o.Outcome, o.Error)
			updates = append(updates, []any{r.rowid, j.Token, state, string(j.Result), o.Error, t2i(finished), t2i(runAt), aOutcome, aj})
			workers[j.WorkerID] = true
			j.State, j.Error, j.FinishedAt, j.WorkerID, j.LeaseExpiresAt = state, o.Error, finished, "", time.Time{}
			if !runAt.IsZero() {
				j.RunAt = runAt
			}
			tx.emit(job.EventFor(kind, j, p.Now))
			out[i] = store.FinishResult{JobID: o.JobID, OK: true, Job: j}
		}
		if len(updates) == 0 {
			return nil
		}
		res, err := tx.w.exec(finishUpdateSQL, marshalJSON(updates))
		if err != nil {
			return unavailable("finish", err)
		}
		if n, _ := res.RowsAffected(); int(n) != len(updates) {
			return fmt.Errorf("sqlite: finish: updated %d of %d jobs: %w", n, len(updates), store.ErrUnavailable)
		}
		for _, b := range batches {
			if err := tx.terminal(b, p.Now); err != nil {
				return err
			}
		}
		for id := range workers {
			if err := tx.touchWorker(id, p.Now, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// finishDirect applies succeeded and canceled outcomes (see finishDirectSQL).
func (tx *wtx) finishDirect(p *store.FinishJobsParams, directJSON string, first map[string]int, out []store.FinishResult) error {
	tx.expectEvents(len(first))
	rows, err := tx.w.query(finishDirectSQL, directJSON, t2i(p.Now), p.WorkerID)
	if err != nil {
		return unavailable("finish", err)
	}
	var workers, batches []string
	for rows.Next() {
		var j job.Job
		var worker string
		var state string
		if err := rows.Scan(&j.ID, &j.Tenant, &j.Type, &j.Queue, &j.BatchID, &j.Attempt, &worker, &state, &j.SingletonKey); err != nil {
			rows.Close()
			return unavailable("finish", err)
		}
		if j.SingletonKey != "" {
			tx.jobsAvailable = true // the next job of its key may run
		}
		i := first[j.ID]
		o := &p.Outcomes[i]
		j.State, j.Error, j.FinishedAt, j.Token, j.Result = gantry.State(state), o.Error, p.Now, o.Token, o.Result
		kind := job.EventSucceeded
		if j.State == gantry.StateCanceled {
			kind = job.EventCanceled
		}
		tx.emit(job.EventFor(kind, &j, p.Now))
		out[i] = store.FinishResult{JobID: j.ID, OK: true, Job: &j}
		if j.BatchID != "" && !slices.Contains(batches, j.BatchID) {
			batches = append(batches, j.BatchID)
		}
		if !slices.Contains(workers, worker) {
			workers = append(workers, worker)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return unavailable("finish", err)
	}
	for _, b := range batches {
		if err := tx.terminal(b, p.Now); err != nil {
			return err
		}
	}
	for _, w := range workers {
		if err := tx.touchWorker(w, p.Now, true); err != nil {
			return err
		}
	}
	return nil
}

// runningWhere selects running jobs with their rowids.
func (tx *wtx) runningJobs(where string, args ...any) ([]int64, []*job.Job, error) {
	rows, err := tx.w.query(`SELECT rowid, `+jobCols+` FROM jobs WHERE state = 'running' AND `+where, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var ids []int64
	var jobs []*job.Job
	for rows.Next() {
		var rowid int64
		j, err := scanJob(prefixed{rows, &rowid}, false)
		if err != nil {
			return nil, nil, err
		}
		ids, jobs = append(ids, rowid), append(jobs, j)
	}
	return ids, jobs, rows.Err()
}

// RescueExpired implements [store.Store].
func (s *Store) RescueExpired(ctx context.Context, p *store.RescueParams) ([]*job.Job, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = 1000
	}
	up := p.Now.Sub(p.UpSince)
	var out []*job.Job
	err := s.w.do(ctx, func(tx *wtx) error {
		out = nil
		ids, jobs, err := tx.runningJobs(`lease_expires_at <= ? AND lease_ttl_ms <= ? ORDER BY lease_expires_at LIMIT ?`, t2i(p.Now), up.Milliseconds(), limit)
		if err != nil {
			return unavailable("rescue", err)
		}
		for i, j := range jobs {
			state, kind, errText := store.ExpiredTransition(j)
			ok, err := tx.endAttempt(ids[i], j, p.Now, state, job.OutcomeExpired, kind, nil, errText, time.Time{}, false)
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
	err := s.w.do(ctx, func(tx *wtx) error {
		n, next = 0, time.Time{}
		rows, err := tx.w.query(`UPDATE jobs SET state = 'queued' WHERE rowid IN (
			SELECT rowid FROM jobs WHERE state IN ('scheduled', 'retrying') AND run_at <= ? ORDER BY run_at LIMIT ?)
			RETURNING `+jobCols, t2i(now), limit)
		if err != nil {
			return unavailable("promote", err)
		}
		for rows.Next() {
			j, err := scanJob(rows, false)
			if err != nil {
				rows.Close()
				return unavailable("promote", err)
			}
			tx.emit(job.EventFor(job.EventQueued, j, now))
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return unavailable("promote", err)
		}
		if n > 0 {
			tx.jobsAvailable = true
		}
		var due int64
		err = tx.w.queryRow(`SELECT run_at FROM jobs WHERE state IN ('scheduled', 'retrying') ORDER BY run_at LIMIT 1`).Scan(&due)
		if err != nil && !isNoRows(err) {
			return unavailable("promote", err)
		}
		next = i2t(due)
		return nil
	})
	return n, next, err
}

// scanLeased reads the columns leaseSQL returns; the lease's own fields
// (state, worker, token, times) are known to the caller and set by it.
func scanLeased(r scanner, rowid *int64) (*job.Job, error) {
	var (
		j                       job.Job
		params                  []byte
		runAt, timeout, created int64
		tags, meta              string
	)
	if err := r.Scan(rowid, &j.ID, &j.Tenant, &j.Type, &j.Name, &j.Queue, &j.Priority, &params, &j.Package,
		&j.BatchID, &runAt, &j.MaxAttempts, &timeout, &j.UniqueKey, &j.SingletonKey, &tags, &meta,
		&j.Attempt, &j.AttemptBase, &created); err != nil {
		return nil, err
	}
	if len(params) > 0 {
		j.Params = params
	}
	j.RunAt, j.CreatedAt = i2t(runAt), i2t(created)
	j.Timeout = time.Duration(timeout) * time.Millisecond
	if err := rowscan.TagsMeta(&j, tags, meta); err != nil {
		return nil, err
	}
	return &j, nil
}
