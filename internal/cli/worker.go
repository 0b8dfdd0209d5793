package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/worker"
)

// workerConfig is what the worker command's flags set.
type workerConfig struct {
	Name        string
	Concurrency int
	Queues      []string
	Types       []string
	LeaseTTL    time.Duration
	Grace       time.Duration
	LogLevel    string
}

func newWorkerCommand(a *app) *cobra.Command {
	var cfg workerConfig
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker that leases jobs from a server and runs the built-in handlers",
		Long: "Worker registers with the server (--server, --token) and runs the jobs of the\n" +
			"handlers compiled into this binary — " + strings.Join(builtinTypes(), ", ") + " — leasing\n" +
			"up to --concurrency at once over the HTTP worker protocol (long-poll leases,\n" +
			"one batched heartbeat, batched reports). --types restricts the types it\n" +
			"runs, --queues the queues it leases from.\n\n" +
			"The first SIGINT or SIGTERM drains it: it leases no more jobs, lets the\n" +
			"running ones finish within --grace, then cancels the rest and leaves the\n" +
			"server, which gives their jobs to other workers at once. A second signal\n" +
			"exits at once.\n\n" +
			"Params of the built-in types: demo.slow takes {\"seconds\": n} (default 1 to 3),\n" +
			"demo.flaky {\"fail\": \"permanent\" | \"transient\" | \"never\"} (default: by chance).\n\n" +
			"For handlers of your own, write a Go program with packages client and\n" +
			"worker: w := worker.New(c.WorkerTransport(), opts); w.RegisterFunc(...).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Concurrency < 1 || cfg.Concurrency > 10000 {
				return usagef("--concurrency must be between 1 and 10000, not %d", cfg.Concurrency)
			}
			if cfg.LeaseTTL != 0 && (cfg.LeaseTTL < time.Second || cfg.LeaseTTL > time.Hour) {
				return usagef("--lease-ttl must be between 1s and 1h (or 0 for the server's), not %s", cfg.LeaseTTL)
			}
			if cfg.Grace <= 0 {
				return usagef("--grace must be positive, not %s", cfg.Grace)
			}
			if _, err := parseLevel(cfg.LogLevel); err != nil {
				return err
			}
			return runWorker(cmd.Context(), a, cfg, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "the worker's display name (default the host name)")
	f.IntVar(&cfg.Concurrency, "concurrency", worker.DefaultConcurrency, "most jobs run at once")
	f.StringSliceVar(&cfg.Queues, "queues", nil, "queues to lease from, comma-separated (default all)")
	f.StringSliceVar(&cfg.Types, "types", nil, "job types to run, comma-separated (default all built-in types)")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", 0, "lease TTL to ask the server for, 1s to 1h (default the server's)")
	f.DurationVar(&cfg.Grace, "grace", worker.DefaultShutdownGrace, "how long running jobs may take to finish when the worker stops")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// newBuiltinWorker returns a worker over t that runs the built-in
// handlers of cfg.Types.
func newBuiltinWorker(t worker.Transport, cfg workerConfig, logger *slog.Logger) (*worker.Worker, error) {
	w := worker.New(t, worker.Options{
		Name:          cfg.Name,
		Concurrency:   cfg.Concurrency,
		Queues:        cfg.Queues,
		Types:         cfg.Types,
		LeaseTTL:      cfg.LeaseTTL,
		ShutdownGrace: cfg.Grace,
		Logger:        logger,
	})
	if err := registerBuiltins(w, cfg.Types); err != nil {
		return nil, err
	}
	return w, nil
}

// runWorker runs the worker command: see newWorkerCommand.
func runWorker(ctx context.Context, a *app, cfg workerConfig, stderr io.Writer) error {
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c, err := a.client()
	if err != nil {
		return err
	}
	w, err := newBuiltinWorker(c.WorkerTransport(), cfg, logger)
	if err != nil {
		return err
	}
	// Say when a shutdown begins; Run does the draining.
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			logger.Info(fmt.Sprintf("worker: stopping: no new jobs; running jobs may finish within %s (Ctrl-C again to exit at once)", cfg.Grace))
		case <-stopped:
		}
	}()
	if err := w.Run(ctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	return nil
}
