package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/store/postgres"
)

// TestByIDStatementsUseThePrimaryKey checks the generic plans of the
// statements that end or renew many running jobs by id: they must find
// their rows through the primary key, never by scanning the index of
// leased jobs (which also holds the entries of jobs that finished or
// renewed since the last vacuum; see migration 006).
func TestByIDStatementsUseThePrimaryKey(t *testing.T) {
	ctx := t.Context()
	conn := planConn(t,
		// A backlog of queued jobs and a few running ones, analyzed.
		`INSERT INTO jobs (id, tenant, type, queue, max_attempts, state, created_at, token, lease_expires_at)
			SELECT gen_random_uuid(), 'default', 'noop', 'default', 5,
				CASE WHEN g % 500 = 0 THEN 'running' ELSE 'queued' END, 1, g,
				CASE WHEN g % 500 = 0 THEN g ELSE 0 END
			FROM generate_series(1, 50000) g`,
		`ANALYZE jobs`,
		`SET plan_cache_mode = force_generic_plan`,
	)
	for name, q := range map[string]string{
		"finishMoveSQL":   postgres.FinishMoveSQL,
		"finishUpdateSQL": postgres.FinishUpdateSQL,
		"heartbeatSQL":    postgres.HeartbeatSQL,
	} {
		if _, err := conn.Exec(ctx, `PREPARE p AS `+q); err != nil {
			t.Fatalf("prepare %s: %v", name, err)
		}
		// EXPLAIN EXECUTE needs values; NULLs plan like any others.
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements, unnest(parameter_types) WHERE name = 'p'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		args := strings.TrimSuffix(strings.Repeat("NULL, ", n), ", ")
		plan := explain(t, conn, `EXECUTE p(`+args+`)`)
		if _, err := conn.Exec(ctx, `DEALLOCATE p`); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plan, "jobs_lease") || !strings.Contains(plan, "jobs_pkey") {
			t.Errorf("%s: plan does not look rows up by primary key:\n%s", name, plan)
		}
		// Each outcome or renewal is one primary key probe, not a
		// comparison with every other one (a join filter over a nested
		// loop: n² for a batch of n).
		if strings.Contains(plan, "Join Filter: ((jobs.id = u.id)") {
			t.Errorf("%s: plan compares rows with every outcome:\n%s", name, plan)
		}
	}
}

// TestByIDStatementsWithStaleStatistics plans the statements that end or
// renew a worker's jobs with the values of a real call, on a table whose
// statistics were taken while every job was queued and which now has
// 10,000 jobs running for that worker: the statistics say there are none.
// Planned freely, the statement scanned the table for the worker's
// running jobs and compared each with every outcome (545 ms for 500
// outcomes here, 4 s in a benchmark); in their transactions (see
// preferIndexes) it must look each id up in the primary key.
func TestByIDStatementsWithStaleStatistics(t *testing.T) {
	ctx := t.Context()
	const worker = "w1"
	conn := planConn(t,
		`INSERT INTO jobs (id, tenant, type, queue, max_attempts, state, created_at)
			SELECT gen_random_uuid(), 'default', 'noop', 'default', 5, 'queued', 1 FROM generate_series(1, 30000)`,
		`ANALYZE jobs`,
		`UPDATE jobs SET state = 'running', worker_id = '`+worker+`', token = 7, lease_expires_at = 1, lease_ttl_ms = 1000
			WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT 10000)`,
	)
	var ids []string
	rows, err := conn.Query(ctx, `SELECT id::text FROM jobs WHERE state = 'running' ORDER BY id LIMIT 500`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	n := len(ids)
	tokens, strs, blobs, bools, ints := make([]int64, n), make([]string, n), make([][]byte, n), make([]bool, n), make([]int32, n)
	for i := range n {
		tokens[i], strs[i] = 7, "succeeded"
	}
	for _, c := range []struct {
		name string
		q    string
		args []any
	}{
		{"finishMoveSQL", postgres.FinishMoveSQL, []any{int64(2), ids, tokens, strs, blobs, make([]string, n), worker}},
		{"heartbeatSQL", postgres.HeartbeatSQL, []any{int64(2), ids, tokens, bools, ints, make([]string, n), worker}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, postgres.SetNoSeqScan); err != nil {
				t.Fatal(err)
			}
			p := explain(t, tx, c.q, c.args...)
			if strings.Contains(p, "Seq Scan on jobs") || strings.Contains(p, "Join Filter: ((jobs.id = u.id)") || !strings.Contains(p, "jobs_pkey") {
				t.Errorf("plan does not look each id up by primary key:\n%s", p)
			}
		})
	}
}

// planConn migrates a fresh schema, runs setup in it on a connection of
// its own and returns the connection, closed at the end of the test.
func planConn(t *testing.T, setup ...string) *pgx.Conn {
	t.Helper()
	url := needDB(t)
	schema := freshSchema(t, url)
	open(t, url, schema) // migrates
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	for _, q := range append([]string{`SET search_path TO ` + pgx.Identifier{schema}.Sanitize()}, setup...) {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return conn
}

// explain returns the plan of q run with args.
func explain(t *testing.T, c interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, q string, args ...any) string {
	t.Helper()
	rows, err := c.Query(t.Context(), `EXPLAIN `+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}
