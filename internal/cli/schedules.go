package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/wire"
)

func newSchedulesCommand(a *app) *cobra.Command {
	return group("schedules", "Manage cron schedules: put, list, trigger, pause, delete",
		newSchedulesListCommand(a),
		newSchedulesPutCommand(a),
		newScheduleCommand(a, "get", "Show a schedule", false, (*client.Client).GetSchedule),
		newScheduleCommand(a, "pause", "Pause a schedule: it fires nothing until resumed", false, (*client.Client).PauseSchedule),
		newScheduleCommand(a, "resume", "Resume a paused schedule from its next tick", false, (*client.Client).ResumeSchedule),
		newScheduleCommand(a, "delete", "Delete a schedule (the jobs it enqueued stay)", true, nil),
		newSchedulesTriggerCommand(a),
	)
}

func newSchedulesListCommand(a *app) *cobra.Command {
	var o client.ListSchedulesOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the schedules by name, with their next and last runs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var ss []*client.Schedule
			for s, err := range c.ListSchedules(cmd.Context(), o) {
				if err != nil {
					return err
				}
				ss = append(ss, s)
			}
			w := cmd.OutOrStdout()
			if a.json {
				return writeJSON(w, wirePage(ss, "", wireSchedule))
			}
			if len(ss) == 0 {
				return writeNone(w, "schedules")
			}
			t := newTable(w, "NAME", "TENANT", "CRON", "TIMEZONE", "TYPE", "OVERLAP", "PAUSED", "NEXT RUN", "LAST RUN", "LAST JOB")
			for _, s := range ss {
				t.row(s.Name, s.Tenant, s.Cron, s.Timezone, s.Job.Type, s.Overlap, yesNo(s.Paused), stamp(s.NextRunAt), stamp(s.LastRunAt), orDash(s.LastJobID))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&o.Tenant, "tenant", "", "list only this tenant's schedules (admin tokens only)")
	return cmd
}

// schedulePutConfig is what the put command's flags set.
type schedulePutConfig struct {
	job      submitConfig
	cron     string
	timezone string
	overlap  string
	paused   bool
	tenant   string
}

