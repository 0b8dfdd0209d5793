package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// FromOldest, as [EventsOptions.After], replays every event the server
// still retains before following new ones.
const FromOldest int64 = -1

// EventsOptions select the events of [Client.Events]. Empty fields match
// all.
type EventsOptions struct {
	JobID   string
	BatchID string
	Queue   string
	// Kinds are the event kinds wanted (EventSubmitted, ...).
	Kinds []string
	// After, when positive, replays the stored events with a greater Seq
	// before following new ones, as a reconnecting subscription does with
	// the Seq of the last event it received. [FromOldest] replays every
	// retained event; zero follows only events from now on (then, until
	// the first event or a resume point arrives, a stream that breaks is
	// resumed from the events of the moment it reconnects).
	After int64
}

// maxEventLine bounds a line of an event stream.
const maxEventLine = 4 << 20

// Subscription is a stream of events from [Client.Events]. It reconnects
// by itself when the stream breaks, resuming after the last event it
// received (Last-Event-ID), so that no stored event is lost or repeated.
// It ends when its context is done, on [Subscription.Close], or on an
// error that reconnecting cannot mend; then [Subscription.Err] says why.
type Subscription struct {
	c      *Client
	query  url.Values
	ch     chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	err     error
	last    int64 // Seq of the last event received; resume point
	resumed bool  // last is known (an event was received or After was given)
}

// Events subscribes to the events that o selects. It connects before it
// returns, so that an error in the request (such as [ErrUnauthorized]) is
// returned at once and events from then on are not missed; afterwards a
// broken stream is resumed with backoff. Events the server cannot replay
// because they are older than its retention window end the subscription
// with [ErrTooOld].
func (c *Client) Events(ctx context.Context, o EventsOptions) (*Subscription, error) {
	q := url.Values{}
	for k, v := range map[string]string{"job_id": o.JobID, "batch_id": o.BatchID, "queue": o.Queue} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(o.Kinds) > 0 {
		q.Set("kinds", strings.Join(o.Kinds, ","))
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: c, query: q, ch: make(chan Event, 64), cancel: cancel, done: make(chan struct{})}
	switch {
	case o.After > 0:
		s.last, s.resumed = o.After, true
	case o.After < 0:
		s.last, s.resumed = 0, true
	}
	c0, err := s.connect(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go s.run(ctx, c0)
	return s, nil
}

// conn is one connection of an event stream. Its body is read under an
// idle timeout: a stream that stays silent longer than the server's
// keep-alive comments allow is treated as broken (a half-open connection)
// and resumed.
type conn struct {
	body  io.ReadCloser
	timer *time.Timer // cancels the request when it fires
	idle  time.Duration
	stop  context.CancelFunc
}

func (c *conn) Read(p []byte) (int, error) {
	c.timer.Reset(c.idle)
	return c.body.Read(p)
}

func (c *conn) close() {
	c.timer.Stop()
	c.stop()
	closeBody(c.body)
}

// connect opens the stream from the resume point. The answer's headers
// must arrive within the client's timeout.
func (s *Subscription) connect(ctx context.Context) (*conn, error) {
	cctx, stop := context.WithCancel(ctx)
	req, err := s.c.newRequest(cctx, "GET", "/v1/events", s.query, nil)
	if err != nil {
		stop()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	s.mu.Lock()
	if s.resumed {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(s.last, 10))
	}
	s.mu.Unlock()
	headers := s.c.timeout
	if headers <= 0 {
		headers = DefaultTimeout
	}
	timer := time.AfterFunc(headers, stop)
	resp, err := s.c.hc.Do(req)
	if err != nil {
		timer.Stop()
		stop()
		return nil, fmt.Errorf("client: events: %w", err)
	}
	c := &conn{body: resp.Body, timer: timer, idle: s.c.streamIdle, stop: stop}
	if resp.StatusCode != http.StatusOK {
		defer c.close()
		return nil, responseError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		c.close()
		return nil, fmt.Errorf("client: events: the server answered %q, not an event stream", mt)
	}
	timer.Reset(c.idle)
	return c, nil
}

// run reads the stream, reconnecting as needed, until the subscription ends.
func (s *Subscription) run(ctx context.Context, c *conn) {
	defer close(s.done)
	defer close(s.ch)
	bo := backoff{min: s.c.minBackoff, max: s.c.maxBackoff}
	for {
		got, retry, err := s.read(ctx, c)
		c.close()
		if got {
			bo.reset()
		}
		for {
			if ctx.Err() != nil {
				s.end(ctx.Err())
				return
			}
			if err != nil && !retryable(err) {
				s.end(err)
				return
			}
			d := max(bo.next(), retry)
			if !sleep(ctx, d) {
				continue // ends above
			}
			c, err = s.connect(ctx)
			if err == nil {
				break
			}
		}
	}
}

// retryable reports whether a subscription may reconnect after err.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusTooManyRequests || e.Status >= 500 && !errors.Is(err, ErrTooOld)
	}
	return true
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// read parses an event stream, delivering its events, until it ends. It
// reports whether an event arrived, the reconnection delay the server
// asked for, and the error that ended the stream (nil at its end).
func (s *Subscription) read(ctx context.Context, r io.Reader) (got bool, retry time.Duration, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var kind, id string
	var data strings.Builder
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if data.Len() > 0 || kind != "" {
				ok, err := s.dispatch(ctx, kind, id, data.String())
				if err != nil {
					return got, retry, err
				}
				got = got || ok
			} else if id != "" {
				// An id without an event (as a server may send when a
				// stream starts) still moves the resume point.
				s.advance(id)
			}
			kind, id = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			kind = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		case "id":
			id = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := sc.Err(); err != nil {
		return got, retry, fmt.Errorf("client: events: %w", err)
	}
	return got, retry, nil
}

