package test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// pgPair starts two servers on one fresh schema, sharing the admin token.
// Their engines poll the store only every 10 minutes for leases and
// events, so what happens on one server reaches the other within the
// test only through the database's change notifications.
func pgPair(t *testing.T) (a, b *clientServer) {
	t.Helper()
	dbURL := pgNeed(t)
	schema := pgSchema(t, dbURL)
	cfg := func() server.Config {
		return server.Config{
			DatabaseURL: dbURL,
			Schema:      schema,
			AdminToken:  "pg-multi-shared-token-0123456789abcdef",
			Engine: engine.Config{
				LeasePollInterval: 10 * time.Minute,
				EventPollInterval: 10 * time.Minute,
			},
		}
	}
	a, b = startClientServer(t, cfg()), startClientServer(t, cfg())
	pgWaitListeners(t, pgConn(t, dbURL), schema, 2)
	return a, b
}

// pgWaitListeners waits until n sessions LISTEN for the change hints of
// schema: a server's listener connects in the background after it
// starts, and a hint sent before that is lost (by design only a hint: the
// engine would find the job at its next poll).
func pgWaitListeners(t *testing.T, conn *pgx.Conn, schema string, n int) {
	t.Helper()
	listen := "LISTEN " + pgx.Identifier{"gantry_" + schema}.Sanitize()
	apiEventually(t, "the servers' change listeners", func() bool {
		var got int
		err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE query = $1", listen).Scan(&got)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		return got >= n
	})
}

// TestPostgresWakeAcrossServers submits jobs on server A while a worker
// long-polls on server B: B's worker picks each up without waiting for a
// poll (its lease call waits 30 s, the bound here is 15 s).
func TestPostgresWakeAcrossServers(t *testing.T) {
	a, b := pgPair(t)
	w := startClientWorker(t, b.c, worker.Options{Name: "on-b", Concurrency: 1}, func(w *worker.Worker) {
		w.RegisterFunc("pg.wake", func(_ context.Context, j *gantry.Job) (any, error) { return j.Attempt, nil })
	})
	for i := range 5 { // after the first, the worker is back in its long poll when the next job comes
		j := clientSubmit(t, a.c, client.JobRequest{Type: "pg.wake"})
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		got, err := a.c.Wait(ctx, j.ID)
		cancel()
		if err != nil {
			t.Fatalf("job %d submitted on A was not done by B's long-polling worker within the bound: %v", i, err)
		}
		if got.State != gantry.StateSucceeded || len(got.Attempts) != 1 || got.Attempts[0].WorkerID != w.w.ID() {
			t.Errorf("job %d: %s after attempts %+v, want succeeded once by B's worker %q", i, got.State, got.Attempts, w.w.ID())
		}
	}
}

// pgEvent is the part of an event compared across servers.
type pgEvent struct {
	Seq     int64
	Kind    string
	JobID   string
	State   gantry.State
	Attempt int
}

// TestPostgresEventsAcrossServers follows on server B the events of jobs
// submitted and processed through server A: B's stream has them all, in
// order, and a stream resumed on B after the last event received neither
// loses nor repeats any.
func TestPostgresEventsAcrossServers(t *testing.T) {
	a, b := pgPair(t)
	const jobs = 20
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	sub, err := b.c.Events(ctx, client.EventsOptions{Queue: "multi"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	startClientWorker(t, a.c, worker.Options{Name: "on-a", Concurrency: 4}, func(w *worker.Worker) {
		w.RegisterFunc("pg.events", func(_ context.Context, j *gantry.Job) (any, error) { return j.ID, nil })
	})
	for range jobs {
		clientSubmit(t, a.c, client.JobRequest{Type: "pg.events", Queue: "multi"})
	}

	var got []pgEvent
	succeeded := map[string]bool{}
	next := func(s *client.Subscription) {
		t.Helper()
		e, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("events on B after %d events: %v", len(got), err)
		}
		got = append(got, pgEvent{e.Seq, e.Kind, e.JobID, e.State, e.Attempt})
		if e.Kind == client.EventSucceeded {
			succeeded[e.JobID] = true
		}
	}
	for len(got) < jobs { // about a third of the events, then the stream breaks
		next(sub)
	}
	sub.Close()
	resumed, err := b.c.Events(ctx, client.EventsOptions{Queue: "multi", After: got[len(got)-1].Seq})
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Close()
	for len(succeeded) < jobs {
		next(resumed)
	}

	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("events on B out of order or repeated: seq %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	// A replays the same log: nothing was lost on B.
	replay, err := a.c.Events(ctx, client.EventsOptions{Queue: "multi", After: client.FromOldest})
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	var want []pgEvent
	for len(want) == 0 || want[len(want)-1].Seq < got[len(got)-1].Seq {
		e, err := replay.Next(ctx)
		if err != nil {
			t.Fatalf("replay on A after %d events: %v", len(want), err)
		}
		want = append(want, pgEvent{e.Seq, e.Kind, e.JobID, e.State, e.Attempt})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events seen on B differ from the log replayed on A (-A +B):\n%s", diff)
	}
	// Each job's transitions in order: submitted first, succeeded last.
	first, last := map[string]string{}, map[string]string{}
	for _, e := range got {
		if _, ok := first[e.JobID]; !ok {
			first[e.JobID] = e.Kind
		}
		last[e.JobID] = e.Kind
	}
	for id := range succeeded {
		if first[id] != client.EventSubmitted || last[id] != client.EventSucceeded {
			t.Errorf("job %s: first event %s, last %s; want %s then %s", id, first[id], last[id], client.EventSubmitted, client.EventSucceeded)
		}
	}
}
