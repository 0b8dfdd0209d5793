package postgres_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// TestReadsJSONChunks checks that event chunks written as JSON (by
// versions before the binary encoding) are still read, numbered as
// written, before and after binary chunks.
func TestReadsJSONChunks(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	s := open(t, url, schema)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	// Two old chunks: seq 1-2 and 3.
	for _, c := range []struct {
		seq, first int64
		data       string
	}{
		{2, 1, `[{"seq":1,"kind":"job.submitted","at":"2026-11-23T10:00:00Z","tenant":"t","job_id":"j1","state":"queued"},
			{"seq":2,"kind":"job.started","at":"2026-11-23T10:00:00Z","tenant":"t","job_id":"j1","state":"running","attempt":1}]`},
		{3, 3, `[{"seq":3,"kind":"job.succeeded","at":"2026-11-23T10:00:00Z","tenant":"t","job_id":"j1","state":"succeeded","attempt":1}]`},
	} {
		if _, err := conn.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, "event_chunks"}.Sanitize()+` (seq, first_seq, at, data) VALUES ($1, $2, $3, $4)`,
			c.seq, c.first, at.UnixNano(), []byte(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "counters"}.Sanitize()+` SET value = 3 WHERE name = 'event_seq'`); err != nil {
		t.Fatal(err)
	}
	// A new chunk after them.
	sp := job.Spec{Type: "x", Tenant: "t"}
	sp.Normalize(at)
	j := job.NewFromSpec(&sp, job.NewID(at), at)
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: at, Jobs: []*job.Job{j}}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadEvents(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		Seq   int64
		Kind  string
		State gantry.State
	}
	var got []ev
	for _, e := range evs {
		got = append(got, ev{e.Seq, e.Kind, e.State})
	}
	want := []ev{{2, job.EventStarted, gantry.StateRunning}, {3, job.EventSucceeded, gantry.StateSucceeded}, {4, job.EventSubmitted, gantry.StateQueued}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadEvents(after 1) (-want +got):\n%s", diff)
	}
}
