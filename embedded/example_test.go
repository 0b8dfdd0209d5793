package embedded_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// quiet keeps the examples' output to what they print.
var quiet = slog.New(slog.DiscardHandler)

func tempDir() (string, func()) {
	dir, err := os.MkdirTemp("", "gantry-example")
	if err != nil {
		panic(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

// Submit a job and run it in the same program.
func Example() {
	ctx := context.Background()
	dir, cleanup := tempDir()
	defer cleanup()

	g, err := embedded.Open(ctx, embedded.Config{Path: filepath.Join(dir, "gantry.db"), Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	w := worker.New(g.Transport(), worker.Options{Concurrency: 4, Logger: quiet})
	w.RegisterFunc("greet", func(ctx context.Context, j *gantry.Job) (any, error) {
		var p struct{ Name string }
		if err := j.Decode(&p); err != nil {
			return nil, err
		}
		return "hello, " + p.Name, nil
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	j, err := g.Submit(ctx, embedded.JobSpec{Type: "greet", Params: map[string]string{"Name": "world"}})
	if err != nil {
		panic(err)
	}
	j, err = g.Wait(ctx, j.ID)
	if err != nil {
		panic(err)
	}
	var greeting string
	if err := j.DecodeResult(&greeting); err != nil {
		panic(err)
	}
	fmt.Println(j.State, greeting)

	stop() // graceful: running jobs finish, then the worker leaves
	if err := <-done; err != nil {
		panic(err)
	}
	// Output: succeeded hello, world
}

// Follow a batch of jobs and the job it triggers when all are done.
func ExampleGantry_SubmitBatch() {
	ctx := context.Background()
	dir, cleanup := tempDir()
	defer cleanup()

	g, err := embedded.Open(ctx, embedded.Config{Path: filepath.Join(dir, "gantry.db"), Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer g.Close()

	w := worker.New(g.Transport(), worker.Options{Logger: quiet})
	w.RegisterFunc("resize", func(ctx context.Context, j *gantry.Job) (any, error) { return nil, nil })
	w.RegisterFunc("notify", func(ctx context.Context, j *gantry.Job) (any, error) { return "sent", nil })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	b, ids, err := g.SubmitBatch(ctx, embedded.BatchSpec{
		Name:       "thumbnails",
		Jobs:       []embedded.JobSpec{{Type: "resize"}, {Type: "resize"}, {Type: "resize"}},
		OnComplete: &embedded.JobSpec{Type: "notify"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("jobs:", len(ids))

	sub, err := g.Subscribe(ctx, embedded.EventFilter{BatchID: b.ID, Kinds: []string{embedded.EventBatchDone}}, 0)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	if _, ok := sub.Next(ctx); !ok {
		panic(sub.Err())
	}
	b, err = g.GetBatch(ctx, b.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("done:", b.Done, "succeeded:", b.Counts[gantry.StateSucceeded])
	j, err := g.Wait(ctx, b.OnCompleteJobID)
	if err != nil {
		panic(err)
	}
	fmt.Println("notify:", j.State, string(j.Result))

	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// jobs: 3
	// done: true succeeded: 3
	// notify: succeeded "sent"
}

// Page through jobs, newest first.
func ExampleGantry_ListJobs() {
	ctx := context.Background()
	dir, cleanup := tempDir()
	defer cleanup()
	g, err := embedded.Open(ctx, embedded.Config{Path: filepath.Join(dir, "gantry.db"), Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	for i := range 3 {
		if _, err := g.Submit(ctx, embedded.JobSpec{Type: "report", Name: fmt.Sprintf("report %d", i)}); err != nil {
			panic(err)
		}
	}
	for j, err := range g.ListJobs(ctx, embedded.JobFilter{Type: "report", PageSize: 2}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(j.Name, j.State)
	}
	// Output:
	// report 2 queued
	// report 1 queued
	// report 0 queued
}
