package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

// maxLimit is the largest page the server answers.
const maxLimit = 1000

func newJobsCommand(a *app) *cobra.Command {
	return group("jobs", "List, inspect, cancel, retry and delete jobs",
		newJobsListCommand(a),
		newJobGetCommand(a),
		newJobActionCommand(a, "cancel", "Cancel a job (a running job is asked to stop)", (*client.Client).CancelJob),
		newJobActionCommand(a, "retry", "Put a failed or canceled job back in its queue with a fresh attempt budget", (*client.Client).RetryJob),
		newJobDeleteCommand(a),
	)
}

// listFlags are the paging flags of list commands.
type listFlags struct {
	Limit  int
	Cursor string
}

func (l *listFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().IntVar(&l.Limit, "limit", 50, "most "+what+" to list (1 to 1000)")
	cmd.Flags().StringVar(&l.Cursor, "cursor", "", "list from this cursor, printed by a previous list")
}

func (l *listFlags) check() error {
	if l.Limit < 1 || l.Limit > maxLimit {
		return usagef("--limit must be between 1 and %d, not %d", maxLimit, l.Limit)
	}
	return nil
}

// checkState validates a --state flag.
func checkState(s string) error {
	if s != "" && !gantry.State(s).Valid() {
		var names []string
		for _, st := range gantry.States {
			names = append(names, string(st))
		}
		return usagef("--state must be one of %s, not %q", strings.Join(names, ", "), s)
	}
	return nil
}

func newJobsListCommand(a *app) *cobra.Command {
	var (
		o    client.ListJobsOptions
		page listFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			if err := checkState(string(o.State)); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			o.Limit, o.Cursor = page.Limit, page.Cursor
			p, err := c.ListJobsPage(cmd.Context(), o)
			if err != nil {
				return err
			}
			return a.writeJobs(cmd.OutOrStdout(), p)
		},
	}
	f := cmd.Flags()
	f.StringVar((*string)(&o.State), "state", "", "only jobs in this state")
	f.StringVar(&o.Type, "type", "", "only jobs of this type")
	f.StringVar(&o.Queue, "queue", "", "only jobs of this queue")
	f.StringVar(&o.BatchID, "batch", "", "only jobs of this batch")
	f.StringVar(&o.Tag, "tag", "", "only jobs with this tag")
	page.add(cmd, "jobs")
	return cmd
}

// writeJobs prints a page of jobs.
func (a *app) writeJobs(w io.Writer, p client.Page[*client.Job]) error {
	if a.json {
		return writeJSON(w, wirePage(p.Items, p.NextCursor, listedJob))
	}
	if len(p.Items) == 0 {
		return writeNone(w, "jobs")
	}
	now := time.Now()
	t := newTable(w, "ID", "TYPE", "NAME", "STATE", "ATTEMPT", "QUEUE", "PROGRESS", "AGE", "ERROR")
	for _, j := range p.Items {
		progress := "-"
		if j.State == gantry.StateRunning {
			progress = fmt.Sprintf("%d%%", j.Progress.Percent)
		}
		state := string(j.State)
		if j.CancelRequested && !j.State.Terminal() {
			state += " (cancel requested)"
		}
		t.row(j.ID, j.Type, orDash(j.Name), state, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), j.Queue,
			progress, age(j.CreatedAt, now), fit(orDash(j.Error), 60))
	}
	if err := t.flush(); err != nil {
		return err
	}
	return writeMore(w, p.NextCursor, "jobs")
}

// writeMore says how to list the next page, if any.
func writeMore(w io.Writer, next, what string) error {
	if next == "" {
		return nil
	}
	_, err := fmt.Fprintf(w, "More %s: add --cursor %s\n", what, next)
	return err
}

// writeNone says that a list is empty.
func writeNone(w io.Writer, what string) error {
	_, err := fmt.Fprintf(w, "No %s.\n", what)
	return err
}

func newJobGetCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get JOB_ID",
		Short: "Show a job with its attempts",
		Args:  oneArg("a job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireJob(j, true))
			}
			return writeJobDetails(cmd.OutOrStdout(), j)
		},
	}
}

// writeJobDetails prints a job field by field, then its attempts.
func writeJobDetails(w io.Writer, j *client.Job) error {
	t := newTable(w, "ID:", j.ID)
	field := func(name, value string) {
		if value != "" {
			t.row(name+":", value)
		}
	}
	field("Type", j.Type)
	field("Name", j.Name)
	field("Tenant", j.Tenant)
	state := string(j.State)
	if j.CancelRequested && !j.State.Terminal() {
		state += " (cancel requested)"
	}
	field("State", state)
	field("Queue", j.Queue)
	field("Priority", fmt.Sprint(j.Priority))
	field("Attempt", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	if j.State == gantry.StateRunning || j.Progress.Percent > 0 || j.Progress.Message != "" {
		field("Progress", strings.TrimSpace(fmt.Sprintf("%d%% %s", j.Progress.Percent, j.Progress.Message)))
	}
	field("Batch", j.BatchID)
	field("Package", j.Package)
	if len(j.Params) > 0 {
		field("Params", string(j.Params))
	}
	if len(j.Result) > 0 {
		field("Result", string(j.Result))
	}
	field("Error", j.Error)
	if j.Timeout > 0 {
		field("Timeout", j.Timeout.String())
	}
	field("Unique key", j.UniqueKey)
	field("Singleton key", j.SingletonKey)
	if len(j.Tags) > 0 {
		field("Tags", strings.Join(j.Tags, ", "))
	}
	for _, k := range sortedKeys(j.Metadata) {
		field("Metadata "+k, j.Metadata[k])
	}
	field("Created", stamp(j.CreatedAt))
	if !j.RunAt.IsZero() {
		field("Run at", stamp(j.RunAt))
	}
	if !j.StartedAt.IsZero() {
		field("Started", stamp(j.StartedAt))
	}
	if !j.FinishedAt.IsZero() {
		field("Finished", stamp(j.FinishedAt))
	}
	field("Worker", j.WorkerID)
	if err := t.flush(); err != nil {
		return err
	}
	if len(j.Attempts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nAttempts:")
	at := newTable(w, "  #", "WORKER", "TOKEN", "STARTED", "FINISHED", "OUTCOME", "ERROR")
	for _, x := range j.Attempts {
		at.row(fmt.Sprintf("  %d", x.Attempt), orDash(x.WorkerID), fmt.Sprint(x.Token), stamp(x.StartedAt),
			stamp(x.FinishedAt), orDash(x.Outcome), fit(orDash(firstLine(x.Error)), 60))
	}
	return at.flush()
}

// firstLine returns the first line of s (a panic's stack stays out of
// tables).
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// newJobActionCommand makes a command that applies act to a job and prints
// the job it returns.
func newJobActionCommand(a *app, name, short string, act func(*client.Client, context.Context, string) (*client.Job, error)) *cobra.Command {
	return &cobra.Command{
		Use:   name + " JOB_ID",
		Short: short,
		Args:  oneArg("a job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			j, err := act(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireJob(j, false))
			}
			state := string(j.State)
			if j.CancelRequested && !j.State.Terminal() {
				state += "; cancellation requested, its worker is told to stop"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Job %s: %s\n", j.ID, state)
			return err
		},
	}
}

func newJobDeleteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete JOB_ID",
		Short: "Delete a finished job",
		Args:  oneArg("a job ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteJob(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"id": args[0], "deleted": true})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Job %s deleted\n", args[0])
			return err
		},
	}
}
