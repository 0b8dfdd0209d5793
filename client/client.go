package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// Defaults of a [Client].
const (
	// DefaultServer is the server [FromEnv] talks to when GANTRY_SERVER is
	// not set.
	DefaultServer = "http://127.0.0.1:8080"
	// DefaultTokenFile is where [FromEnv] looks for a token when none is
	// given: the admin token a local server writes into its data directory.
	DefaultTokenFile = "gantry-data/admin.token"
	// DefaultUserAgent is the User-Agent of requests.
	DefaultUserAgent = "gantry-go-client/1"
	// DefaultTimeout bounds a request whose context has no deadline; event
	// streams and long polls are not bounded by it.
	DefaultTimeout = time.Minute
)

// Environment variables read by [FromEnv].
const (
	EnvServer = "GANTRY_SERVER"
	EnvToken  = "GANTRY_TOKEN"
)

const (
	// maxErrorBody bounds how much of an error answer is read.
	maxErrorBody = 64 << 10
	// retries is how many times an idempotent request is retried after a
	// 503 answer.
	retries = 3
	// maxRetryWait caps the wait before such a retry.
	maxRetryWait = 5 * time.Second
	// streamIdleTimeout is how long an event stream may stay silent
	// before it is resumed on a new connection: three of the server's
	// default keep-alive intervals.
	streamIdleTimeout = 45 * time.Second
)

// Client talks to a Gantry server over its HTTP API v1. It is safe for
// concurrent use; make one and share it.
type Client struct {
	base      string // scheme://host[/prefix], without a trailing slash
	token     string
	hc        *http.Client
	userAgent string
	timeout   time.Duration

	// Timing of retries, reconnections and polling; tests shorten them.
	retryWait    time.Duration // first wait before a retry without Retry-After
	maxRetryWait time.Duration
	minBackoff   time.Duration // first wait before an event stream reconnects
	maxBackoff   time.Duration
	streamIdle   time.Duration // an event stream silent this long is resumed
	pollInterval time.Duration // Wait's polling when no event stream is available
	safetyPoll   time.Duration // Wait's polling while an event stream runs
}

// Option configures a [Client].
type Option func(*settings)

type settings struct {
	token     string
	tokenSet  bool
	tokenFile string
	hc        *http.Client
	userAgent string
	timeout   time.Duration
}

// WithToken sets the bearer token sent with every request.
func WithToken(token string) Option {
	return func(s *settings) { s.token, s.tokenSet = token, true }
}

// WithTokenFile reads the token from the file at path (surrounding white
// space removed) when no token was set otherwise. The file must exist.
// [FromEnv] uses [DefaultTokenFile] unless this option is given.
func WithTokenFile(path string) Option {
	return func(s *settings) { s.tokenFile = path }
}

// WithHTTPClient makes the client send its requests with hc. Its Timeout,
// if any, must be longer than the long polls of workers (30 seconds) and
// it ends event streams. Defaults to a client whose transport keeps many
// idle connections per host, so that concurrent calls reuse connections.
func WithHTTPClient(hc *http.Client) Option {
	return func(s *settings) { s.hc = hc }
}

// WithUserAgent sets the User-Agent header. Defaults to [DefaultUserAgent].
func WithUserAgent(ua string) Option {
	return func(s *settings) { s.userAgent = ua }
}

// WithTimeout bounds each request whose context has no deadline; zero or
// less means no bound. Event streams and long polls are not bounded by it.
// Defaults to [DefaultTimeout].
func WithTimeout(d time.Duration) Option {
	return func(s *settings) { s.timeout = d }
}

// New returns a client of the server at baseURL (such as
// "http://127.0.0.1:8080"; a path prefix is kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	s := settings{userAgent: DefaultUserAgent, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&s)
	}
	return newClient(baseURL, &s, false)
}

// FromEnv returns a client configured from the environment, so that local
// use needs no set-up: the server is GANTRY_SERVER (default
// [DefaultServer]) and the token GANTRY_TOKEN, or else the content of the
// token file ([DefaultTokenFile] in the working directory, where a local
// server writes its admin token; a missing default file means no token).
// Options override the environment.
func FromEnv(opts ...Option) (*Client, error) {
	s := settings{userAgent: DefaultUserAgent, timeout: DefaultTimeout}
	if t := os.Getenv(EnvToken); t != "" {
		s.token, s.tokenSet = t, true
	}
	for _, o := range opts {
		o(&s)
	}
	optional := false
	if s.tokenFile == "" {
		s.tokenFile, optional = DefaultTokenFile, true
	}
	base := os.Getenv(EnvServer)
	if base == "" {
		base = DefaultServer
	}
	return newClient(base, &s, optional)
}

