package engine_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

// env is a started engine over a fresh SQLite store, inside a synctest
// bubble: time only moves when every goroutine waits, so tests sleep
// through backoffs and lease TTLs at no cost.
type env struct {
	t  *testing.T
	st *sqlite.Store
	e  *engine.Engine
}

// run calls f in a synctest bubble with a started engine configured by cfg.
func run(t *testing.T, cfg engine.Config, f func(t *testing.T, v *env)) {
	t.Helper()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, dir)
		cfg.Logger = testLogger(t)
		e := engine.New(st, cfg)
		e.Start(context.Background())
		defer e.Close()
		f(t, &env{t: t, st: st, e: e})
	})
}

// openStore opens the SQLite store in dir; it is closed when the test ends.
func openStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "gantry.db"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return st
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (v *env) submit(spec job.Spec) *job.Job {
	v.t.Helper()
	j, created, err := v.e.Submit(v.t.Context(), spec)
	if err != nil || !created {
		v.t.Fatalf("Submit(%+v) = %v, %t, %v", spec, j, created, err)
	}
	return j
}

func (v *env) register(w job.Worker) *job.Worker {
	v.t.Helper()
	got, err := v.e.RegisterWorker(v.t.Context(), &w)
	if err != nil {
		v.t.Fatalf("RegisterWorker: %v", err)
	}
	return got
}

// lease leases up to n jobs without waiting.
func (v *env) lease(workerID string, n int) []*job.Job {
	v.t.Helper()
	res, err := v.e.Lease(v.t.Context(), workerID, n, 0)
	if err != nil {
		v.t.Fatalf("Lease(%s): %v", workerID, err)
	}
	return res.Jobs
}

// leaseOne leases exactly one job without waiting.
func (v *env) leaseOne(workerID string) *job.Job {
	v.t.Helper()
	jobs := v.lease(workerID, 1)
	if len(jobs) != 1 {
		v.t.Fatalf("Lease(%s) got %d jobs, want 1", workerID, len(jobs))
	}
	return jobs[0]
}

// report reports one outcome and checks it was recorded.
func (v *env) report(workerID string, o store.Outcome) *job.Job {
	v.t.Helper()
	res, err := v.e.Report(v.t.Context(), workerID, []store.Outcome{o})
	if err != nil {
		v.t.Fatalf("Report(%+v): %v", o, err)
	}
	if len(res) != 1 || !res[0].OK {
		v.t.Fatalf("Report(%+v) = %+v, want one OK result", o, res)
	}
	return res[0].Job
}

func (v *env) get(id string) *job.Job {
	v.t.Helper()
	j, err := v.e.GetJob(v.t.Context(), "", id)
	if err != nil {
		v.t.Fatalf("GetJob(%s): %v", id, err)
	}
	return j
}

func succeeded(j *job.Job, result string) store.Outcome {
	return store.Outcome{JobID: j.ID, Token: j.Token, Outcome: job.OutcomeSucceeded, Result: json.RawMessage(result)}
}

// settle lets every goroutine run until it waits, then advances the fake
// clock by d.
func settle(d time.Duration) {
	synctest.Wait()
	if d > 0 {
		time.Sleep(d)
		synctest.Wait()
	}
}
