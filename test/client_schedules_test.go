package test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gantryhq/gantry/client"
)

// TestClientSchedules drives the schedule calls of the SDK against a real
// server, an @every tick included.
func TestClientSchedules(t *testing.T) {
	cs := startClientServer(t, clientConfig())
	c, ctx := cs.c, t.Context()
	req := client.ScheduleRequest{Cron: "@every 1s", Job: client.JobRequest{Type: "ping", Params: map[string]int{"n": 1}, Timeout: time.Minute}}
	s, created, err := c.PutSchedule(ctx, "beat", req, client.ForTenant("acme"))
	if err != nil || !created {
		t.Fatalf("PutSchedule = %+v, %t, %v", s, created, err)
	}
	if s.Tenant != "acme" || s.Timezone != "UTC" || s.Overlap != client.OverlapAllow || s.NextRunAt.IsZero() || s.Job.Timeout != time.Minute {
		t.Errorf("PutSchedule answered %+v", s)
	}
	if string(s.Job.Params.(json.RawMessage)) != `{"n":1}` {
		t.Errorf("job params %v", s.Job.Params)
	}
	if _, created, err := c.PutSchedule(ctx, "beat", req, client.ForTenant("acme")); err != nil || created {
		t.Errorf("second PutSchedule created %t, %v; want a replacement", created, err)
	}
	clientWaitFor(t, "a tick", func() bool {
		s, err = c.GetSchedule(ctx, "beat", client.ForTenant("acme"))
		return err == nil && s.LastJobID != ""
	})
	j, err := c.GetJob(ctx, s.LastJobID)
	if err != nil || j.Tenant != "acme" || j.Metadata["gantry.schedule"] != "beat" {
		t.Errorf("ticked job %+v, %v", j, err)
	}
	if _, err := c.GetSchedule(ctx, "beat"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetSchedule in the default tenant = %v, want ErrNotFound", err)
	}
	p, err := c.PauseSchedule(ctx, "beat", client.ForTenant("acme"))
	if err != nil || !p.Paused || !p.NextRunAt.IsZero() {
		t.Errorf("PauseSchedule = %+v, %v", p, err)
	}
	if _, err := c.TriggerSchedule(ctx, "beat", client.ForTenant("acme")); !errors.Is(err, client.ErrConflict) {
		t.Errorf("TriggerSchedule(paused) = %v, want ErrConflict", err)
	}
	if r, err := c.ResumeSchedule(ctx, "beat", client.ForTenant("acme")); err != nil || r.Paused || r.NextRunAt.IsZero() {
		t.Errorf("ResumeSchedule = %+v, %v", r, err)
	}
	tj, err := c.TriggerSchedule(ctx, "beat", client.ForTenant("acme"))
	if err != nil || tj.Metadata["gantry.trigger"] != "manual" {
		t.Errorf("TriggerSchedule = %+v, %v", tj, err)
	}
	if _, _, err := c.PutSchedule(ctx, "other", client.ScheduleRequest{Cron: "@daily", Job: client.JobRequest{Type: "t"}}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for s, err := range c.ListSchedules(ctx, client.ListSchedulesOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, s.Tenant+"/"+s.Name)
	}
	if len(names) != 2 || names[0] != "acme/beat" || names[1] != "default/other" {
		t.Errorf("ListSchedules = %v, want acme/beat, default/other", names)
	}
	if err := c.DeleteSchedule(ctx, "beat", client.ForTenant("acme")); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSchedule(ctx, "beat", client.ForTenant("acme")); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("second DeleteSchedule = %v, want ErrNotFound", err)
	}
	_, _, err = c.PutSchedule(ctx, "bad", client.ScheduleRequest{Cron: "* * *", Job: client.JobRequest{Type: "t"}})
	if e := clientErr(t, err); e.Status != 400 || e.Field != "cron" {
		t.Errorf("PutSchedule(bad cron) = %v, want a 400 naming cron", err)
	}
}
