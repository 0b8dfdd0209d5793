package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// finalFlushTimeout bounds the last cursor write of a stopping webhook.
const finalFlushTimeout = 5 * time.Second

// deliverer is the goroutine of one webhook: it reads the event log from
// the webhook's cursor and delivers the matching events in order, one at a
// time, each until it succeeds or is given up on.
type deliverer struct {
	s      *Service
	w      *job.Webhook // as listed when the goroutine started
	filter event.Filter
	cancel context.CancelFunc // ends run's context: the webhook was deleted or Run stops
	wakeC  chan struct{}      // capacity 1: a matching event may have been stored

	// Owned by run.
	cursor    int64     // seq of the last event handled
	saved     int64     // cursor as last written to the store
	dirty     bool      // the status changed since it was last written
	nextFlush time.Time // no write before then
	failures  int
	lastErr   string
	delivered time.Time // last successful delivery; zero: none by this goroutine
}

// newDeliverer returns the deliverer of w; cancel must end the context
// its run gets.
func newDeliverer(s *Service, w *job.Webhook, cancel context.CancelFunc) *deliverer {
	return &deliverer{
		s: s, w: w,
		filter: event.Filter{Tenant: w.Tenant, BatchID: w.BatchID, Kinds: w.Kinds},
		cancel: cancel,
		wakeC:  make(chan struct{}, 1),
		cursor: w.Cursor, saved: w.Cursor,
		failures: w.Failures, lastErr: w.LastError,
	}
}

// poke wakes the goroutine if it is idle; it never blocks.
func (d *deliverer) poke() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// run delivers the webhook's events until ctx ends (Run stops or the
// webhook is deleted), then saves what it has not saved yet.
func (d *deliverer) run(ctx context.Context) {
	defer d.cancel()
	defer d.finalFlush(ctx)
	opts := &d.s.opts
	for {
		evs, err := d.s.st.ReadEvents(ctx, d.cursor, opts.PageSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.s.log.Error("webhook: read events", "webhook", d.w.ID, "after", d.cursor, "err", err)
			if !sleep(ctx, opts.PollInterval) {
				return
			}
			continue
		}
		if len(evs) > 0 && evs[0].Seq > d.cursor+1 {
			d.checkLost(ctx)
		}
		for i := range evs {
			ev := &evs[i]
			if ev.Kind != job.EventProgress && d.filter.Match(ev) {
				if !d.deliver(ctx, ev) {
					return
				}
			}
			d.cursor = ev.Seq
			if d.unsaved() && !time.Now().Before(d.nextFlush) {
				d.flush(ctx)
			}
			if ctx.Err() != nil {
				return
			}
		}
		if len(evs) == opts.PageSize {
			continue
		}
		if !d.idle(ctx) {
			return
		}
	}
}

// checkLost records that events after the cursor were removed by
// retention before they could be handled. (Sequence numbers may have
// gaps, so the range is what may have been lost.)
func (d *deliverer) checkLost(ctx context.Context) {
	oldest, _, err := d.s.st.EventBounds(ctx)
	if err != nil || oldest <= d.cursor+1 {
		return
	}
	d.setErr("events %d to %d were removed by retention before they could be delivered", d.cursor+1, oldest-1)
	d.s.log.Warn("webhook: events lost to retention", "webhook", d.w.ID, "after", d.cursor, "oldest", oldest)
}

// idle waits for a wake-up or the poll interval, writing the cursor
// meanwhile once the flush interval allows. It reports false when the
// goroutine must stop.
func (d *deliverer) idle(ctx context.Context) bool {
	poll := time.NewTimer(d.s.opts.PollInterval)
	defer poll.Stop()
	for {
		var flushC <-chan time.Time
		if d.unsaved() {
			wait := time.Until(d.nextFlush)
			if wait <= 0 {
				d.flush(ctx)
				continue
			}
			flushC = time.After(wait)
		}
		select {
		case <-d.wakeC:
			return true
		case <-poll.C:
			return true
		case <-flushC:
		case <-ctx.Done():
			return false
		}
	}
}

// unsaved reports whether the store's record lags behind.
func (d *deliverer) unsaved() bool { return d.dirty || d.cursor != d.saved }

