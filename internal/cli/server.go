package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/server"
	"github.com/gantryhq/gantry/internal/webhook"
)

// EnvAdminToken is the environment variable that sets the admin token of
// gantry server (and gantry demo); without it, the token is read from, or
// generated into, <data-dir>/admin.token.
const EnvAdminToken = "GANTRY_ADMIN_TOKEN"

// EnvDatabaseURL is the environment variable that gives gantry server and
// gantry migrate the URL of their PostgreSQL database when --database-url
// is not set.
const EnvDatabaseURL = "GANTRY_DATABASE_URL"

// serverConfig is what the server command's flags set.
type serverConfig struct {
	Addr                 string
	DataDir              string
	DatabaseURL          string
	Schema               string
	DatabaseMaxConns     int
	LeaderTTL            time.Duration
	AllowPrivateWebhooks bool
	LeaseTTL             time.Duration
	JobRetention         time.Duration
	EventRetention       time.Duration
	Synchronous          string
	LogLevel             string
	ShutdownTimeout      time.Duration
}

func newServerCommand(a *app) *cobra.Command {
	var cfg serverConfig
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Gantry server: the HTTP API on SQLite or PostgreSQL",
		Long: "Server serves Gantry's HTTP API v1 on --addr, with its SQLite database and\n" +
			"admin token in --data-dir. The admin token is $" + EnvAdminToken + " if set, else the\n" +
			"content of <data-dir>/admin.token, generated (mode 0600) on first start; the\n" +
			"client commands and workers started in the same directory find it there.\n\n" +
			"With --database-url (or $" + EnvDatabaseURL + ") the server runs on PostgreSQL\n" +
			"instead, in --schema, applying pending migrations on start. Several servers\n" +
			"may share one database behind one load balancer: give them all the same\n" +
			"admin token ($" + EnvAdminToken + ").\n\n" +
			"The first SIGINT or SIGTERM shuts the server down gracefully: it stops\n" +
			"accepting connections, ends event streams and long polls, and lets the\n" +
			"requests in flight finish (up to --shutdown-timeout). A second one exits at once.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := noClientFlags(cmd); err != nil {
				return err
			}
			if cfg.DatabaseURL == "" {
				cfg.DatabaseURL = os.Getenv(EnvDatabaseURL)
			}
			if err := cfg.check(); err != nil {
				return err
			}
			return runServer(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "TCP address to listen on (port 0 picks a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "directory of the SQLite database and the admin token file")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "URL of the PostgreSQL database to run on instead of SQLite (default $"+EnvDatabaseURL+")")
	f.StringVar(&cfg.Schema, "schema", "public", "PostgreSQL schema of Gantry's tables (with --database-url)")
	f.IntVar(&cfg.DatabaseMaxConns, "database-max-conns", 0, "size of the PostgreSQL connection pool (default the greater of 8 and twice the number of CPUs)")
	f.DurationVar(&cfg.LeaderTTL, "leader-ttl", 15*time.Second, "with --database-url: TTL of the maintenance leader's reservation; a dead leader is replaced within 4/3 of it (at least 1s)")
	f.BoolVar(&cfg.AllowPrivateWebhooks, "allow-private-webhooks", false, "let webhooks target loopback, private and link-local addresses (development only)")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", 30*time.Second, "lease TTL of workers that do not ask for their own (1s to 1h)")
	f.DurationVar(&cfg.JobRetention, "job-retention", 7*24*time.Hour, "how long finished jobs and done batches are kept")
	f.DurationVar(&cfg.EventRetention, "event-retention", time.Hour, "how long events are kept: the window in which event streams resume without loss")
	f.StringVar(&cfg.Synchronous, "sqlite-synchronous", "FULL", "SQLite synchronous mode: FULL (durable before acknowledged) or NORMAL (faster; a power loss may lose the last commits)")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish on shutdown")
	return cmd
}

