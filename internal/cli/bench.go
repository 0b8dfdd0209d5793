package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/internal/bench"
)

// benchConfig is what the bench command's flags set.
type benchConfig struct {
	bench.Config
	CPUProfile string
}

func newBenchCommand(a *app) *cobra.Command {
	var cfg benchConfig
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Gantry's throughput and latency on this machine",
		Long: "Bench runs no-op jobs through Gantry and reports the jobs submitted and\n" +
			"completed per second, the submit-to-start and submit-to-finish latency\n" +
			"(p50, p90, p99), the server's memory and the database's size.\n\n" +
			"--store sqlite runs on a fresh SQLite database in a temporary directory\n" +
			"(or --data-dir, which must not hold one); --store postgres on a schema of its\n" +
			"own in --database-url (default $" + EnvDatabaseURL + "), dropped at the end.\n" +
			"--mode inprocess runs Gantry embedded in this process with --workers\n" +
			"in-process workers; --mode remote runs a server in this process on a\n" +
			"loopback port and --workers 'gantry worker' processes of this binary.\n\n" +
			"Jobs are submitted in batches of --batch from 2 goroutines: --jobs of them,\n" +
			"or, with --duration, as many as fit in that time (completions are then\n" +
			"counted up to its end). --preload queues jobs before the clock starts, to\n" +
			"measure a deep queue. Latencies leave the preloaded jobs out; in remote mode\n" +
			"they come from the jobs' timestamps in the store (millisecond resolution).\n\n" +
			"A progress bar is drawn on stderr when it is a terminal. --json prints the\n" +
			"result as JSON.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, name := range []string{"server", "token", "token-file"} {
				if cmd.Flags().Changed(name) {
					return usagef("--%s does not apply to %s: it runs its own server", name, cmd.CommandPath())
				}
			}
			if cfg.DatabaseURL == "" {
				cfg.DatabaseURL = os.Getenv(EnvDatabaseURL)
			}
			if err := cfg.check(cmd.Flags().Changed("jobs")); err != nil {
				return err
			}
			return runBench(cmd.Context(), a, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Store, "store", bench.StoreSQLite, "store to run on: sqlite or postgres")
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL database of --store postgres (default $"+EnvDatabaseURL+")")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory of the SQLite database (default a temporary directory, removed at the end)")
	f.StringVar(&cfg.Mode, "mode", bench.ModeInProcess, "inprocess (embedded) or remote (server plus worker processes on loopback)")
	f.IntVar(&cfg.Jobs, "jobs", bench.DefaultJobs, "jobs to submit in the timed phase")
	f.DurationVar(&cfg.Duration, "duration", 0, "submit for this long instead of --jobs jobs")
	f.IntVar(&cfg.Preload, "preload", 0, "jobs queued before timing starts")
	f.IntVar(&cfg.Workers, "workers", bench.DefaultWorkers, "number of workers")
	f.IntVar(&cfg.Concurrency, "concurrency", bench.DefaultConcurrency, "each worker's concurrency")
	f.IntVar(&cfg.Batch, "batch", bench.DefaultBatch, "jobs per submitted batch (1 to 10000)")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (the server) to this file")
	return cmd
}

