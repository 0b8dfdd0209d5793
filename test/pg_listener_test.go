package test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// TestPostgresListenerKilledFallsBackToPolling kills server B's listener
// connection (pg_terminate_backend) again and again while jobs are
// submitted on server A and a worker long-polls on B: without
// notifications, B's waiting lease call still finds each job by polling,
// within 2 s of its submission (RELIABILITY.md rule 8: notifications are
// only a hint). Once the killing stops, B's listener reconnects.
func TestPostgresListenerKilledFallsBackToPolling(t *testing.T) {
	dbURL := pgNeed(t)
	schema := pgSchema(t, dbURL)
	appB := schema + "_b"
	cfg := func(dsn string) server.Config {
		return server.Config{
			DatabaseURL: dsn,
			Schema:      schema,
			AdminToken:  "pg-listener-token-0123456789abcdef",
			Engine: engine.Config{
				LeasePollInterval: server.PostgresPollInterval,
				EventPollInterval: 10 * time.Minute,
			},
		}
	}
	a := startClientServer(t, cfg(dbURL))
	b := startClientServer(t, cfg(withAppName(t, dbURL, appB)))
	conn := pgConn(t, dbURL)
	pgWaitListeners(t, conn, schema, 2)
	firstPID := listenerPID(t, conn, appB)

	startClientWorker(t, b.c, worker.Options{Name: "on-b", Concurrency: 1}, func(w *worker.Worker) {
		w.RegisterFunc("pg.poll", func(context.Context, *gantry.Job) (any, error) { return nil, nil })
	})

	// The killer terminates B's listening session as soon as it appears,
	// so no notification reaches B while it runs.
	killCtx, stopKilling := context.WithCancel(t.Context())
	var kills atomic.Int64
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		killer, err := pgx.Connect(killCtx, dbURL)
		if err != nil {
			return
		}
		defer killer.Close(context.Background())
		for killCtx.Err() == nil {
			var n int64
			err := killer.QueryRow(killCtx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND query LIKE 'LISTEN%'`, appB).Scan(&n)
			if err == nil {
				kills.Add(n)
			}
			select {
			case <-killCtx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	apiEventually(t, "B's listener to be killed", func() bool { return kills.Load() > 0 })

	for i := range 3 {
		j := clientSubmit(t, a.c, client.JobRequest{Type: "pg.poll"})
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		got, err := a.c.Wait(ctx, j.ID)
		cancel()
		if err != nil {
			t.Fatalf("job %d submitted on A while B's listener was down: not done: %v", i, err)
		}
		if got.State != gantry.StateSucceeded {
			t.Fatalf("job %d: state %s, want succeeded", i, got.State)
		}
		if pickup := got.StartedAt.Sub(got.CreatedAt); pickup > 2*time.Second {
			t.Errorf("job %d picked up %v after submission with B's listener down; want within 2 s (polling)", i, pickup)
		}
	}
	stopKilling()
	<-killed
	if kills.Load() == 0 {
		t.Fatal("B's listener was never killed; the test proved nothing")
	}

	// The listener comes back on its own, on a new session.
	apiEventually(t, "B's listener to reconnect", func() bool {
		pid := listenerPID(t, conn, appB)
		return pid != 0 && pid != firstPID
	})
}

// listenerPID returns the backend PID of the session of application name
// app that LISTENs, 0 if there is none.
func listenerPID(t *testing.T, conn *pgx.Conn, app string) int32 {
	t.Helper()
	var pid int32
	err := conn.QueryRow(t.Context(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, app).Scan(&pid)
	if err != nil {
		t.Fatalf("read pg_stat_activity: %v", err)
	}
	return pid
}

// withAppName sets the application_name of a PostgreSQL URL, so that a
// server's sessions can be told apart in pg_stat_activity.
func withAppName(t *testing.T, dsn, app string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Skipf("cannot set application_name on database URL %q", dsn)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}
