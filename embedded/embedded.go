// Package embedded runs Gantry inside a Go program, on a SQLite file, with
// no server in between: the program submits and follows jobs through a
// [Gantry] and runs them with the worker runtime (package worker) over
// [Gantry.Transport].
//
//	g, err := embedded.Open(ctx, embedded.Config{Path: "gantry.db"})
//	if err != nil { ... }
//	defer g.Close()
//	w := worker.New(g.Transport(), worker.Options{})
//	w.RegisterFunc("email.send", sendEmail)
//	go w.Run(ctx)
//	j, err := g.Submit(ctx, embedded.JobSpec{Type: "email.send", Params: msg})
//
// The jobs, their leases, retries, batches and events behave exactly as
// behind a Gantry server; one process owns the database file at a time.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
	"github.com/gantryhq/gantry/internal/store/sqlite"
	"github.com/gantryhq/gantry/worker"
)

// Config configures [Open]. Zero fields take their defaults.
type Config struct {
	// Path is the SQLite database file; it and its directory are created if
	// needed. Required unless DatabaseURL is set.
	Path string
	// DatabaseURL, when set, runs Gantry on PostgreSQL instead of SQLite
	// (postgres://user@host:5432/db). Several processes may then share the
	// database: their maintenance is leader-elected.
	DatabaseURL string
	// Schema is the PostgreSQL schema holding Gantry's tables, created and
	// migrated if needed. Defaults to "public".
	Schema string
	// DatabaseMaxConns bounds the PostgreSQL connection pool; zero means
	// the store's default (the greater of 8 and twice the number of CPUs).
	DatabaseMaxConns int
	// Synchronous is SQLite's synchronous setting: "FULL", every
	// acknowledged write is durable, or "NORMAL", faster, but a power loss
	// may lose the last writes. Defaults to FULL.
	Synchronous string
	// LeaseTTL is the lease TTL of workers that do not ask for their own.
	// A worker that stops heartbeating loses its jobs to others after about
	// this long. Defaults to 30 seconds.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often workers with the default LeaseTTL
	// renew their leases. Defaults to LeaseTTL/3.
	HeartbeatInterval time.Duration
	// Backoff is the delay between a job's failed attempts. Its zero value
	// is the default: from 1 second, doubling, at most 1 hour, ±20% jitter.
	Backoff Backoff
	// RescueInterval is how often expired leases are looked for. Defaults
	// to 1 second.
	RescueInterval time.Duration
	// PromoteInterval is how often scheduled and retrying jobs are checked
	// for being due, besides waking at the earliest known due time.
	// Defaults to 1 second.
	PromoteInterval time.Duration
	// RetentionInterval is how often old jobs and events are deleted.
	// Defaults to 1 minute.
	RetentionInterval time.Duration
	// JobRetention is how long finished jobs and batches are kept.
	// Defaults to 7 days.
	JobRetention time.Duration
	// EventRetention is how long events are kept: the window in which a
	// subscription can resume. Defaults to 1 hour.
	EventRetention time.Duration
	// MaxParamsBytes bounds a job's params. Defaults to 256 KiB.
	MaxParamsBytes int
	// Logger receives Gantry's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Backoff is an exponential backoff policy: the delay after attempt n
// failed is Base·Factor^(n-1), at most Max, randomized by ±20%. A job's
// handler can choose its own delay with gantry.RetryAfter.
type Backoff struct {
	// Base is the delay after the first failed attempt. Defaults to 1 second.
	Base time.Duration
	// Factor multiplies the delay at each further attempt. Defaults to 2.
	Factor float64
	// Max bounds the delay. Defaults to 1 hour.
	Max time.Duration
}

// Gantry is an embedded Gantry: a store (SQLite, or PostgreSQL) and the
// engine that runs the job lifecycle on it. Its methods are safe for concurrent use.
type Gantry struct {
	st  store.Store
	eng *engine.Engine
	tr  *transport

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database at cfg.Path, applies its
// migrations and starts the engine's maintenance (promoting due jobs,
// rescuing expired leases, retention). ctx bounds the opening only; call
// [Gantry.Close] to stop.
func Open(ctx context.Context, cfg Config) (*Gantry, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var st store.Store
	var err error
	if cfg.DatabaseURL != "" {
		st, err = postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, Schema: cfg.Schema, MaxConns: cfg.DatabaseMaxConns, Logger: logger})
	} else {
		st, err = sqlite.Open(ctx, sqlite.Config{Path: cfg.Path, Synchronous: cfg.Synchronous, Logger: logger})
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: open: %w", err)
	}
	eng := engine.New(st, engine.Config{
		Elect:             cfg.DatabaseURL != "", // processes sharing PostgreSQL elect one to run maintenance
		LeaseTTL:          cfg.LeaseTTL,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Backoff:           engine.Backoff{Base: cfg.Backoff.Base, Factor: cfg.Backoff.Factor, Max: cfg.Backoff.Max},
		RescueInterval:    cfg.RescueInterval,
		PromoteInterval:   cfg.PromoteInterval,
		RetentionInterval: cfg.RetentionInterval,
		JobRetention:      cfg.JobRetention,
		EventRetention:    cfg.EventRetention,
		Limits:            job.Limits{MaxParamsBytes: cfg.MaxParamsBytes},
		Logger:            logger,
	})
	eng.Start(context.WithoutCancel(ctx))
	return &Gantry{st: st, eng: eng, tr: &transport{eng: eng}}, nil
}

// Close stops the engine, ends subscriptions and waiting calls, and closes
// the database. Stop the workers running over [Gantry.Transport] first, so
// that they can report and leave. Close is idempotent.
func (g *Gantry) Close() error {
	g.closeOnce.Do(func() {
		g.eng.Close()
		if err := g.st.Close(); err != nil {
			g.closeErr = fmt.Errorf("embedded: close: %w", err)
		}
	})
	return g.closeErr
}

// Transport returns the in-process [worker.Transport] over g, for
// worker.New.
func (g *Gantry) Transport() worker.Transport { return g.tr }
