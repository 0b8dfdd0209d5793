// Package api is Gantry's HTTP API v1 (docs: API.md): a thin translation of
// HTTP requests to engine calls. Each handler decodes its request (strict
// JSON through package wire, query parameters, path IDs), calls the engine
// and encodes the answer; errors become application/problem+json.
//
// Status codes:
//   - 400: a request that cannot be read: malformed JSON, a value of the
//     wrong JSON type, an unknown field, a missing required field, or a bad
//     query parameter; the problem's field member names it (e.g.
//     "jobs[3].priority", "limit"). These are the errors of decoding.
//   - 401: no bearer token, a bad one, or credentials in the query string.
//   - 403: the credential's role does not allow the operation, or it names
//     another tenant.
//   - 404: an unknown object, another tenant's object, an unknown or lost
//     worker, and any path ID or name that is malformed (an ID that cannot
//     exist is simply not found).
//   - 405: a known path with another method.
//   - 409: a state conflict: a terminal job canceled, a closed batch
//     extended, a non-terminal job deleted, a stale lease token, a
//     reservation held by another holder (reservation-held, with holder
//     and expires_at) or no longer held (reservation-lost).
//   - 413: a request body over the byte limit, or params over their limit
//     (field "params", or "jobs[3].params").
//   - 422: a request that decodes but whose values are not acceptable (a
//     priority out of range, a bad type name, a lease TTL over the
//     maximum...): a *job.FieldError from the engine or from a handler's
//     own checks, the field member naming the field; also a batch,
//     heartbeat or report with more items than the configured limit (the
//     field member names the list), or a tenant over a quota (too many
//     webhooks).
//   - 429: too many concurrent event streams for one credential.
//   - 503 with Retry-After: the store is unavailable or closed, or the
//     server is shutting down.
//
// Every /v1 endpoint needs "Authorization: Bearer <token>"; /healthz and
// /readyz need none.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
)

// Engine is what the API needs of the engine: [engine.API] and the
// heartbeat interval it tells workers. *engine.Engine implements it.
type Engine interface {
	engine.API
	// HeartbeatInterval returns how often a worker with lease TTL ttl
	// should heartbeat.
	HeartbeatInterval(ttl time.Duration) time.Duration
}

var _ Engine = (*engine.Engine)(nil)

// ErrQuota is wrapped by errors of services (see [WebhookService]) when a
// tenant reached a quota, such as its number of webhooks; the API answers
// 422.
var ErrQuota = errors.New("api: quota reached")

// WebhookService manages webhook subscriptions (package webhook implements
// it). Its methods return a *job.FieldError for a bad value (422), an error
// wrapping store.ErrNotFound for an unknown webhook and one wrapping
// [ErrQuota] when the tenant has too many. Tenant "" means every
// tenant (an admin).
type WebhookService interface {
	Create(ctx context.Context, tenant string, url string, kinds []string, batchID string) (*job.Webhook, error)
	Get(ctx context.Context, tenant, id string) (*job.Webhook, error)
	List(ctx context.Context, tenant string) ([]*job.Webhook, error)
	Delete(ctx context.Context, tenant, id string) error
}

// Limits bound what requests may ask. Zero fields take their defaults.
type Limits struct {
	// MaxBody is the largest request body, in bytes. Defaults to 1 MiB.
	MaxBody int64
	// MaxBatch bounds the jobs of one batch request, before they are
	// converted; the engine applies its own limit too. Defaults to 10000.
	MaxBatch int
	// MaxLeaseWait bounds a lease request's wait_seconds (a longer wait
	// is shortened to it). Defaults to 60s.
	MaxLeaseWait time.Duration
	// MaxStreamsPerKey bounds the concurrent event streams of one
	// credential. Defaults to 100.
	MaxStreamsPerKey int
	// KeepAlive is how often an idle event stream gets a comment line.
	// Defaults to 15s.
	KeepAlive time.Duration
	// StreamWriteTimeout bounds each write to an event stream: a client
	// that does not read for that long is disconnected. Defaults to 30s.
	StreamWriteTimeout time.Duration
	// IOTimeout bounds the time a client may take to send a request body,
	// and to read an answer (plus MaxLeaseWait). Defaults to 30s.
	IOTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = 1 << 20
	}
	if l.MaxBatch <= 0 {
		l.MaxBatch = 10000
	}
	if l.MaxLeaseWait <= 0 {
		l.MaxLeaseWait = 60 * time.Second
	}
	if l.MaxStreamsPerKey <= 0 {
		l.MaxStreamsPerKey = 100
	}
	if l.KeepAlive <= 0 {
		l.KeepAlive = 15 * time.Second
	}
	if l.StreamWriteTimeout <= 0 {
		l.StreamWriteTimeout = 30 * time.Second
	}
	if l.IOTimeout <= 0 {
		l.IOTimeout = 30 * time.Second
	}
	return l
}

