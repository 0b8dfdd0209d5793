// Package webhook delivers events to HTTP endpoints. A [Service] manages
// webhooks (create, get, list, delete, for the HTTP API) and, in
// [Service.Run], POSTs every stored event that matches a webhook's filter
// (tenant, kinds, batch) to its URL, in order, at least once: each webhook
// follows the store's event log from its own persisted cursor, so a
// restart resumes where delivery stopped, within the event retention
// window. The cursor is written at most every Options.FlushInterval, so a
// crash repeats at most that much delivery; receivers drop duplicates by
// the Gantry-Delivery header.
//
// A delivery is a POST of the event's JSON (the wire.Event of the SSE
// stream: seq, kind, at, tenant, job_id, ...) with the headers
// Content-Type: application/json, Gantry-Event (the kind),
// Gantry-Delivery ("<webhook id>:<seq>") and Gantry-Signature (see [Sign]
// and [Verify]). A 2xx answer delivers it; anything else (a redirect
// included: redirects are not followed) is retried with exponential
// backoff until Options.MaxAttempts, or until the event leaves the
// retention window, and then given up on. A webhook's Failures counts
// consecutive failed attempts (0 once delivery works); LastError keeps the
// last problem, with its time, also after later successes.
//
// Unless the service allows it, internal addresses (loopback, private,
// link-local, ...) are refused both when a webhook is created and when a
// delivery dials, on the address actually dialed after name resolution
// (RELIABILITY.md rule 14).
//
// Ephemeral job.progress events are not stored, so they are not delivered
// to webhooks; the event stream carries them.
//
// Lock order: Service.mu is a leaf: it is never held while calling the
// store, the hub or a delivery goroutine. Service.createMu is held across
// the store calls of one Create, never together with Service.mu.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// MaxURLLength bounds a webhook's URL, in bytes.
const MaxURLLength = 2048

// ErrLimit is returned by [Service.Create] when the tenant already has
// Options.MaxWebhooks webhooks: a quota, which the server reports as one.
var ErrLimit = errors.New("webhook: too many webhooks")

