package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
)

// demoResult is a demo's summary, parsed from its output.
type demoResult struct {
	Head                       string // "Done" or "Interrupted"
	Done                       int
	Succeeded, Retried, Failed int
}

var (
	doneRe        = regexp.MustCompile(`(?m)^Done: (\d+) jobs in \d+\.\ds, \d+\.\d jobs/s$`)
	interruptedRe = regexp.MustCompile(`(?m)^Interrupted: (\d+) of \d+ jobs done in \d+\.\ds, \d+\.\d jobs/s$`)
	countRe       = regexp.MustCompile(`(?m)^  (succeeded|retried|failed) +(\d+)`)
)

func parseSummary(t *testing.T, out string) demoResult {
	t.Helper()
	var r demoResult
	if m := doneRe.FindStringSubmatch(out); m != nil {
		r.Head = "Done"
		r.Done, _ = strconv.Atoi(m[1])
	} else if m := interruptedRe.FindStringSubmatch(out); m != nil {
		r.Head = "Interrupted"
		r.Done, _ = strconv.Atoi(m[1])
	} else {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	for _, m := range countRe.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[2])
		switch m[1] {
		case "succeeded":
			r.Succeeded = n
		case "retried":
			r.Retried = n
		case "failed":
			r.Failed = n
		}
	}
	return r
}

// stored reads back the demo's one batch from its data directory, through
// a server of its own.
func stored(t *testing.T, dir string) (*client.Batch, []*client.Job) {
	t.Helper()
	s, err := startServer(t.Context(), server.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("startServer: %v", err)
	}
	a := &app{}
	defer func() {
		a.close()
		if err := s.stop(context.Background(), 10*time.Second); err != nil {
			t.Errorf("stopping the server: %v", err)
		}
	}()
	c, err := client.New(s.url, client.WithToken(s.srv.Token()), client.WithHTTPClient(a.httpClient()))
	if err != nil {
		t.Fatal(err)
	}
	var batches []*client.Batch
	for b, err := range c.ListBatches(t.Context(), client.ListBatchesOptions{}) {
		if err != nil {
			t.Fatalf("ListBatches: %v", err)
		}
		batches = append(batches, b)
	}
	if len(batches) != 1 {
		t.Fatalf("the server holds %d batches, want 1", len(batches))
	}
	var jobs []*client.Job
	for j, err := range c.ListBatchJobs(t.Context(), batches[0].ID, client.ListBatchJobsOptions{Limit: 1000}) {
		if err != nil {
			t.Fatalf("ListBatchJobs: %v", err)
		}
		jobs = append(jobs, j)
	}
	return batches[0], jobs
}

// demoArgs are the arguments of a quick demo in dir.
func demoArgs(dir string, more ...string) []string {
	return append([]string{"demo", "--addr", "127.0.0.1:0", "--data-dir", dir}, more...)
}

