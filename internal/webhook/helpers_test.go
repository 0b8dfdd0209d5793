package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
	"github.com/gantryhq/gantry/internal/webhook"
	"github.com/gantryhq/gantry/internal/wire"
)

// patience bounds every wait of these tests: a liveness bound, generous
// for a loaded machine, never a performance assertion.
const patience = 30 * time.Second

// env is a SQLite store in a temporary directory and a running event hub
// over it, both closed when the test ends.
type env struct {
	t   *testing.T
	st  *sqlite.Store
	hub *event.Hub
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gantry.db")})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	hub := event.NewHub(st, event.Options{PollInterval: 50 * time.Millisecond, Logger: testLogger(t)})
	done := make(chan error, 1)
	go func() { done <- hub.Run(context.Background()) }()
	t.Cleanup(func() {
		hub.Close()
		if err := <-done; err != nil {
			t.Errorf("hub.Run = %v, want nil after Close", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return &env{t: t, st: st, hub: hub}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// opts are fast options for tests: private targets allowed (receivers
// listen on loopback), short backoff and polls.
func opts(t *testing.T) webhook.Options {
	return webhook.Options{
		AllowPrivate:   true,
		Timeout:        10 * time.Second,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     20 * time.Millisecond,
		PollInterval:   200 * time.Millisecond,
		RelistInterval: time.Second,
		Logger:         testLogger(t),
	}
}

// start runs a service with o until the returned stop is called (at the
// latest when the test ends); stop waits for Run to return.
func (e *env) start(o webhook.Options) (*webhook.Service, func()) {
	e.t.Helper()
	s := webhook.New(e.st, e.hub, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				e.t.Errorf("Run = %v, want context.Canceled", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return s, stop
}

// create creates a webhook through s and fails the test on error.
func (e *env) create(s *webhook.Service, tenant, url string, kinds []string, batchID string) *job.Webhook {
	e.t.Helper()
	w, err := s.Create(e.t.Context(), tenant, url, kinds, batchID)
	if err != nil {
		e.t.Fatalf("Create(%q, %q, %q, %q): %v", tenant, url, kinds, batchID, err)
	}
	return w
}

// submit stores a job of tenant (in batch batchID, if set): one
// job.submitted event.
func (e *env) submit(tenant, batchID string) *job.Job {
	e.t.Helper()
	j := e.record(tenant, batchID)
	if _, err := e.st.InsertJobs(e.t.Context(), &store.InsertJobsParams{Now: time.Now(), Jobs: []*job.Job{j}}); err != nil {
		e.t.Fatalf("InsertJobs: %v", err)
	}
	return j
}

// newBatch stores an open batch of tenant with one job.
func (e *env) newBatch(tenant string) (*job.Batch, *job.Job) {
	e.t.Helper()
	now := time.Now()
	b := &job.Batch{ID: job.NewID(now), Tenant: tenant, Name: "b", CreatedAt: now}
	j := e.record(tenant, b.ID)
	if _, err := e.st.InsertJobs(e.t.Context(), &store.InsertJobsParams{Now: now, Jobs: []*job.Job{j}, NewBatch: b}); err != nil {
		e.t.Fatalf("InsertJobs(new batch): %v", err)
	}
	return b, j
}

func (e *env) record(tenant, batchID string) *job.Job {
	now := time.Now()
	sp := job.Spec{Tenant: tenant, Type: "render", BatchID: batchID}
	sp.Normalize(now)
	if err := sp.Validate(now, job.Limits{}); err != nil {
		e.t.Fatalf("Validate: %v", err)
	}
	return job.NewFromSpec(&sp, job.NewID(now), now)
}

// cancel cancels a queued job: one job.canceled event.
func (e *env) cancel(id string) {
	e.t.Helper()
	if _, err := e.st.CancelJob(e.t.Context(), "", id, time.Now()); err != nil {
		e.t.Fatalf("CancelJob: %v", err)
	}
}

// lastSeq returns the newest event's seq.
func (e *env) lastSeq() int64 {
	e.t.Helper()
	_, newest, err := e.st.EventBounds(e.t.Context())
	if err != nil {
		e.t.Fatalf("EventBounds: %v", err)
	}
	return newest
}

// events returns the stored events with Seq > after.
func (e *env) events(after int64) []job.Event {
	e.t.Helper()
	evs, err := e.st.ReadEvents(e.t.Context(), after, 10000)
	if err != nil {
		e.t.Fatalf("ReadEvents: %v", err)
	}
	return evs
}

// waitWebhook polls the stored webhook until ok accepts it, and returns it.
func (e *env) waitWebhook(id, what string, ok func(w *job.Webhook) bool) *job.Webhook {
	e.t.Helper()
	deadline := time.Now().Add(patience)
	var w *job.Webhook
	for {
		var err error
		w, err = e.st.GetWebhook(e.t.Context(), "", id)
		if err != nil {
			e.t.Fatalf("GetWebhook(%s): %v", id, err)
		}
		if ok(w) {
			return w
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("webhook %s never %s; it is %+v", id, what, w)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCursor waits until webhook id has handled (and saved) every event up
// to seq. Deliveries are recorded before they are answered and the cursor
// moves only after the answer, so then every delivery up to seq has been
// recorded by its receiver.
func (e *env) waitCursor(id string, seq int64) *job.Webhook {
	e.t.Helper()
	return e.waitWebhook(id, "reached the cursor", func(w *job.Webhook) bool { return w.Cursor >= seq })
}

// delivery is one request a receiver got.
type delivery struct {
	Header http.Header
	Body   []byte
}

// receiver is a webhook endpoint on loopback that records every request
// and answers as its policy says.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// respond answers the n-th request (from 1); nil: 204.
	respond atomic.Pointer[func(n int, w http.ResponseWriter)]

	mu  sync.Mutex
	got []delivery
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		r.mu.Lock()
		r.got = append(r.got, delivery{Header: req.Header.Clone(), Body: body})
		n := len(r.got)
		r.mu.Unlock()
		if f := r.respond.Load(); f != nil {
			(*f)(n, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// answer sets the policy: the n-th request gets status(n).
func (r *receiver) answer(status func(n int) int) {
	f := func(n int, w http.ResponseWriter) { w.WriteHeader(status(n)) }
	r.respond.Store(&f)
}

// respondWith sets the policy: every request is answered by f.
func (r *receiver) respondWith(f func(n int, w http.ResponseWriter)) { r.respond.Store(&f) }

// URL is the receiver's URL, with a path.
func (r *receiver) URL() string { return r.srv.URL + "/hook" }

// deliveries returns what the receiver got so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// events decodes the bodies received so far.
func (r *receiver) events() []wire.Event {
	r.t.Helper()
	var out []wire.Event
	for _, d := range r.deliveries() {
		var ev wire.Event
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			r.t.Fatalf("delivery body %q: %v", d.Body, err)
		}
		out = append(out, ev)
	}
	return out
}

// summary is "kind job_id" of each event, for comparisons.
func summary(evs []wire.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind + " " + e.JobID
	}
	return out
}