func newClient(baseURL string, s *settings, optionalTokenFile bool) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q: must be http:// or https:// with a host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: server URL %q: must have no query, fragment or user information", baseURL)
	}
	token := s.token
	if !s.tokenSet && s.tokenFile != "" {
		b, err := os.ReadFile(s.tokenFile)
		switch {
		case err == nil:
			token = strings.TrimSpace(string(b))
		case optionalTokenFile && errors.Is(err, os.ErrNotExist):
		default:
			return nil, fmt.Errorf("client: token file: %w", err)
		}
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("client: the token must be one line")
	}
	hc := s.hc
	if hc == nil {
		hc = &http.Client{Transport: newTransport()}
	}
	return &Client{
		base:         strings.TrimRight(u.String(), "/"),
		token:        token,
		hc:           hc,
		userAgent:    s.userAgent,
		timeout:      s.timeout,
		retryWait:    250 * time.Millisecond,
		maxRetryWait: maxRetryWait,
		minBackoff:   250 * time.Millisecond,
		maxBackoff:   10 * time.Second,
		streamIdle:   streamIdleTimeout,
		pollInterval: time.Second,
		safetyPoll:   30 * time.Second,
	}, nil
}

// newTransport returns the default transport: keep-alive with many idle
// connections per host, since workers and busy clients make many
// concurrent calls to one server.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// Server returns the base URL of the server.
func (c *Client) Server() string { return c.base }

// call is one API request.
type call struct {
	method string
	path   string     // escaped, from the base URL: "/v1/jobs/" + url.PathEscape(id)
	query  url.Values // nil: none
	body   any        // marshaled to JSON; nil: no body
	out    any        // decoded from a JSON answer; nil: discarded
	// timeout bounds the request when its context has no deadline:
	// 0 takes the client's, < 0 none.
	timeout time.Duration
	// once disables the retries of idempotent requests.
	once bool
}

// do sends a request and decodes its answer into cl.out. It returns the
// status of a successful (2xx) answer; other statuses are *Error. GET and
// HEAD requests are retried after 503 answers, honoring Retry-After.
func (c *Client) do(ctx context.Context, cl call) (int, error) {
	var body []byte
	if cl.body != nil {
		b, err := json.Marshal(cl.body)
		if err != nil {
			return 0, fmt.Errorf("client: %s %s: encode request: %w", cl.method, cl.path, err)
		}
		body = b
	}
	timeout := cl.timeout
	if timeout == 0 {
		timeout = c.timeout
	}
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	idempotent := (cl.method == http.MethodGet || cl.method == http.MethodHead) && !cl.once
	for try := 0; ; try++ {
		status, err := c.once(ctx, &cl, body)
		var apiErr *Error
		if !idempotent || try >= retries || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			return status, err
		}
		d := apiErr.RetryAfter
		if d <= 0 {
			d = c.retryWait << try
		}
		d = min(d, c.maxRetryWait)
		if !sleep(ctx, d) {
			return status, err
		}
	}
}

func (c *Client) once(ctx context.Context, cl *call, body []byte) (int, error) {
	req, err := c.newRequest(ctx, cl.method, cl.path, cl.query, body)
	if err != nil {
		return 0, err
	}
	if cl.out != nil {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", cl.method, cl.path, err)
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, responseError(resp)
	}
	if cl.out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(cl.out); err != nil {
			return 0, fmt.Errorf("client: %s %s: decode answer: %w", cl.method, cl.path, err)
		}
	}
	return resp.StatusCode, nil
}

// newRequest makes a request with the client's headers.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return req, nil
}

// closeBody reads a little of what is left of a body, so that its
// connection can be reused, and closes it.
func closeBody(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 4<<10))
	_ = b.Close()
}

// responseError makes an *Error of an answer with an error status, from its
// problem document when it has one.
func responseError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	if resp.Request != nil {
		e.Method, e.Path = resp.Request.Method, resp.Request.URL.Path
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p wire.Problem
	if (mt == "application/problem+json" || mt == "application/json") && json.Unmarshal(data, &p) == nil {
		e.Type, e.Title, e.Detail, e.Field = p.Type, p.Title, p.Detail, p.Field
		e.Holder, e.ExpiresAt = p.Holder, tm(p.ExpiresAt)
		return e
	}
	e.Title = http.StatusText(resp.StatusCode)
	if text := strings.TrimSpace(string(data)); text != "" {
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		e.Detail = text
	}
	return e
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// sleep waits d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is an exponential backoff with jitter.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	// Full jitter in the upper half: [cur/2, cur].
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }
