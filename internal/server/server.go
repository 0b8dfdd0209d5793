// Package server is the composition root of "gantry server": it opens the
// store (SQLite in the data directory, or PostgreSQL when a database URL is
// given), starts the engine, and serves the HTTP API (package api) with the
// admin token.
//
// Several servers may share one PostgreSQL database (behind one load
// balancer): they must then share the admin token too, through
// GANTRY_ADMIN_TOKEN or a copy of the same token file.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
	"github.com/gantryhq/gantry/internal/store/sqlite"
	"github.com/gantryhq/gantry/internal/webhook"
)

// Defaults of [Config].
const (
	DefaultAddr    = "127.0.0.1:8080"
	DefaultDataDir = "./gantry-data"
)

// Names of the files in the data directory.
const (
	DatabaseFile = "gantry.db"
	TokenFile    = "admin.token"
)

// PostgresPollInterval is how often, on PostgreSQL, a waiting lease call
// looks for jobs without a notification: the longest pick-up delay when
// notifications are lost.
const PostgresPollInterval = time.Second

// Config configures a [Server]. Zero fields take their defaults.
type Config struct {
	// Addr is the TCP address ListenAndServe listens on. Defaults to
	// 127.0.0.1:8080.
	Addr string
	// DataDir holds the SQLite database (when DatabaseURL is empty) and
	// the admin token file. It is created (mode 0700) if needed. Defaults
	// to ./gantry-data.
	DataDir string
	// DatabaseURL, when set, is the URL of the PostgreSQL database the
	// server runs on instead of SQLite (see package postgres); pending
	// migrations are applied on start.
	DatabaseURL string
	// Schema is the PostgreSQL schema holding Gantry's tables. Defaults to
	// "public". Ignored without DatabaseURL.
	Schema string
	// DatabaseMaxConns bounds the PostgreSQL connection pool of this
	// server. Defaults to postgres.DefaultMaxConns (the greater of 8 and
	// twice the number of CPUs). Ignored without DatabaseURL.
	DatabaseMaxConns int
	// AdminToken is the admin credential. When empty, the token is read
	// from <DataDir>/admin.token, or generated and written there (mode
	// 0600) on first start. Callers pass GANTRY_ADMIN_TOKEN here. Servers
	// sharing one database behind one load balancer must share it.
	AdminToken string
	// Synchronous is SQLite's synchronous pragma: FULL (durable before
	// acknowledged) or NORMAL (faster; a power loss may lose the last
	// commits). Defaults to FULL.
	Synchronous string
	// Engine configures the engine; its Logger defaults to Logger. With
	// DatabaseURL, its Elect is set: the servers sharing the database elect
	// the one that runs maintenance.
	Engine engine.Config
	// Limits bound API requests.
	Limits api.Limits
	// Webhooks configures webhook delivery (AllowPrivate lets webhooks
	// target internal addresses: development only); its Logger defaults
	// to Logger.
	Webhooks webhook.Options
	// Store, when set, is used instead of opening SQLite in DataDir or
	// PostgreSQL at DatabaseURL (tests wrap or close it to simulate
	// outages). The server closes it on Shutdown.
	Store store.Store
	// Logger receives the server's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Server is a running Gantry server: store, engine and HTTP API.
type Server struct {
	cfg       Config
	log       *slog.Logger
	st        store.Store
	eng       *engine.Engine
	api       *api.API
	webhooks  *webhook.Service
	hs        *http.Server
	token     string
	tokenPath string // "" when the token was given in Config

	stopWebhooks context.CancelFunc
	webhooksDone chan struct{}

	mu       sync.Mutex
	url      string
	closeErr error
	closed   bool
}

// New opens the store, starts the engine and prepares the API. Serve or
// ListenAndServe then serves it; Shutdown stops everything. ctx bounds
// the opening only.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Engine.Logger == nil {
		cfg.Engine.Logger = cfg.Logger
	}
	if cfg.DatabaseURL != "" {
		// Servers sharing the database elect the one that runs maintenance.
		cfg.Engine.Elect = true
		// NOTIFY is only a hint (RELIABILITY.md rule 8): when it is lost
		// (say, the listener connection was killed), waiting lease calls
		// find new jobs by polling within this interval.
		if cfg.Engine.LeasePollInterval == 0 {
			cfg.Engine.LeasePollInterval = PostgresPollInterval
		}
	}
	if cfg.Limits.MaxBatch == 0 {
		cfg.Limits.MaxBatch = cfg.Engine.MaxBatch // the API checks the engine's limit first
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	// The data directory holds the SQLite database and the token file: a
	// PostgreSQL server given its token needs none.
	if cfg.DatabaseURL == "" || cfg.AdminToken == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("server: create data directory: %w", err)
		}
	}
	if err := s.loadToken(); err != nil {
		return nil, err
	}
	authn, err := auth.NewStatic(s.token)
	if err != nil {
		return nil, fmt.Errorf("server: admin token: %w", err)
	}

	s.st = cfg.Store
	if s.st == nil {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.st = st
	}
	s.eng = engine.New(s.st, cfg.Engine)
	if cfg.Webhooks.Logger == nil {
		cfg.Webhooks.Logger = cfg.Logger
	}
	s.webhooks = webhook.New(s.st, s.eng.Hub(), cfg.Webhooks)
	s.api, err = api.New(api.Config{
		Engine:   s.eng,
		Auth:     authn,
		Webhooks: webhookService{s.webhooks},
		Limits:   cfg.Limits,
		Ready:    s.st.Ping,
		Clock:    s.eng.Config().Clock,
		Logger:   cfg.Logger,
	})
	if err != nil {
		_ = s.st.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s.eng.Start(context.WithoutCancel(ctx))
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopWebhooks, s.webhooksDone = stop, make(chan struct{})
	go func() {
		defer close(s.webhooksDone)
		if err := s.webhooks.Run(wctx); err != nil && wctx.Err() == nil {
			s.log.Error("server: webhook delivery stopped", "err", err)
		}
	}()
	s.hs = &http.Server{
		Handler:           s.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	s.hs.RegisterOnShutdown(s.api.Shutdown)
	return s, nil
}

// openStore opens the store of cfg: PostgreSQL at cfg.DatabaseURL when it
// is set, else SQLite in cfg.DataDir.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, postgres.Config{
			URL:      cfg.DatabaseURL,
			Schema:   cfg.Schema,
			MaxConns: cfg.DatabaseMaxConns,
			Logger:   cfg.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("server: open PostgreSQL store: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, sqlite.Config{
		Path:        filepath.Join(cfg.DataDir, DatabaseFile),
		Synchronous: cfg.Synchronous,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: open store: %w", err)
	}
	return st, nil
}