// Config configures the API.
type Config struct {
	// Engine runs the jobs. Required.
	Engine Engine
	// Auth checks bearer tokens. Required.
	Auth auth.Authenticator
	// Webhooks manages webhooks; nil leaves the webhook endpoints out.
	Webhooks WebhookService
	// Limits bound requests.
	Limits Limits
	// Ready reports whether the server can serve (GET /readyz); nil
	// means always.
	Ready func(ctx context.Context) error
	// Clock dates the age of queues' oldest jobs. Defaults to time.Now.
	Clock func() time.Time
	// Logger receives server errors and, at debug level, every request.
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// API is the HTTP handler of the API. Create it with [New].
type API struct {
	eng      Engine
	auth     auth.Authenticator
	webhooks WebhookService
	lim      Limits
	ready    func(ctx context.Context) error
	now      func() time.Time
	log      *slog.Logger
	mux      *http.ServeMux

	// base is canceled by Shutdown: it ends event streams and long polls.
	base     context.Context
	shutdown context.CancelFunc

	smu     sync.Mutex
	streams map[string]int // open event streams per credential key
}

// New returns the API over cfg's engine.
func New(cfg Config) (*API, error) {
	if cfg.Engine == nil {
		return nil, errors.New("api: an engine is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("api: an authenticator is required")
	}
	a := &API{
		eng:      cfg.Engine,
		auth:     cfg.Auth,
		webhooks: cfg.Webhooks,
		lim:      cfg.Limits.withDefaults(),
		ready:    cfg.Ready,
		now:      cfg.Clock,
		log:      cfg.Logger,
		mux:      http.NewServeMux(),
		streams:  make(map[string]int),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.base, a.shutdown = context.WithCancel(context.Background())
	a.routes()
	return a, nil
}

// Shutdown ends the open event streams and long-polling lease requests
// (a lease request answers with no job), so that a graceful server
// shutdown does not wait for them. Requests that arrive later are served
// as usual, except that their streams and waits end at once.
func (a *API) Shutdown() { a.shutdown() }

func (a *API) routes() {
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)

	a.handle("POST /v1/jobs", auth.Submit, a.submitJob)
	a.handle("GET /v1/jobs", auth.Read, a.listJobs)
	a.handle("GET /v1/jobs/{id}", auth.Read, a.getJob)
	a.handle("DELETE /v1/jobs/{id}", auth.Submit, a.deleteJob)
	a.handle("POST /v1/jobs/{id}/cancel", auth.Submit, a.cancelJob)
	a.handle("POST /v1/jobs/{id}/retry", auth.Submit, a.retryJob)
	a.handle("POST /v1/jobs/{id}/heartbeat", auth.Work, a.jobHeartbeat)
	a.handle("POST /v1/jobs/{id}/complete", auth.Work, a.jobComplete)
	a.handle("POST /v1/jobs/{id}/fail", auth.Work, a.jobFail)

	a.handle("POST /v1/batches", auth.Submit, a.createBatch)
	a.handle("GET /v1/batches", auth.Read, a.listBatches)
	a.handle("GET /v1/batches/{id}", auth.Read, a.getBatch)
	a.handle("POST /v1/batches/{id}/jobs", auth.Submit, a.addToBatch)
	a.handle("GET /v1/batches/{id}/jobs", auth.Read, a.listBatchJobs)
	a.handle("POST /v1/batches/{id}/close", auth.Submit, a.closeBatch)
	a.handle("POST /v1/batches/{id}/cancel", auth.Submit, a.cancelBatch)

	a.handle("GET /v1/events", auth.Read, a.events)

	if a.webhooks != nil {
		a.handle("POST /v1/webhooks", auth.Submit, a.createWebhook)
		a.handle("GET /v1/webhooks", auth.Read, a.listWebhooks)
		a.handle("GET /v1/webhooks/{id}", auth.Read, a.getWebhook)
		a.handle("DELETE /v1/webhooks/{id}", auth.Submit, a.deleteWebhook)
	}

	a.handle("POST /v1/workers", auth.Work, a.registerWorker)
	a.handle("GET /v1/workers", auth.Read, a.listWorkers)
	a.handle("POST /v1/workers/{id}/lease", auth.Work, a.lease)
	a.handle("POST /v1/workers/{id}/heartbeat", auth.Work, a.heartbeat)
	a.handle("POST /v1/workers/{id}/report", auth.Work, a.report)
	a.handle("POST /v1/workers/{id}/drain", auth.Work, a.drainWorker)
	a.handle("DELETE /v1/workers/{id}", auth.Work, a.removeWorker)

	// Reservation writes need Submit or Work: their handlers check it.
	a.handle("GET /v1/reservations", auth.Read, a.listReservations)
	a.handle("GET /v1/reservations/{name}", auth.Read, a.getReservation)
	a.handle("POST /v1/reservations/{name}/acquire", auth.Read, a.acquireReservation)
	a.handle("POST /v1/reservations/{name}/renew", auth.Read, a.renewReservation)
	a.handle("POST /v1/reservations/{name}/release", auth.Read, a.releaseReservation)

	a.handle("GET /v1/queues", auth.Read, a.listQueues)
	a.handle("POST /v1/queues/{name}/pause", auth.Submit, a.pauseQueue)
	a.handle("POST /v1/queues/{name}/resume", auth.Submit, a.resumeQueue)

	a.scheduleRoutes()
}

// handlerFunc is an endpoint: it writes its answer, or returns an error
// that [API.fail] turns into a problem.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

type principalKey struct{}

// handle registers an endpoint that needs perm.
func (a *API) handle(pattern string, perm auth.Permission, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(principalKey{}).(auth.Principal)
		if !ok {
			a.fail(w, r, errUnauthorized("missing credentials"))
			return
		}
		if !p.Allows(perm) {
			a.fail(w, r, &apiError{status: http.StatusForbidden, detail: "the credential's role does not allow this operation"})
			return
		}
		// Deadlines: a client may take IOTimeout to send its body and to
		// read the answer (a long poll adds its wait; event streams set
		// their own per write). The read deadline is lifted once the body
		// is read, so that it cannot end a long poll.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(a.lim.IOTimeout + a.lim.MaxLeaseWait))
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(a.lim.IOTimeout))
			r.Body = &liftDeadline{ReadCloser: http.MaxBytesReader(w, r.Body, a.lim.MaxBody), rc: rc}
		}
		if err := h(w, r, p); err != nil {
			a.fail(w, r, err)
		}
	})
}

