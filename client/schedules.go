package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// Overlap policies of a schedule: what a tick does while the schedule's
// previous job is not finished.
const (
	// OverlapAllow enqueues a job at every tick regardless (the default).
	OverlapAllow = "allow"
	// OverlapSkip skips the tick.
	OverlapSkip = "skip"
)

// ScheduleRequest is a schedule to put: Job is enqueued at every tick of
// Cron in Timezone, once per tick however many servers run.
type ScheduleRequest struct {
	// Cron is a cron expression: 5 fields (minute first), 6 (second
	// first), a macro such as @hourly or @daily, or @every <duration>
	// (whole seconds, at least 1s).
	Cron string
	// Timezone is the IANA time zone of Cron, e.g. Europe/Berlin.
	// Defaults to UTC.
	Timezone string
	// Job is the job each tick enqueues. It may not set RunAt, Delay or
	// BatchID; its Tenant, if set, must be the schedule's.
	Job JobRequest
	// Overlap is OverlapAllow (the default) or OverlapSkip.
	Overlap string
	// Paused puts the schedule paused: it fires nothing until resumed.
	Paused bool
}

// Schedule is a cron schedule as the server keeps it.
type Schedule struct {
	Name      string
	Tenant    string
	Cron      string
	Timezone  string
	Job       JobRequest
	Overlap   string
	Paused    bool
	NextRunAt time.Time // zero while paused
	// LastRunAt is when the schedule last enqueued a job (a tick or a
	// trigger), LastJobID that job.
	LastRunAt time.Time
	LastJobID string
	// SkippedTicks counts the ticks skipped by OverlapSkip; LastSkippedAt
	// is the latest.
	SkippedTicks  int64
	LastSkippedAt time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ScheduleOption modifies a schedule call.
type ScheduleOption func(url.Values)

// ForTenant makes an admin client's schedule call act on tenant's
// schedule (by default an admin acts on the "default" tenant's). Other
// clients may name only their own tenant.
func ForTenant(tenant string) ScheduleOption {
	return func(q url.Values) { q.Set("tenant", tenant) }
}

func scheduleQuery(opts []ScheduleOption) url.Values {
	q := url.Values{}
	for _, o := range opts {
		o(q)
	}
	return q
}

func schedulePath(name, tail string) string { return "/v1/schedules/" + url.PathEscape(name) + tail }

func fromWireSchedule(w *wire.Schedule) *Schedule {
	s := &Schedule{
		Name: w.Name, Tenant: w.Tenant, Cron: w.Cron, Timezone: w.Timezone, Job: fromWireJobRequest(&w.Job),
		Overlap: w.Overlap, Paused: w.Paused, NextRunAt: tm(w.NextRunAt), LastRunAt: tm(w.LastRunAt),
		SkippedTicks: w.SkippedTicks, LastSkippedAt: tm(w.LastSkippedAt), CreatedAt: tm(w.CreatedAt), UpdatedAt: tm(w.UpdatedAt),
	}
	if w.LastJobID != nil {
		s.LastJobID = *w.LastJobID
	}
	return s
}

// fromWireJobRequest is the inverse of JobRequest.wire.
func fromWireJobRequest(w *wire.JobRequest) JobRequest {
	r := JobRequest{
		Type: w.Type, Name: w.Name, Tenant: w.Tenant, Queue: w.Queue, Priority: w.Priority, Package: w.Package,
		BatchID: w.BatchID, RunAt: tm(w.RunAt), MaxAttempts: w.MaxAttempts, Timeout: wire.Seconds(w.TimeoutSeconds),
		UniqueKey: w.UniqueKey, SingletonKey: w.SingletonKey, Tags: slices.Clone(w.Tags), Metadata: maps.Clone(w.Metadata),
		Delay: wire.Seconds(w.DelaySeconds),
	}
	if p := raw(w.Params); p != nil {
		r.Params = json.RawMessage(p)
	}
	return r
}

// PutSchedule creates or replaces the schedule name and returns it, and
// whether it was created. A bad field is an *[Error] naming it ("cron",
// "timezone", "overlap", "job.type"...). Replacing a schedule without
// changing its expression, time zone or pause keeps its next run.
func (c *Client) PutSchedule(ctx context.Context, name string, r ScheduleRequest, opts ...ScheduleOption) (*Schedule, bool, error) {
	j, err := r.Job.wire("job.")
	if err != nil {
		return nil, false, fmt.Errorf("client: put schedule: %w", err)
	}
	body := wire.ScheduleRequest{Cron: r.Cron, Timezone: r.Timezone, Job: j, Overlap: r.Overlap, Paused: r.Paused}
	var w wire.Schedule
	status, err := c.do(ctx, call{method: "PUT", path: schedulePath(name, ""), query: scheduleQuery(opts), body: &body, out: &w})
	if err != nil {
		return nil, false, err
	}
	return fromWireSchedule(&w), status == http.StatusCreated, nil
}

// GetSchedule returns a schedule.
func (c *Client) GetSchedule(ctx context.Context, name string, opts ...ScheduleOption) (*Schedule, error) {
	return c.scheduleCall(ctx, "GET", schedulePath(name, ""), opts)
}

// DeleteSchedule deletes a schedule; the jobs it enqueued stay.
func (c *Client) DeleteSchedule(ctx context.Context, name string, opts ...ScheduleOption) error {
	_, err := c.do(ctx, call{method: "DELETE", path: schedulePath(name, ""), query: scheduleQuery(opts)})
	return err
}

// TriggerSchedule enqueues the schedule's job at once, whatever its
// overlap policy, without moving its next run, and returns the job. A
// paused schedule is [ErrConflict].
func (c *Client) TriggerSchedule(ctx context.Context, name string, opts ...ScheduleOption) (*Job, error) {
	var w wire.Job
	if _, err := c.do(ctx, call{method: "POST", path: schedulePath(name, "/trigger"), query: scheduleQuery(opts), out: &w}); err != nil {
		return nil, err
	}
	return fromWireJob(&w), nil
}

// PauseSchedule pauses a schedule: it fires nothing until resumed.
func (c *Client) PauseSchedule(ctx context.Context, name string, opts ...ScheduleOption) (*Schedule, error) {
	return c.scheduleCall(ctx, "POST", schedulePath(name, "/pause"), opts)
}

// ResumeSchedule resumes a paused schedule from its next tick; ticks that
// passed while it was paused are not run.
func (c *Client) ResumeSchedule(ctx context.Context, name string, opts ...ScheduleOption) (*Schedule, error) {
	return c.scheduleCall(ctx, "POST", schedulePath(name, "/resume"), opts)
}

func (c *Client) scheduleCall(ctx context.Context, method, path string, opts []ScheduleOption) (*Schedule, error) {
	var w wire.Schedule
	if _, err := c.do(ctx, call{method: method, path: path, query: scheduleQuery(opts), out: &w}); err != nil {
		return nil, err
	}
	return fromWireSchedule(&w), nil
}

// ListSchedulesOptions page [Client.ListSchedules].
type ListSchedulesOptions struct {
	// Tenant, for an admin client, selects one tenant's schedules (empty:
	// every tenant's).
	Tenant string
	// Limit is the number of schedules per page: 1 to 1000. Defaults to
	// the server's (50).
	Limit int
	// Cursor resumes a list from the page it came with.
	Cursor string
}

func (o ListSchedulesOptions) query(cursor string) url.Values {
	q := url.Values{}
	if o.Tenant != "" {
		q.Set("tenant", o.Tenant)
	}
	return pageQuery(q, o.Limit, cursor)
}

// ListSchedulesPage returns one page of schedules, by tenant and name.
func (c *Client) ListSchedulesPage(ctx context.Context, o ListSchedulesOptions) (Page[*Schedule], error) {
	return getPage(ctx, c, "/v1/schedules", o.query(o.Cursor), fromWireSchedule)
}

// ListSchedules iterates over the schedules by tenant and name, reading
// pages as it goes. An error ends the iteration after it is yielded.
func (c *Client) ListSchedules(ctx context.Context, o ListSchedulesOptions) iter.Seq2[*Schedule, error] {
	return all(ctx, o.Cursor, func(ctx context.Context, cursor string) (Page[*Schedule], error) {
		return getPage(ctx, c, "/v1/schedules", o.query(cursor), fromWireSchedule)
	})
}
