package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

func TestSmoke(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	var jobs []*job.Job
	for i := range 10 {
		sp := job.Spec{Type: "t", Priority: i % 3}
		sp.Normalize(now)
		jobs = append(jobs, job.NewFromSpec(&sp, job.NewID(now), now))
	}
	res, err := s.InsertJobs(ctx, &store.InsertJobsParams{Now: now, Jobs: jobs})
	if err != nil || len(res) != 10 {
		t.Fatal(err, len(res))
	}
	got, err := s.LeaseJobs(ctx, &store.LeaseJobsParams{Now: now, WorkerID: "w", Max: 4, TTL: time.Second})
	if err != nil || len(got) != 4 {
		t.Fatal(err, len(got))
	}
	for _, j := range got {
		t.Log(j.ID, j.Priority, j.Token, j.Attempt, j.State)
	}
	var outs []store.Outcome
	for _, j := range got {
		outs = append(outs, store.Outcome{JobID: j.ID, Token: j.Token, Outcome: job.OutcomeSucceeded})
	}
	fr, err := s.FinishJobs(ctx, &store.FinishJobsParams{Now: now, Outcomes: outs})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fr {
		if !r.OK {
			t.Fatal("not ok", r)
		}
	}
	j, err := s.GetJob(ctx, "", got[0].ID)
	t.Logf("%+v %v", j, err)
	ev, err := s.ReadEvents(ctx, 0, 100)
	t.Log(len(ev), err)
	o, n, err := s.EventBounds(ctx)
	t.Log(o, n, err)
}
