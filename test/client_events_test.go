package test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/worker"
)

// clientNextEvent waits for the next event of a subscription, with a generous
// deadline.
func clientNextEvent(t *testing.T, sub *client.Subscription) client.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	e, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next() = %v", err)
	}
	return e
}

func TestClientEventsFollowJobs(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c := s.c
	sub, err := c.Events(t.Context(), client.EventsOptions{Queue: "followed"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	release := make(chan struct{})
	startClientWorker(t, c, worker.Options{Name: "ev"}, func(w *worker.Worker) {
		w.RegisterFunc("steps", func(ctx context.Context, j *gantry.Job) (any, error) {
			if err := j.Progress(ctx, 40, "step 2 of 5"); err != nil {
				return nil, err
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
	})
	clientSubmit(t, c, client.JobRequest{Type: "other", Queue: "not-followed"})
	j := clientSubmit(t, c, client.JobRequest{Type: "steps", Queue: "followed"})

	var kinds []string
	var last int64
	for {
		e := clientNextEvent(t, sub)
		if e.JobID != j.ID || e.Queue != "followed" || e.Type != "steps" || e.Tenant != "default" {
			t.Errorf("event %+v is not of job %s", e, j.ID)
		}
		if e.Seq < last {
			t.Errorf("event seq %d after %d", e.Seq, last)
		}
		last = e.Seq
		kinds = append(kinds, e.Kind)
		if e.Kind == client.EventProgress {
			if e.Progress == nil || *e.Progress != (client.Progress{Percent: 40, Message: "step 2 of 5"}) {
				t.Errorf("progress event = %+v", e)
			}
			close(release)
		}
		if e.Kind == client.EventSucceeded {
			if e.State != gantry.StateSucceeded || e.At.IsZero() {
				t.Errorf("succeeded event = %+v", e)
			}
			break
		}
	}
	want := []string{client.EventSubmitted, client.EventStarted, client.EventProgress, client.EventSucceeded}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("event kinds (-want +got):\n%s", diff)
	}
	if sub.LastSeq() != last {
		t.Errorf("LastSeq() = %d, want %d", sub.LastSeq(), last)
	}
}

// clientCutProxy forwards requests to a server and can break the streams in
// flight and refuse new requests for a while, like a flaky network.
type clientCutProxy struct {
	rp *httputil.ReverseProxy

	mu      sync.Mutex
	gen     context.Context
	cut     context.CancelFunc
	down    bool
	lastIDs []string // Last-Event-ID of each event stream request
}

func newClientCutProxy(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &clientCutProxy{rp: httputil.NewSingleHostReverseProxy(u)}
	p.rp.FlushInterval = -1
	p.rp.ErrorLog = nil
	p.gen, p.cut = context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(p)
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	t.Cleanup(func() {
		p.mu.Lock()
		p.cut()
		p.mu.Unlock()
		srv.Close()
	})
	clientProxies.Store(srv, p)
	return srv
}

var clientProxies sync.Map // *httptest.Server → *clientCutProxy

func clientProxyOf(srv *httptest.Server) *clientCutProxy {
	p, _ := clientProxies.Load(srv)
	return p.(*clientCutProxy)
}

func (p *clientCutProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		http.Error(w, "proxy down", http.StatusBadGateway)
		return
	}
	gen := p.gen
	if r.URL.Path == "/v1/events" {
		p.lastIDs = append(p.lastIDs, r.Header.Get("Last-Event-ID"))
	}
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(gen, cancel)
	defer stop()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// breakStreams ends the streams in flight and refuses requests until
// restore.
func (p *clientCutProxy) breakStreams() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.cut()
	p.gen, p.cut = context.WithCancel(context.Background())
}

func (p *clientCutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func TestClientEventsResumeWithoutLoss(t *testing.T) {
	s := startClientServer(t, clientConfig())
	proxy := newClientCutProxy(t, s.url)
	pc, err := client.New(proxy.URL, client.WithToken(s.srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := pc.Events(t.Context(), client.EventsOptions{Queue: "resumed", Kinds: []string{client.EventSubmitted}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	var want, got []string
	submit := func(n int) {
		for range n {
			want = append(want, clientSubmit(t, s.c, client.JobRequest{Type: "x", Queue: "resumed"}).ID)
		}
	}
	receive := func(n int) {
		for range n {
			got = append(got, clientNextEvent(t, sub).JobID)
		}
	}
	submit(3)
	receive(3)
	seq := sub.LastSeq()

	// The stream breaks; events happen while the client cannot reconnect.
	clientProxyOf(proxy).breakStreams()
	submit(3)
	clientSubmit(t, s.c, client.JobRequest{Type: "x", Queue: "elsewhere"})
	clientProxyOf(proxy).restore()
	receive(3)
	submit(1)
	receive(1)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs of the events received (-want +got):\n%s", diff)
	}
	p := clientProxyOf(proxy)
	p.mu.Lock()
	lastIDs := append([]string(nil), p.lastIDs...)
	p.mu.Unlock()
	if len(lastIDs) != 2 || lastIDs[0] != "" || lastIDs[1] != strconv.FormatInt(seq, 10) {
		t.Errorf("Last-Event-ID of the stream requests = %q, want none then %d", lastIDs, seq)
	}
}

func TestClientEventsTooOld(t *testing.T) {
	cfg := clientConfig()
	cfg.Engine = engine.Config{EventRetention: time.Millisecond, RetentionInterval: 10 * time.Millisecond}
	s := startClientServer(t, cfg)
	c := s.c
	first := clientSubmit(t, c, client.JobRequest{Type: "x"})
	sub, err := c.Events(t.Context(), client.EventsOptions{After: client.FromOldest, JobID: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	var last error
	clientWaitFor(t, "the resume point to be older than the retained events", func() bool {
		clientSubmit(t, c, client.JobRequest{Type: "x"})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		sub, err := c.Events(ctx, client.EventsOptions{After: 1})
		if err != nil {
			last = err
			return false
		}
		defer sub.Close()
		for {
			_, err := sub.Next(ctx)
			if err != nil {
				last = err
				return errors.Is(err, client.ErrTooOld)
			}
		}
	})
	var e *client.Error
	if !errors.As(last, &e) || e.Status != http.StatusGone || e.Detail == "" {
		t.Errorf("too-old error = %v, want a 410 problem with its detail", last)
	}
}