// Options configure a [Service]. Zero fields take their defaults.
type Options struct {
	// AllowPrivate allows webhook targets on loopback, private, link-local
	// and other internal addresses. Only for development and tests: it lets
	// whoever can create a webhook make the server call internal services.
	// Defaults to false.
	AllowPrivate bool
	// Timeout bounds one delivery: connecting, sending and receiving the
	// response headers. Defaults to 10s.
	Timeout time.Duration
	// MaxAttempts is how many times one event is tried before it is given
	// up on (and the webhook moves to the next event). An event that left
	// the retention window meanwhile is given up on sooner. Defaults to 24.
	MaxAttempts int
	// MinBackoff is the delay after an event's first failed attempt; it
	// doubles at each further failure. Defaults to 1s.
	MinBackoff time.Duration
	// MaxBackoff bounds the delay between attempts. Defaults to 10m.
	MaxBackoff time.Duration
	// MaxWebhooks bounds the webhooks of one tenant (and so the delivery
	// goroutines). Defaults to 100.
	MaxWebhooks int
	// PollInterval is how often a webhook reads the event log without a
	// wake-up from the hub (a missed hint, another server's events, or no
	// hub at all). Defaults to 5s.
	PollInterval time.Duration
	// RelistInterval is how often the webhooks are read again from the
	// store to pick up those created or deleted by other servers (changes
	// made through this service are picked up at once). Defaults to 30s.
	RelistInterval time.Duration
	// FlushInterval is the least time between two writes of a webhook's
	// cursor: after a crash, at most that much delivery is repeated.
	// Defaults to 100ms.
	FlushInterval time.Duration
	// PageSize is the number of events read from the store at a time.
	// Defaults to 500.
	PageSize int
	// Logger receives delivery failures and store errors. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Clock returns the current time, for timestamps (signatures,
	// CreatedAt, LastDeliveredAt); delays use the runtime's timers.
	// Defaults to time.Now.
	Clock func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 10*time.Minute)
	def(&o.PollInterval, 5*time.Second)
	def(&o.RelistInterval, 30*time.Second)
	def(&o.FlushInterval, 100*time.Millisecond)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 24
	}
	if o.MaxWebhooks <= 0 {
		o.MaxWebhooks = 100
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Service manages webhooks and delivers their events. Make it with [New];
// its methods are safe for concurrent use. Run [Service.Run] in one server
// process per store: two running services would each deliver every event.
type Service struct {
	st     store.Store
	hub    *event.Hub
	opts   Options
	log    *slog.Logger
	client *http.Client

	createMu sync.Mutex // serializes Create's count-then-insert

	relist chan struct{} // capacity 1: webhooks were created or deleted

	mu         sync.Mutex
	running    bool
	deliverers map[string]*deliverer
}

// New returns a service over st. hub, if not nil, wakes delivery as soon
// as a matching event is stored; without it delivery waits for the next
// poll.
func New(st store.Store, hub *event.Hub, opts Options) *Service {
	opts = opts.withDefaults()
	return &Service{
		st:         st,
		hub:        hub,
		opts:       opts,
		log:        opts.Logger,
		client:     newClient(opts.Timeout, opts.AllowPrivate),
		relist:     make(chan struct{}, 1),
		deliverers: make(map[string]*deliverer),
	}
}

// Create validates and stores a new webhook of tenant ("" for an admin's
// webhook of every tenant) that receives the events of the given kinds
// (empty: every stored kind) of one batch (batchID "": every batch), from
// now on. It generates the webhook's ID and secret. Bad input is a
// *job.FieldError naming url, kinds, batch_id or tenant; a tenant with too
// many webhooks gets [ErrLimit].
func (s *Service) Create(ctx context.Context, tenant string, rawURL string, kinds []string, batchID string) (*job.Webhook, error) {
	if tenant != "" && !job.ValidName(tenant) {
		return nil, &job.FieldError{Field: "tenant", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	}
	u, err := s.checkURL(rawURL)
	if err != nil {
		return nil, err
	}
	kinds, err = checkKinds(kinds)
	if err != nil {
		return nil, err
	}
	if batchID != "" {
		if !job.ValidID(batchID) {
			return nil, &job.FieldError{Field: "batch_id", Problem: "must be a batch ID (a UUID)"}
		}
		if _, err := s.st.GetBatch(ctx, tenant, batchID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, &job.FieldError{Field: "batch_id", Problem: "no such batch"}
			}
			return nil, fmt.Errorf("webhook: create: %w", err)
		}
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand)

	s.createMu.Lock()
	defer s.createMu.Unlock()
	existing, err := s.st.ListWebhooks(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("webhook: create: %w", err)
	}
	n := 0
	for _, w := range existing {
		if w.Tenant == tenant {
			n++
		}
	}
	if n >= s.opts.MaxWebhooks {
		return nil, fmt.Errorf("webhook: create: tenant %q has %d webhooks, the limit: %w", tenant, n, ErrLimit)
	}
	// The cursor starts at the newest event: the webhook receives what
	// happens from now on.
	_, newest, err := s.st.EventBounds(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook: create: %w", err)
	}
	now := s.opts.Clock()
	w := &job.Webhook{
		ID: job.NewID(now), Tenant: tenant, URL: u, Kinds: kinds, BatchID: batchID,
		Secret: hex.EncodeToString(secret), CreatedAt: now, Cursor: newest,
	}
	if err := s.st.InsertWebhook(ctx, w); err != nil {
		return nil, fmt.Errorf("webhook: create: %w", err)
	}
	s.changed()
	return w, nil
}

// checkURL validates a webhook URL and returns it as it will be used.
func (s *Service) checkURL(raw string) (string, error) {
	bad := func(format string, args ...any) error {
		return &job.FieldError{Field: "url", Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case raw == "":
		return "", bad("is required")
	case len(raw) > MaxURLLength:
		return "", bad("is %d bytes, more than the limit of %d", len(raw), MaxURLLength)
	case !utf8.ValidString(raw):
		return "", bad("is not valid UTF-8")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("must be an absolute http or https URL")
	case u.Opaque != "":
		return "", bad("must be an absolute http or https URL")
	case u.User != nil:
		return "", bad("must not hold credentials (user info); authenticate deliveries with the signature")
	case u.Hostname() == "":
		return "", bad("has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("has an invalid port")
		}
	}
	if !s.opts.AllowPrivate {
		if problem := literalHostProblem(u.Hostname()); problem != "" {
			return "", bad("host %s %s: internal webhook targets are not allowed on this server", u.Hostname(), problem)
		}
	}
	return u.String(), nil
}

// checkKinds validates kinds and returns them without duplicates.
func checkKinds(kinds []string) ([]string, error) {
	var out []string
	for i, k := range kinds {
		switch {
		case k == job.EventProgress:
			return nil, &job.FieldError{Field: fmt.Sprintf("kinds[%d]", i), Problem: "job.progress is not stored, so it is not delivered to webhooks; follow it on the event stream"}
		case !slices.Contains(job.Kinds, k):
			return nil, &job.FieldError{Field: fmt.Sprintf("kinds[%d]", i), Problem: fmt.Sprintf("unknown event kind %q", k)}
		case !slices.Contains(out, k):
			out = append(out, k)
		}
	}
	return out, nil
}

// Get returns a webhook of tenant ("" any tenant); another tenant's is
// store.ErrNotFound.
func (s *Service) Get(ctx context.Context, tenant, id string) (*job.Webhook, error) {
	w, err := s.st.GetWebhook(ctx, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("webhook: get: %w", err)
	}
	return w, nil
}

// List returns the webhooks of tenant ("" every tenant), oldest first.
func (s *Service) List(ctx context.Context, tenant string) ([]*job.Webhook, error) {
	ws, err := s.st.ListWebhooks(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("webhook: list: %w", err)
	}
	return ws, nil
}

// Delete deletes a webhook of tenant ("" any tenant); another tenant's is
// store.ErrNotFound. Delivery to it stops at once (an attempt in flight is
// abandoned).
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	if err := s.st.DeleteWebhook(ctx, tenant, id); err != nil {
		return fmt.Errorf("webhook: delete: %w", err)
	}
	s.mu.Lock()
	if d := s.deliverers[id]; d != nil {
		d.cancel()
	}
	s.mu.Unlock()
	s.changed()
	return nil
}

// changed asks Run to read the webhooks again.
func (s *Service) changed() {
	select {
	case s.relist <- struct{}{}:
	default:
	}
}
