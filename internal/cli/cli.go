// Package cli is the gantry command line: a cobra command tree whose root,
// [New], package main runs through [Main]. Only cmd/gantry imports it, so
// its dependencies stay out of the library's import graph.
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
	root := New()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, errInterrupted) {
		return 130 // 128 + SIGINT, as shells report it
	}
	fmt.Fprintf(stderr, "gantry: %v\n", err)
	var u *usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "Run 'gantry --help' for usage.\n")
		return 2
	}
	return 1
}

// usageError is a command line the commands cannot make sense of.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// New returns the root command, gantry, with its subcommands.
func New() *cobra.Command {
	root := &cobra.Command{
		Use:   "gantry",
		Short: "Gantry runs background jobs reliably on many workers",
		Long: "Gantry runs background jobs reliably on many workers: jobs are leased with\n" +
			"short, renewable, fenced leases, retried with backoff, and followed live.\n\n" +
			"Start with 'gantry demo'.",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		// Bare 'gantry' prints help and succeeds.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newVersionCommand(), newDemoCommand())
	return root
}

// noArgs accepts no positional argument: an unknown subcommand or a stray
// word is a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return nil
}
