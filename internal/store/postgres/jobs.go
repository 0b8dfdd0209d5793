package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

// insertJobsSQL inserts many jobs in one statement, one array per column.
const insertJobsSQL = `INSERT INTO jobs (id, tenant, type, name, queue, priority, params, package,
	batch_id, run_at, max_attempts, timeout_ms, unique_key, singleton_key, tags, metadata, state, created_at)
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[],
		$7::bytea[], $8::text[], $9::text[], $10::bigint[], $11::integer[], $12::bigint[], $13::text[],
		$14::text[], $15::text[], $16::text[], $17::text[], $18::bigint[])`

const nonTerminal = `('scheduled', 'queued', 'running', 'retrying')`

// InsertJobs implements [store.Store].
func (s *Store) InsertJobs(ctx context.Context, p *store.InsertJobsParams) ([]store.InsertResult, error) {
	var out []store.InsertResult
	err := s.write(ctx, "insert jobs", func(t *ptx) error {
		out = nil
		if p.NewBatch != nil {
			if err := t.insertBatch(p.NewBatch); err != nil {
				return err
			}
		}
		if p.AddToBatch != "" {
			tenant := ""
			if len(p.Jobs) > 0 {
				tenant = p.Jobs[0].Tenant
			}
			var closed bool
			err := t.queryRow(`SELECT closed FROM batches WHERE id = $1 AND ($2 = '' OR tenant = $2) FOR SHARE`, p.AddToBatch, tenant).Scan(&closed)
			if isNoRows(err) {
				return fmt.Errorf("postgres: batch %s: %w", p.AddToBatch, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			if closed {
				return fmt.Errorf("postgres: batch %s is closed: %w", p.AddToBatch, store.ErrConflict)
			}
			for _, j := range p.Jobs {
				j.BatchID = p.AddToBatch
			}
		}
		res, err := t.insertJobs(p.Now, p.Jobs)
		if err != nil {
			return err
		}
		out = res
		if p.NewBatch != nil && p.NewBatch.Closed {
			// A closed batch whose jobs all matched existing ones by
			// unique key (or that has none) is done at once.
			return t.terminal(p.NewBatch.ID, p.Now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lockUniqueKeys takes the transaction-scoped advisory locks of the
// (tenant, unique key) pairs, in a fixed order, so that concurrent
// transactions resolve one key one at a time.
func (t *ptx) lockUniqueKeys(tenants, keys []string) error {
	_, err := t.exec(`SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(u.t || chr(1) || u.k, 0) AS h
		FROM unnest($1::text[], $2::text[]) AS u(t, k) ORDER BY 1) AS s`, tenants, keys)
	return err
}

// insertJobs inserts jobs, resolving unique keys, and emits their events.
func (t *ptx) insertJobs(now time.Time, jobs []*job.Job) ([]store.InsertResult, error) {
	out := make([]store.InsertResult, len(jobs))
	var existing map[[2]string]*job.Job
	var uTenants, uKeys []string
	for _, j := range jobs {
		if j.UniqueKey != "" {
			uTenants, uKeys = append(uTenants, j.Tenant), append(uKeys, j.UniqueKey)
		}
	}
	if len(uKeys) > 0 {
		if err := t.lockUniqueKeys(uTenants, uKeys); err != nil {
			return nil, err
		}
		rows, err := t.query(`SELECT `+jobCols+` FROM jobs WHERE unique_key <> '' AND state IN `+nonTerminal+`
			AND (tenant, unique_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, uTenants, uKeys)
		if err != nil {
			return nil, err
		}
		existing = map[[2]string]*job.Job{}
		for rows.Next() {
			j, err := scanJob(rows, false)
			if err != nil {
				rows.Close()
				return nil, err
			}
			existing[[2]string{j.Tenant, j.UniqueKey}] = j
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	var c struct {
		ids, tenants, types, names, queues, pkgs, batches, ukeys, skeys, tags, metas, states []string
		prios                                                                                []int16
		params                                                                               [][]byte
		runAts, timeouts, created                                                            []int64
		maxAtt                                                                               []int32
	}
	var newQueues []tenantQueue
	t.expectEvents(len(jobs))
	for i, j := range jobs {
		if j.UniqueKey != "" {
			k := [2]string{j.Tenant, j.UniqueKey}
			if prev, ok := existing[k]; ok {
				out[i] = store.InsertResult{Job: prev}
				continue
			}
			existing[k] = j
		}
		c.ids, c.tenants, c.types, c.names, c.queues = append(c.ids, j.ID), append(c.tenants, j.Tenant), append(c.types, j.Type), append(c.names, j.Name), append(c.queues, j.Queue)
		c.prios, c.params, c.pkgs, c.batches = append(c.prios, int16(j.Priority)), append(c.params, nullBytes(j.Params)), append(c.pkgs, j.Package), append(c.batches, j.BatchID)
		c.runAts, c.maxAtt, c.timeouts = append(c.runAts, t2i(j.RunAt)), append(c.maxAtt, int32(j.MaxAttempts)), append(c.timeouts, j.Timeout.Milliseconds())
		c.ukeys, c.skeys, c.tags, c.metas = append(c.ukeys, j.UniqueKey), append(c.skeys, j.SingletonKey), append(c.tags, rowscan.JSONSlice(j.Tags)), append(c.metas, rowscan.JSONMap(j.Metadata))
		c.states, c.created = append(c.states, string(j.State)), append(c.created, t2i(j.CreatedAt))
		tq := tenantQueue{j.Tenant, j.Queue}
		if _, ok := t.s.queues.Load(tq); !ok && !slices.Contains(newQueues, tq) {
			newQueues = append(newQueues, tq)
		}
		t.emit(job.EventFor(job.EventSubmitted, j, now))
		if j.State == gantry.StateQueued {
			t.jobsAvailable = true
		}
		out[i] = store.InsertResult{Job: j, Created: true}
	}
	if len(c.ids) > 0 {
		if _, err := t.exec(insertJobsSQL, uuidArgs(c.ids), c.tenants, c.types, c.names, c.queues, c.prios, c.params,
			c.pkgs, c.batches, c.runAts, c.maxAtt, c.timeouts, c.ukeys, c.skeys, c.tags, c.metas, c.states, c.created); err != nil {
			return nil, err
		}
	}
	if len(newQueues) > 0 {
		if err := t.noteQueues(newQueues); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// noteQueues records that jobs were inserted into tenants' queues.
func (t *ptx) noteQueues(qs []tenantQueue) error {
	slices.SortFunc(qs, func(a, b tenantQueue) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.queue, b.queue))
	})
	tenants, names := make([]string, len(qs)), make([]string, len(qs))
	for i, q := range qs {
		tenants[i], names[i] = q.tenant, q.queue
	}
	if _, err := t.exec(`INSERT INTO queues (tenant, name) SELECT * FROM unnest($1::text[], $2::text[])
		ON CONFLICT DO NOTHING`, tenants, names); err != nil {
		return err
	}
	t.after = append(t.after, func() {
		for _, q := range qs {
			t.s.queues.Store(q, struct{}{})
		}
	})
	return nil
}

// GetJob implements [store.Store].
func (s *Store) GetJob(ctx context.Context, tenant, id string) (*job.Job, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if !job.ValidID(id) {
		return nil, fmt.Errorf("postgres: job %s: %w", id, store.ErrNotFound)
	}
	// One statement, so one snapshot: a job moving to jobs_done meanwhile
	// is seen in exactly one of the tables.
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColsWithAttempts+` FROM jobs WHERE id = $1 AND ($2 = '' OR tenant = $2)
		UNION ALL SELECT `+jobColsWithAttempts+` FROM jobs_done WHERE id = $1 AND ($2 = '' OR tenant = $2) LIMIT 1`, id, tenant), true)
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("get job", err)
	}
	return j, nil
}

// getJob reads a job of either table inside the transaction and locks
// it.
func (t *ptx) getJob(tenant, id string) (*job.Job, error) {
	j, _, err := t.getJobAnywhere(tenant, id)
	return j, err
}

// ListJobs implements [store.Store].
func (s *Store) ListJobs(ctx context.Context, p *store.ListJobsParams) ([]*job.Job, string, error) {
	if err := s.checkOpen(); err != nil {
		return nil, "", err
	}
	after, err := rowscan.ParseCursor(p.Cursor, "j:")
	if err != nil {
		return nil, "", err
	}
	if after != "" && !job.ValidID(after) {
		return nil, "", fmt.Errorf("postgres: bad cursor: %w", store.ErrInvalidCursor)
	}
	limit := rowscan.PageSize(p.Limit)
	var where []string
	var args []any
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if p.Tenant != "" {
		add("tenant = $?", p.Tenant)
	}
	if p.State != "" {
		add("state = $?", string(p.State))
	}
	if p.Type != "" {
		add("type = $?", p.Type)
	}
	if p.Queue != "" {
		add("queue = $?", p.Queue)
	}
	if p.BatchID != "" {
		add("batch_id = $? AND batch_id <> ''", p.BatchID)
	}
	if p.Tag != "" {
		add("tags <> '' AND jsonb_exists(tags::jsonb, $?)", p.Tag)
	}
	if after != "" {
		add("id < $?::uuid", after)
	}
	// The newest of each table, merged: each side reads at most limit+1
	// rows through its primary key (or an index its filters select). A
	// state filter names one table: the other would be scanned for nothing.
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	n := "$" + strconv.Itoa(len(args))
	hot := `SELECT ` + jobCols + ` FROM jobs` + cond + ` ORDER BY jobs.id DESC LIMIT ` + n
	done := `SELECT ` + jobCols + ` FROM jobs_done` + cond + ` ORDER BY jobs_done.id DESC LIMIT ` + n
	var q string
	switch {
	case p.State == "":
		q = `SELECT * FROM ((` + hot + `) UNION ALL (` + done + `)) AS j ORDER BY id::uuid DESC LIMIT ` + n
	case p.State.Terminal():
		q = done
	default:
		q = hot
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", s.wrap("list jobs", err)
	}
	defer rows.Close()
	var out []*job.Job
	for rows.Next() {
		j, err := scanJob(rows, false)
		if err != nil {
			return nil, "", s.wrap("list jobs", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.wrap("list jobs", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = rowscan.Cursor("j:", out[limit-1].ID)
	}
	return out, next, nil
}

// DeleteJob implements [store.Store].
func (s *Store) DeleteJob(ctx context.Context, tenant, id string) error {
	return s.write(ctx, "delete job", func(t *ptx) error {
		j, done, err := t.getJobAnywhere(tenant, id)
		if err != nil {
			return err
		}
		if !j.State.Terminal() {
			return fmt.Errorf("postgres: job %s is %s: %w", id, j.State, store.ErrConflict)
		}
		table := "jobs"
		if done {
			table = "jobs_done"
		}
		_, err = t.exec(`DELETE FROM `+table+` WHERE id = $1`, id)
		return err
	})
}

// CancelJob implements [store.Store].
func (s *Store) CancelJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error) {
	var out *job.Job
	err := s.write(ctx, "cancel job", func(t *ptx) error {
		j, err := t.getJob(tenant, id)
		if err != nil {
			return err
		}
		out, err = t.cancel(j, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cancel cancels j (read and locked in this transaction) as CancelJob
// describes.
func (t *ptx) cancel(j *job.Job, now time.Time) (*job.Job, error) {
	switch {
	case j.State.Terminal():
		return nil, fmt.Errorf("postgres: job %s is %s: %w", j.ID, j.State, store.ErrConflict)
	case j.State == gantry.StateRunning:
		if _, err := t.exec(`UPDATE jobs SET cancel_requested = true WHERE id = $1`, j.ID); err != nil {
			return nil, err
		}
		j.CancelRequested = true
		return j, nil
	}
	if _, err := t.exec(`UPDATE jobs SET state = 'canceled', finished_at = $1 WHERE id = $2`, t2i(now), j.ID); err != nil {
		return nil, err
	}
	j.State, j.FinishedAt = gantry.StateCanceled, now
	if err := t.moveDone([]string{j.ID}); err != nil {
		return nil, err
	}
	t.emit(job.EventFor(job.EventCanceled, j, now))
	if err := t.terminal(j.BatchID, now); err != nil {
		return nil, err
	}
	return j, nil
}

// RetryJob implements [store.Store].
func (s *Store) RetryJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error) {
	var out *job.Job
	err := s.write(ctx, "retry job", func(t *ptx) error {
		out = nil
		j, done, err := t.getJobAnywhere(tenant, id)
		if err != nil {
			return err
		}
		if j.State != gantry.StateFailed && j.State != gantry.StateCanceled {
			return fmt.Errorf("postgres: job %s is %s: %w", id, j.State, store.ErrConflict)
		}
		if j.UniqueKey != "" {
			if err := t.lockUniqueKeys([]string{j.Tenant}, []string{j.UniqueKey}); err != nil {
				return err
			}
			var taken bool
			if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM jobs WHERE tenant = $1 AND unique_key = $2 AND unique_key <> '' AND state IN `+nonTerminal+`)`,
				j.Tenant, j.UniqueKey).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("postgres: job %s: another job holds unique key %q: %w", id, j.UniqueKey, store.ErrConflict)
			}
		}
		if done {
			// Back to the hot table, where the update below requeues it.
			if _, err := t.exec(reviveSQL, id); err != nil {
				return err
			}
		}
		// The attempt that ended the job joins the attempts array.
		var aOutcome string
		if err := t.queryRow(`SELECT attempt_outcome FROM jobs WHERE id = $1`, id).Scan(&aOutcome); err != nil {
			return err
		}
		aj := ""
		if n := len(j.Attempts); aOutcome != "" && n > 0 {
			b, _ := json.Marshal(j.Attempts[n-1])
			aj = string(b)
		}
		if _, err := t.exec(`UPDATE jobs SET state = 'queued', attempt_base = attempt, finished_at = 0, error = '',
			result = NULL, cancel_requested = false, attempt_outcome = '',
			attempts = CASE WHEN $1 = '' THEN attempts ELSE attempts || jsonb_build_array($1::jsonb) END
			WHERE id = $2`, aj, id); err != nil {
			return err
		}
		j.State, j.AttemptBase, j.FinishedAt, j.Error, j.Result, j.CancelRequested = gantry.StateQueued, j.Attempt, time.Time{}, "", nil, false
		t.emit(job.EventFor(job.EventQueued, j, now))
		t.jobsAvailable = true
		out = j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
