package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
)

const (
	// demoShutdownGrace is how long running jobs may finish after Ctrl-C.
	demoShutdownGrace = 5 * time.Second
	// demoServerShutdown bounds the server's shutdown at the end.
	demoServerShutdown = 10 * time.Second
)

// demoConfig is what the demo command's flags set.
type demoConfig struct {
	Addr        string
	DataDir     string
	Jobs        int
	Concurrency int
	Exit        bool
}

func newDemoCommand(a *app) *cobra.Command {
	var cfg demoConfig
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a server with demo workers, run a batch of demo jobs and watch them",
		Long: "Demo starts a Gantry server on --addr, with its SQLite database and admin\n" +
			"token in --data-dir, and in-process workers for the demo job types:\n\n" +
			"  demo.flaky  quick; an attempt fails 15% of the time (retried) and 3% of\n" +
			"              the time for good (the job goes to the dead letter); params\n" +
			"              {\"fail\": \"permanent\"|\"transient\"|\"never\"} decide instead\n" +
			"  demo.slow   takes 1 to 3 seconds (params {\"seconds\": n} to choose),\n" +
			"              reporting its progress\n" +
			"  demo.noop   does nothing\n\n" +
			"It prints the server's URL and token and commands to try from a second\n" +
			"terminal, submits one batch of demo jobs, shows their progress and a\n" +
			"summary, then keeps serving (with its workers) until Ctrl-C, unless --exit\n" +
			"is given. Ctrl-C while the batch runs stops it gracefully.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := noClientFlags(cmd); err != nil {
				return err
			}
			if cfg.Jobs < 1 || cfg.Jobs > 10000 {
				return usagef("--jobs must be between 1 and 10000, not %d", cfg.Jobs)
			}
			if cfg.Concurrency < 1 || cfg.Concurrency > 1000 {
				return usagef("--concurrency must be between 1 and 1000, not %d", cfg.Concurrency)
			}
			if cfg.DataDir == "" {
				return usagef("--data-dir must not be empty")
			}
			return runDemo(cmd.Context(), a, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "TCP address of the server (127.0.0.1:0 picks a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "directory of the server's database and admin token")
	f.IntVar(&cfg.Jobs, "jobs", 300, "number of jobs to submit (1 to 10000)")
	f.IntVar(&cfg.Concurrency, "concurrency", 32, "number of jobs run at once (1 to 1000)")
	f.BoolVar(&cfg.Exit, "exit", false, "exit after the batch instead of serving until Ctrl-C")
	return cmd
}

// terminal reports whether w is a terminal, and its width in columns
// (from $COLUMNS, else 80).
func terminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return false, 0
	}
	width := 80
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 40 {
		width = n
	}
	return true, width
}

// demoSpecs returns n demo jobs: a tenth slow (first in the queue, with a
// higher priority, since they take longest), half flaky, the rest no-ops.
func demoSpecs(n int) []client.JobRequest {
	specs := make([]client.JobRequest, n)
	for i := range specs {
		s := client.JobRequest{Type: demoNoop, Params: map[string]int{"n": i + 1}}
		switch {
		case i%10 == 9:
			s.Type, s.Priority = demoSlow, 10
		case i%2 == 1:
			s.Type = demoFlaky
		}
		s.Name = fmt.Sprintf("%s-%d", s.Type[len("demo."):], i+1)
		specs[i] = s
	}
	return specs
}

// errWorkerStopped is the end of a demo worker that stopped by itself.
var errWorkerStopped = errors.New("the demo worker stopped")