// check validates the flags.
func (c *serverConfig) check() error {
	if c.LeaseTTL < time.Second || c.LeaseTTL > time.Hour {
		return usagef("--lease-ttl must be between 1s and 1h, not %s", c.LeaseTTL)
	}
	if c.JobRetention <= 0 {
		return usagef("--job-retention must be positive, not %s", c.JobRetention)
	}
	if c.EventRetention <= 0 {
		return usagef("--event-retention must be positive, not %s", c.EventRetention)
	}
	if s := strings.ToUpper(c.Synchronous); s != "FULL" && s != "NORMAL" {
		return usagef("--sqlite-synchronous must be FULL or NORMAL, not %q", c.Synchronous)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.ShutdownTimeout <= 0 {
		return usagef("--shutdown-timeout must be positive, not %s", c.ShutdownTimeout)
	}
	if c.DataDir == "" {
		return usagef("--data-dir must not be empty")
	}
	if c.LeaderTTL < time.Second {
		return usagef("--leader-ttl must be at least 1s, not %s", c.LeaderTTL)
	}
	if c.DatabaseMaxConns < 0 {
		return usagef("--database-max-conns must not be negative, not %d", c.DatabaseMaxConns)
	}
	return checkSchema(c.Schema)
}

// checkSchema validates a --schema: what PostgreSQL accepts unquoted, in
// lower case.
func checkSchema(schema string) error {
	if !schemaRe.MatchString(schema) {
		return usagef("--schema must be 1 to 50 of a-z, 0-9 and _, not starting with a digit, not %q", schema)
	}
	return nil
}

var schemaRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

// parseLevel parses a --log-level.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// started is a server listening in this process.
type started struct {
	srv       *server.Server
	url       string
	generated bool          // the admin token was generated at this start
	done      chan struct{} // closed when Serve returned
	serveErr  error         // what Serve returned, once done is closed
}

// startServer opens the server of cfg and serves it on a listener of
// cfg.Addr in the background.
func startServer(ctx context.Context, cfg server.Config) (*started, error) {
	tokenPath := filepath.Join(cfg.DataDir, server.TokenFile)
	_, statErr := os.Stat(tokenPath)
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = srv.Shutdown(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen on %s: %w (is another server running there? --addr 127.0.0.1:0 picks a free port)", cfg.Addr, err)
	}
	s := &started{
		srv:       srv,
		url:       "http://" + ln.Addr().String(),
		generated: srv.TokenFile() != "" && errors.Is(statErr, os.ErrNotExist),
		done:      make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.serveErr = srv.Serve(ln)
	}()
	return s, nil
}

// stop shuts the server down gracefully within timeout, and waits for
// Serve to return.
func (s *started) stop(ctx context.Context, timeout time.Duration) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	<-s.done
	return errors.Join(err, s.serveErr)
}

// writeTokenInfo tells where the admin token is.
func (s *started) writeTokenInfo(w io.Writer) {
	switch {
	case s.srv.TokenFile() == "":
		fmt.Fprintf(w, "Admin token: from $%s\n", EnvAdminToken)
	case s.generated:
		fmt.Fprintf(w, "Admin token: %s\n  (generated; saved in %s)\n", s.srv.Token(), s.srv.TokenFile())
	default:
		fmt.Fprintf(w, "Admin token: in %s\n", s.srv.TokenFile())
	}
}

// runServer runs the server command: see newServerCommand.
func runServer(ctx context.Context, cfg serverConfig, stdout, stderr io.Writer) error {
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	s, err := startServer(ctx, server.Config{
		Addr:             cfg.Addr,
		DataDir:          cfg.DataDir,
		DatabaseURL:      cfg.DatabaseURL,
		Schema:           cfg.Schema,
		DatabaseMaxConns: cfg.DatabaseMaxConns,
		AdminToken:       os.Getenv(EnvAdminToken),
		Synchronous:      strings.ToUpper(cfg.Synchronous),
		Engine: engine.Config{
			LeaseTTL:       cfg.LeaseTTL,
			JobRetention:   cfg.JobRetention,
			EventRetention: cfg.EventRetention,
			LeaderTTL:      cfg.LeaderTTL,
		},
		Webhooks: webhook.Options{AllowPrivate: cfg.AllowPrivateWebhooks},
		Logger:   logger,
	})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fmt.Fprintf(stdout, "Gantry server listening on %s\n", s.url)
	if cfg.DatabaseURL != "" {
		fmt.Fprintf(stdout, "Database: PostgreSQL, schema %s\n", cfg.Schema)
	} else {
		fmt.Fprintf(stdout, "Data directory: %s\n", cfg.DataDir)
	}
	s.writeTokenInfo(stdout)
	if cfg.AllowPrivateWebhooks {
		fmt.Fprintln(stdout, "Webhooks may target private addresses (--allow-private-webhooks): development only.")
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")

	select {
	case <-ctx.Done():
	case <-s.done:
		// Serve returned before Shutdown: the listener failed.
		err := s.stop(ctx, cfg.ShutdownTimeout)
		return fmt.Errorf("server: stopped serving: %w", err)
	}
	fmt.Fprintf(stdout, "Shutting down (up to %s; Ctrl-C again to exit at once)...\n", cfg.ShutdownTimeout)
	if err := s.stop(ctx, cfg.ShutdownTimeout); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fmt.Fprintln(stdout, "Stopped.")
	return nil
}