// check validates the flags; jobsSet says whether --jobs was given.
func (c *benchConfig) check(jobsSet bool) error {
	switch {
	case c.Store != bench.StoreSQLite && c.Store != bench.StorePostgres:
		return usagef("--store must be sqlite or postgres, not %q", c.Store)
	case c.Store == bench.StorePostgres && c.DatabaseURL == "":
		return usagef("--store postgres needs --database-url (or $%s)", EnvDatabaseURL)
	case c.Store == bench.StorePostgres && c.DataDir != "":
		return usagef("--data-dir applies to --store sqlite only")
	case c.Mode != bench.ModeInProcess && c.Mode != bench.ModeRemote:
		return usagef("--mode must be inprocess or remote, not %q", c.Mode)
	case c.Jobs < 1 && c.Duration == 0:
		return usagef("--jobs must be at least 1, not %d", c.Jobs)
	case c.Duration < 0:
		return usagef("--duration must not be negative, not %s", c.Duration)
	case c.Duration > 0 && jobsSet:
		return usagef("give --jobs or --duration, not both")
	case c.Preload < 0:
		return usagef("--preload must not be negative, not %d", c.Preload)
	case c.Workers < 1 || c.Workers > 64:
		return usagef("--workers must be between 1 and 64, not %d", c.Workers)
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return usagef("--concurrency must be between 1 and 10000, not %d", c.Concurrency)
	case c.Batch < 1 || c.Batch > 10000:
		return usagef("--batch must be between 1 and 10000, not %d", c.Batch)
	}
	if c.Duration > 0 {
		c.Jobs = 0
	}
	return nil
}

// runBench runs the bench command: see newBenchCommand.
func runBench(ctx context.Context, a *app, cfg benchConfig, stdout, stderr io.Writer) error {
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if cfg.Mode == bench.ModeRemote {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find the gantry binary for the worker processes: %w", err)
		}
		cfg.WorkerCommand = []string{exe}
	}
	title := fmt.Sprintf("gantry bench · %s · %s · %d×%d", cfg.Store, cfg.Mode, cfg.Workers, cfg.Concurrency)
	var view *liveView
	var viewMu sync.Mutex
	if live, width := terminal(stderr); live {
		view = &liveView{w: stderr, width: width}
		cfg.Progress = func(p bench.Progress) {
			viewMu.Lock()
			defer viewMu.Unlock()
			_ = view.Draw(&snapshot{
				Title: title, Elapsed: p.Elapsed, Total: p.Total,
				Queued: p.Queued, Running: p.Running, Succeeded: p.Succeeded, Failed: p.Failed,
			})
		}
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(ctx, cfg.Config)
	if view != nil {
		viewMu.Lock()
		_ = view.Close()
		viewMu.Unlock()
	}
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	if a.json {
		return writeJSON(stdout, res)
	}
	return writeBenchResult(stdout, res)
}

// writeBenchResult writes res as text.
func writeBenchResult(w io.Writer, r *bench.Result) error {
	what := fmt.Sprintf("%d jobs", r.Jobs)
	if r.Duration > 0 {
		what = fmt.Sprintf("submitting for %s", time.Duration(r.Duration*float64(time.Second)))
	}
	if r.Preload > 0 {
		what += fmt.Sprintf(", %d preloaded", r.Preload)
	}
	lines := []string{
		fmt.Sprintf("gantry bench: %s, %s, %d workers × %d, %s", r.Store, r.Mode, r.Workers, r.Concurrency, what),
		fmt.Sprintf("  submitted       %8d jobs in %7.2fs  %9.0f jobs/s", r.Submitted, r.SubmitSeconds, r.SubmittedPerSec),
		fmt.Sprintf("  completed       %8d jobs in %7.2fs  %9.0f jobs/s", r.Completed, r.ElapsedSeconds, r.CompletedPerSec),
		"  submit→start    " + latencyLine(r.SubmitToStart),
		"  submit→finish   " + latencyLine(r.SubmitToFinish),
		fmt.Sprintf("  server RSS      %s (peak %s)", mib(r.ServerRSSBytes), mib(r.ServerPeakRSSBytes)),
	}
	if r.Mode == bench.ModeRemote {
		lines = append(lines, fmt.Sprintf("  workers RSS     peak %s in all", mib(r.WorkersPeakRSSBytes)))
	}
	lines = append(lines, fmt.Sprintf("  database        %s", mib(r.DatabaseBytes)))
	if r.Failed > 0 {
		lines = append(lines, fmt.Sprintf("  failed          %d jobs (a sound run has none)", r.Failed))
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	return nil
}

func latencyLine(l bench.Latency) string {
	return fmt.Sprintf("p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  (%d jobs)", l.P50, l.P90, l.P99, l.N)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