// runDemo runs the demo: see newDemoCommand.
func runDemo(ctx context.Context, a *app, cfg demoConfig, stdout, stderr io.Writer) (err error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := startServer(ctx, server.Config{
		Addr: cfg.Addr, DataDir: cfg.DataDir, AdminToken: os.Getenv(EnvAdminToken), Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if serr := srv.stop(ctx, demoServerShutdown); serr != nil && err == nil {
			err = fmt.Errorf("demo: %w", serr)
		}
	}()
	c, err := client.New(srv.url, client.WithToken(srv.srv.Token()), client.WithHTTPClient(a.httpClient()))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	specs := demoSpecs(cfg.Jobs)
	created, err := c.CreateBatch(ctx, client.BatchRequest{Name: "demo", Jobs: specs})
	if err != nil {
		return fmt.Errorf("demo: submit: %w", interrupted(ctx, err))
	}
	batchID := created.Batch.ID
	names := make(map[string]string, len(created.JobIDs))
	for i, id := range created.JobIDs {
		names[id] = specs[i].Name
	}
	// Follow the batch before its jobs can start.
	f, err := newBatchFollower(ctx, c, batchID, stdout, names, demoSlow)
	if err != nil {
		return fmt.Errorf("demo: %w", interrupted(ctx, err))
	}
	defer f.close()
	f.title, f.label = "Gantry demo", "slow jobs running:"

	fmt.Fprintf(stdout, "Gantry demo: %d jobs, %d at a time\n", cfg.Jobs, cfg.Concurrency)
	fmt.Fprintf(stdout, "Server: %s (data in %s)\n", srv.url, cfg.DataDir)
	fmt.Fprintf(stdout, "Token:  %s\n", srv.srv.Token())
	fmt.Fprintf(stdout, "\nFrom a second terminal, try:\n")
	for _, l := range demoTryLines(srv.url, srv.srv.TokenFile(), srv.srv.Token(), batchID, commandName()) {
		fmt.Fprintf(stdout, "  %s\n", l)
	}
	fmt.Fprintln(stdout)

	w, err := newBuiltinWorker(c.WorkerTransport(), workerConfig{
		Name: "demo", Concurrency: cfg.Concurrency, Grace: demoShutdownGrace,
	}, logger)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// The worker stops when the demo says so, not at once on Ctrl-C.
	workerCtx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan struct{})
	var workerErr error
	go func() {
		defer close(workerDone)
		workerErr = w.Run(workerCtx)
		if workerErr == nil && workerCtx.Err() == nil {
			workerErr = errWorkerStopped
		}
	}()
	// waitWorker stops the worker and waits for it to leave; it runs before
	// the subscription and the server close, whatever ends the demo. A
	// worker stopped while it was still registering ends with
	// context.Canceled: it ran nothing, and there is nothing to report.
	waitWorker := func() error {
		stopWorker()
		<-workerDone
		if workerErr != nil && !errors.Is(workerErr, context.Canceled) {
			return fmt.Errorf("demo: %w", workerErr)
		}
		return nil
	}
	defer waitWorker()

	b, stopped, err := f.run(ctx, workerDone)
	if errors.Is(err, errAborted) {
		return waitWorker()
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if stopped {
		fmt.Fprintf(stdout, "Stopping: letting running jobs finish (up to %s)...\n", demoShutdownGrace)
		if err := waitWorker(); err != nil {
			return err
		}
		// The jobs that finished while the worker stopped count too.
		if b, err = c.GetBatch(context.WithoutCancel(ctx), batchID); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	sum, err := batchSummary(context.WithoutCancel(ctx), c, b, stopped)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := writeSummary(stdout, sum); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if stopped {
		return errInterrupted
	}
	if cfg.Exit {
		return waitWorker()
	}
	fmt.Fprintf(stdout, "\nThe server keeps running at %s with the demo workers (%s).\nPress Ctrl-C to stop.\n",
		srv.url, strings.Join(builtinTypes(), ", "))
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "Stopping...")
	case <-workerDone:
		if errors.Is(workerErr, errWorkerStopped) {
			fmt.Fprintln(stdout, "The demo workers were drained; stopping.")
			return nil
		}
	}
	return waitWorker()
}

// commandName is how the user runs gantry: "go run ./cmd/gantry" when this
// binary was built by go run, else "gantry".
func commandName() string {
	exe, err := os.Executable()
	base := strings.TrimSuffix(filepath.Base(exe), ".exe")
	if err == nil && base == "gantry" && strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return "go run ./cmd/gantry"
	}
	return "gantry"
}

// safeWord matches what a shell takes literally.
var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

// shellQuote quotes s for a POSIX shell, if it needs it.
func shellQuote(s string) string {
	if safeWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// demoTryLines are the commands the demo suggests running from a second
// terminal against its server at url. tokenFile holds the admin token, or
// is "" when it came from the environment.
func demoTryLines(url, tokenFile, token, batchID, gantry string) []string {
	var lines []string
	if url != client.DefaultServer {
		lines = append(lines, "export "+client.EnvServer+"="+shellQuote(url))
	}
	auth := "$(cat " + shellQuote(tokenFile) + ")"
	switch {
	case tokenFile == "":
		lines = append(lines, "export "+client.EnvToken+"="+shellQuote(token))
		auth = "$" + client.EnvToken
	case filepath.Clean(tokenFile) != filepath.Clean(client.DefaultTokenFile):
		lines = append(lines, "export "+client.EnvToken+"="+auth)
	}
	lines = append(lines,
		gantry+" watch --batch "+batchID,
		gantry+" submit demo.slow --wait",
		gantry+" jobs list --state failed",
		`curl -H "Authorization: Bearer `+auth+`" `+url+"/v1/batches/"+batchID,
	)
	return lines
}
