package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/wire"
)

func TestScheduleCommands(t *testing.T) {
	s := startTestServer(t)
	if out := s.ok(t, "schedules", "list"); out != "No schedules.\n" {
		t.Errorf("schedules list of a new server = %q", out)
	}
	out := s.ok(t, "schedules", "put", "nightly", "report.build", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
		"--overlap", "skip", "--param", "lang=en", "--priority", "3", "--tag", "cron", "--metadata", "team=ops")
	if !strings.HasPrefix(out, "Schedule nightly created\n") || !strings.Contains(out, "30 2 * * * (Europe/Berlin)") {
		t.Errorf("schedules put:\n%s", out)
	}
	sc := decode[wire.Schedule](t, s.ok(t, "schedules", "get", "nightly", "--json"))
	if sc.Job.Type != "report.build" || sc.Job.Priority != 3 || compact(t, sc.Job.Params) != `{"lang":"en"}` || sc.Overlap != "skip" ||
		sc.Job.Metadata["team"] != "ops" || sc.NextRunAt == nil {
		t.Errorf("schedules get --json = %+v", sc)
	}
	if diff := cmp.Diff(s.rawGet(t, "/v1/schedules"), decode[any](t, s.ok(t, "schedules", "list", "--json"))); diff != "" {
		t.Errorf("schedules list --json against the API (-api +cli):\n%s", diff)
	}
	if out := s.ok(t, "schedules", "list"); !regexp.MustCompile(`(?m)^nightly +default +30 2 \* \* \* +Europe/Berlin +report.build +skip +no +`).MatchString(out) {
		t.Errorf("schedules list:\n%s", out)
	}
	out = s.ok(t, "schedules", "trigger", "nightly")
	if !regexp.MustCompile(`^Job \S+ submitted \(report.build, queued\)\n$`).MatchString(out) {
		t.Errorf("schedules trigger = %q", out)
	}
	if out := s.ok(t, "schedules", "pause", "nightly"); !strings.HasPrefix(out, "Schedule nightly paused\n") {
		t.Errorf("schedules pause:\n%s", out)
	}
	r := s.gantry(t, "schedules", "trigger", "nightly")
	if r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Errorf("trigger of a paused schedule: exit %d, stderr %q", r.code, r.stderr)
	}
	s.ok(t, "schedules", "resume", "nightly")
	r = s.gantry(t, "schedules", "put", "bad", "t", "--cron", "61 * * * *")
	if r.code != 1 || !strings.Contains(r.stderr, "cron") {
		t.Errorf("put with a bad cron: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := s.gantry(t, "schedules", "put", "x", "t"); r.code != 2 || !strings.Contains(r.stderr, "--cron") {
		t.Errorf("put without --cron: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := s.ok(t, "schedules", "delete", "nightly"); out != "Schedule nightly deleted\n" {
		t.Errorf("schedules delete = %q", out)
	}
	if r := s.gantry(t, "schedules", "delete", "nightly"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("second delete: exit %d, stderr %q", r.code, r.stderr)
	}
}
