package cli

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/wire"
)

func TestReservationCommands(t *testing.T) {
	s := startTestServer(t)
	if out := s.ok(t, "reservations", "list"); out != "No reservations.\n" {
		t.Errorf("reservations list of a new server = %q", out)
	}
	r := s.gantry(t, "reservations", "acquire", "nightly", "--holder", "ops", "--ttl", "1m")
	if r.code != 0 {
		t.Fatalf("acquire exited %d: %s", r.code, r.stderr)
	}
	token, err := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64)
	if err != nil || token <= 0 {
		t.Fatalf("acquire printed %q, want the token alone", r.stdout)
	}
	if !strings.Contains(r.stderr, "Reservation nightly (tenant default) acquired by ops with token "+r.stdout[:len(r.stdout)-1]) {
		t.Errorf("acquire's description = %q", r.stderr)
	}
	// Held by another holder: exit 1 naming the holder.
	r = s.gantry(t, "reservations", "acquire", "nightly", "--holder", "other")
	if r.code != 1 || !strings.Contains(r.stderr, `held by "ops"`) || !strings.Contains(r.stderr, "409") {
		t.Errorf("acquire of a held name: exit %d, stderr %q", r.code, r.stderr)
	}
	tok := strconv.FormatInt(token, 10)
	if out := s.ok(t, "reservations", "renew", "nightly", "--holder", "ops", "--lease-token", tok, "--ttl", "2m"); strings.TrimSpace(out) != tok {
		t.Errorf("renew printed %q, want the token", out)
	}
	if out := s.ok(t, "reservations", "list"); !regexp.MustCompile(`(?m)^nightly +default +ops +` + tok + ` +`).MatchString(out) {
		t.Errorf("reservations list:\n%s", out)
	}
	if diff := cmp.Diff(s.rawGet(t, "/v1/reservations"), decode[any](t, s.ok(t, "reservations", "list", "--json"))); diff != "" {
		t.Errorf("reservations list --json against the API (-api +cli):\n%s", diff)
	}
	if out := s.ok(t, "reservations", "get", "nightly"); !strings.Contains(out, "Holder:") || !regexp.MustCompile(`(?m)^`+tok+` +ops +.* held +-$`).MatchString(out) {
		t.Errorf("reservations get:\n%s", out)
	}
	// Release needs the token; the default holder (this process) does
	// not hold it.
	if r := s.gantry(t, "reservations", "release", "nightly"); r.code != 2 || !strings.Contains(r.stderr, "--lease-token") {
		t.Errorf("release without --lease-token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := s.gantry(t, "reservations", "release", "nightly", "--lease-token", tok); r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Errorf("release by another holder: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := s.ok(t, "reservations", "release", "nightly", "--holder", "ops", "--lease-token", tok); out != "Reservation nightly released (token "+tok+").\n" {
		t.Errorf("release = %q", out)
	}
	if diff := cmp.Diff(s.rawGet(t, "/v1/reservations/nightly"), decode[any](t, s.ok(t, "reservations", "get", "nightly", "--json"))); diff != "" {
		t.Errorf("reservations get --json against the API (-api +cli):\n%s", diff)
	}
	g := decode[wire.Grant](t, s.ok(t, "reservations", "acquire", "nightly", "--json"))
	if g.Token <= token || !strings.Contains(g.Holder, ":") || g.TTLSeconds != 30 {
		t.Errorf("acquire --json = %+v, want a new token, the default holder and TTL", g)
	}
	if r := s.gantry(t, "reservations", "acquire", "nightly", "--ttl", "0s"); r.code != 2 {
		t.Errorf("acquire --ttl 0s: exit %d, want 2", r.code)
	}
	if r := s.gantry(t, "reservations", "get", "nope"); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("get of an unknown reservation: exit %d, stderr %q", r.code, r.stderr)
	}
}
