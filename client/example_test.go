package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/worker"
)

// Submit a job to the server named by GANTRY_SERVER and wait for its
// result. FromEnv finds the token in GANTRY_TOKEN, or in the admin token
// file a local server writes (./gantry-data/admin.token).
func Example() {
	ctx := context.Background()
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	j, err := c.Submit(ctx, client.JobRequest{
		Type:   "email.send",
		Params: map[string]string{"to": "ada@example.com"},
	})
	if err != nil {
		log.Fatal(err)
	}
	j, err = c.Wait(ctx, j.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(j.ID, j.State, string(j.Result))
}

// Errors of the server match sentinel errors, and carry the problem the
// server described.
func ExampleError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"type":"urn:gantry:problem:invalid-request","title":"Bad Request","status":400,`+
			`"detail":"priority must be from -100 to 100","field":"priority"}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.WithToken("token"))
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.Submit(context.Background(), client.JobRequest{Type: "report", Priority: 500})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(errors.Is(err, client.ErrInvalid), e.Status, e.Field)
	}
	// Output: true 400 priority
}

// Page through the failed jobs: the iterator reads pages as it goes.
func ExampleClient_ListJobs() {
	ctx := context.Background()
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	for j, err := range c.ListJobs(ctx, client.ListJobsOptions{State: gantry.StateFailed}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(j.ID, j.Type, j.Error)
	}
}

// Follow the events of a batch as they happen. A broken stream is resumed
// where it stopped, without loss.
func ExampleClient_Events() {
	ctx := context.Background()
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.Events(ctx, client.EventsOptions{BatchID: "0193…", Kinds: []string{client.EventSucceeded, client.EventFailed, client.EventBatchDone}})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for e := range sub.Events() {
		fmt.Println(e.Seq, e.Kind, e.JobID)
		if e.Kind == client.EventBatchDone {
			return
		}
	}
	log.Fatal(sub.Err())
}

// Run a Go worker against a remote server. SIGTERM drains it: no new
// leases, running jobs finish within the grace period, and the rest go to
// other workers at once.
func ExampleClient_WorkerTransport() {
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	w := worker.New(c.WorkerTransport(), worker.Options{Name: "mailer", Concurrency: 20})
	w.RegisterFunc("email.send", func(ctx context.Context, j *gantry.Job) (any, error) {
		var p struct{ To string }
		if err := j.Decode(&p); err != nil {
			return nil, err
		}
		_ = j.Progress(ctx, 50, "sending to "+p.To)
		return map[string]string{"sent_to": p.To}, nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
