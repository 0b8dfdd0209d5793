package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

func newQueuesCommand(a *app) *cobra.Command {
	return group("queues", "List queues, pause and resume them",
		newQueuesListCommand(a),
		newQueueActionCommand(a, "pause", "Pause a queue: its jobs are leased no more until it is resumed", (*client.Client).PauseQueue),
		newQueueActionCommand(a, "resume", "Resume a paused queue", (*client.Client).ResumeQueue),
	)
}

func newQueuesListCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the queues with the number of their jobs in each state",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			qs, err := c.ListQueues(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.json {
				return writeJSON(w, wirePage(qs, "", wireQueue))
			}
			if len(qs) == 0 {
				return writeNone(w, "queues")
			}
			t := newTable(w, "NAME", "TENANT", "PAUSED", "QUEUED", "RUNNING", "RETRYING", "SCHEDULED", "SUCCEEDED", "FAILED", "OLDEST QUEUED")
			for _, q := range qs {
				oldest := "-"
				if q.OldestQueuedAge > 0 {
					oldest = q.OldestQueuedAge.Round(time.Second).String()
				}
				c := q.Counts
				t.row(q.Name, q.Tenant, yesNo(q.Paused), fmt.Sprint(c[gantry.StateQueued]), fmt.Sprint(c[gantry.StateRunning]),
					fmt.Sprint(c[gantry.StateRetrying]), fmt.Sprint(c[gantry.StateScheduled]),
					fmt.Sprint(c[gantry.StateSucceeded]), fmt.Sprint(c[gantry.StateFailed]), oldest)
			}
			return t.flush()
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// newQueueActionCommand makes pause and resume.
func newQueueActionCommand(a *app, name, short string, act func(*client.Client, context.Context, string, string) (*client.Queue, error)) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   name + " QUEUE",
		Short: short,
		Args:  oneArg("a queue name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			q, err := act(c, cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireQueue(q))
			}
			state := "running"
			if q.Paused {
				state = "paused"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Queue %s (tenant %s): %s\n", q.Name, q.Tenant, state)
			return err
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant of the queue (admin tokens only; default \"default\")")
	return cmd
}

func newWorkersCommand(a *app) *cobra.Command {
	return group("workers", "List workers and drain them",
		&cobra.Command{
			Use:   "list",
			Short: "List the registered workers with the jobs they run",
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				ws, err := c.ListWorkers(cmd.Context())
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if a.json {
					return writeJSON(w, wirePage(ws, "", wireWorker))
				}
				if len(ws) == 0 {
					return writeNone(w, "workers")
				}
				now := time.Now()
				t := newTable(w, "ID", "NAME", "HOST", "STATE", "RUNNING", "TYPES", "QUEUES", "LAST SEEN", "IDLE")
				for _, x := range ws {
					idle := "-"
					if !x.IdleSince.IsZero() {
						idle = age(x.IdleSince, now)
					}
					t.row(x.ID, orDash(x.Name), orDash(x.Host), x.State, fmt.Sprintf("%d/%d", x.Running, x.Capacity),
						allOr(x.Types), allOr(x.Queues), age(x.LastSeen, now)+" ago", idle)
				}
				return t.flush()
			},
		},
		&cobra.Command{
			Use:   "drain WORKER_ID",
			Short: "Drain a worker: it leases no more jobs, finishes those it runs and leaves",
			Args:  oneArg("a worker ID"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				x, err := c.DrainWorker(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if a.json {
					return writeJSON(cmd.OutOrStdout(), wireWorker(x))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Worker %s (%s): %s, running %d\n", x.ID, orDash(x.Name), x.State, x.Running)
				return err
			},
		},
	)
}

// allOr joins a list, or says "all" for an empty one.
func allOr(l []string) string {
	if len(l) == 0 {
		return "all"
	}
	return strings.Join(l, ",")
}
