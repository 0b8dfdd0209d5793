package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/wire"
)

// eventFilter reads the filter and resume point of GET /v1/events: the
// Last-Event-ID header, else the after parameter; -1 when neither is set
// (only new events).
func eventFilter(r *http.Request, p auth.Principal) (event.Filter, int64, error) {
	q := r.URL.Query()
	f := event.Filter{Tenant: p.Scope()}
	var err error
	if f.JobID, err = idParam(q, "job_id"); err != nil {
		return f, 0, err
	}
	if f.BatchID, err = idParam(q, "batch_id"); err != nil {
		return f, 0, err
	}
	if f.Queue, err = nameParam(q, "queue"); err != nil {
		return f, 0, err
	}
	for _, v := range q["kinds"] {
		for k := range strings.SplitSeq(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if !slices.Contains(job.Kinds, k) {
				return f, 0, badParam("kinds", fmt.Sprintf("%q is not an event kind; kinds are %s", k, strings.Join(job.Kinds, ", ")))
			}
			if !slices.Contains(f.Kinds, k) {
				f.Kinds = append(f.Kinds, k)
			}
		}
	}
	after := int64(-1)
	parse := func(field, s string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 0 {
			return badParam(field, "must be an event sequence number (an integer, 0 or more)")
		}
		after = n
		return nil
	}
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		err = parse("Last-Event-ID", s)
	} else if s := q.Get("after"); s != "" {
		err = parse("after", s)
	}
	return f, after, err
}

// events is GET /v1/events: a Server-Sent Events stream of the events the
// principal may see that match the filter. Each event is written as
// "id: <seq>", "event: <kind>" and "data: <wire.Event JSON>" lines. An
// idle stream gets a comment line every Limits.KeepAlive. When the resume
// point is older than the retained events (or the subscriber fell that
// far behind), or the store fails, the stream ends with an "error" event
// whose data is a problem document.
func (a *API) events(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	f, after, err := eventFilter(r, p)
	if err != nil {
		return err
	}
	if !a.openStream(p.Key) {
		return &apiError{status: http.StatusTooManyRequests,
			detail: fmt.Sprintf("this credential has %d event streams open, the limit", a.lim.MaxStreamsPerKey)}
	}
	defer a.closeStream(p.Key)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(a.base, cancel)()

	sub, err := a.eng.Subscribe(ctx, f, after)
	if err != nil && !errors.Is(err, event.ErrTooOld) {
		return err
	}
	s := &stream{w: w, rc: http.NewResponseController(w), timeout: a.lim.StreamWriteTimeout}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err != nil { // too old
		a.endStream(s, err, after)
		return nil
	}
	defer sub.Close()
	if s.flush() != nil {
		return nil
	}

	keep := time.NewTicker(a.lim.KeepAlive)
	defer keep.Stop()
	events := sub.C()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				a.endStream(s, sub.Err(), after)
				return nil
			}
			s.event(&ev)
			after = ev.Seq
		more: // write what is already buffered before flushing once
			for range 255 {
				select {
				case ev, ok := <-events:
					if !ok {
						break more
					}
					s.event(&ev)
					after = ev.Seq
				default:
					break more
				}
			}
			if s.flush() != nil {
				return nil // the client went away or stopped reading
			}
			keep.Reset(a.lim.KeepAlive)
		case <-keep.C:
			s.comment("keep-alive")
			if s.flush() != nil {
				return nil
			}
		}
	}
}

// endStream ends a stream after its subscription ended with err: a clean
// end for a closed subscription (the client left, or the server is
// shutting down), an error event otherwise.
func (a *API) endStream(s *stream, err error, after int64) {
	var pr wire.Problem
	switch {
	case err == nil, errors.Is(err, event.ErrClosed), errors.Is(err, context.Canceled):
		return
	case errors.Is(err, event.ErrTooOld):
		pr = wire.Problem{Type: ProblemType("events-too-old"), Title: http.StatusText(http.StatusGone), Status: http.StatusGone,
			Detail: fmt.Sprintf("events after %d are no longer retained: some were lost; "+
				"read the current state of what you follow, then subscribe again without Last-Event-ID", after)}
	default:
		a.log.Warn("api: event stream failed", "err", err)
		pr = wire.Problem{Type: ProblemType("unavailable"), Title: http.StatusText(http.StatusServiceUnavailable),
			Status: http.StatusServiceUnavailable, Detail: "the event stream failed; reconnect with Last-Event-ID"}
	}
	data, _ := json.Marshal(pr) // a Problem always marshals
	s.buf = fmt.Appendf(s.buf, "event: error\ndata: %s\n\n", data)
	_ = s.flush()
}

// stream writes Server-Sent Events.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (s *stream) event(ev *job.Event) {
	data, _ := json.Marshal(wire.FromEvent(ev)) // an Event always marshals
	s.buf = fmt.Appendf(s.buf, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Kind, data)
}

func (s *stream) comment(c string) {
	s.buf = fmt.Appendf(s.buf, ": %s\n\n", c)
}

// flush writes the buffered lines and flushes them to the client, within
// the write timeout.
func (s *stream) flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) // unsupported: no deadline
	if len(s.buf) > 0 {
		_, err := s.w.Write(s.buf)
		s.buf = s.buf[:0]
		if err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// openStream counts a new event stream of a credential, if under the limit.
func (a *API) openStream(key string) bool {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.streams[key] >= a.lim.MaxStreamsPerKey {
		return false
	}
	a.streams[key]++
	return true
}

func (a *API) closeStream(key string) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.streams[key]--; a.streams[key] <= 0 {
		delete(a.streams, key)
	}
}
