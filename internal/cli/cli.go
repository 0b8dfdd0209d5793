// Package cli is the gantry command line: a cobra command tree whose root,
// [New], package main runs through [Main]. Only cmd/gantry imports it, so
// its dependencies stay out of the library's import graph.
//
// The commands that talk to a server (submit, jobs, batches, watch,
// queues, workers, reservations, worker) use the Go SDK, package client; gantry server
// and gantry demo run a server in this process (package internal/server).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/client"
)

// Main runs the gantry command with args (without the program name) and
// returns the process exit code. The first SIGINT or SIGTERM cancels the
// command's context, so it stops gracefully; a second one kills the
// process.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore the default handling: the next signal kills
	}()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run runs the gantry command with args, writing to stdout and stderr, and
// returns the exit code: 0 on success, 1 on failure, 2 on bad usage, 130
// when a signal interrupted the command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{}
	defer a.close()
	root := newRoot(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, errInterrupted) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return 130 // 128 + SIGINT, as shells report it
	}
	var ex *exitError
	if errors.As(err, &ex) {
		return ex.code // the command already said why
	}
	fmt.Fprintf(stderr, "gantry: %s\n", a.describe(err))
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "Run 'gantry --help' for usage.\n")
		return 2
	}
	return 1
}

// errInterrupted ends a command stopped by a signal before it was done; it
// exits with code 130.
var errInterrupted = errors.New("interrupted")

// usageError is a command line the commands cannot make sense of.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a *usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// exitError ends a command that has already reported its outcome (such as
// a job that failed) with a non-zero exit code and no further message.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// New returns the root command, gantry, with its subcommands.
func New() *cobra.Command { return newRoot(&app{}) }

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Gantry runs background jobs reliably on many workers",
		Long: "Gantry runs background jobs reliably on many workers: jobs are leased with\n" +
			"short, renewable, fenced leases, retried with backoff, and followed live.\n\n" +
			"Start with 'gantry demo'; run 'gantry server' and 'gantry worker' for real.\n" +
			"The client commands find the server in --server or GANTRY_SERVER (default\n" +
			client.DefaultServer + ") and the token in --token, GANTRY_TOKEN or the\n" +
			"token file (default " + client.DefaultTokenFile + ", where a local server writes it).",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		// Bare 'gantry' prints help and succeeds.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	a.addFlags(root)
	root.AddCommand(
		newVersionCommand(a),
		newDemoCommand(a),
		newServerCommand(a),
		newMigrateCommand(a),
		newWorkerCommand(a),
		newSubmitCommand(a),
		newJobsCommand(a),
		newBatchesCommand(a),
		newWatchCommand(a),
		newQueuesCommand(a),
		newSchedulesCommand(a),
		newWorkersCommand(a),
		newReservationsCommand(a),
		newBenchCommand(a),
	)
	return root
}

// group returns a command that only holds subcommands: bare, it prints its
// help; with an unknown subcommand, it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}

// noArgs accepts no positional argument: an unknown subcommand or a stray
// word is a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return nil
}

// oneArg accepts exactly one positional argument, described by what
// ("a job ID").
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usagef("%s needs %s", cmd.CommandPath(), what)
		case len(args) > 1:
			return usagef("%s takes %s, not %d arguments", cmd.CommandPath(), what, len(args))
		case args[0] == "":
			return usagef("%s needs %s, not an empty string", cmd.CommandPath(), what)
		}
		return nil
	}
}