// loadToken sets the admin token: the configured one, else the token file's,
// else a new one written to the token file.
func (s *Server) loadToken() error {
	if s.cfg.AdminToken != "" {
		if err := auth.CheckToken(s.cfg.AdminToken); err != nil {
			return fmt.Errorf("server: admin token: %w", err)
		}
		s.token = s.cfg.AdminToken
		return nil
	}
	path := filepath.Join(s.cfg.DataDir, TokenFile)
	token, err := readTokenFile(path)
	if errors.Is(err, os.ErrNotExist) {
		token, err = createTokenFile(path)
		if err == nil {
			s.log.Info("server: generated an admin token", "file", path)
		}
	}
	if err != nil {
		return err
	}
	s.token, s.tokenPath = token, path
	return nil
}

// Handler returns the server's HTTP handler, to serve it some other way
// (tests, a TLS listener).
func (s *Server) Handler() http.Handler { return s.api }

// Token returns the admin token.
func (s *Server) Token() string { return s.token }

// TokenFile returns the path of the file holding the admin token, or ""
// when it was given in Config.
func (s *Server) TokenFile() string { return s.tokenPath }

// URL returns the server's base URL, e.g. "http://127.0.0.1:8080": that of
// the listener once Serve was called, of Config.Addr before.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.url != "" {
		return s.url
	}
	return "http://" + s.cfg.Addr
}

// ListenAndServe listens on Config.Addr and serves until Shutdown.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve serves the API on ln until Shutdown, and then returns nil. It
// closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.url = "http://" + ln.Addr().String()
	url := s.url
	s.mu.Unlock()
	attrs := []any{"url", url}
	if s.tokenPath != "" {
		attrs = append(attrs, "token_file", s.tokenPath)
	} else {
		attrs = append(attrs, "token", "as configured (GANTRY_ADMIN_TOKEN)")
	}
	s.log.Info("gantry server listening", attrs...)
	if err := s.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: serve: %w", err)
	}
	return nil
}

// Shutdown stops the server gracefully: it stops accepting connections,
// ends event streams and long polls, waits for the other requests in
// flight (until ctx is done, then closes their connections), stops webhook
// delivery (saving its progress), and closes the engine and the store. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		err := s.closeErr
		s.mu.Unlock()
		return err
	}
	s.closed = true
	s.mu.Unlock()

	err := s.hs.Shutdown(ctx)
	if err != nil {
		err = fmt.Errorf("server: shutdown: %w", err)
		_ = s.hs.Close()
	}
	s.stopWebhooks()
	<-s.webhooksDone
	s.eng.Close()
	if cerr := s.st.Close(); cerr != nil && !errors.Is(cerr, store.ErrClosed) {
		err = errors.Join(err, fmt.Errorf("server: close store: %w", cerr))
	}
	s.log.Info("gantry server stopped")
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	return err
}