// flush writes the cursor and status. A store error is logged and retried
// after the poll interval; a deleted webhook stops the goroutine.
func (d *deliverer) flush(ctx context.Context) {
	err := d.s.st.UpdateWebhookDelivery(ctx, &store.WebhookDeliveryParams{
		ID: d.w.ID, Cursor: d.cursor, LastDeliveredAt: d.delivered, LastError: d.lastErr, Failures: d.failures,
	})
	switch {
	case err == nil:
		d.saved, d.dirty = d.cursor, false
		d.nextFlush = time.Now().Add(d.s.opts.FlushInterval)
	case errors.Is(err, store.ErrNotFound):
		d.s.log.Info("webhook: deleted; delivery stops", "webhook", d.w.ID)
		d.saved, d.dirty = d.cursor, false
		d.cancel()
	default:
		if ctx.Err() == nil {
			d.s.log.Error("webhook: save delivery status", "webhook", d.w.ID, "cursor", d.cursor, "err", err)
		}
		d.nextFlush = time.Now().Add(d.s.opts.PollInterval)
	}
}

// finalFlush writes what is unsaved when the goroutine stops.
func (d *deliverer) finalFlush(ctx context.Context) {
	if !d.unsaved() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
	defer cancel()
	d.flush(ctx)
}

// deliver posts ev until it is delivered, reporting true, or given up on
// (after MaxAttempts, or when the event left the retention window), also
// reporting true: either way the webhook moves on. It reports false when
// the goroutine must stop.
func (d *deliverer) deliver(ctx context.Context, ev *job.Event) bool {
	opts := &d.s.opts
	body, err := json.Marshal(wire.FromEvent(ev))
	if err != nil {
		// An event is plain data: this cannot happen, and retrying would
		// not help.
		d.setErr("gave up on event %d: encode: %v", ev.Seq, err)
		return true
	}
	for attempt := 1; ; attempt++ {
		err := d.post(ctx, ev, body)
		if err == nil {
			d.failures, d.delivered, d.dirty = 0, opts.Clock(), true
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d.failures++
		d.setErr("event %d (%s), attempt %d: %v", ev.Seq, ev.Kind, attempt, err)
		if attempt >= opts.MaxAttempts {
			d.setErr("gave up on event %d (%s) after %d attempts: %v", ev.Seq, ev.Kind, attempt, err)
			d.s.log.Warn("webhook: delivery given up", "webhook", d.w.ID, "seq", ev.Seq, "attempts", attempt, "err", err)
			return true
		}
		d.s.log.Warn("webhook: delivery failed", "webhook", d.w.ID, "seq", ev.Seq, "attempt", attempt, "err", err)
		if !time.Now().Before(d.nextFlush) {
			d.flush(ctx)
		}
		if !sleep(ctx, d.backoff(attempt)) {
			return false
		}
		if oldest, _, berr := d.s.st.EventBounds(ctx); berr == nil && ev.Seq < oldest {
			d.setErr("gave up on event %d (%s): it left the retention window after %d attempts; last error: %v", ev.Seq, ev.Kind, attempt, err)
			d.s.log.Warn("webhook: delivery given up: event left the retention window", "webhook", d.w.ID, "seq", ev.Seq, "attempts", attempt)
			return true
		}
	}
}

// setErr records a problem as the webhook's LastError, prefixed with the
// time it happened. It stays after later successes (Failures, reset to 0 by
// a success, tells whether delivery works now), so a given-up or lost
// event remains visible.
func (d *deliverer) setErr(format string, args ...any) {
	d.lastErr = d.s.opts.Clock().UTC().Format(time.RFC3339) + ": " + fmt.Sprintf(format, args...)
	d.dirty = true
}

// backoff returns the delay after the n-th failed attempt of an event:
// MinBackoff doubled n-1 times, at most MaxBackoff.
func (d *deliverer) backoff(n int) time.Duration {
	b := d.s.opts.MinBackoff
	for i := 1; i < n && b < d.s.opts.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.s.opts.MaxBackoff)
}

// post makes one delivery attempt: nil for a 2xx answer.
func (d *deliverer) post(ctx context.Context, ev *job.Event, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gantry-Webhook/1")
	req.Header.Set(HeaderEvent, ev.Kind)
	req.Header.Set(HeaderDelivery, fmt.Sprintf("%s:%d", d.w.ID, ev.Seq))
	req.Header.Set(HeaderSignature, Sign(d.w.Secret, d.s.opts.Clock(), body))
	resp, err := d.s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return fmt.Errorf("HTTP %d: redirect to %q not followed", code, resp.Header.Get("Location"))
	default:
		if s := printable(head); s != "" {
			return fmt.Errorf("HTTP %d: %s", code, s)
		}
		return fmt.Errorf("HTTP %d", code)
	}
}

// printable returns the start of a response body fit for a status line:
// valid UTF-8, no control characters, at most 200 bytes.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return s
}