// dispatch handles one event of the stream. It reports whether the event
// was delivered, and the error the server sent in an "error" event.
func (s *Subscription) dispatch(ctx context.Context, kind, id, data string) (bool, error) {
	if kind == "error" {
		return false, streamError(data)
	}
	var w wire.Event
	if err := json.Unmarshal([]byte(data), &w); err != nil {
		return false, fmt.Errorf("client: events: decode event %q: %w", id, err)
	}
	if w.Seq == 0 && id != "" {
		w.Seq, _ = strconv.ParseInt(id, 10, 64)
	}
	if w.Kind == "" {
		w.Kind = kind
	}
	e := fromWireEvent(&w)
	s.mu.Lock()
	// Stored events carry increasing sequence numbers: one not above the
	// last received is a repeat after a reconnection. Progress events are
	// not stored and carry the Seq of the last stored event before them.
	dup := s.resumed && e.Kind != EventProgress && e.Seq <= s.last
	if !dup && e.Seq >= s.last {
		s.last, s.resumed = e.Seq, true
	}
	s.mu.Unlock()
	if dup {
		return false, nil
	}
	select {
	case s.ch <- e:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// advance moves the resume point to the sequence number id, if later.
func (s *Subscription) advance(id string) {
	seq, err := strconv.ParseInt(id, 10, 64)
	if err != nil || seq < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.resumed || seq > s.last {
		s.last, s.resumed = seq, true
	}
}

// streamError converts the problem document of an "error" event: the
// server ends a stream with one when it cannot serve it, such as when the
// resume point is older than the retained events.
func streamError(data string) error {
	var p wire.Problem
	_ = json.Unmarshal([]byte(data), &p)
	e := &Error{Status: p.Status, Type: p.Type, Title: p.Title, Detail: p.Detail, Field: p.Field, Method: "GET", Path: "/v1/events"}
	if e.Title == "" && e.Detail == "" {
		e.Detail = data
	}
	if e.Status == 0 {
		// Not a problem document: the stream is garbled; reconnect.
		e.Status = http.StatusBadGateway
	}
	if isTooOld(&p) {
		return fmt.Errorf("%w: %w", ErrTooOld, e)
	}
	return e
}

// isTooOld recognizes the problem that says the resume point is older
// than the retained events.
func isTooOld(p *wire.Problem) bool {
	if p.Status == http.StatusGone {
		return true
	}
	text := strings.ToLower(p.Type + " " + p.Title + " " + p.Detail)
	return strings.Contains(text, "too-old") || strings.Contains(text, "too old") || strings.Contains(text, "retention") || strings.Contains(text, "retained")
}

// C returns the channel of events, closed when the subscription ends.
func (s *Subscription) C() <-chan Event { return s.ch }

// Events iterates over the events until the subscription ends; then
// [Subscription.Err] says why. Stopping the iteration early does not end
// the subscription.
func (s *Subscription) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for e := range s.ch {
			if !yield(e) {
				return
			}
		}
	}
}

// Next returns the next event, waiting for it until ctx is done. After the
// subscription ended it returns [Subscription.Err].
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	select {
	case e, ok := <-s.ch:
		if !ok {
			return Event{}, s.Err()
		}
		return e, nil
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// LastSeq returns the Seq of the last event received: the point a new
// subscription can resume from ([EventsOptions.After]).
func (s *Subscription) LastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Err returns why the subscription ended: [ErrClosed] after
// [Subscription.Close], the context's error, an error wrapping
// [ErrTooOld], or the server's refusal to reconnect (an *[Error]). It is
// nil while the subscription runs.
func (s *Subscription) Err() error {
	// The error is set before the channel of events is closed.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription and waits for its goroutine to return.
func (s *Subscription) Close() {
	s.end(ErrClosed)
	s.cancel()
	<-s.done
}
