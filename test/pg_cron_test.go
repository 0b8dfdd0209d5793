package test

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/engine"
)

// TestPostgresCronExactlyOnce runs two 'gantry server' processes on one
// PostgreSQL schema with an "@every 1s" schedule: every tick enqueues
// exactly one job, with no tick twice and none lost, while both run; then
// the maintenance leader is killed (SIGKILL) and the other server takes
// over. Across the failover the documented catch-up policy applies: the
// ticks missed while no leader ran are enqueued once (as the first missed
// tick), and the schedule goes on from the next tick after that: one gap,
// no duplicate.
func TestPostgresCronExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gantry and runs two server processes; skipped in -short mode")
	}
	dbURL := pgNeed(t)
	schema := pgSchema(t, dbURL)
	bin := buildGantry(t)
	const token = "pg-cron-shared-token-0123456789abcdef"
	env := []string{"GANTRY_ADMIN_TOKEN=" + token, "GANTRY_DATABASE_URL="}
	args := []string{"--database-url", dbURL, "--schema", schema, "--leader-ttl", "2s", "--log-level", "info"}
	if out, err := exec.CommandContext(t.Context(), bin, "migrate", "--database-url", dbURL, "--schema", schema).CombinedOutput(); err != nil {
		t.Fatalf("gantry migrate: %v\n%s", err, out)
	}
	servers := []*gantryProcess{startGantryServer(t, bin, env, args...), startGantryServer(t, bin, env, args...)}
	clients := make([]*client.Client, 2)
	for i, s := range servers {
		c, err := client.New(s.url, client.WithToken(token))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	ctx := t.Context()
	if _, _, err := clients[0].PutSchedule(ctx, "beat", client.ScheduleRequest{Cron: "@every 1s", Job: client.JobRequest{Type: "pg.cron"}}); err != nil {
		t.Fatal(err)
	}

	// ticks reads the ticks of the schedule's jobs through server i, in
	// order, and fails the test on a tick enqueued twice.
	ticks := func(i int) []time.Time {
		t.Helper()
		var out []time.Time
		for j, err := range clients[i].ListJobs(ctx, client.ListJobsOptions{Type: "pg.cron", Limit: 1000}) {
			if err != nil {
				t.Fatal(err)
			}
			if j.Metadata["gantry.schedule"] != "beat" || j.Metadata["gantry.trigger"] != "cron" {
				t.Fatalf("job %s has metadata %v", j.ID, j.Metadata)
			}
			tick, err := time.Parse(time.RFC3339Nano, j.Metadata["gantry.tick"])
			if err != nil {
				t.Fatalf("job %s: tick %q: %v", j.ID, j.Metadata["gantry.tick"], err)
			}
			out = append(out, tick)
		}
		slices.SortFunc(out, time.Time.Compare)
		for k := 1; k < len(out); k++ {
			if out[k].Equal(out[k-1]) {
				t.Fatalf("tick %s enqueued twice; ticks: %v", out[k].Format(time.RFC3339Nano), out)
			}
		}
		return out
	}
	// gaps returns the indexes k where ticks[k] is not ticks[k-1] + 1s.
	gaps := func(ts []time.Time) []int {
		var out []int
		for k := 1; k < len(ts); k++ {
			if ts[k].Sub(ts[k-1]) != time.Second {
				out = append(out, k)
			}
		}
		return out
	}

	time.Sleep(5 * time.Second)
	before := ticks(1)
	if len(before) < 2 {
		t.Fatalf("only %d ticks in 5s with two servers:\nserver 0:\n%s\nserver 1:\n%s", len(before), servers[0].output, servers[1].output)
	}
	if g := gaps(before); len(g) > 0 {
		t.Errorf("ticks with two servers running are not consecutive at %v: %v", g, before)
	}

	// Kill the maintenance leader; the other takes over within the TTL.
	var holder string
	if err := pgConn(t, dbURL).QueryRow(ctx, fmt.Sprintf(`SELECT holder FROM %s.reservations WHERE tenant = '' AND name = $1`, schema),
		engine.LeaderReservation).Scan(&holder); err != nil || holder == "" {
		t.Fatalf("read the maintenance leader: %q, %v", holder, err)
	}
	leader := -1
	for i, s := range servers {
		if strings.Contains(s.output.String(), holder) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("no server logged holding %s", holder)
	}
	if err := servers[leader].cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL the leader: %v", err)
	}
	<-servers[leader].done
	killedAt := time.Now()
	survivor := 1 - leader
	time.Sleep(8 * time.Second)
	after := ticks(survivor)
	if len(after) < len(before)+3 {
		t.Fatalf("%d ticks before the kill, %d after 8s more: the survivor does not fire\n%s", len(before), len(after), servers[survivor].output)
	}
	// At most one gap, after the catch-up job of the failover, and no
	// longer than the failover (at most 4/3 of the leader TTL, plus slack).
	g := gaps(after)
	switch {
	case len(g) > 1:
		t.Errorf("ticks have %d gaps (at %v), want at most one (the failover): %v", len(g), g, after)
	case len(g) == 1:
		k := g[0]
		if d := after[k].Sub(after[k-1]); d <= 0 || d > 6*time.Second || after[k-1].Before(killedAt.Add(-3*time.Second)) {
			t.Errorf("gap of %s after tick %s (leader killed at %s): %v", d, after[k-1], killedAt, after)
		}
	}
	t.Logf("%d ticks, %d before the kill of server %d; gaps at %v", len(after), len(before), leader, g)
}
