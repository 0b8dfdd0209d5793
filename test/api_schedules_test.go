package test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/server"
)

// apiSchedule is the schedule object as a client reads it.
type apiSchedule struct {
	Name     string `json:"name"`
	Tenant   string `json:"tenant"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone"`
	Job      struct {
		Type     string            `json:"type"`
		Queue    string            `json:"queue"`
		Priority int               `json:"priority"`
		Metadata map[string]string `json:"metadata"`
	} `json:"job"`
	Overlap      string  `json:"overlap"`
	Paused       bool    `json:"paused"`
	NextRunAt    *string `json:"next_run_at"`
	LastRunAt    *string `json:"last_run_at"`
	LastJobID    *string `json:"last_job_id"`
	SkippedTicks int64   `json:"skipped_ticks"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
}

// TestAPISchedules: put, get, list, an @every tick, trigger, pause and
// delete, over HTTP.
func TestAPISchedules(t *testing.T) {
	s := apiStart(t, server.Config{})
	var sc apiSchedule
	s.req("PUT", "/v1/schedules/beat", map[string]any{
		"cron": "@every 1s", "job": map[string]any{"type": "ping", "queue": "cron", "priority": 5, "metadata": map[string]string{"a": "b"}},
	}).want(t, http.StatusCreated, &sc)
	if sc.Name != "beat" || sc.Tenant != "default" || sc.Cron != "@every 1s" || sc.Timezone != "UTC" || sc.Overlap != "allow" ||
		sc.Paused || sc.NextRunAt == nil || sc.LastRunAt != nil || sc.LastJobID != nil || sc.Job.Type != "ping" || sc.Job.Queue != "cron" {
		t.Fatalf("PUT answered %+v", sc)
	}
	// Wait for a tick: its job names the schedule and the tick.
	apiEventually(t, "a tick", func() bool {
		s.req("GET", "/v1/schedules/beat", nil).want(t, http.StatusOK, &sc)
		return sc.LastJobID != nil
	})
	var j struct {
		apiJob
		Metadata map[string]string `json:"metadata"`
	}
	beatJob := *sc.LastJobID
	s.req("GET", "/v1/jobs/"+beatJob, nil).want(t, http.StatusOK, &j)
	if j.Type != "ping" || j.Queue != "cron" || j.Priority != 5 || j.Metadata["a"] != "b" || j.Metadata["gantry.schedule"] != "beat" ||
		j.Metadata["gantry.trigger"] != "cron" || j.Metadata["gantry.tick"] == "" {
		t.Errorf("ticked job %+v", j)
	}
	if _, err := time.Parse(time.RFC3339Nano, j.Metadata["gantry.tick"]); err != nil {
		t.Errorf("gantry.tick %q: %v", j.Metadata["gantry.tick"], err)
	}

	// Pause: no next run; a trigger is refused; resume.
	s.req("POST", "/v1/schedules/beat/pause", nil).want(t, http.StatusOK, &sc)
	if !sc.Paused || sc.NextRunAt != nil {
		t.Errorf("paused schedule %+v, want paused without next run", sc)
	}
	s.req("POST", "/v1/schedules/beat/trigger", nil).problem(t, http.StatusConflict, "")
	s.req("PUT", "/v1/schedules/daily", map[string]any{
		"cron": "30 2 * * *", "timezone": "America/New_York", "overlap": "skip", "job": map[string]any{"type": "report"},
	}).want(t, http.StatusCreated, &sc)
	next, err := time.Parse(time.RFC3339Nano, *sc.NextRunAt)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("America/New_York")
	if local := next.In(loc); local.Hour() != 2 && local.Hour() != 3 || !strings.HasSuffix(*sc.NextRunAt, "Z") {
		t.Errorf("next run %s is %v in New York, want 02:30 (03:00 on a spring-forward day), in UTC", *sc.NextRunAt, local)
	}
	var tj apiJob
	s.req("POST", "/v1/schedules/daily/trigger", nil).want(t, http.StatusCreated, &tj)
	var after apiSchedule
	s.req("GET", "/v1/schedules/daily", nil).want(t, http.StatusOK, &after)
	if after.LastJobID == nil || *after.LastJobID != tj.ID || *after.NextRunAt != *sc.NextRunAt {
		t.Errorf("after a trigger: %+v; want last job %s and next run %s unchanged", after, tj.ID, *sc.NextRunAt)
	}

	// Lists are by name, paged.
	var page apiPage[apiSchedule]
	s.req("GET", "/v1/schedules?limit=1", nil).want(t, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Name != "beat" || page.NextCursor == nil {
		t.Fatalf("first page %+v", page)
	}
	s.req("GET", "/v1/schedules?limit=1&cursor="+*page.NextCursor, nil).want(t, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Name != "daily" || page.NextCursor != nil {
		t.Fatalf("second page %+v", page)
	}

	s.req("DELETE", "/v1/schedules/beat", nil).want(t, http.StatusNoContent, nil)
	s.req("GET", "/v1/schedules/beat", nil).problem(t, http.StatusNotFound, "")
	s.req("DELETE", "/v1/schedules/beat", nil).problem(t, http.StatusNotFound, "")
	s.req("POST", "/v1/schedules/beat/trigger", nil).problem(t, http.StatusNotFound, "")
	s.req("GET", "/v1/jobs/"+beatJob, nil).want(t, http.StatusOK, nil) // its jobs stay
}

// TestAPIScheduleErrors: bad input is a 400 naming the field and stores
// nothing.
func TestAPIScheduleErrors(t *testing.T) {
	s := apiStart(t, server.Config{})
	job := map[string]any{"type": "t"}
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"no cron", map[string]any{"job": job}, "cron"},
		{"bad cron", map[string]any{"cron": "every minute", "job": job}, "cron"},
		{"cron out of range", map[string]any{"cron": "0 25 * * *", "job": job}, "cron"},
		{"cron never fires", map[string]any{"cron": "0 0 31 2 *", "job": job}, "cron"},
		{"every too short", map[string]any{"cron": "@every 100ms", "job": job}, "cron"},
		{"cron with a zone", map[string]any{"cron": "TZ=UTC 0 * * * *", "job": job}, "cron"},
		{"cron not a string", map[string]any{"cron": 5, "job": job}, "cron"},
		{"bad timezone", map[string]any{"cron": "@hourly", "timezone": "Europe/Atlantis", "job": job}, "timezone"},
		{"bad overlap", map[string]any{"cron": "@hourly", "overlap": "queue", "job": job}, "overlap"},
		{"no job", map[string]any{"cron": "@hourly"}, "job"},
		{"job without type", map[string]any{"cron": "@hourly", "job": map[string]any{}}, "job.type"},
		{"job bad type", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "a b"}}, "job.type"},
		{"job bad priority", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "priority": 500}}, "job.priority"},
		{"job unknown field", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "color": "red"}}, "job.color"},
		{"job run_at", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "run_at": "2030-01-01T00:00:00Z"}}, "job.run_at"},
		{"job delay", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "delay_seconds": 5}}, "job.delay_seconds"},
		{"job batch", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "batch_id": "0190a0b0-0000-7000-8000-000000000000"}}, "job.batch_id"},
		{"job reserved metadata", map[string]any{"cron": "@hourly", "job": map[string]any{"type": "t", "metadata": map[string]string{"gantry.tick": "x"}}}, "job.metadata"},
		{"unknown field", map[string]any{"cron": "@hourly", "job": job, "when": "now"}, "when"},
		{"paused not a bool", map[string]any{"cron": "@hourly", "job": job, "paused": "yes"}, "paused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.req("PUT", "/v1/schedules/s", tt.body).problem(t, http.StatusBadRequest, tt.field)
		})
	}
	s.req("PUT", "/v1/schedules/bad%20name", map[string]any{"cron": "@hourly", "job": job}).problem(t, http.StatusBadRequest, "name")
	s.req("PUT", "/v1/schedules/s", "{").problem(t, http.StatusBadRequest, "body")
	s.req("GET", "/v1/schedules?limit=0", nil).problem(t, http.StatusBadRequest, "limit")
	s.req("GET", "/v1/schedules?cursor=nope", nil).problem(t, http.StatusBadRequest, "cursor")
	var page apiPage[apiSchedule]
	s.req("GET", "/v1/schedules", nil).want(t, http.StatusOK, &page)
	if len(page.Items) != 0 {
		t.Errorf("bad puts stored %d schedules", len(page.Items))
	}
}
