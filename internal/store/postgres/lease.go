package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

type candidate struct {
	id        string
	priority  int16
	tenant    string
	singleton string
}

// candidateSQL reads the best queued jobs of one tenant and queue through
// the claim index, skipping (and locking) rows other claims hold.
const candidateSQL = `SELECT id::text, priority, tenant, singleton_key FROM jobs
	WHERE state = 'queued' AND tenant = $1 AND queue = $2
	AND (cardinality($3::text[]) = 0 OR type = ANY($3::text[]))
	ORDER BY priority DESC, jobs.id LIMIT $4 FOR UPDATE SKIP LOCKED`

// leaseSQL leases the jobs $5 under one new fencing token (the
// uncorrelated subquery runs once per statement).
const leaseSQL = `UPDATE jobs SET state = 'running', attempt = attempt + 1, token = (SELECT nextval('lease_token')),
	worker_id = $1, lease_expires_at = $2, lease_ttl_ms = $3, started_at = $4, progress_pct = 0, progress_msg = '',
	attempt_worker = $1, attempt_outcome = ''
	WHERE id = ANY($5::uuid[])
	RETURNING ` + jobCols

// leaseSQL has no "state = 'queued'" condition: its rows were locked by
// candidateSQL (FOR UPDATE) in the same transaction, so they are still
// queued, and that condition lets the planner pick the claim index (whose
// predicate it matches) over the primary key, scanning every queued job.

// leaseQueuesSQL returns the state of worker $3 ("" if unknown) with
// each unpaused queue of tenant $1 ("" any) among $2 (empty: any), in
// order; one row with NULL queue columns when there is no such queue.
const leaseQueuesSQL = `SELECT w.state, q.tenant, q.name
	FROM (SELECT coalesce((SELECT state FROM workers WHERE id = $3), '') AS state) AS w
	LEFT JOIN queues AS q ON NOT q.paused AND ($1 = '' OR q.tenant = $1)
		AND (cardinality($2::text[]) = 0 OR q.name = ANY($2::text[]))
	ORDER BY q.tenant, q.name`

