package postgres_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
)

// wait is how long a test waits for something asynchronous before it
// fails; it bounds a hang, it does not measure speed.
const wait = 20 * time.Second

// submit inserts one queued job through s and returns it with the
// sequence number of its job.submitted event.
func submit(t *testing.T, s store.Store, now time.Time) (*job.Job, int64) {
	t.Helper()
	sp := job.Spec{Type: "t"}
	sp.Normalize(now)
	j := job.NewFromSpec(&sp, job.NewID(now), now)
	if _, err := s.InsertJobs(t.Context(), &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}}); err != nil {
		t.Fatalf("InsertJobs: %v", err)
	}
	evs, err := s.ReadEvents(t.Context(), 0, 100000)
	if err != nil {
		t.Fatalf("ReadEvents: %v", err)
	}
	for _, e := range evs {
		if e.JobID == j.ID && e.Kind == job.EventSubmitted {
			return j, e.Seq
		}
	}
	t.Fatalf("no job.submitted event for %s", j.ID)
	return nil, 0
}

// changes collects OnChange hints.
type changes struct {
	mu   sync.Mutex
	got  []store.Change
	more chan struct{}
}

func newChanges() *changes { return &changes{more: make(chan struct{}, 1)} }

func (c *changes) record(ch store.Change) {
	c.mu.Lock()
	c.got = append(c.got, ch)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *changes) reset() {
	c.mu.Lock()
	c.got = nil
	c.mu.Unlock()
}

// waitFor waits until a recorded change satisfies ok.
func (c *changes) waitFor(t *testing.T, what string, ok func(store.Change) bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		c.mu.Lock()
		for _, ch := range c.got {
			if ok(ch) {
				c.mu.Unlock()
				return
			}
		}
		got := append([]store.Change(nil), c.got...)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("no change hint for %s; got %+v", what, got)
		}
	}
}