func TestDemo(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := Run(t.Context(), demoArgs(dir, "--exit", "--jobs", "20", "--concurrency", "8"), &out, &errOut)
	if code != 0 {
		t.Fatalf("gantry demo exited %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	text := out.String()
	if strings.Contains(text, "\x1b") {
		t.Errorf("the output to a non-terminal holds escape sequences:\n%q", text)
	}
	if !regexp.MustCompile(`(?m)^ +\d+\.\ds  done \d+/20 \(\d+%\)  succeeded \d+  failed \d+  retrying \d+  running \d+  queued \d+`).MatchString(text) {
		t.Errorf("the output has no progress line:\n%s", text)
	}
	// It tells where the server is, its token, and what to try.
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^Server: http://127\.0\.0\.1:\d+ \(data in ` + regexp.QuoteMeta(dir) + `\)$`,
		`(?m)^Token:  ` + regexp.QuoteMeta(strings.TrimSpace(string(token))) + `$`,
		`(?m)^  export GANTRY_SERVER=http://127\.0\.0\.1:\d+$`,
		`(?m)^  gantry watch --batch \S+$`,
		`(?m)^  curl -H "Authorization: Bearer \$\(cat \S+/admin\.token\)" http://127\.0\.0\.1:\d+/v1/batches/\S+$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("the output does not match %s:\n%s", re, text)
		}
	}
	if strings.Contains(text, "keeps running") {
		t.Errorf("the demo with --exit says it keeps running:\n%s", text)
	}

	got := parseSummary(t, text)
	if got.Head != "Done" || got.Done != 20 || got.Succeeded+got.Failed != 20 {
		t.Errorf("summary = %+v, want Done with 20 jobs, succeeded + failed = 20\n%s", got, text)
	}

	// The summary tells what the database holds.
	b, jobs := stored(t, dir)
	retried := 0
	types := map[string]int{}
	for _, j := range jobs {
		types[j.Type]++
		if j.Attempt > 1 {
			retried++
		}
		if !j.State.Terminal() {
			t.Errorf("job %s (%s) is %s after the demo, want a terminal state", j.ID, j.Name, j.State)
		}
	}
	want := demoResult{
		Head: "Done", Done: b.Total,
		Succeeded: b.Counts[gantry.StateSucceeded], Retried: retried, Failed: b.Counts[gantry.StateFailed],
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summary against the database (-stored +printed):\n%s", diff)
	}
	if !b.Done {
		t.Errorf("the batch is not done after the demo: %+v", b)
	}
	if diff := cmp.Diff(map[string]int{demoSlow: 2, demoFlaky: 8, demoNoop: 10}, types); diff != "" {
		t.Errorf("job types (-want +got):\n%s", diff)
	}
}

// cancelingWriter cancels a context on the first progress line written.
type cancelingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if bytes.Contains(p, []byte("  done ")) {
		w.cancel()
	}
	return w.buf.Write(p)
}

func TestDemoInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &cancelingWriter{cancel: cancel}
	var errOut bytes.Buffer
	// The first progress line is drawn before any slow job (1s at least)
	// can end, so the batch cannot be done when the interruption comes.
	code := Run(ctx, demoArgs(dir, "--jobs", "10"), out, &errOut)
	text := out.buf.String()
	if code != 130 {
		t.Fatalf("interrupted gantry demo exited %d, want 130\nstdout:\n%s\nstderr:\n%s", code, text, errOut.String())
	}
	got := parseSummary(t, text)
	if got.Head != "Interrupted" || got.Done >= 10 {
		t.Errorf("summary = %+v, want Interrupted with fewer than 10 jobs done\n%s", got, text)
	}
	if !strings.Contains(text, "Stopping: letting running jobs finish") {
		t.Errorf("the output does not say the demo is stopping:\n%s", text)
	}
	// Stopping leaves no job running: they finished or went back to the
	// queue when the worker left.
	_, jobs := stored(t, dir)
	for _, j := range jobs {
		if j.State == gantry.StateRunning {
			t.Errorf("job %s (%s) is still running after the demo stopped", j.ID, j.Name)
		}
	}
}

func TestDemoKeepsServing(t *testing.T) {
	dir := t.TempDir()
	demo := start(t, demoArgs(dir, "--jobs", "5")...)
	demo.out.waitFor(t, "Press Ctrl-C to stop.\n", demo.done)
	text := demo.out.String()
	if !strings.Contains(text, "The server keeps running at http://127.0.0.1:") {
		t.Errorf("the demo does not say it keeps serving:\n%s", text)
	}
	// The commands it suggests work from a second terminal, with the
	// environment it says to export.
	m := regexp.MustCompile(`(?m)^  export GANTRY_SERVER=(\S+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no GANTRY_SERVER in the output:\n%s", text)
	}
	t.Setenv(client.EnvServer, m[1])
	t.Setenv(client.EnvToken, "")
	r := run(t.Context(), "submit", "demo.slow", "--param", "seconds:=0.05", "--wait", "--token-file", filepath.Join(dir, "admin.token"))
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("submit --wait against the demo: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code := demo.stop(); code != 0 {
		t.Errorf("the demo stopped by Ctrl-C after its batch exited %d, want 0\n%s", code, demo.errOut)
	}
	if out := demo.out.String(); !strings.HasSuffix(out, "Stopping...\n") {
		t.Errorf("the demo's output does not end with Stopping...:\n%s", out)
	}
}

func TestDemoAddressInUse(t *testing.T) {
	s := startTestServer(t)
	r := run(t.Context(), "demo", "--addr", strings.TrimPrefix(s.url, "http://"), "--data-dir", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "--addr 127.0.0.1:0 picks a free port") {
		t.Errorf("demo on a busy address: exit %d, stderr %q; want 1 and a hint", r.code, r.stderr)
	}
}

func TestDemoTryLines(t *testing.T) {
	tests := []struct {
		name           string
		url, tokenFile string
		want           []string
	}{
		{
			name: "defaults", url: "http://127.0.0.1:8080", tokenFile: "gantry-data/admin.token",
			want: []string{
				"gantry watch --batch B",
				"gantry submit demo.slow --wait",
				"gantry jobs list --state failed",
				`curl -H "Authorization: Bearer $(cat gantry-data/admin.token)" http://127.0.0.1:8080/v1/batches/B`,
			},
		},
		{
			name: "other port and directory", url: "http://127.0.0.1:9999", tokenFile: "/tmp/my data/admin.token",
			want: []string{
				"export GANTRY_SERVER=http://127.0.0.1:9999",
				"export GANTRY_TOKEN=$(cat '/tmp/my data/admin.token')",
				"gantry watch --batch B",
				"gantry submit demo.slow --wait",
				"gantry jobs list --state failed",
				`curl -H "Authorization: Bearer $(cat '/tmp/my data/admin.token')" http://127.0.0.1:9999/v1/batches/B`,
			},
		},
		{
			name: "token from the environment", url: "http://127.0.0.1:8080", tokenFile: "",
			want: []string{
				"export GANTRY_TOKEN=tok",
				"gantry watch --batch B",
				"gantry submit demo.slow --wait",
				"gantry jobs list --state failed",
				`curl -H "Authorization: Bearer $GANTRY_TOKEN" http://127.0.0.1:8080/v1/batches/B`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := demoTryLines(tt.url, tt.tokenFile, "tok", "B", "gantry")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("demoTryLines() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDemoSpecs(t *testing.T) {
	specs := demoSpecs(20)
	var got []string
	for _, s := range specs {
		got = append(got, s.Name)
		if want := "demo." + s.Name[:strings.IndexByte(s.Name, '-')]; s.Type != want {
			t.Errorf("job %s has type %s, want %s", s.Name, s.Type, want)
		}
		if wantPrio := map[bool]int{true: 10, false: 0}[s.Type == demoSlow]; s.Priority != wantPrio {
			t.Errorf("job %s has priority %d, want %d", s.Name, s.Priority, wantPrio)
		}
	}
	want := []string{
		"noop-1", "flaky-2", "noop-3", "flaky-4", "noop-5", "flaky-6", "noop-7", "flaky-8", "noop-9", "slow-10",
		"noop-11", "flaky-12", "noop-13", "flaky-14", "noop-15", "flaky-16", "noop-17", "flaky-18", "noop-19", "slow-20",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("demoSpecs(20) names (-want +got):\n%s", diff)
	}
}

func TestProgressTracker(t *testing.T) {
	names := map[string]string{"a": "slow-1", "b": "slow-2", "c": "noop-3"}
	tr := newProgressTracker("batch", names, demoSlow)
	p := func(pct int, msg string) *client.Progress { return &client.Progress{Percent: pct, Message: msg} }
	steps := []struct {
		ev   client.Event
		want []slowJob
	}{
		{client.Event{Kind: client.EventStarted, BatchID: "batch", JobID: "a", Type: demoSlow, Attempt: 1},
			[]slowJob{{Name: "slow-1"}}},
		{client.Event{Kind: client.EventStarted, BatchID: "batch", JobID: "c", Type: demoNoop, Attempt: 1},
			[]slowJob{{Name: "slow-1"}}},
		{client.Event{Kind: client.EventStarted, BatchID: "other", JobID: "x", Type: demoSlow, Attempt: 1},
			[]slowJob{{Name: "slow-1"}}},
		{client.Event{Kind: client.EventStarted, BatchID: "batch", JobID: "b", Type: demoSlow, Attempt: 1},
			[]slowJob{{Name: "slow-1"}, {Name: "slow-2"}}},
		{client.Event{Kind: client.EventProgress, BatchID: "batch", JobID: "b", Type: demoSlow, Attempt: 1, Progress: p(30, "step 3/10")},
			[]slowJob{{Name: "slow-1"}, {Name: "slow-2", Percent: 30, Message: "step 3/10"}}},
		{client.Event{Kind: client.EventRetrying, BatchID: "batch", JobID: "a", Type: demoSlow, Attempt: 1},
			[]slowJob{{Name: "slow-2", Percent: 30, Message: "step 3/10"}}},
		// A late progress report of the attempt that ended is ignored.
		{client.Event{Kind: client.EventProgress, BatchID: "batch", JobID: "a", Type: demoSlow, Attempt: 1, Progress: p(90, "late")},
			[]slowJob{{Name: "slow-2", Percent: 30, Message: "step 3/10"}}},
		{client.Event{Kind: client.EventStarted, BatchID: "batch", JobID: "a", Type: demoSlow, Attempt: 2},
			[]slowJob{{Name: "slow-2", Percent: 30, Message: "step 3/10"}, {Name: "slow-1"}}},
		{client.Event{Kind: client.EventSucceeded, BatchID: "batch", JobID: "b", Type: demoSlow, Attempt: 1},
			[]slowJob{{Name: "slow-1"}}},
		// A job of another type shows once it reports progress, named by
		// its type and ID when its name is not known.
		{client.Event{Kind: client.EventProgress, BatchID: "batch", JobID: "0123456789abcdef", Type: "render", Attempt: 1, Progress: p(5, "")},
			[]slowJob{{Name: "slow-1"}, {Name: "render …abcdef", Percent: 5}}},
		{client.Event{Kind: client.EventQueued, BatchID: "batch", JobID: "0123456789abcdef", Type: "render", Attempt: 1},
			[]slowJob{{Name: "slow-1"}}},
	}
	for i, s := range steps {
		tr.apply(&s.ev)
		if diff := cmp.Diff(s.want, tr.running()); diff != "" {
			t.Fatalf("after event %d (%s of %s): running() (-want +got):\n%s", i, s.ev.Kind, s.ev.JobID, diff)
		}
	}
	select {
	case <-tr.done:
		t.Fatal("done before batch.done")
	default:
	}
	tr.apply(&client.Event{Kind: client.EventBatchDone, BatchID: "other"})
	select {
	case <-tr.done:
		t.Fatal("done on another batch's batch.done")
	default:
	}
	tr.apply(&client.Event{Kind: client.EventBatchDone, BatchID: "batch"})
	tr.apply(&client.Event{Kind: client.EventBatchDone, BatchID: "batch"}) // no double close
	<-tr.done
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		stdout   string // a substring
		stderr   string // a substring
		noStdout bool
	}{
		{args: nil, code: 0, stdout: "Start with 'gantry demo'"},
		{args: []string{"--help"}, code: 0, stdout: "demo"},
		{args: []string{"version"}, code: 0, stdout: "gantry "},
		{args: []string{"version", "--json"}, code: 0, stdout: `"version": "`},
		{args: []string{"bogus"}, code: 2, stderr: `unknown command "bogus" for "gantry"`, noStdout: true},
		{args: []string{"--bogus"}, code: 2, stderr: "unknown flag: --bogus", noStdout: true},
		{args: []string{"version", "extra"}, code: 2, stderr: `unknown command "extra" for "gantry version"`, noStdout: true},
		{args: []string{"demo", "--jobs", "0"}, code: 2, stderr: "--jobs must be between 1 and 10000, not 0", noStdout: true},
		{args: []string{"demo", "--concurrency", "-1"}, code: 2, stderr: "--concurrency must be between 1 and 1000, not -1", noStdout: true},
		{args: []string{"demo", "--token", "x"}, code: 2, stderr: "--token does not apply to gantry demo", noStdout: true},
		{args: []string{"server", "--json"}, code: 2, stderr: "--json does not apply to gantry server", noStdout: true},
		{args: []string{"server", "--lease-ttl", "0s"}, code: 2, stderr: "--lease-ttl must be between 1s and 1h, not 0s", noStdout: true},
		{args: []string{"server", "--sqlite-synchronous", "OFF"}, code: 2, stderr: `--sqlite-synchronous must be FULL or NORMAL, not "OFF"`, noStdout: true},
		{args: []string{"server", "--log-level", "loud"}, code: 2, stderr: `--log-level must be debug, info, warn or error, not "loud"`, noStdout: true},
		{args: []string{"server", "--database-url", "postgres://127.0.0.1:1/gantry?connect_timeout=5", "--data-dir", t.TempDir()}, code: 1, stderr: "open PostgreSQL store: postgres: migrate: connect: store: unavailable", noStdout: true},
		{args: []string{"server", "--database-url", "postgres://127.0.0.1:1/gantry", "--schema", "Gantry"}, code: 2, stderr: `--schema must be 1 to 50 of a-z, 0-9 and _, not starting with a digit, not "Gantry"`, noStdout: true},
		{args: []string{"server", "--leader-ttl", "10ms"}, code: 2, stderr: "--leader-ttl must be at least 1s, not 10ms", noStdout: true},
		{args: []string{"worker", "--concurrency", "0"}, code: 2, stderr: "--concurrency must be between 1 and 10000, not 0", noStdout: true},
		{args: []string{"worker", "--types", "demo.noop,mail.send"}, code: 2, stderr: `no built-in handler for job type "mail.send"; this binary runs demo.flaky, demo.noop, demo.slow`, noStdout: true},
		{args: []string{"worker", "--lease-ttl", "10h"}, code: 2, stderr: "--lease-ttl must be between 1s and 1h", noStdout: true},
		{args: []string{"jobs"}, code: 0, stdout: "gantry jobs [command]"},
		{args: []string{"jobs", "bogus"}, code: 2, stderr: `unknown command "bogus" for "gantry jobs"`, noStdout: true},
		{args: []string{"jobs", "get"}, code: 2, stderr: "gantry jobs get needs a job ID", noStdout: true},
		{args: []string{"jobs", "get", "a", "b"}, code: 2, stderr: "gantry jobs get takes a job ID, not 2 arguments", noStdout: true},
		{args: []string{"jobs", "list", "--state", "done"}, code: 2, stderr: `--state must be one of scheduled, queued, running, retrying, succeeded, failed, canceled, not "done"`, noStdout: true},
		{args: []string{"jobs", "list", "--limit", "0"}, code: 2, stderr: "--limit must be between 1 and 1000, not 0", noStdout: true},
		{args: []string{"batches", "jobs"}, code: 2, stderr: "gantry batches jobs needs a batch ID", noStdout: true},
		{args: []string{"queues", "pause"}, code: 2, stderr: "gantry queues pause needs a queue name", noStdout: true},
		{args: []string{"workers", "drain"}, code: 2, stderr: "gantry workers drain needs a worker ID", noStdout: true},
		{args: []string{"submit"}, code: 2, stderr: "gantry submit needs a job type", noStdout: true},
		{args: []string{"submit", "x", "--priority", "high"}, code: 2, stderr: `invalid argument "high" for "--priority"`, noStdout: true},
		{args: []string{"submit", "x", "--param", "novalue"}, code: 2, stderr: `--param "novalue" is not key=value or key:=JSON`, noStdout: true},
		{args: []string{"submit", "x", "--delay", "1s", "--run-at", "2030-01-01T00:00:00Z"}, code: 2, stderr: "--run-at and --delay cannot be combined", noStdout: true},
		{args: []string{"submit", "x", "--run-at", "tomorrow"}, code: 2, stderr: `--run-at "tomorrow" is not an RFC 3339 time`, noStdout: true},
		{args: []string{"submit", "x", "--metadata", "k"}, code: 2, stderr: `--metadata "k" is not key=value`, noStdout: true},
		{args: []string{"jobs", "list", "--server", "ftp://x"}, code: 2, stderr: "must be http:// or https://", noStdout: true},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		code := Run(t.Context(), tt.args, &out, &errOut)
		if code != tt.code {
			t.Errorf("Run(%q) = %d, want %d\nstderr: %s", tt.args, code, tt.code, errOut.String())
		}
		if !strings.Contains(out.String(), tt.stdout) {
			t.Errorf("Run(%q) stdout = %q, want it to contain %q", tt.args, out.String(), tt.stdout)
		}
		if tt.noStdout && out.Len() > 0 {
			t.Errorf("Run(%q) stdout = %q, want nothing", tt.args, out.String())
		}
		if !strings.Contains(errOut.String(), tt.stderr) {
			t.Errorf("Run(%q) stderr = %q, want it to contain %q", tt.args, errOut.String(), tt.stderr)
		}
	}
}

func TestDemoEndsWhenItsWorkersAreDrained(t *testing.T) {
	dir := t.TempDir()
	demo := start(t, demoArgs(dir, "--jobs", "1")...)
	demo.out.waitFor(t, "Press Ctrl-C to stop.\n", demo.done)
	m := regexp.MustCompile(`(?m)^  export GANTRY_SERVER=(\S+)$`).FindStringSubmatch(demo.out.String())
	if m == nil {
		t.Fatalf("no GANTRY_SERVER in the output:\n%s", demo.out)
	}
	args := []string{"--server", m[1], "--token-file", filepath.Join(dir, "admin.token")}
	r := run(t.Context(), append(args, "workers", "list", "--json")...)
	var ws struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ws) != nil || len(ws.Items) != 1 || ws.Items[0].Name != "demo" {
		t.Fatalf("workers list: exit %d\n%s%s; want the demo's worker", r.code, r.stdout, r.stderr)
	}
	if r := run(t.Context(), append(args, "workers", "drain", ws.Items[0].ID)...); r.code != 0 {
		t.Fatalf("workers drain: exit %d\n%s", r.code, r.stderr)
	}
	if code := demo.wait(t); code != 0 {
		t.Errorf("the demo whose workers were drained exited %d, want 0\n%s", code, demo.errOut)
	}
	if out := demo.out.String(); !strings.HasSuffix(out, "The demo workers were drained; stopping.\n") {
		t.Errorf("the demo's output does not end with its workers' drain:\n%s", out)
	}
}
