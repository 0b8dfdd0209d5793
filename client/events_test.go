package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
)

// sseEvent writes one event in the stream format.
func sseEvent(w http.ResponseWriter, seq int64, kind string, extra string) {
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: {\"seq\":%d,\"kind\":%q,\"job_id\":\"j1\"%s}\n\n", seq, kind, seq, kind, extra)
	w.(http.Flusher).Flush()
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
}

// collect reads n events from s.
func collect(t *testing.T, s *Subscription, n int) []Event {
	t.Helper()
	var got []Event
	for len(got) < n {
		e, err := s.Next(t.Context())
		if err != nil {
			t.Fatalf("Next() after %d events = %v", len(got), err)
		}
		got = append(got, e)
	}
	return got
}

type seqKind struct {
	Seq  int64
	Kind string
}

func seqKinds(es []Event) []seqKind {
	out := make([]seqKind, len(es))
	for i, e := range es {
		out[i] = seqKind{e.Seq, e.Kind}
	}
	return out
}

func TestEventsResumeWithoutLossOrDuplicates(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	var queries []string
	conn := 0
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conn++
		n := conn
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		startStream(w)
		switch n {
		case 1:
			sseEvent(w, 1, EventSubmitted, `,"state":"queued"`)
			sseEvent(w, 2, EventStarted, `,"state":"running","attempt":1`)
			fmt.Fprint(w, ": keep-alive\n\n")
			sseEvent(w, 3, EventRetrying, `,"state":"retrying","error":"boom"`)
			sseEvent(w, 3, EventProgress, `,"progress":{"percent":40,"message":"m"}`)
			// The stream breaks here.
		case 2:
			// The server replays from before the resume point: the client
			// drops what it already has.
			sseEvent(w, 2, EventStarted, ``)
			sseEvent(w, 3, EventRetrying, ``)
			sseEvent(w, 4, EventStarted, `,"attempt":2`)
			sseEvent(w, 5, EventSucceeded, `,"state":"succeeded"`)
			<-r.Context().Done()
		}
	}))
	s, err := c.Events(t.Context(), EventsOptions{JobID: "j1", Kinds: []string{EventStarted, EventSucceeded}, After: FromOldest})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := collect(t, s, 6)
	want := []seqKind{{1, EventSubmitted}, {2, EventStarted}, {3, EventRetrying}, {3, EventProgress}, {4, EventStarted}, {5, EventSucceeded}}
	if diff := cmp.Diff(want, seqKinds(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got[3].Progress == nil || *got[3].Progress != (Progress{40, "m"}) || got[2].Error != "boom" || got[5].State != gantry.StateSucceeded {
		t.Errorf("event fields lost: %+v", got)
	}
	if s.LastSeq() != 5 {
		t.Errorf("LastSeq() = %d, want 5", s.LastSeq())
	}
	s.Close()
	if err := s.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", err)
	}
	if _, ok := <-s.C(); ok {
		t.Errorf("C() yields after Close")
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"0", "3"}, lastIDs); diff != "" {
		t.Errorf("Last-Event-ID of the connections (-want +got):\n%s", diff)
	}
	if queries[0] != "job_id=j1&kinds=job.started%2Cjob.succeeded" {
		t.Errorf("query = %q", queries[0])
	}
}

func TestEventsStreamFormat(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		// CRLF line ends, a retry field, a comment, a data field split over
		// lines, an event without id line (its seq is in the data), and an
		// event of an unknown kind without an event line.
		fmt.Fprint(w, "retry: 5\r\n: hello\r\nid: 8\r\nevent: job.failed\r\ndata: {\"seq\":8,\r\ndata: \"kind\":\"job.failed\",\"error\":\"a: b\"}\r\n\r\n")
		fmt.Fprint(w, "data:{\"seq\":9,\"kind\":\"job.future\"}\n\n")
		fmt.Fprint(w, "event: job.queued\ndata: {\"kind\":\"job.queued\"}\nid: 10\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	s, err := c.Events(t.Context(), EventsOptions{After: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := collect(t, s, 3)
	want := []seqKind{{8, EventFailed}, {9, "job.future"}, {10, EventQueued}}
	if diff := cmp.Diff(want, seqKinds(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got[0].Error != "a: b" {
		t.Errorf("Error = %q, want %q", got[0].Error, "a: b")
	}
}

func TestEventsEnd(t *testing.T) {
	tests := []struct {
		name    string
		second  func(w http.ResponseWriter) // the answer to the reconnection
		first   string                      // the first stream's content after one event
		want    []error
		notWant error
	}{
		{
			name:  "too old",
			first: "event: error\ndata: {\"type\":\"urn:gantry:problem:events-too-old\",\"title\":\"Gone\",\"status\":410,\"detail\":\"the resume point 1 is older than the retained events\"}\n\n",
			want:  []error{ErrTooOld},
		},
		{
			name: "unauthorized on reconnection",
			second: func(w http.ResponseWriter) {
				writeProblem(w, 401, `{"status":401,"title":"Unauthorized"}`)
			},
			want: []error{ErrUnauthorized},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			conn := 0
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				conn++
				n := conn
				mu.Unlock()
				if n > 1 {
					if tt.second != nil {
						tt.second(w)
						return
					}
					t.Errorf("reconnected after %s", tt.name)
					return
				}
				startStream(w)
				sseEvent(w, 1, EventSubmitted, "")
				fmt.Fprint(w, tt.first)
			}))
			s, err := c.Events(t.Context(), EventsOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			collect(t, s, 1)
			_, err = s.Next(t.Context())
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Next() at the end = %v, want %v", err, w)
				}
			}
			if !errors.Is(s.Err(), tt.want[0]) {
				t.Errorf("Err() = %v, want %v", s.Err(), tt.want[0])
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Next() at the end = %v, want an *Error too", err)
			}
		})
	}
}

func TestEventsConnectErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"401", func(w http.ResponseWriter, r *http.Request) { writeProblem(w, 401, `{"status":401}`) }, ErrUnauthorized},
		{"400 names the field", func(w http.ResponseWriter, r *http.Request) {
			writeProblem(w, 400, `{"status":400,"field":"kinds"}`)
		}, ErrInvalid},
		{"not an event stream", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, `{}`) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, tt.handler)
			s, err := c.Events(t.Context(), EventsOptions{Kinds: []string{"nope"}})
			if err == nil {
				s.Close()
				t.Fatalf("Events() = nil error, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Events() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEventsRetryAfterServerErrors(t *testing.T) {
	var mu sync.Mutex
	conn := 0
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conn++
		n := conn
		mu.Unlock()
		switch {
		case n == 1:
			startStream(w)
			sseEvent(w, 1, EventSubmitted, "")
		case n < 4:
			writeProblem(w, 503, `{"status":503}`)
		default:
			if got := r.Header.Get("Last-Event-ID"); got != "1" {
				t.Errorf("Last-Event-ID = %q, want 1", got)
			}
			startStream(w)
			sseEvent(w, 2, EventStarted, "")
			<-r.Context().Done()
		}
	}))
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.Events(ctx, EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, s, 2)
	if got[1].Seq != 2 {
		t.Errorf("events = %v, want seq 1 then 2", seqKinds(got))
	}
	cancel()
	if _, ok := <-s.C(); ok {
		t.Errorf("C() yields after the context ended")
	}
	if err := s.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() = %v, want context.Canceled", err)
	}
	s.Close()
}

func TestStreamErrorTooOld(t *testing.T) {
	tests := []struct {
		data string
		want bool
	}{
		{`{"type":"urn:gantry:problem:events-too-old","status":410}`, true},
		{`{"title":"Gone","status":410}`, true},
		{`{"status":400,"detail":"the resume point is older than the retained events"}`, true},
		{`{"status":503,"title":"Service Unavailable"}`, false},
		{`not json`, false},
	}
	for _, tt := range tests {
		err := streamError(tt.data)
		if got := errors.Is(err, ErrTooOld); got != tt.want {
			t.Errorf("streamError(%s) = %v: ErrTooOld %t, want %t", tt.data, err, got, tt.want)
		}
		if !strings.Contains(err.Error(), "/v1/events") {
			t.Errorf("streamError(%s) = %q, want it to name the endpoint", tt.data, err)
		}
	}
}

func TestEventsResumeSilentStream(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		startStream(w)
		if n == 1 {
			sseEvent(w, 4, EventSubmitted, "")
		} else {
			sseEvent(w, 5, EventStarted, "")
		}
		// Then silence, without keep-alive comments: a half-open
		// connection, as far as the client can tell.
		<-r.Context().Done()
	}))
	c.streamIdle = 30 * time.Millisecond
	s, err := c.Events(t.Context(), EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := collect(t, s, 2)
	if diff := cmp.Diff([]seqKind{{4, EventSubmitted}, {5, EventStarted}}, seqKinds(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if lastIDs[0] != "" || lastIDs[1] != "4" {
		t.Errorf("Last-Event-ID of the connections = %q, want none then 4", lastIDs)
	}
}

func TestEventsConnectTimeout(t *testing.T) {
	release := make(chan struct{})
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers in time
		case <-release:
		case <-r.Context().Done():
		}
	}), WithTimeout(20*time.Millisecond))
	defer close(release)
	if s, err := c.Events(t.Context(), EventsOptions{}); err == nil {
		s.Close()
		t.Fatalf("Events() on a server that does not answer = nil error, want an error")
	}
}

func TestEventsIDWithoutEventMovesResumePoint(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		startStream(w)
		if n == 1 {
			fmt.Fprint(w, "id: 41\n\n") // the newest seq when the stream starts
			return                      // then the stream breaks
		}
		sseEvent(w, 42, EventSubmitted, "")
		<-r.Context().Done()
	}))
	s, err := c.Events(t.Context(), EventsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e := collect(t, s, 1)[0]; e.Seq != 42 {
		t.Errorf("event = %+v, want seq 42", e)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"", "41"}, lastIDs); diff != "" {
		t.Errorf("Last-Event-ID of the connections (-want +got):\n%s", diff)
	}
}
