package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

// submitConfig is what the submit command's flags set.
type submitConfig struct {
	Name         string
	Tenant       string
	Params       []string // --param k=v, k:=json
	ParamsJSON   string   // --params
	Queue        string
	Priority     int
	BatchID      string
	Delay        time.Duration
	RunAt        string
	MaxAttempts  int
	Timeout      time.Duration
	UniqueKey    string
	SingletonKey string
	Tags         []string
	Metadata     []string
	Wait         bool
}

func newSubmitCommand(a *app) *cobra.Command {
	var cfg submitConfig
	cmd := &cobra.Command{
		Use:   "submit TYPE",
		Short: "Submit a job",
		Long: "Submit submits a job of type TYPE and prints it. Its params are a JSON object\n" +
			"built from --params (a JSON value, or @file to read it from a file) and each\n" +
			"--param: key=value sets a string, key:=value a JSON value (number, true,\n" +
			"array, ...).\n\n" +
			"With --wait it waits for the job to finish and prints its outcome; the exit\n" +
			"status is 0 if it succeeded and 1 if it failed or was canceled.",
		Example: "  gantry submit demo.slow --wait\n" +
			"  gantry submit demo.slow --param seconds:=5 --priority 10 --tag demo\n" +
			"  gantry submit email.send --params '{\"to\": \"ada@example.com\"}' --queue mail --delay 1m",
		Args: oneArg("a job type"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cfg.request(args[0])
			if err != nil {
				return err
			}
			return runSubmit(cmd.Context(), a, req, cfg.Wait, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Tenant, "tenant", "", "tenant of the job (admin tokens only; default \"default\")")
	cfg.addJobFlags(f)
	f.StringVar(&cfg.BatchID, "batch", "", "ID of an open batch to add the job to")
	f.DurationVar(&cfg.Delay, "delay", 0, "run the job after this delay (e.g. 10s, 5m)")
	f.StringVar(&cfg.RunAt, "run-at", "", "run the job at this time (RFC 3339, e.g. 2026-11-23T10:00:00Z)")
	f.BoolVarP(&cfg.Wait, "wait", "w", false, "wait for the job to finish and print its outcome")
	return cmd
}

// addJobFlags adds the flags of a job body that submit and schedules put
// share (not tenant, batch, delay, run-at, wait).
func (c *submitConfig) addJobFlags(f *pflag.FlagSet) {
	f.StringVar(&c.Name, "name", "", "display name of the job")
	f.StringArrayVarP(&c.Params, "param", "p", nil, "a param: key=string or key:=JSON (repeatable)")
	f.StringVar(&c.ParamsJSON, "params", "", "params as JSON, or @file to read them from a file")
	f.StringVarP(&c.Queue, "queue", "q", "", "queue of the job (default \"default\")")
	f.IntVar(&c.Priority, "priority", 0, "priority, -100 to 100; higher runs first")
	f.IntVar(&c.MaxAttempts, "max-attempts", 0, "most attempts (default the server's, 5)")
	f.DurationVar(&c.Timeout, "timeout", 0, "limit of each attempt (default none)")
	f.StringVar(&c.UniqueKey, "unique-key", "", "while an unfinished job has this key, return it instead of submitting another")
	f.StringVar(&c.SingletonKey, "singleton-key", "", "at most one job with this key runs at a time")
	f.StringArrayVar(&c.Tags, "tag", nil, "a tag (repeatable)")
	f.StringArrayVar(&c.Metadata, "metadata", nil, "a metadata entry, key=value (repeatable)")
}

// request builds the job request of the flags.
func (c *submitConfig) request(typ string) (client.JobRequest, error) {
	r := client.JobRequest{
		Type: typ, Name: c.Name, Tenant: c.Tenant, Queue: c.Queue, Priority: c.Priority, BatchID: c.BatchID,
		MaxAttempts: c.MaxAttempts, Timeout: c.Timeout, UniqueKey: c.UniqueKey,
		SingletonKey: c.SingletonKey, Tags: c.Tags,
	}
	params, err := buildParams(c.ParamsJSON, c.Params)
	if err != nil {
		return r, err
	}
	if params != nil {
		r.Params = params
	}
	if c.Delay < 0 {
		return r, usagef("--delay must not be negative, not %s", c.Delay)
	}
	if c.Timeout < 0 {
		return r, usagef("--timeout must not be negative, not %s", c.Timeout)
	}
	if c.MaxAttempts < 0 {
		return r, usagef("--max-attempts must be at least 1, not %d", c.MaxAttempts)
	}
	r.Delay = c.Delay
	if c.RunAt != "" {
		if c.Delay != 0 {
			return r, usagef("--run-at and --delay cannot be combined")
		}
		t, err := time.Parse(time.RFC3339Nano, c.RunAt)
		if err != nil {
			return r, usagef("--run-at %q is not an RFC 3339 time (such as 2026-11-23T10:00:00Z)", c.RunAt)
		}
		r.RunAt = t
	}
	for _, kv := range c.Metadata {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return r, usagef("--metadata %q is not key=value", kv)
		}
		if r.Metadata == nil {
			r.Metadata = map[string]string{}
		}
		r.Metadata[k] = v
	}
	return r, nil
}

// buildParams builds a job's params from --params (JSON, or @file) and
// --param entries (key=string, key:=JSON), which set keys of an object.
// It returns nil when neither is given.
func buildParams(base string, entries []string) (json.RawMessage, error) {
	var doc json.RawMessage
	if base != "" {
		data := []byte(base)
		if name, ok := strings.CutPrefix(base, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, usagef("--params: %w", err)
			}
			data = b
		}
		data = bytes.TrimSpace(data)
		if !json.Valid(data) {
			return nil, usagef("--params is not valid JSON")
		}
		doc = data
	}
	if len(entries) == 0 {
		return doc, nil
	}
	obj := map[string]json.RawMessage{}
	if doc != nil {
		if err := json.Unmarshal(doc, &obj); err != nil || obj == nil {
			return nil, usagef("--params must be a JSON object to be combined with --param")
		}
	}
	for _, e := range entries {
		eq := strings.IndexByte(e, '=')
		if eq <= 0 {
			return nil, usagef("--param %q is not key=value or key:=JSON", e)
		}
		key, value := e[:eq], e[eq+1:]
		if k, ok := strings.CutSuffix(key, ":"); ok {
			if k == "" {
				return nil, usagef("--param %q has no key", e)
			}
			if !json.Valid([]byte(value)) {
				return nil, usagef("--param %s:= takes JSON; %q is not (write %s=%s for a string)", k, value, k, value)
			}
			obj[k] = json.RawMessage(value)
			continue
		}
		s, _ := json.Marshal(value)
		obj[key] = s
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return b, nil
}

// runSubmit submits the job of r, and with wait, waits for it.
func runSubmit(ctx context.Context, a *app, r client.JobRequest, wait bool, stdout io.Writer) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	j, err := c.Submit(ctx, r)
	if err != nil {
		return err
	}
	if !wait {
		if a.json {
			return writeJSON(stdout, wireJob(j, false))
		}
		return writeSubmitted(stdout, j)
	}
	if !a.json {
		if err := writeSubmitted(stdout, j); err != nil {
			return err
		}
	}
	done, err := c.Wait(ctx, j.ID)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			if !a.json {
				fmt.Fprintf(stdout, "Stopped waiting; the job goes on: gantry watch %s\n", j.ID)
			}
			return errInterrupted
		}
		return err
	}
	if a.json {
		err = writeJSON(stdout, wireJob(done, true))
	} else {
		err = writeOutcome(stdout, done)
	}
	if err != nil {
		return err
	}
	if done.State != gantry.StateSucceeded {
		return &exitError{code: 1}
	}
	return nil
}

// writeSubmitted tells that a job was submitted.
func writeSubmitted(w io.Writer, j *client.Job) error {
	verb := "submitted"
	if j.Deduplicated {
		verb = "already exists with this unique key; not submitted again"
	}
	when := ""
	if j.State == gantry.StateScheduled && !j.RunAt.IsZero() {
		when = ", runs at " + stamp(j.RunAt)
	}
	_, err := fmt.Fprintf(w, "Job %s %s (%s, %s%s)\n", j.ID, verb, j.Type, j.State, when)
	return err
}

// writeOutcome tells how a finished job ended.
func writeOutcome(w io.Writer, j *client.Job) error {
	var b strings.Builder
	took := ""
	if !j.FinishedAt.IsZero() && !j.CreatedAt.IsZero() {
		took = fmt.Sprintf(" in %s", seconds(j.FinishedAt.Sub(j.CreatedAt)))
	}
	fmt.Fprintf(&b, "Job %s %s%s after %s\n", j.ID, j.State, took, plural(j.Attempt, "attempt"))
	if len(j.Result) > 0 {
		fmt.Fprintf(&b, "result: %s\n", j.Result)
	}
	if j.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", j.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural formats n with its noun, plural when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
