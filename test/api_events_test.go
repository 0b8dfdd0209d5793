package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"go.uber.org/goleak"
)

// apiSSEMsg is one Server-Sent Events message, or a comment line.
type apiSSEMsg struct {
	ID, Event, Data string
	Comment         string
}

// apiSSEEvent is the data of an event message.
type apiSSEEvent struct {
	Seq      int64  `json:"seq"`
	Kind     string `json:"kind"`
	At       string `json:"at"`
	Tenant   string `json:"tenant"`
	JobID    string `json:"job_id"`
	BatchID  string `json:"batch_id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Attempt  int    `json:"attempt"`
	Progress *struct {
		Percent int    `json:"percent"`
		Message string `json:"message"`
	} `json:"progress"`
}

// apiSSEStream is an open event stream.
type apiSSEStream struct {
	t      testing.TB
	res    *http.Response
	cancel context.CancelFunc
	msgs   chan apiSSEMsg
	end    chan error // the reader's end: nil for a clean EOF
}

// openEvents opens GET /v1/events with query and headers, and expects 200.
func (s *apiServer) openEvents(query string, h http.Header) *apiSSEStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.t.Context())
	r, err := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/events"+query, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+s.token)
	r.Header.Set("Accept", "text/event-stream")
	for k, v := range h {
		r.Header[k] = v
	}
	res, err := s.hc.Do(r)
	if err != nil {
		cancel()
		s.t.Fatalf("GET /v1/events%s: %v", query, err)
	}
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		s.t.Fatalf("GET /v1/events%s = %d %s, want 200", query, res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		s.t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	st := &apiSSEStream{t: s.t, res: res, cancel: cancel, msgs: make(chan apiSSEMsg, 1000), end: make(chan error, 1)}
	go st.read()
	s.t.Cleanup(st.close)
	return st
}

func (st *apiSSEStream) read() {
	defer close(st.msgs)
	sc := bufio.NewScanner(st.res.Body)
	var m apiSSEMsg
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if m != (apiSSEMsg{}) {
				st.msgs <- m
			}
			m = apiSSEMsg{}
		case strings.HasPrefix(line, ":"):
			st.msgs <- apiSSEMsg{Comment: strings.TrimSpace(line[1:])}
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				m.ID = v
			case "event":
				m.Event = v
			case "data":
				m.Data += v
			}
		}
	}
	st.end <- sc.Err()
}

func (st *apiSSEStream) close() {
	st.cancel()
	st.res.Body.Close()
}

// next returns the next event message, skipping comments.
func (st *apiSSEStream) next() apiSSEMsg {
	st.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-st.msgs:
			if !ok {
				st.t.Fatalf("event stream ended: %v", <-st.end)
			}
			if m.Comment == "" {
				return m
			}
		case <-timeout:
			st.t.Fatal("timed out waiting for an event")
		}
	}
}

// nextEvent returns the data of the next message, which must be an event.
func (st *apiSSEStream) nextEvent() (apiSSEMsg, apiSSEEvent) {
	st.t.Helper()
	m := st.next()
	var e apiSSEEvent
	if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
		st.t.Fatalf("event data %q: %v", m.Data, err)
	}
	if m.Event != e.Kind || m.ID != fmt.Sprint(e.Seq) {
		st.t.Errorf("message id %q event %q, data seq %d kind %q: they differ", m.ID, m.Event, e.Seq, e.Kind)
	}
	return m, e
}

// waitEnd waits for the server to end the stream and returns how it ended
// (nil: cleanly).
func (st *apiSSEStream) waitEnd() error {
	st.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-st.msgs:
			if !ok {
				return <-st.end
			}
		case <-timeout:
			st.t.Fatal("timed out waiting for the stream to end")
		}
	}
}

func TestAPIEventsLive(t *testing.T) {
	s := apiStart(t, server.Config{})
	all := s.openEvents("", nil)
	j := s.submit(map[string]any{"type": "x", "queue": "q1"})
	one := s.openEvents("?job_id="+j.ID, nil)
	kinds := s.openEvents("?kinds=job.succeeded,job.progress", nil)
	other := s.submit(map[string]any{"type": "y", "queue": "q2"})

	_, e := all.nextEvent()
	if e.Kind != "job.submitted" || e.JobID != j.ID || e.Tenant != "default" || e.Type != "x" || e.State != "queued" || e.At == "" || e.Seq <= 0 {
		t.Errorf("first event = %+v", e)
	}
	if _, e := all.nextEvent(); e.JobID != other.ID {
		t.Errorf("second event = %+v, want the other job's", e)
	}

	w := s.registerWorker(map[string]any{"types": []string{"x"}})
	l := s.wpLease(w, 1, 0).Jobs[0]
	s.wpHeartbeat(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token, "progress": map[string]any{"percent": 50, "message": "half"}})
	s.wpReport(w, map[string]any{"job_id": j.ID, "token": l.Lease.Token, "outcome": "succeeded"})

	var got []string
	for range 3 {
		_, e := one.nextEvent()
		if e.JobID != j.ID {
			t.Errorf("job_id filter let through %+v", e)
		}
		got = append(got, e.Kind)
		if e.Kind == "job.progress" && (e.Progress == nil || e.Progress.Percent != 50 || e.Progress.Message != "half") {
			t.Errorf("progress event = %+v", e)
		}
	}
	if want := "job.started job.progress job.succeeded"; strings.Join(got, " ") != want {
		t.Errorf("job's events = %v, want %s", got, want)
	}
	if _, e := kinds.nextEvent(); e.Kind != "job.progress" {
		t.Errorf("kinds filter: first = %+v, want job.progress", e)
	}
	if _, e := kinds.nextEvent(); e.Kind != "job.succeeded" {
		t.Errorf("kinds filter: second = %+v, want job.succeeded", e)
	}

	byQueue := s.openEvents("?queue=q2", nil)
	s.submit(map[string]any{"type": "x", "queue": "q1"})
	q2 := s.submit(map[string]any{"type": "x", "queue": "q2"})
	if _, e := byQueue.nextEvent(); e.JobID != q2.ID {
		t.Errorf("queue filter: %+v, want job %s", e, q2.ID)
	}

	for _, tt := range []struct{ query, header, field string }{
		{"?kinds=job.exploded", "", "kinds"},
		{"?job_id=nope", "", "job_id"},
		{"?batch_id=nope", "", "batch_id"},
		{"?queue=a%20b", "", "queue"},
		{"?after=-1", "", "after"},
		{"?after=x", "", "after"},
		{"", "abc", "Last-Event-ID"},
	} {
		h := http.Header{"Authorization": {"Bearer " + s.token}}
		if tt.header != "" {
			h.Set("Last-Event-ID", tt.header)
		}
		s.reqWith("GET", "/v1/events"+tt.query, nil, h).problem(t, http.StatusBadRequest, tt.field)
	}
}

func TestAPIEventsResume(t *testing.T) {
	s := apiStart(t, server.Config{})
	st := s.openEvents("", nil)
	var ids []string
	for range 3 {
		ids = append(ids, s.submit(map[string]any{"type": "x"}).ID)
	}
	var last string
	for i := range 3 {
		m, e := st.nextEvent()
		if e.JobID != ids[i] {
			t.Fatalf("event %d = %+v, want job %s", i, e, ids[i])
		}
		last = m.ID
	}
	st.close()

	// Missed while disconnected.
	var missed []string
	for range 4 {
		missed = append(missed, s.submit(map[string]any{"type": "x"}).ID)
	}
	for _, resume := range []struct {
		name   string
		query  string
		header http.Header
	}{
		{"Last-Event-ID", "", http.Header{"Last-Event-ID": {last}}},
		{"after", "?after=" + last, nil},
		{"Last-Event-ID wins over after", "?after=0", http.Header{"Last-Event-ID": {last}}},
	} {
		t.Run(resume.name, func(t *testing.T) {
			st := s.openEvents(resume.query, resume.header)
			defer st.close()
			// A sentinel submitted after reconnecting marks the end: what
			// comes before it is exactly the missed events, in order.
			sentinel := s.submit(map[string]any{"type": "sentinel"}).ID
			var got []string
			prev := int64(0)
			for {
				_, e := st.nextEvent()
				if e.Seq <= prev {
					t.Errorf("seq %d after %d: not increasing", e.Seq, prev)
				}
				prev = e.Seq
				if e.JobID == sentinel {
					break
				}
				if e.Kind == "job.submitted" && e.Type == "sentinel" {
					continue // an earlier subtest's sentinel
				}
				got = append(got, e.JobID)
			}
			if strings.Join(got, ",") != strings.Join(missed, ",") {
				t.Errorf("resumed events = %v, want exactly %v", got, missed)
			}
		})
	}
}

func TestAPIEventsKeepAlive(t *testing.T) {
	s := apiStart(t, server.Config{Limits: api.Limits{KeepAlive: 20 * time.Millisecond}})
	st := s.openEvents("", nil)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-st.msgs:
			if m.Comment == "keep-alive" {
				return
			}
			t.Fatalf("idle stream sent %+v, want a keep-alive comment", m)
		case <-timeout:
			t.Fatal("no keep-alive comment")
		}
	}
}

func TestAPIEventsTooOld(t *testing.T) {
	s := apiStart(t, server.Config{Engine: engine.Config{EventRetention: time.Millisecond, RetentionInterval: 20 * time.Millisecond}})
	s.submit(map[string]any{"type": "x"})
	s.submit(map[string]any{"type": "x"})
	// Retention removes the events; resuming from before them then ends
	// with an error event.
	apiEventually(t, "an error event for a resume point older than retention", func() bool {
		st := s.openEvents("?after=0", nil)
		defer st.close()
		m := st.next() // a retained event, or the error

		if m.Event != "error" {
			return false
		}
		var p apiProblem
		if err := json.Unmarshal([]byte(m.Data), &p); err != nil {
			t.Fatalf("error event data %q: %v", m.Data, err)
		}
		if p.Status != http.StatusGone || !strings.HasSuffix(p.Type, "events-too-old") || p.Detail == "" || m.ID != "" {
			t.Errorf("error event = id %q, %+v; want no id and a 410 events-too-old problem", m.ID, p)
		}
		if err := st.waitEnd(); err != nil {
			t.Errorf("stream after the error event ended with %v, want a clean end", err)
		}
		return true
	})
}

// eventsStatus opens an event stream and returns its status at once.
func (s *apiServer) eventsStatus() int {
	s.t.Helper()
	ctx, cancel := context.WithCancel(s.t.Context())
	defer cancel()
	r, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/events", nil)
	r.Header.Set("Authorization", "Bearer "+s.token)
	res, err := s.hc.Do(r)
	if err != nil {
		s.t.Fatalf("GET /v1/events: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestAPIEventsPerKeyLimit(t *testing.T) {
	s := apiStart(t, server.Config{Limits: api.Limits{MaxStreamsPerKey: 2}})
	a := s.openEvents("", nil)
	s.openEvents("", nil)
	s.req("GET", "/v1/events", nil).problem(t, http.StatusTooManyRequests, "")
	a.close()
	apiEventually(t, "a stream slot to free up", func() bool { return s.eventsStatus() == http.StatusOK })
}

func TestAPIShutdownWithOpenStreams(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := apiStart(t, server.Config{})
	st := s.openEvents("", nil)
	w := s.registerWorker(map[string]any{})
	poll := s.goReq("POST", "/v1/workers/"+w+"/lease", map[string]any{"max": 1, "wait_seconds": 60})
	j := s.submit(map[string]any{"type": "x"})
	if _, e := st.nextEvent(); e.JobID != j.ID {
		t.Fatalf("event = %+v", e)
	}
	// The long poll took the job; poll again so one is waiting.
	(<-poll).want(t, http.StatusOK, nil)
	poll = s.goReq("POST", "/v1/workers/"+w+"/lease", map[string]any{"max": 1, "wait_seconds": 60})
	time.Sleep(50 * time.Millisecond) // let the poll start waiting (the test passes either way)

	srv := s.srv
	if err := s.stop(); err != nil {
		t.Fatalf("Shutdown with an open stream and a long poll = %v, want nil", err)
	}
	if err := st.waitEnd(); err != nil {
		t.Errorf("event stream ended with %v, want a clean end", err)
	}
	var a apiWPLeaseAnswer
	(<-poll).want(t, http.StatusOK, &a)
	if len(a.Jobs) != 0 {
		t.Errorf("long poll at shutdown = %+v, want no job", a)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
	st.close()
}
