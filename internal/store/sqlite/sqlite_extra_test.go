package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newJob(t *testing.T, typ string, now time.Time) *job.Job {
	t.Helper()
	return newSpecJob(t, job.Spec{Type: typ}, now)
}

// newSpecJob makes the job sp describes, as the engine would.
func newSpecJob(t *testing.T, sp job.Spec, now time.Time) *job.Job {
	t.Helper()
	sp.Normalize(now)
	if err := sp.Validate(now, job.Limits{}); err != nil {
		t.Fatal(err)
	}
	return job.NewFromSpec(&sp, job.NewID(now), now)
}

// openTemp opens a store on a new file, closed at the end of the test
// (reopen may close it before), and returns it with the file's path.
func openTemp(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "g.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// reopen closes s and opens the database at path again, closed at the
// end of the test.
func reopen(t *testing.T, s *sqlite.Store, path string) *sqlite.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestReopenKeepsCounters checks that fencing tokens and event sequence
// numbers keep growing across a restart (RELIABILITY.md rule 2).
func TestReopenKeepsCounters(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	j := newJob(t, "a", t0)
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, Jobs: []*job.Job{j}}); err != nil {
		t.Fatal(err)
	}
	leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: t0, WorkerID: "w", Max: 1, TTL: time.Second})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseJobs = %v, %v", leased, err)
	}
	token1 := leased[0].Token
	_, seq1, err := s.EventBounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The job finishes and is deleted by retention, so no row holds the
	// highest token any more.
	if _, err := s.FinishJobs(ctx, &store.FinishJobsParams{Now: t0, Outcomes: []store.Outcome{{JobID: j.ID, Token: token1, Outcome: job.OutcomeSucceeded}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Retain(ctx, &store.RetainParams{JobsBefore: t0.Add(time.Hour), EventsBefore: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	j2 := newJob(t, "a", t0)
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, Jobs: []*job.Job{j2}}); err != nil {
		t.Fatal(err)
	}
	leased, err = s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: t0, WorkerID: "w", Max: 1, TTL: time.Second})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseJobs after reopen = %v, %v", leased, err)
	}
	if leased[0].Token <= token1 {
		t.Errorf("token after reopen = %d, want > %d", leased[0].Token, token1)
	}
	evs, err := s.ReadEvents(ctx, 0, 100)
	if err != nil || len(evs) == 0 {
		t.Fatalf("ReadEvents = %v, %v", evs, err)
	}
	if evs[0].Seq <= seq1 {
		t.Errorf("first event after reopen has seq %d, want > %d", evs[0].Seq, seq1)
	}
}

// TestReopenKeepsSingletons checks that a store reopened over a running
// singleton job does not lease the next job of its key: claims in one
// queue skip the singleton check only while no job with a key can be
// waiting, which the store learns again on opening.
func TestReopenKeepsSingletons(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	var jobs []*job.Job
	for range 2 {
		jobs = append(jobs, newSpecJob(t, job.Spec{Type: "a", SingletonKey: "k"}, t0))
	}
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	leased, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: t0, WorkerID: "w", Max: 2, TTL: time.Hour})
	if err != nil || len(leased) != 1 {
		t.Fatalf("LeaseJobs = %v, %v; want the first job of the key only", leased, err)
	}
	s = reopen(t, s, path)
	leased, err = s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: t0, WorkerID: "w", Max: 2, TTL: time.Hour})
	if err != nil || len(leased) != 0 {
		t.Fatalf("LeaseJobs after reopen = %v, %v; want nothing while the key's job runs", leased, err)
	}
}

// TestGroupCommitIsolation runs many calls at once, some of which fail, and
// checks that each failing call changed nothing while the others, sharing
// its transaction, committed.
func TestGroupCommitIsolation(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	closed := &job.Batch{ID: job.NewID(t0), Tenant: job.DefaultTenant, CreatedAt: t0, Closed: true}
	if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, NewBatch: closed}); err != nil {
		t.Fatal(err)
	}
	_, before, err := s.EventBounds(ctx) // after the empty closed batch's batch.done
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			j := newJob(t, fmt.Sprint("t", i), t0)
			ids[i] = j.ID
			p := &store.InsertJobsParams{Now: t0, Jobs: []*job.Job{j}}
			if i%2 == 1 {
				j.BatchID = closed.ID
				p.AddToBatch = closed.ID
			}
			_, errs[i] = s.InsertJobs(ctx, p)
		})
	}
	wg.Wait()
	for i := range n {
		_, err := s.GetJob(ctx, "", ids[i])
		if i%2 == 1 {
			if !errors.Is(errs[i], store.ErrConflict) {
				t.Errorf("insert %d into a closed batch: err = %v, want ErrConflict", i, errs[i])
			}
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("job %d of a failed insert: GetJob err = %v, want ErrNotFound", i, err)
			}
			continue
		}
		if errs[i] != nil || err != nil {
			t.Errorf("insert %d: %v; GetJob: %v", i, errs[i], err)
		}
	}
	evs, err := s.ReadEvents(ctx, before, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n/2 {
		t.Errorf("got %d events, want %d (one per committed insert)", len(evs), n/2)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq != evs[i-1].Seq+1 {
			t.Errorf("event seq %d follows %d: gap", evs[i].Seq, evs[i-1].Seq)
		}
	}
}

// TestClosed checks that calls after Close fail with ErrClosed.
func TestClosed(t *testing.T) {
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.InsertJobs(t.Context(), &store.InsertJobsParams{Now: t0, Jobs: []*job.Job{newJob(t, "a", t0)}})
	if !errors.Is(err, store.ErrClosed) {
		t.Errorf("InsertJobs after Close: err = %v, want ErrClosed", err)
	}
}

// TestOpenConfig checks Config validation.
func TestOpenConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sqlite.Config
	}{
		{"no path", sqlite.Config{}},
		{"bad synchronous", sqlite.Config{Path: filepath.Join(t.TempDir(), "x.db"), Synchronous: "OFF"}},
	} {
		if s, err := sqlite.Open(t.Context(), tc.cfg); err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded, want an error", tc.name)
		}
	}
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "n.db"), Synchronous: "normal"})
	if err != nil {
		t.Fatalf("Open with NORMAL: %v", err)
	}
	s.Close()
}

// TestCheckpointerCopiesWAL checks that committed pages reach the database
// file without the writer checkpointing: far fewer pages are written here
// than the WAL size at which the writer would do it itself.
func TestCheckpointerCopiesWAL(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	size := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	for range 30 {
		jobs := make([]*job.Job, 100)
		for i := range jobs {
			jobs[i] = newJob(t, "a", t0)
		}
		if _, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: t0, Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
	}
	const grown = 256 << 10 // 3,000 jobs take more than this
	deadline := time.Now().Add(10 * time.Second)
	// The counter moves once the checkpoint has returned, just after the
	// file grew.
	for size()-before < grown || s.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("in 10 s after the inserts, the database file grew by %d bytes (want at least %d) and Stats().Checkpoints = %d (want > 0): the WAL was not checkpointed", size()-before, grown, s.Stats().Checkpoints)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
