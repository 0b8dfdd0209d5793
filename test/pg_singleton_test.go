package test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/worker"
)

// TestPostgresSingletonAcrossServers submits jobs sharing a singleton key
// through two servers on one database, with workers of concurrency 4 on
// both: at no moment do two of them run, every one of them succeeds, and
// jobs of another key run alongside.
func TestPostgresSingletonAcrossServers(t *testing.T) {
	dbURL := pgNeed(t)
	schema := pgSchema(t, dbURL)
	cfg := server.Config{
		DatabaseURL: dbURL,
		Schema:      schema,
		AdminToken:  "pg-singleton-token-0123456789abcdef",
		Engine:      engine.Config{LeasePollInterval: server.PostgresPollInterval},
	}
	a, b := startClientServer(t, cfg), startClientServer(t, cfg)

	type span struct {
		key        string
		start, end time.Time
	}
	var (
		mu    sync.Mutex
		spans []span
	)
	handler := func(_ context.Context, j *gantry.Job) (any, error) {
		var p struct{ Key string }
		if err := j.Decode(&p); err != nil {
			return nil, gantry.Permanent(err)
		}
		s := span{key: p.Key, start: time.Now()}
		time.Sleep(20 * time.Millisecond)
		s.end = time.Now()
		mu.Lock()
		spans = append(spans, s)
		mu.Unlock()
		return nil, nil
	}
	for _, cs := range []*clientServer{a, b} {
		startClientWorker(t, cs.c, worker.Options{Concurrency: 4}, func(w *worker.Worker) {
			w.RegisterFunc("pg.singleton", handler)
		})
	}

	var ids []string
	for i := range 12 {
		cs := []*clientServer{a, b}[i%2]
		for _, key := range []string{"nightly", "other"} {
			j := clientSubmit(t, cs.c, client.JobRequest{Type: "pg.singleton", SingletonKey: key, Params: map[string]string{"key": key}})
			ids = append(ids, j.ID)
		}
	}
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		got, err := a.c.Wait(ctx, id)
		cancel()
		if err != nil || got.State != gantry.StateSucceeded {
			t.Fatalf("job %s: %v (state %v), want succeeded", id, err, got)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	byKey := map[string][]span{}
	for _, s := range spans {
		byKey[s.key] = append(byKey[s.key], s)
	}
	for key, ss := range byKey {
		if len(ss) != 12 {
			t.Errorf("key %s: %d runs, want 12 (each job once)", key, len(ss))
		}
		slices.SortFunc(ss, func(x, y span) int { return x.start.Compare(y.start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[i-1].end) {
				t.Errorf("key %s: a run started at %v while the one started at %v ran until %v",
					key, ss[i].start.Format(time.StampMicro), ss[i-1].start.Format(time.StampMicro), ss[i-1].end.Format(time.StampMicro))
			}
		}
	}
	// The two keys do not wait for each other: some runs overlap.
	overlap := false
	for _, x := range byKey["nightly"] {
		for _, y := range byKey["other"] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				overlap = true
			}
		}
	}
	if !overlap {
		t.Logf("no run of one key overlapped a run of the other (allowed, but unlikely)")
	}
}
