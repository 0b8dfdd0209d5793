package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/wire"
)

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONLine writes v as one line of JSON (for streams of objects).
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// table writes rows of tab-separated cells as aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age formats how long ago t was, compactly ("12s", "4m", "3h", "2d"); "-"
// for the zero time.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// stamp formats t for details: RFC 3339 in local time with milliseconds;
// "-" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

// countsText lists non-zero counts by state, in lifecycle order
// ("queued 3, running 2"); "none" if all are zero.
func countsText(c map[gantry.State]int) string {
	var parts []string
	for _, s := range gantry.States {
		if n := c[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// The API's JSON objects (package wire) of the SDK's values, for --json:
// the output is what the server answered, field for field.

// wireJob converts a job; attempts are included (as GET /v1/jobs/{id} does)
// when withAttempts is set.
func wireJob(j *client.Job, withAttempts bool) wire.Job {
	w := wire.Job{
		ID: j.ID, Tenant: j.Tenant, Type: j.Type, Name: j.Name, Queue: j.Queue, Priority: j.Priority,
		Params: j.Params, Package: j.Package, BatchID: j.BatchID, RunAt: wire.T(j.RunAt),
		MaxAttempts: j.MaxAttempts, UniqueKey: j.UniqueKey, SingletonKey: j.SingletonKey,
		Tags: j.Tags, Metadata: j.Metadata, State: j.State, Attempt: j.Attempt,
		Progress: wire.Progress{Percent: j.Progress.Percent, Message: j.Progress.Message},
		Result:   j.Result, Error: j.Error, CancelRequested: j.CancelRequested,
		CreatedAt: wire.T(j.CreatedAt), StartedAt: wire.T(j.StartedAt), FinishedAt: wire.T(j.FinishedAt),
		WorkerID: j.WorkerID,
	}
	if len(w.Params) == 0 {
		w.Params = json.RawMessage("null")
	}
	if len(w.Result) == 0 {
		w.Result = json.RawMessage("null")
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	if w.Metadata == nil {
		w.Metadata = map[string]string{}
	}
	if j.Timeout > 0 {
		t := wire.S(j.Timeout)
		w.TimeoutSeconds = &t
	}
	if withAttempts {
		w.Attempts = make([]wire.Attempt, len(j.Attempts))
		for i, a := range j.Attempts {
			w.Attempts[i] = wire.Attempt{Attempt: a.Attempt, WorkerID: a.WorkerID, Token: a.Token,
				StartedAt: wire.T(a.StartedAt), FinishedAt: wire.T(a.FinishedAt), Outcome: a.Outcome, Error: a.Error}
		}
	}
	return w
}

func wireBatch(b *client.Batch) wire.Batch {
	c := b.Counts
	if c == nil {
		c = map[gantry.State]int{}
	}
	return wire.Batch{ID: b.ID, Name: b.Name, Tenant: b.Tenant, CreatedAt: wire.T(b.CreatedAt), Closed: b.Closed,
		Total: b.Total, Counts: c, Done: b.Done, FinishedAt: wire.T(b.FinishedAt), OnCompleteJobID: b.OnCompleteJobID}
}

func wireQueue(q *client.Queue) wire.Queue {
	c := q.Counts
	if c == nil {
		c = map[gantry.State]int{}
	}
	return wire.Queue{Name: q.Name, Tenant: q.Tenant, Counts: c, Paused: q.Paused, OldestQueuedSeconds: q.OldestQueuedAge.Seconds()}
}

func wireWorker(w *client.Worker) wire.Worker {
	o := wire.Worker{ID: w.ID, Name: w.Name, Host: w.Host, Tenant: w.Tenant, State: w.State,
		Types: w.Types, Queues: w.Queues, Capacity: w.Capacity, Labels: w.Labels, Running: w.Running,
		JobIDs: w.JobIDs, LastSeen: wire.T(w.LastSeen), IdleSince: wire.T(w.IdleSince), CreatedAt: wire.T(w.CreatedAt)}
	if o.Types == nil {
		o.Types = []string{}
	}
	if o.Queues == nil {
		o.Queues = []string{}
	}
	if o.JobIDs == nil {
		o.JobIDs = []string{}
	}
	if o.Labels == nil {
		o.Labels = map[string]string{}
	}
	return o
}

func wireEvent(e *client.Event) wire.Event {
	w := wire.Event{Seq: e.Seq, Kind: e.Kind, At: wire.T(e.At), Tenant: e.Tenant, JobID: e.JobID, BatchID: e.BatchID,
		Type: e.Type, Queue: e.Queue, State: e.State, Attempt: e.Attempt, Error: e.Error}
	if e.Progress != nil {
		w.Progress = &wire.Progress{Percent: e.Progress.Percent, Message: e.Progress.Message}
	}
	return w
}

// listedJob converts a job of a list.
func listedJob(j *client.Job) wire.Job { return wireJob(j, false) }

// wirePage makes the API's list object of items converted by conv.
func wirePage[T, W any](items []T, next string, conv func(T) W) wire.Page[W] {
	out := make([]W, len(items))
	for i, it := range items {
		out[i] = conv(it)
	}
	return wire.NewPage(out, next)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