// waitListening waits until s's listener has a session, different from
// not (0: any), and returns its PID.
func waitListening(t *testing.T, s *postgres.Store, not uint32) uint32 {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		if pid := postgres.ListenerPID(s); pid != 0 && pid != not {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("listener not connected after %s", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	const opens, migrates = 3, 3
	var wg sync.WaitGroup
	errs := make(chan error, opens+migrates)
	stores := make(chan *postgres.Store, opens)
	for range opens {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema, MaxConns: 2})
			errs <- err
			if err == nil {
				stores <- s
			}
		})
	}
	for range migrates {
		wg.Go(func() { errs <- postgres.Migrate(t.Context(), url, schema) })
	}
	wg.Wait()
	close(errs)
	close(stores)
	for s := range stores {
		t.Cleanup(func() { s.Close() })
	}
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open/Migrate: %v", err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var versions, counters int
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM `+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+`),
		(SELECT count(*) FROM `+pgx.Identifier{schema, "counters"}.Sanitize()+`)`).Scan(&versions, &counters); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	if versions != len(files) || counters != 1 {
		t.Errorf("after concurrent migrations: %d schema_migrations rows, %d counters rows; want %d, 1", versions, counters, len(files))
	}
}

func TestTokensGrowAcrossReopen(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	now := time.Now()
	var last int64
	for i := range 3 {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Schema: schema})
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		submit(t, s, now)
		leased, err := s.LeaseJobs(t.Context(), &store.LeaseJobsParams{Now: now, WorkerID: "w", Max: 10, TTL: time.Minute})
		if err != nil {
			s.Close()
			t.Fatalf("LeaseJobs: %v", err)
		}
		if len(leased) != 1 {
			s.Close()
			t.Fatalf("open %d: leased %d jobs, want 1", i, len(leased))
		}
		if leased[0].Token <= last {
			t.Errorf("open %d: token %d, want more than %d", i, leased[0].Token, last)
		}
		last = leased[0].Token
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestNotifyAcrossStores(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	a, b := open(t, url, schema), open(t, url, schema)
	ca, cb := newChanges(), newChanges()
	a.OnChange(ca.record)
	b.OnChange(cb.record)
	waitListening(t, a, 0)
	waitListening(t, b, 0)
	_, seq := submit(t, a, time.Now())
	for _, c := range []struct {
		name string
		c    *changes
	}{{"A (local commit)", ca}, {"B (NOTIFY)", cb}} {
		// Jobs and events may be announced by separate changes (events are
		// numbered after the commit).
		c.c.waitFor(t, c.name+": jobs available", func(ch store.Change) bool { return ch.JobsAvailable })
		c.c.waitFor(t, c.name+": the new events", func(ch store.Change) bool { return ch.LastSeq >= seq })
	}
}

// TestNotifyEventsOnlyTrailing: hints that only announce events are spaced
// out (eventHintGap), and the last of a quick run of them still reaches
// the other store.
func TestNotifyEventsOnlyTrailing(t *testing.T) {
	_, a, _, cb, _ := listeningPair(t)
	var ids []string
	for range 20 {
		j, _ := submit(t, a, time.Now())
		ids = append(ids, j.ID)
	}
	for _, id := range ids {
		// Canceling a queued job appends an event and makes nothing
		// leasable: an events-only hint.
		if _, err := a.CancelJob(t.Context(), "", id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	_, newest, err := a.EventBounds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cb.waitFor(t, "the events of the last cancel", func(ch store.Change) bool { return ch.LastSeq >= newest })
}

// listeningPair opens two stores on one fresh schema and waits until the
// second listens; cb records the second's changes, pid is its listener's
// backend.
func listeningPair(t *testing.T) (url string, a, b *postgres.Store, cb *changes, pid uint32) {
	t.Helper()
	url = needDB(t)
	schema := freshSchema(t, url)
	a, b = open(t, url, schema), open(t, url, schema)
	cb = newChanges()
	b.OnChange(cb.record)
	return url, a, b, cb, waitListening(t, b, 0)
}

func TestListenerReconnects(t *testing.T) {
	url, a, b, cb, pid := listeningPair(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed bool
	if err := conn.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	waitListening(t, b, pid)
	// The reconnection was reported before the new session showed; only a
	// NOTIFY can now bring B the seq of a job submitted through A.
	cb.reset()
	_, seq := submit(t, a, time.Now())
	cb.waitFor(t, "jobs available after a submit through A once B's listener was killed", func(ch store.Change) bool {
		return ch.JobsAvailable
	})
	cb.waitFor(t, "the events of a submit through A once B's listener was killed", func(ch store.Change) bool {
		return ch.LastSeq >= seq
	})
}

func TestOpenRejectsBadSchema(t *testing.T) {
	// The schema is checked before any connection is made.
	for _, schema := range []string{"Upper", "1digit", "semi;colon", "dash-ed", "x\"y"} {
		if s, err := postgres.Open(t.Context(), postgres.Config{URL: testURL(), Schema: schema}); err == nil {
			s.Close()
			t.Errorf("Open(Schema %q) = nil error, want an error", schema)
		}
	}
}

func TestOpenUnreachableIsUnavailable(t *testing.T) {
	// Port 1 on the loopback refuses connections at once.
	_, err := postgres.Open(t.Context(), postgres.Config{URL: "postgres://postgres@127.0.0.1:1/test?connect_timeout=2"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open(unreachable) error = %v, want ErrUnavailable", err)
	}
}

func TestCallsWhileDatabaseGoneAreUnavailable(t *testing.T) {
	url := needDB(t)
	schema := freshSchema(t, url)
	s := open(t, withParam(url, "application_name", schema), schema)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Kill every pooled session of this store; the next call on a dead
	// connection fails, and the pool then reconnects.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND query NOT LIKE 'LISTEN%'`, schema); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := s.ReadEvents(t.Context(), 0, 10)
		if err == nil {
			return // the pool replaced the dead connection
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ReadEvents on a killed connection: error %v, want ErrUnavailable", err)
		}
	}
	t.Errorf("ReadEvents failed 3 times after the sessions were killed; the pool did not recover")
}

// withParam adds a connection setting to a URL or key=value connection
// string.
func withParam(conn, key, value string) string {
	switch {
	case !strings.HasPrefix(conn, "postgres://") && !strings.HasPrefix(conn, "postgresql://"):
		return conn + " " + key + "=" + value
	case strings.Contains(conn, "?"):
		return conn + "&" + key + "=" + value
	}
	return conn + "?" + key + "=" + value
}
