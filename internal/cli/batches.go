package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

func newBatchesCommand(a *app) *cobra.Command {
	return group("batches", "List and inspect batches, list their jobs, close or cancel them",
		newBatchesListCommand(a),
		newBatchActionCommand(a, "get", "Show a batch with the number of its jobs in each state", (*client.Client).GetBatch),
		newBatchJobsCommand(a),
		newBatchActionCommand(a, "cancel", "Close a batch and cancel its unfinished jobs", (*client.Client).CancelBatch),
		newBatchActionCommand(a, "close", "Close an open batch: it takes no more jobs and is done once they finish", (*client.Client).CloseBatch),
	)
}

func newBatchesListCommand(a *app) *cobra.Command {
	var page listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List batches, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListBatchesPage(cmd.Context(), client.ListBatchesOptions{Limit: page.Limit, Cursor: page.Cursor})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.json {
				return writeJSON(w, wirePage(p.Items, p.NextCursor, wireBatch))
			}
			if len(p.Items) == 0 {
				return writeNone(w, "batches")
			}
			now := time.Now()
			t := newTable(w, "ID", "NAME", "STATUS", "DONE", "SUCCEEDED", "FAILED", "CANCELED", "AGE")
			for _, b := range p.Items {
				t.row(b.ID, orDash(b.Name), batchStatus(b), fmt.Sprintf("%d/%d", finished(b.Counts), b.Total),
					fmt.Sprint(b.Counts[gantry.StateSucceeded]), fmt.Sprint(b.Counts[gantry.StateFailed]),
					fmt.Sprint(b.Counts[gantry.StateCanceled]), age(b.CreatedAt, now))
			}
			if err := t.flush(); err != nil {
				return err
			}
			return writeMore(w, p.NextCursor, "batches")
		},
	}
	page.add(cmd, "batches")
	return cmd
}

// finished is the number of jobs in a terminal state.
func finished(c map[gantry.State]int) int {
	return c[gantry.StateSucceeded] + c[gantry.StateFailed] + c[gantry.StateCanceled]
}

// batchStatus is "done", "closed" or "open".
func batchStatus(b *client.Batch) string {
	switch {
	case b.Done:
		return "done"
	case b.Closed:
		return "closed"
	}
	return "open"
}

// newBatchActionCommand makes a command that applies act to a batch and
// prints the batch it returns.
func newBatchActionCommand(a *app, name, short string, act func(*client.Client, context.Context, string) (*client.Batch, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name + " BATCH_ID",
		Short: short,
		Args:  oneArg("a batch ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			b, err := act(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireBatch(b))
			}
			return writeBatchDetails(cmd.OutOrStdout(), b)
		},
	}
}

// writeBatchDetails prints a batch field by field.
func writeBatchDetails(w io.Writer, b *client.Batch) error {
	t := newTable(w, "ID:", b.ID)
	if b.Name != "" {
		t.row("Name:", b.Name)
	}
	t.row("Tenant:", b.Tenant)
	t.row("Status:", batchStatus(b))
	t.row("Jobs:", fmt.Sprintf("%d, %d finished", b.Total, finished(b.Counts)))
	t.row("Counts:", countsText(b.Counts))
	t.row("Created:", stamp(b.CreatedAt))
	if !b.FinishedAt.IsZero() {
		t.row("Finished:", stamp(b.FinishedAt))
	}
	if b.OnCompleteJobID != "" {
		t.row("On complete:", b.OnCompleteJobID)
	}
	return t.flush()
}

func newBatchJobsCommand(a *app) *cobra.Command {
	var (
		state string
		page  listFlags
	)
	cmd := &cobra.Command{
		Use:   "jobs BATCH_ID",
		Short: "List a batch's jobs, newest first",
		Args:  oneArg("a batch ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := page.check(); err != nil {
				return err
			}
			if err := checkState(state); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.ListBatchJobsPage(cmd.Context(), args[0], client.ListBatchJobsOptions{
				State: gantry.State(state), Limit: page.Limit, Cursor: page.Cursor,
			})
			if err != nil {
				return err
			}
			return a.writeJobs(cmd.OutOrStdout(), p)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state")
	page.add(cmd, "jobs")
	return cmd
}
