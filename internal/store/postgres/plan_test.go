package postgres_test

import (
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
	url := needDB(t)
	schema := freshSchema(t, url)
	open(t, url, schema) // migrates
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	for _, q := range []string{
		`SET search_path TO ` + pgx.Identifier{schema}.Sanitize(),
		// A backlog of queued jobs and a few running ones, analyzed.
		`INSERT INTO jobs (id, tenant, type, queue, max_attempts, state, created_at, token, lease_expires_at)
			SELECT gen_random_uuid(), 'default', 'noop', 'default', 5,
				CASE WHEN g % 500 = 0 THEN 'running' ELSE 'queued' END, 1, g,
				CASE WHEN g % 500 = 0 THEN g ELSE 0 END
			FROM generate_series(1, 50000) g`,
		`ANALYZE jobs`,
		`SET plan_cache_mode = force_generic_plan`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
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
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE p(`+args+`)`)
		if err != nil {
			t.Fatalf("explain %s: %v", name, err)
		}
		var plan strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		rows.Close()
		if _, err := conn.Exec(ctx, `DEALLOCATE p`); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plan.String(), "jobs_lease") || !strings.Contains(plan.String(), "jobs_pkey") {
			t.Errorf("%s: plan does not look rows up by primary key:\n%s", name, plan.String())
		}
		// Each outcome or renewal is one primary key probe, not a
		// comparison with every other one (a join filter over a nested
		// loop: n² for a batch of n).
		if strings.Contains(plan.String(), "Join Filter: ((jobs.id = u.id)") {
			t.Errorf("%s: plan compares rows with every outcome:\n%s", name, plan.String())
		}
	}
}