func newSchedulesPutCommand(a *app) *cobra.Command {
	var cfg schedulePutConfig
	cmd := &cobra.Command{
		Use:   "put NAME TYPE",
		Short: "Create or replace a schedule that enqueues a job of TYPE at every tick",
		Long: "Put creates the schedule NAME, or replaces it, so that a job of type TYPE is\n" +
			"enqueued at every tick of --cron in --timezone: once per tick, however many\n" +
			"servers run. --cron takes 5 fields (minute hour day-of-month month\n" +
			"day-of-week), 6 (seconds first), a macro (@hourly, @daily, @weekly,\n" +
			"@monthly, @yearly) or @every <duration>. The job's flags are those of\n" +
			"gantry submit.",
		Example: "  gantry schedules put nightly-report report.build --cron '30 2 * * *' --timezone Europe/Berlin\n" +
			"  gantry schedules put heartbeat ping --cron '@every 30s' --overlap skip --param target=db",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("%s needs a schedule name and a job type", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.cron == "" {
				return usagef("--cron is required")
			}
			jr, err := cfg.job.request(args[1])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []client.ScheduleOption
			if cfg.tenant != "" {
				opts = append(opts, client.ForTenant(cfg.tenant))
			}
			s, created, err := c.PutSchedule(cmd.Context(), args[0], client.ScheduleRequest{
				Cron: cfg.cron, Timezone: cfg.timezone, Job: jr, Overlap: cfg.overlap, Paused: cfg.paused,
			}, opts...)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.json {
				return writeJSON(w, wireSchedule(s))
			}
			verb := "replaced"
			if created {
				verb = "created"
			}
			return writeSchedule(w, s, verb)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.cron, "cron", "", "cron expression (required)")
	f.StringVar(&cfg.timezone, "timezone", "", "IANA time zone of the expression, e.g. Europe/Berlin (default UTC)")
	f.StringVar(&cfg.overlap, "overlap", "", "allow: enqueue at every tick; skip: skip a tick while the last job is unfinished (default allow)")
	f.BoolVar(&cfg.paused, "paused", false, "create the schedule paused")
	f.StringVar(&cfg.tenant, "tenant", "", "tenant of the schedule (admin tokens only; default \"default\")")
	cfg.job.addJobFlags(f)
	return cmd
}

// newScheduleCommand makes get, pause, resume (act) and delete (del).
func newScheduleCommand(a *app, name, short string, del bool, act func(*client.Client, context.Context, string, ...client.ScheduleOption) (*client.Schedule, error)) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   name + " NAME",
		Short: short,
		Args:  oneArg("a schedule name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []client.ScheduleOption
			if tenant != "" {
				opts = append(opts, client.ForTenant(tenant))
			}
			w := cmd.OutOrStdout()
			if del {
				if err := c.DeleteSchedule(cmd.Context(), args[0], opts...); err != nil {
					return err
				}
				if a.json {
					return writeJSON(w, map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(w, "Schedule %s deleted\n", args[0])
				return err
			}
			s, err := act(c, cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(w, wireSchedule(s))
			}
			verb := map[string]string{"get": "", "pause": "paused", "resume": "resumed"}[name]
			return writeSchedule(w, s, verb)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant of the schedule (admin tokens only; default \"default\")")
	return cmd
}

func newSchedulesTriggerCommand(a *app) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Enqueue the schedule's job now (its next run does not move)",
		Args:  oneArg("a schedule name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var opts []client.ScheduleOption
			if tenant != "" {
				opts = append(opts, client.ForTenant(tenant))
			}
			j, err := c.TriggerSchedule(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(cmd.OutOrStdout(), wireJob(j, false))
			}
			return writeSubmitted(cmd.OutOrStdout(), j)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant of the schedule (admin tokens only; default \"default\")")
	return cmd
}

// writeSchedule describes a schedule; verb ("created", "paused"...) heads
// it when set.
func writeSchedule(w io.Writer, s *client.Schedule, verb string) error {
	var b strings.Builder
	if verb != "" {
		fmt.Fprintf(&b, "Schedule %s %s\n", s.Name, verb)
	} else {
		fmt.Fprintf(&b, "Schedule %s\n", s.Name)
	}
	fmt.Fprintf(&b, "  tenant:    %s\n  cron:      %s (%s)\n  job type:  %s\n  overlap:   %s\n  paused:    %s\n",
		s.Tenant, s.Cron, s.Timezone, s.Job.Type, s.Overlap, yesNo(s.Paused))
	fmt.Fprintf(&b, "  next run:  %s\n  last run:  %s\n  last job:  %s\n", stamp(s.NextRunAt), stamp(s.LastRunAt), orDash(s.LastJobID))
	if s.SkippedTicks > 0 {
		fmt.Fprintf(&b, "  skipped:   %d ticks, last at %s\n", s.SkippedTicks, stamp(s.LastSkippedAt))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wireSchedule converts a schedule to the API's JSON shape.
func wireSchedule(s *client.Schedule) wire.Schedule {
	j := s.Job
	wj := wire.JobRequest{Type: j.Type, Name: j.Name, Queue: j.Queue, Priority: j.Priority, Package: j.Package,
		MaxAttempts: j.MaxAttempts, UniqueKey: j.UniqueKey, SingletonKey: j.SingletonKey,
		Tags: slices.Clone(j.Tags), Metadata: maps.Clone(j.Metadata)}
	if p, ok := j.Params.(json.RawMessage); ok {
		wj.Params = p
	}
	if j.Timeout > 0 {
		sec := wire.S(j.Timeout)
		wj.TimeoutSeconds = &sec
	}
	out := wire.Schedule{Name: s.Name, Tenant: s.Tenant, Cron: s.Cron, Timezone: s.Timezone, Job: wj, Overlap: s.Overlap,
		Paused: s.Paused, NextRunAt: wire.T(s.NextRunAt), LastRunAt: wire.T(s.LastRunAt), SkippedTicks: s.SkippedTicks,
		LastSkippedAt: wire.T(s.LastSkippedAt), CreatedAt: wire.T(s.CreatedAt), UpdatedAt: wire.T(s.UpdatedAt)}
	if s.LastJobID != "" {
		id := s.LastJobID
		out.LastJobID = &id
	}
	return out
}