// LeaseJobs implements [store.Store]. It locks the best candidates of every
// matching queue with FOR UPDATE SKIP LOCKED, merges them by priority and
// age, skips singleton keys already running, and leases the chosen in one
// UPDATE. A singleton key that another transaction started running
// meanwhile (the unique index reports it) is skipped on a second pass.
func (s *Store) LeaseJobs(ctx context.Context, p *store.LeaseJobsParams) ([]*job.Job, error) {
	if p.Max <= 0 {
		return nil, nil
	}
	types := p.Types
	if types == nil {
		types = []string{}
	}
	queues := p.Queues
	if queues == nil {
		queues = []string{}
	}
	var out []*job.Job
	key := leaseFilter{p.Tenant, strings.Join(queues, "\x00")}
	err := s.write(ctx, "lease", func(t *ptx) error {
		out = nil
		var guessed *tenantQueue // claimed in without deciding
		if g, ok := s.leaseGuess.Load(key); ok {
			// The filter matched one queue last time: claim there at
			// once, the statement checking that it still does.
			tq := g.(tenantQueue)
			if done, err := t.claimOneQueue(p, tq, types, queues, &out); done || err != nil {
				return err
			}
			guessed = &tq
		}
		// One round trip reads the worker's state and the queues to look in.
		rows, err := t.query(leaseQueuesSQL, p.Tenant, queues, p.WorkerID)
		if err != nil {
			return err
		}
		var (
			state string
			tqs   []tenantQueue
		)
		for rows.Next() {
			var tenant, queue *string
			if err := rows.Scan(&state, &tenant, &queue); err != nil {
				rows.Close()
				return err
			}
			if tenant != nil && queue != nil {
				tqs = append(tqs, tenantQueue{*tenant, *queue})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(tqs) == 1 {
			s.leaseGuess.Store(key, tqs[0])
		} else {
			s.leaseGuess.Delete(key)
		}
		if state == job.WorkerDraining {
			return t.touchWorkers([]string{p.WorkerID}, p.Now, false)
		}
		if len(tqs) == 1 && (guessed == nil || *guessed != tqs[0]) {
			if done, err := t.claimOneQueue(p, tqs[0], types, queues, &out); done || err != nil {
				return err
			}
			// Candidates with singleton keys: the general way below
			// decides (it locks the same rows again).
		}
		// A guessed claim in this very queue that did not decide need not
		// run again: the general way below is right in every case.
		for pass := 0; ; pass++ {
			chosen, err := t.chooseCandidates(p, tqs, types)
			if err != nil || len(chosen) == 0 {
				return err
			}
			leased, err := t.leaseChosen(p, chosen)
			if pgCode(err) == codeUniqueViolation && pass < 5 {
				continue // a singleton key started running elsewhere: choose again
			}
			if err != nil {
				return err
			}
			out = leased
			return t.touchWorkers([]string{p.WorkerID}, p.Now, true)
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// leaseOneQuerySQL is candidateSQL and leaseSQL in one statement, for a
// claim in one queue: it locks the best $8 queued jobs of tenant $5 and
// queue $6 (of types $7, if any) and leases them all, unless one of them
// has a singleton key, or the guard g fails: then it leases nothing and
// answers one row whose first column is true and whose others are NULL,
// and the caller takes the general way. Leased jobs come with false
// first; no row at all means that nothing was there to lease.
//
// The guard makes the statement safe to run on a guess (the queue that
// the worker's filter, tenant $9 and queues $10, resolved to last time):
// worker $1 is not draining, and that queue is, unpaused, the only one
// the filter matches — what leaseQueuesSQL would have said.
var leaseOneQuerySQL = `WITH g AS (SELECT
		coalesce((SELECT state FROM workers WHERE id = $1), '') <> 'draining'
		AND (SELECT count(*) FROM queues AS q WHERE NOT q.paused AND ($9 = '' OR q.tenant = $9)
			AND (cardinality($10::text[]) = 0 OR q.name = ANY($10::text[]))) = 1
		AND EXISTS (SELECT 1 FROM queues AS q WHERE q.tenant = $5 AND q.name = $6 AND NOT q.paused) AS ok),
	c AS MATERIALIZED (SELECT id, singleton_key FROM jobs
		WHERE state = 'queued' AND tenant = $5 AND queue = $6
		AND (cardinality($7::text[]) = 0 OR type = ANY($7::text[]))
		AND (SELECT ok FROM g)
		ORDER BY priority DESC, jobs.id LIMIT $8 FOR UPDATE SKIP LOCKED),
	u AS (UPDATE jobs SET state = 'running', attempt = attempt + 1, token = (SELECT nextval('lease_token')),
		worker_id = $1, lease_expires_at = $2, lease_ttl_ms = $3, started_at = $4, progress_pct = 0, progress_msg = '',
		attempt_worker = $1, attempt_outcome = ''
		FROM c WHERE jobs.id = c.id AND NOT EXISTS (SELECT 1 FROM c WHERE singleton_key <> '')
		RETURNING ` + jobColsQualified + `)
	SELECT false, u.* FROM u
	UNION ALL
	SELECT true` + strings.Repeat(", NULL", strings.Count(jobCols, ",")+1) + `
		WHERE NOT (SELECT ok FROM g) OR EXISTS (SELECT 1 FROM c WHERE singleton_key <> '')`

// afterFlag scans a row whose first column is a flag, then scanJob's.
type afterFlag struct {
	rows interface{ Scan(dest ...any) error }
	flag *bool
}

func (a afterFlag) Scan(dest ...any) error {
	return a.rows.Scan(append([]any{a.flag}, dest...)...)
}

// claimOneQueue claims in queue tq with leaseOneQueue and, when that
// decided (done), sets *out and records the worker's activity as the
// general way does. Not done: the general way must decide.
func (t *ptx) claimOneQueue(p *store.LeaseJobsParams, tq tenantQueue, types, queues []string, out *[]*job.Job) (done bool, err error) {
	leased, general, err := t.leaseOneQueue(p, tq, types, queues)
	if err != nil || general {
		return false, err
	}
	if len(leased) == 0 {
		return true, nil // nothing to lease; an empty claim touches no worker row
	}
	*out = leased
	return true, t.touchWorkers([]string{p.WorkerID}, p.Now, true)
}

// leaseOneQueue leases up to p.Max jobs of one queue in one statement, in
// claim order. general reports that nothing was leased because the best
// candidates include a singleton key or the statement's guard failed (the
// worker drains, or its filter no longer matches exactly that unpaused
// queue), so that the general way must decide.
func (t *ptx) leaseOneQueue(p *store.LeaseJobsParams, tq tenantQueue, types, queues []string) (out []*job.Job, general bool, err error) {
	exp := p.Now.Add(p.TTL)
	rows, err := t.query(leaseOneQuerySQL, p.WorkerID, t2i(exp), p.TTL.Milliseconds(), t2i(p.Now), tq.tenant, tq.queue, types, p.Max,
		p.Tenant, queues)
	if err != nil {
		return nil, false, err
	}
	for rows.Next() {
		if vals := rows.RawValues(); len(vals) > 1 && vals[1] == nil {
			general = true // the marker row (singleton keys, or the guard failed)
			continue
		}
		var flag bool
		j, err := scanJob(afterFlag{rows, &flag}, false)
		if err != nil {
			rows.Close()
			return nil, false, err
		}
		out = append(out, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if general {
		return nil, true, nil
	}
	// RETURNING gives no order; the claim's is priority, then age (ids
	// are time-ordered).
	slices.SortFunc(out, func(a, b *job.Job) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID))
	})
	out, err = t.leased(p, out)
	return out, false, err
}

// leaseFilter is a worker's queue filter: tenant and queues (joined).
type leaseFilter struct{ tenant, queues string }

// chooseCandidates picks up to p.Max jobs from the queues tqs.
func (t *ptx) chooseCandidates(p *store.LeaseJobsParams, tqs []tenantQueue, types []string) ([]candidate, error) {
	limit := p.Max + 8
	var chosen []candidate
	for {
		var cands []candidate
		more := false
		for _, tq := range tqs {
			rows, err := t.query(candidateSQL, tq.tenant, tq.queue, types, limit)
			if err != nil {
				return nil, err
			}
			n := 0
			for rows.Next() {
				var c candidate
				if err := rows.Scan(&c.id, &c.priority, &c.tenant, &c.singleton); err != nil {
					rows.Close()
					return nil, err
				}
				cands = append(cands, c)
				n++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
			if n == limit {
				more = true
			}
		}
		slices.SortFunc(cands, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.id, b.id))
		})
		busy, err := t.runningSingletons(cands)
		if err != nil {
			return nil, err
		}
		chosen = chosen[:0]
		skipped := false
		for _, c := range cands {
			if len(chosen) == p.Max {
				break
			}
			if c.singleton != "" {
				k := [2]string{c.tenant, c.singleton}
				if busy[k] {
					skipped = true
					continue
				}
				busy[k] = true
			}
			chosen = append(chosen, c)
		}
		if len(chosen) == p.Max || !more || !skipped {
			return chosen, nil
		}
		limit *= 4
	}
}

// runningSingletons returns which singleton keys of cands are held by a
// running job.
func (t *ptx) runningSingletons(cands []candidate) (map[[2]string]bool, error) {
	busy := map[[2]string]bool{}
	var tenants, keys []string
	for _, c := range cands {
		if c.singleton != "" {
			tenants, keys = append(tenants, c.tenant), append(keys, c.singleton)
		}
	}
	if len(keys) == 0 {
		return busy, nil
	}
	rows, err := t.query(`SELECT tenant, singleton_key FROM jobs WHERE state = 'running' AND singleton_key <> ''
		AND (tenant, singleton_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, tenants, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			return nil, err
		}
		busy[k] = true
	}
	return busy, rows.Err()
}

// leaseChosen leases the chosen jobs in one UPDATE. When some have a
// singleton key it runs inside a savepoint, so that a unique violation
// (the key started running elsewhere meanwhile) leaves the transaction
// usable.
func (t *ptx) leaseChosen(p *store.LeaseJobsParams, chosen []candidate) ([]*job.Job, error) {
	ids := make([]string, len(chosen))
	order := make(map[string]int, len(chosen))
	singletons := false
	for i, c := range chosen {
		ids[i] = c.id
		order[c.id] = i
		singletons = singletons || c.singleton != ""
	}
	if singletons {
		if err := t.savepoint("lease"); err != nil {
			return nil, err
		}
	}
	exp := p.Now.Add(p.TTL)
	rows, err := t.query(leaseSQL, p.WorkerID, t2i(exp), p.TTL.Milliseconds(), t2i(p.Now), uuidArgs(ids))
	if err == nil {
		out := make([]*job.Job, len(chosen))
		for rows.Next() {
			j, serr := scanJob(rows, false)
			if serr != nil {
				rows.Close()
				return nil, serr
			}
			out[order[j.ID]] = j
		}
		rows.Close()
		if err = rows.Err(); err == nil {
			return t.leased(p, out)
		}
	}
	if singletons && pgCode(err) == codeUniqueViolation {
		// The key started running elsewhere: undo, and let the caller
		// choose again.
		if rerr := t.rollbackTo("lease"); rerr != nil {
			return nil, rerr
		}
	}
	return nil, err
}

// leased completes the jobs just leased to p.WorkerID and emits their
// events.
func (t *ptx) leased(p *store.LeaseJobsParams, out []*job.Job) ([]*job.Job, error) {
	t.expectEvents(len(out))
	for _, j := range out {
		if j == nil {
			return nil, fmt.Errorf("postgres: lease: a locked job changed: %w", store.ErrUnavailable)
		}
		j.Attempts = []job.Attempt{{Attempt: j.Attempt, WorkerID: p.WorkerID, Token: j.Token, StartedAt: p.Now}}
		t.emit(job.EventFor(job.EventStarted, j, p.Now))
	}
	return out, nil
}

// heartbeatSQL renews many leases in one statement, each as a
// compare-and-swap on (id, token, state).
const heartbeatSQL = `UPDATE jobs SET lease_expires_at = $1 + jobs.lease_ttl_ms * 1000000,
	progress_pct = CASE WHEN u.has THEN u.pct ELSE jobs.progress_pct END,
	progress_msg = CASE WHEN u.has THEN u.msg ELSE jobs.progress_msg END
	FROM (SELECT DISTINCT ON (id, token) * FROM unnest($2::uuid[], $3::bigint[], $4::boolean[], $5::integer[], $6::text[])
		AS x(id, token, has, pct, msg)) AS u
	WHERE jobs.id = u.id AND jobs.token = u.token AND jobs.state = 'running' AND ($7 = '' OR jobs.worker_id = $7)
	RETURNING ` + jobColsQualified

// HeartbeatJobs implements [store.Store].
func (s *Store) HeartbeatJobs(ctx context.Context, p *store.HeartbeatJobsParams) ([]store.HeartbeatResult, error) {
	ids := make([]string, 0, len(p.Leases))
	tokens := make([]int64, 0, len(p.Leases))
	has := make([]bool, 0, len(p.Leases))
	pcts := make([]int32, 0, len(p.Leases))
	msgs := make([]string, 0, len(p.Leases))
	for _, l := range p.Leases {
		if !job.ValidID(l.JobID) {
			continue
		}
		ids, tokens, has = append(ids, l.JobID), append(tokens, l.Token), append(has, l.Progress != nil)
		if l.Progress != nil {
			pcts, msgs = append(pcts, int32(l.Progress.Percent)), append(msgs, l.Progress.Message)
		} else {
			pcts, msgs = append(pcts, 0), append(msgs, "")
		}
	}
	var out []store.HeartbeatResult
	err := s.write(ctx, "heartbeat", func(t *ptx) error {
		if err := t.preferIndexes(); err != nil {
			return err
		}
		out = make([]store.HeartbeatResult, len(p.Leases))
		renewed := map[string]*job.Job{}
		if len(ids) > 0 {
			rows, err := t.query(heartbeatSQL, t2i(p.Now), uuidArgs(ids), tokens, has, pcts, msgs, p.WorkerID)
			if err != nil {
				return err
			}
			for rows.Next() {
				j, err := scanJob(rows, false)
				if err != nil {
					rows.Close()
					return err
				}
				renewed[j.ID] = j
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for i, l := range p.Leases {
			out[i].JobID = l.JobID
			if j := renewed[l.JobID]; j != nil && j.Token == l.Token {
				out[i] = store.HeartbeatResult{JobID: l.JobID, OK: true, ExpiresAt: j.LeaseExpiresAt, CancelRequested: j.CancelRequested, Job: j}
			}
		}
		return t.touchWorkers([]string{p.WorkerID}, p.Now, false)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// endAttemptSQL ends the current attempt of a running job, as a
// compare-and-swap on (id, token, state). An attempt that ends the job
// stays described by the row's columns ($7 is its outcome); one after which
// the job runs again is appended to the attempts array ($6, JSON).
const endAttemptSQL = `UPDATE jobs SET state = $1, result = $2, error = $3, finished_at = $4,
	run_at = CASE WHEN $5::bigint = 0 THEN run_at ELSE $5::bigint END, worker_id = '', lease_expires_at = 0,
	attempts = CASE WHEN $6 = '' THEN attempts ELSE attempts || jsonb_build_array($6::jsonb) END,
	attempt_outcome = $7, attempt_base = attempt_base + $8
	WHERE id = $9 AND token = $10 AND state = 'running'`

// endAttempt moves running job j (read in this transaction) to state,
// recording outcome on its attempt, and emits kind.
func (t *ptx) endAttempt(j *job.Job, now time.Time, state gantry.State, outcome, kind, errText string, giveBack bool) (bool, error) {
	finished := time.Time{}
	if state.Terminal() {
		finished = now
	}
	base := 0
	if giveBack {
		base = 1
	}
	aj, aOutcome := rowscan.EndedAttempt(j, state, now, outcome, errText)
	tag, err := t.exec(endAttemptSQL, string(state), []byte(nil), errText, t2i(finished), int64(0),
		aj, aOutcome, base, j.ID, j.Token)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	j.State, j.Result, j.Error, j.FinishedAt, j.WorkerID, j.LeaseExpiresAt = state, nil, errText, finished, "", time.Time{}
	j.AttemptBase += base
	if state.Terminal() {
		if err := t.moveDone([]string{j.ID}); err != nil {
			return false, err
		}
	}
	t.emit(job.EventFor(kind, j, now))
	if state == gantry.StateQueued || j.SingletonKey != "" {
		t.jobsAvailable = true // it, or the next job of its singleton key, may run
	}
	if state.Terminal() {
		if err := t.terminal(j.BatchID, now); err != nil {
			return false, err
		}
	}
	return true, nil
}
