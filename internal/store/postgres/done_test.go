package postgres_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// TestFinishedJobsLeaveHotTable checks that every way a job ends moves it
// from jobs to jobs_done in the same call, that reads see both tables, and
// that RetryJob, DeleteJob and Retain find finished jobs there.
func TestFinishedJobsLeaveHotTable(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	s := open(t, url, schema)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	// rows returns the states of the jobs in table, by job id.
	rows := func(table string) map[string]gantry.State {
		t.Helper()
		rs, err := conn.Query(ctx, `SELECT id::text, state FROM `+pgx.Identifier{schema, table}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		out := map[string]gantry.State{}
		for rs.Next() {
			var id, st string
			if err := rs.Scan(&id, &st); err != nil {
				t.Fatal(err)
			}
			out[id] = gantry.State(st)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}

	now := time.Now()
	jobs := make([]*job.Job, 6)
	for i := range jobs {
		sp := job.Spec{Type: "t"}
		sp.Normalize(now)
		jobs[i] = job.NewFromSpec(&sp, job.NewID(now), now)
		jobs[i].MaxAttempts = 1
	}
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, WorkerID: "w", Max: 5, TTL: 30 * time.Second})
	if err != nil || len(leased) != 5 {
		t.Fatalf("LeaseJobs: %d jobs, %v; want 5", len(leased), err)
	}
	token := map[string]int64{}
	for _, j := range leased {
		token[j.ID] = j.Token
	}
	var queued string // the job left queued
	for _, j := range jobs {
		if _, ok := token[j.ID]; !ok {
			queued = j.ID
		}
	}
	want := map[string]gantry.State{queued: gantry.StateCanceled}
	var outs []store.Outcome
	for i, o := range []string{job.OutcomeSucceeded, job.OutcomeFailed, job.OutcomeCanceled} {
		id := leased[i].ID
		outs = append(outs, store.Outcome{JobID: id, Token: token[id], Outcome: o, Error: "e"})
		want[id] = map[string]gantry.State{job.OutcomeSucceeded: gantry.StateSucceeded, job.OutcomeFailed: gantry.StateFailed,
			job.OutcomeCanceled: gantry.StateCanceled}[o]
	}
	for _, j := range leased[3:] {
		want[j.ID] = gantry.StateFailed // expired on its last attempt
	}

	res, err := s.FinishJobs(ctx, &store.FinishJobsParams{Now: now, WorkerID: "w", Outcomes: outs})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.OK {
			t.Fatalf("FinishJobs %s: not OK", r.JobID)
		}
	}
	if _, err := s.CancelJob(ctx, "", queued, now); err != nil {
		t.Fatal(err)
	}
	rescued, err := s.RescueExpired(ctx, &store.RescueParams{Now: now.Add(time.Minute), UpSince: now.Add(-time.Hour)})
	if err != nil || len(rescued) != 2 {
		t.Fatalf("RescueExpired: %d jobs, %v; want 2", len(rescued), err)
	}
	if diff := cmp.Diff(map[string]gantry.State{}, rows("jobs")); diff != "" {
		t.Errorf("jobs table after every job ended (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, rows("jobs_done")); diff != "" {
		t.Errorf("jobs_done table (-want +got):\n%s", diff)
	}
	for id, st := range want {
		j, err := s.GetJob(ctx, "", id)
		if err != nil || j.State != st {
			t.Errorf("GetJob(%s) = %v, %v; want state %s", id, j, err, st)
		}
	}

	// One unfinished job, so that lists merge both tables.
	sp := job.Spec{Type: "t"}
	sp.Normalize(now)
	fresh := job.NewFromSpec(&sp, job.NewID(now), now)
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{fresh}}); err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{fresh.ID}
	for i := len(jobs) - 1; i >= 0; i-- {
		wantIDs = append(wantIDs, jobs[i].ID)
	}
	for _, tc := range []struct {
		name  string
		state gantry.State
		want  []string
	}{
		{"all", "", wantIDs},
		{"failed", gantry.StateFailed, filter(wantIDs, func(id string) bool { return want[id] == gantry.StateFailed })},
		{"queued", gantry.StateQueued, []string{fresh.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for {
				page, next, err := s.ListJobs(ctx, &store.ListJobsParams{State: tc.state, Limit: 2, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range page {
					got = append(got, j.ID)
				}
				if next == "" {
					break
				}
				cursor = next
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ListJobs pages (-want +got):\n%s", diff)
			}
		})
	}

	failed := leased[1].ID
	j, err := s.RetryJob(ctx, "", failed, now)
	if err != nil || j.State != gantry.StateQueued {
		t.Fatalf("RetryJob = %v, %v; want queued", j, err)
	}
	if st, ok := rows("jobs")[failed]; !ok || st != gantry.StateQueued {
		t.Errorf("retried job in jobs: %q, %v; want queued", st, ok)
	}
	if _, ok := rows("jobs_done")[failed]; ok {
		t.Errorf("retried job still in jobs_done")
	}
	delete(want, failed)

	succeeded := leased[0].ID
	if err := s.DeleteJob(ctx, "", succeeded); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetJob(ctx, "", succeeded); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetJob after DeleteJob: %v; want ErrNotFound", err)
	}
	delete(want, succeeded)

	r, err := s.Retain(ctx, &store.RetainParams{JobsBefore: now.Add(time.Hour)})
	if err != nil || r.Jobs != len(want) {
		t.Errorf("Retain = %+v, %v; want %d jobs", r, err, len(want))
	}
	if got := rows("jobs_done"); len(got) != 0 {
		t.Errorf("jobs_done after Retain: %v; want empty", got)
	}
}

func filter(ids []string, keep func(string) bool) []string {
	var out []string
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}

// TestMigrationMovesFinishedJobs checks that migration 003 moves the
// finished jobs of an existing database to jobs_done.
func TestMigrationMovesFinishedJobs(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	ident := pgx.Identifier{schema}.Sanitize()
	steps := []string{
		`CREATE SCHEMA ` + ident,
		`SET search_path TO ` + ident,
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
	}
	for _, name := range []string{"001_init.sql", "002_reservations.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, string(body))
	}
	steps = append(steps, `INSERT INTO schema_migrations (version, name) VALUES (1, '001_init.sql'), (2, '002_reservations.sql')`)
	now := time.Now()
	ids := map[gantry.State]string{}
	for _, st := range []gantry.State{gantry.StateQueued, gantry.StateSucceeded, gantry.StateFailed} {
		ids[st] = job.NewID(now)
		steps = append(steps, `INSERT INTO jobs (id, tenant, type, queue, max_attempts, state, created_at, finished_at)
			VALUES ('`+ids[st]+`', '', 't', 'default', 1, '`+string(st)+`', 1, 1)`)
	}
	for _, q := range steps {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := open(t, url, schema)
	for st, id := range ids {
		j, err := s.GetJob(ctx, "", id)
		if err != nil || j.State != st {
			t.Errorf("GetJob(%s) = %v, %v; want state %s", id, j, err, st)
		}
	}
	var hot, done int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM jobs_done)`).Scan(&hot, &done); err != nil {
		t.Fatal(err)
	}
	if hot != 1 || done != 2 {
		t.Errorf("after migration: %d rows in jobs, %d in jobs_done; want 1, 2", hot, done)
	}
}
