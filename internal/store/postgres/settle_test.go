package postgres_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// TestSettleBatchesAfterCrash leaves a closed batch whose jobs have all
// ended unmarked, as a server that crashed between committing the last
// job's end and settling the batch would, and checks that SettleBatches
// marks it done (once) and emits batch.done.
func TestSettleBatchesAfterCrash(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	s := open(t, url, schema)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })

	now := time.Now()
	b := &job.Batch{ID: job.NewID(now), Tenant: "default", CreatedAt: now, Closed: true}
	sp := job.Spec{Type: "t", Tenant: "default"}
	sp.Normalize(now)
	j := job.NewFromSpec(&sp, job.NewID(now), now)
	j.BatchID = b.ID
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}, NewBatch: b}); err != nil {
		t.Fatal(err)
	}
	leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, Max: 1, TTL: time.Minute})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseJobs = %d jobs, %v; want 1", len(leased), err)
	}
	if _, err := s.FinishJobs(ctx, &store.FinishJobsParams{Now: now, Outcomes: []store.Outcome{
		{JobID: j.ID, Token: leased[0].Token, Outcome: job.OutcomeSucceeded},
	}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetBatch(ctx, "", b.ID); err != nil || !got.Done {
		t.Fatalf("after its only job succeeded: batch done = %v, %v; want true", got != nil && got.Done, err)
	}
	if n, err := s.SettleBatches(ctx, now, 100); err != nil || n != 0 {
		t.Fatalf("SettleBatches with nothing to settle = %d, %v; want 0", n, err)
	}

	// The crash: the batch's job ended, the batch was never marked.
	if _, err := conn.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "batches"}.Sanitize()+` SET done = false, finished_at = 0 WHERE id = $1`, b.ID); err != nil {
		t.Fatal(err)
	}
	_, last, err := s.EventBounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Second)
	if n, err := s.SettleBatches(ctx, later, 100); err != nil || n != 1 {
		t.Fatalf("SettleBatches = %d, %v; want 1", n, err)
	}
	got, err := s.GetBatch(ctx, "", b.ID)
	if err != nil || !got.Done || !got.FinishedAt.Equal(later.Truncate(time.Microsecond)) && !got.FinishedAt.Equal(later) {
		t.Errorf("settled batch: done %v finished_at %v, %v; want done at %v", got != nil && got.Done, got.FinishedAt, err, later)
	}
	evs, err := s.ReadEvents(ctx, last, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Kind != job.EventBatchDone || evs[0].BatchID != b.ID {
		t.Errorf("events after settling = %+v, want one batch.done of %s", evs, b.ID)
	}
	if n, err := s.SettleBatches(ctx, later, 100); err != nil || n != 0 {
		t.Errorf("SettleBatches again = %d, %v; want 0", n, err)
	}
}
