package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
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

// stored reads back the demo's one batch from its database.
func stored(t *testing.T, dir string) (*embedded.BatchInfo, []*embedded.JobInfo) {
	t.Helper()
	g, err := embedded.Open(t.Context(), embedded.Config{Path: filepath.Join(dir, "demo.db")})
	if err != nil {
		t.Fatalf("embedded.Open: %v", err)
	}
	defer g.Close()
	var batches []*embedded.BatchInfo
	for b, err := range g.ListBatches(t.Context(), "", 0) {
		if err != nil {
			t.Fatalf("ListBatches: %v", err)
		}
		batches = append(batches, b)
	}
	if len(batches) != 1 {
		t.Fatalf("the database holds %d batches, want 1", len(batches))
	}
	var jobs []*embedded.JobInfo
	for j, err := range g.ListJobs(t.Context(), embedded.JobFilter{BatchID: batches[0].ID, PageSize: 1000}) {
		if err != nil {
			t.Fatalf("ListJobs: %v", err)
		}
		jobs = append(jobs, j)
	}
	return batches[0], jobs
}

func TestDemo(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := Run(t.Context(), []string{"demo", "--jobs", "20", "--concurrency", "8", "--data-dir", dir}, &out, &errOut)
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
	code := Run(ctx, []string{"demo", "--jobs", "10", "--data-dir", dir}, out, &errOut)
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

func TestSlowTracker(t *testing.T) {
	names := map[string]string{"a": "slow-1", "b": "slow-2", "c": "noop-3"}
	tr := newSlowTracker("batch", names)
	steps := []struct {
		ev   embedded.Event
		want []slowJob
	}{
		{embedded.Event{Kind: embedded.EventStarted, BatchID: "batch", JobID: "a", Type: demoSlow},
			[]slowJob{{Name: "slow-1"}}},
		{embedded.Event{Kind: embedded.EventStarted, BatchID: "batch", JobID: "c", Type: demoNoop},
			[]slowJob{{Name: "slow-1"}}},
		{embedded.Event{Kind: embedded.EventStarted, BatchID: "other", JobID: "x", Type: demoSlow},
			[]slowJob{{Name: "slow-1"}}},
		{embedded.Event{Kind: embedded.EventStarted, BatchID: "batch", JobID: "b", Type: demoSlow},
			[]slowJob{{Name: "slow-1"}, {Name: "slow-2"}}},
		{embedded.Event{Kind: embedded.EventProgress, BatchID: "batch", JobID: "b", Type: demoSlow, Progress: &embedded.Progress{Percent: 30, Message: "step 3/10"}},
			[]slowJob{{Name: "slow-1"}, {Name: "slow-2", Percent: 30, Message: "step 3/10"}}},
		{embedded.Event{Kind: embedded.EventRetrying, BatchID: "batch", JobID: "a", Type: demoSlow},
			[]slowJob{{Name: "slow-2", Percent: 30, Message: "step 3/10"}}},
		{embedded.Event{Kind: embedded.EventStarted, BatchID: "batch", JobID: "a", Type: demoSlow},
			[]slowJob{{Name: "slow-2", Percent: 30, Message: "step 3/10"}, {Name: "slow-1"}}},
		{embedded.Event{Kind: embedded.EventSucceeded, BatchID: "batch", JobID: "b", Type: demoSlow},
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
	tr.apply(&embedded.Event{Kind: embedded.EventBatchDone, BatchID: "other"})
	select {
	case <-tr.done:
		t.Fatal("done on another batch's batch.done")
	default:
	}
	tr.apply(&embedded.Event{Kind: embedded.EventBatchDone, BatchID: "batch"})
	tr.apply(&embedded.Event{Kind: embedded.EventBatchDone, BatchID: "batch"}) // no double close
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
		{args: nil, code: 0, stdout: "Start with 'gantry demo'."},
		{args: []string{"--help"}, code: 0, stdout: "demo"},
		{args: []string{"version"}, code: 0, stdout: "gantry "},
		{args: []string{"bogus"}, code: 2, stderr: `unknown command "bogus" for "gantry"`, noStdout: true},
		{args: []string{"--bogus"}, code: 2, stderr: "unknown flag: --bogus", noStdout: true},
		{args: []string{"version", "extra"}, code: 2, stderr: `unknown command "extra" for "gantry version"`, noStdout: true},
		{args: []string{"demo", "--jobs", "0"}, code: 2, stderr: "--jobs must be between 1 and 10000, not 0", noStdout: true},
		{args: []string{"demo", "--concurrency", "-1"}, code: 2, stderr: "--concurrency must be between 1 and 1000, not -1", noStdout: true},
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