// ServeHTTP implements http.Handler: it authenticates /v1 requests,
// routes them, and answers unknown paths and methods with problems.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			if !rw.wrote {
				a.fail(rw, r, errors.New("internal error"))
			}
		}
		a.log.Debug("api: request", "method", r.Method, "path", r.URL.Path, "status", rw.status, "duration", time.Since(start))
	}()
	if r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/") {
		p, err := a.authenticate(r)
		if err != nil {
			a.fail(rw, r, err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.notRouted(rw, r)
		return
	}
	a.mux.ServeHTTP(rw, r)
}

// notRouted answers a request no pattern matches: 404, or 405 with Allow
// when the path exists with other methods (or a redirect to the clean
// path, as the mux gives).
func (a *API) notRouted(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		a.fail(w, r, &apiError{status: http.StatusMethodNotAllowed, detail: r.Method + " is not allowed on " + r.URL.Path})
	case http.StatusMovedPermanently, http.StatusPermanentRedirect, http.StatusTemporaryRedirect, http.StatusFound:
		w.Header().Set("Location", rec.header.Get("Location"))
		w.WriteHeader(rec.status)
	default:
		a.fail(w, r, &apiError{status: http.StatusNotFound, detail: "no endpoint at " + r.URL.Path})
	}
}

// credentialParams are the lower-case names of query parameters that look
// like credentials: a request carrying one, in any case, is refused
// (RELIABILITY.md rule 11), since URLs end up in logs and browser
// histories.
var credentialParams = []string{
	"token", "access_token", "api_key", "apikey", "api-key", "key",
	"auth", "authorization", "bearer", "jwt",
}

// authenticate returns the caller of a /v1 request.
func (a *API) authenticate(r *http.Request) (auth.Principal, error) {
	for k := range r.URL.Query() {
		if slices.Contains(credentialParams, strings.ToLower(k)) {
			return auth.Principal{}, errUnauthorized("credentials in the query string (" + k + ") are refused: send them in the Authorization header as \"Bearer <token>\"")
		}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return auth.Principal{}, errUnauthorized("missing credentials: send the Authorization header as \"Bearer <token>\"")
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return auth.Principal{}, errUnauthorized("the Authorization header must be \"Bearer <token>\"")
	}
	p, err := a.auth.Authenticate(r.Context(), strings.TrimSpace(token))
	if err != nil {
		if errors.Is(err, auth.ErrUnauthorized) {
			return auth.Principal{}, errUnauthorized("invalid token")
		}
		return auth.Principal{}, err
	}
	return p, nil
}

// responseWriter records the status for logs and whether anything was
// written. It unwraps for http.ResponseController.
type responseWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// liftDeadline lifts the connection's read deadline once the body has
// been read to its end.
type liftDeadline struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *liftDeadline) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// recorder captures what the mux's own 404/405/redirect handlers write.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
