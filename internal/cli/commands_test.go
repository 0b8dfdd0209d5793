package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/wire"
)

// decode parses the JSON output of a command.
func decode[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("the output is not a %T: %v\n%s", v, err, out)
	}
	if dec.More() {
		t.Fatalf("the output holds more than one JSON value:\n%s", out)
	}
	return v
}

// compact returns JSON without white space.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// rawGet reads an API path as JSON, as curl would.
func (s *testServer) rawGet(t *testing.T, path string) any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s, %v", path, resp.StatusCode, b, err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// unknownID is a well-formed ID of no job or batch.
const unknownID = "01a208a1-0000-7000-8000-000000000000"

func TestSubmitAndJobCommands(t *testing.T) {
	s := startTestServer(t)

	out := s.ok(t, "submit", "demo.noop", "--param", "name=ada", "--param", "n:=3", "--params", `{"x": true}`,
		"--queue", "q1", "--priority", "7", "--max-attempts", "2", "--timeout", "1m", "--tag", "a", "--tag", "b",
		"--metadata", "k=v", "--name", "first", "--json")
	j := decode[wire.Job](t, out)
	if j.State != gantry.StateQueued || j.Queue != "q1" || j.Priority != 7 || j.MaxAttempts != 2 || j.Name != "first" {
		t.Errorf("submitted job = %+v", j)
	}
	if diff := cmp.Diff(map[string]any{"name": "ada", "n": 3.0, "x": true}, decode[map[string]any](t, string(j.Params))); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, j.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if j.TimeoutSeconds == nil || *j.TimeoutSeconds != 60 || j.Metadata["k"] != "v" {
		t.Errorf("timeout %v, metadata %v; want 60 and k=v", j.TimeoutSeconds, j.Metadata)
	}

	// --json is the API's object, field for field.
	got := decode[any](t, s.ok(t, "jobs", "get", j.ID, "--json"))
	if diff := cmp.Diff(s.rawGet(t, "/v1/jobs/"+j.ID), got); diff != "" {
		t.Errorf("jobs get --json against GET /v1/jobs/{id} (-api +cli):\n%s", diff)
	}
	got = decode[any](t, s.ok(t, "jobs", "list", "--json"))
	if diff := cmp.Diff(s.rawGet(t, "/v1/jobs"), got); diff != "" {
		t.Errorf("jobs list --json against GET /v1/jobs (-api +cli):\n%s", diff)
	}

	// Human output.
	if out := s.ok(t, "jobs", "get", j.ID); !regexp.MustCompile(`(?m)^State: +queued$`).MatchString(out) ||
		!strings.Contains(out, `Params:`) || !strings.Contains(out, "Metadata k:") {
		t.Errorf("jobs get:\n%s", out)
	}
	second := decode[wire.Job](t, s.ok(t, "submit", "demo.flaky", "--delay", "1h", "--json"))
	if second.State != gantry.StateScheduled {
		t.Errorf("job submitted with --delay is %s, want scheduled", second.State)
	}
	out = s.ok(t, "jobs", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], second.ID) || !strings.HasPrefix(lines[2], j.ID) {
		t.Errorf("jobs list: want a header and the two jobs, newest first:\n%s", out)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--state", "scheduled"}, []string{second.ID}},
		{[]string{"--queue", "q1"}, []string{j.ID}},
		{[]string{"--type", "demo.flaky"}, []string{second.ID}},
		{[]string{"--tag", "b"}, []string{j.ID}},
		{[]string{"--state", "failed"}, nil},
	} {
		page := decode[wire.Page[wire.Job]](t, s.ok(t, append([]string{"jobs", "list", "--json"}, tt.args...)...))
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.ID)
		}
		if diff := cmp.Diff(tt.want, ids); diff != "" {
			t.Errorf("jobs list %v (-want +got):\n%s", tt.args, diff)
		}
	}
	// Paging: --limit 1 gives a cursor to the next page.
	out = s.ok(t, "jobs", "list", "--limit", "1")
	m := regexp.MustCompile(`More jobs: add --cursor (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("jobs list --limit 1 gives no cursor:\n%s", out)
	}
	if out := s.ok(t, "jobs", "list", "--limit", "1", "--cursor", m[1]); !strings.Contains(out, j.ID) || strings.Contains(out, "More jobs") {
		t.Errorf("the second page:\n%s", out)
	}
	if out := s.ok(t, "jobs", "list", "--state", "failed"); out != "No jobs.\n" {
		t.Errorf("empty jobs list = %q, want %q", out, "No jobs.\n")
	}

	// Cancel, retry, delete.
	if out := s.ok(t, "jobs", "cancel", j.ID); out != "Job "+j.ID+": canceled\n" {
		t.Errorf("jobs cancel = %q", out)
	}
	r := s.gantry(t, "jobs", "cancel", j.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "(409 Conflict)") {
		t.Errorf("canceling a canceled job: exit %d, stderr %q; want 1 and a 409", r.code, r.stderr)
	}
	if got := decode[wire.Job](t, s.ok(t, "jobs", "retry", j.ID, "--json")); got.State != gantry.StateQueued {
		t.Errorf("jobs retry --json: state %s, want queued", got.State)
	}
	r = s.gantry(t, "jobs", "delete", j.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "409") {
		t.Errorf("deleting a queued job: exit %d, stderr %q; want 1 and a 409", r.code, r.stderr)
	}
	s.ok(t, "jobs", "cancel", j.ID)
	if out := s.ok(t, "jobs", "delete", j.ID); out != "Job "+j.ID+" deleted\n" {
		t.Errorf("jobs delete = %q", out)
	}
	if diff := cmp.Diff(map[string]any{"id": second.ID, "deleted": true}, decode[map[string]any](t,
		func() string {
			s.ok(t, "jobs", "cancel", second.ID)
			return s.ok(t, "jobs", "delete", second.ID, "--json")
		}())); diff != "" {
		t.Errorf("jobs delete --json (-want +got):\n%s", diff)
	}

	// An unknown job: exit 1 with the problem's detail, nothing on stdout.
	for _, args := range [][]string{{"jobs", "get", j.ID}, {"jobs", "cancel", "nope"}, {"watch", unknownID}} {
		r := s.gantry(t, args...)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, "(404 Not Found)") {
			t.Errorf("gantry %v: exit %d, stdout %q, stderr %q; want 1, nothing, and the problem", args, r.code, r.stdout, r.stderr)
		}
	}
	// A value the server refuses: the problem's field is named.
	r = s.gantry(t, "submit", "bad type!")
	if r.code != 1 || !strings.Contains(r.stderr, "(400 Bad Request)") || !strings.Contains(r.stderr, "field: type") {
		t.Errorf("submitting a bad type: exit %d, stderr %q; want 1, a 400 naming the field", r.code, r.stderr)
	}
}

func TestSubmitDeduplicated(t *testing.T) {
	s := startTestServer(t)
	first := decode[wire.Job](t, s.ok(t, "submit", "demo.noop", "--unique-key", "k", "--json"))
	out := s.ok(t, "submit", "demo.noop", "--unique-key", "k")
	if want := "Job " + first.ID + " already exists with this unique key; not submitted again (demo.noop, queued)\n"; out != want {
		t.Errorf("second submit = %q, want %q", out, want)
	}
}

func TestSubmitWait(t *testing.T) {
	s := startTestServer(t)
	w := s.startWorker(t, "--concurrency", "4")

	out := s.ok(t, "submit", "demo.slow", "--param", "seconds:=0.05", "--wait")
	if !regexp.MustCompile(`(?m)^Job \S+ submitted \(demo.slow, queued\)\nJob \S+ succeeded in \d+\.\ds after 1 attempt\nresult: \{"seconds":0.05,"steps":10\}\n$`).MatchString(out) {
		t.Errorf("submit --wait:\n%s", out)
	}
	j := decode[wire.Job](t, s.ok(t, "submit", "demo.slow", "--param", "seconds:=0.05", "--wait", "--json"))
	if j.State != gantry.StateSucceeded || compact(t, j.Result) != `{"seconds":0.05,"steps":10}` || len(j.Attempts) != 1 {
		t.Errorf("submit --wait --json = %+v, want succeeded with its result and attempt", j)
	}

	r := s.gantry(t, "submit", "demo.flaky", "--param", "fail=permanent", "--wait")
	if r.code != 1 || !strings.Contains(r.stdout, " failed in ") || !strings.Contains(r.stdout, "error: demo: simulated permanent failure") || r.stderr != "" {
		t.Errorf("submit --wait of a failing job: exit %d\nstdout:\n%s\nstderr:\n%s\nwant 1, the failure on stdout", r.code, r.stdout, r.stderr)
	}
	if code := w.stop(); code != 0 {
		t.Errorf("the worker exited %d, want 0\n%s", code, w.errOut)
	}
}

func TestWatchJob(t *testing.T) {
	s := startTestServer(t)
	s.ok(t, "queues", "pause", "default")
	w := s.startWorker(t)
	j := decode[wire.Job](t, s.ok(t, "submit", "demo.slow", "--param", "seconds:=0.2", "--name", "slow-one", "--json"))
	fails := decode[wire.Job](t, s.ok(t, "submit", "demo.flaky", "--param", "fail=transient", "--max-attempts", "2", "--json"))

	watch := start(t, "--server", s.url, "--token", s.token, "watch", j.ID)
	watch.out.waitFor(t, "Job "+j.ID+" (demo.slow slow-one): queued, attempt 0 of 5\n", watch.done)
	watchJSON := start(t, "--server", s.url, "--token", s.token, "watch", fails.ID, "--json")
	watchFail := start(t, "--server", s.url, "--token", s.token, "watch", fails.ID)
	watchFail.out.waitFor(t, "Job "+fails.ID, watchFail.done)
	watchJSON.out.waitFor(t, "\n", watchJSON.done) // the job, once following its events
	s.ok(t, "queues", "resume", "default")

	if code := watch.wait(t); code != 0 {
		t.Errorf("watch exited %d, want 0\n%s%s", code, watch.out, watch.errOut)
	}
	out := watch.out.String()
	for _, re := range []string{
		`(?m)^\d\d:\d\d:\d\d\.\d{3}  job.started +attempt 1$`,
		`(?m)^  [█░]{30} +\d+%(  step \d+/10)?$`,
		`(?m)^\d\d:\d\d:\d\d\.\d{3}  job.succeeded +attempt 1$`,
		`(?m)^Job \S+ succeeded in \d+\.\ds after 1 attempt\nresult: \{"seconds":0.2,"steps":10\}\n\z`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("watch output does not match %s:\n%s", re, out)
		}
	}

	if code := watchFail.wait(t); code != 1 {
		t.Errorf("watch of a failing job exited %d, want 1\n%s%s", code, watchFail.out, watchFail.errOut)
	}
	if out := watchFail.out.String(); !strings.Contains(out, "job.retrying   attempt 1: demo: simulated transient failure") ||
		!strings.Contains(out, " failed in ") {
		t.Errorf("watch of a failing job:\n%s", out)
	}
	if code := watchJSON.wait(t); code != 1 {
		t.Errorf("watch --json of a failing job exited %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(watchJSON.out.String()), "\n")
	if first := decode[wire.Job](t, lines[0]); first.ID != fails.ID || first.State != gantry.StateQueued {
		t.Errorf("first line of watch --json: %+v, want the queued job", first)
	}
	if last := decode[wire.Job](t, lines[len(lines)-1]); last.ID != fails.ID || last.State != gantry.StateFailed || len(last.Attempts) != 2 {
		t.Errorf("last line of watch --json: %+v, want the failed job with its 2 attempts", last)
	}
	var kinds []string
	for _, line := range lines[1 : len(lines)-1] {
		e := decode[wire.Event](t, line)
		if e.JobID != fails.ID {
			t.Errorf("event of job %s, want %s only", e.JobID, fails.ID)
		}
		if e.Kind != client.EventProgress {
			kinds = append(kinds, e.Kind)
		}
	}
	want := []string{client.EventStarted, client.EventRetrying, client.EventQueued, client.EventStarted, client.EventFailed}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("watch --json events (-want +got):\n%s", diff)
	}

	// A finished job: its outcome at once.
	if out := s.ok(t, "watch", j.ID); !strings.HasPrefix(out, "Job "+j.ID+" (demo.slow slow-one): succeeded, attempt 1 of 5\nJob ") {
		t.Errorf("watch of a finished job:\n%s", out)
	}
	w.stop()
}

func TestWatchUsage(t *testing.T) {
	for _, args := range [][]string{{"watch"}, {"watch", "a", "b"}, {"watch", "a", "--batch", "b"}} {
		r := run(t.Context(), args...)
		if r.code != 2 || !strings.Contains(r.stderr, "gantry watch") {
			t.Errorf("gantry %v: exit %d, stderr %q; want 2 and a usage error", args, r.code, r.stderr)
		}
	}
}

func TestWatchBatch(t *testing.T) {
	s := startTestServer(t)
	s.ok(t, "queues", "pause", "default")
	w := s.startWorker(t)
	slow := client.JobRequest{Type: demoSlow, Params: map[string]float64{"seconds": 0.3}, Name: "slow-job"}
	b, err := s.c.CreateBatch(t.Context(), client.BatchRequest{Name: "nightly", Jobs: []client.JobRequest{
		{Type: demoNoop}, {Type: demoNoop}, slow, {Type: demoFlaky, Params: map[string]string{"fail": "permanent"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	watch := start(t, "--server", s.url, "--token", s.token, "watch", "--batch", b.Batch.ID)
	watch.out.waitFor(t, "done 0/4 (0%)", watch.done)
	watchJSON := start(t, "--server", s.url, "--token", s.token, "watch", "--batch", b.Batch.ID, "--json")
	watchJSON.out.waitFor(t, "\n", watchJSON.done) // the batch, once following its events
	s.ok(t, "queues", "resume", "default")

	if code := watch.wait(t); code != 0 {
		t.Fatalf("watch --batch exited %d, want 0\n%s%s", code, watch.out, watch.errOut)
	}
	out := watch.out.String()
	if !regexp.MustCompile(`(?m)^Done: 4 jobs in \d+\.\ds, \d+\.\d jobs/s\n  succeeded      3\n  retried        0  \(needed more than one attempt\)\n  failed         1  \(dead letter\)\n\z`).MatchString(out) {
		t.Errorf("watch --batch output:\n%s", out)
	}
	if code := watchJSON.wait(t); code != 0 {
		t.Fatalf("watch --batch --json exited %d, want 0\n%s", code, watchJSON.errOut)
	}
	lines := strings.Split(strings.TrimSpace(watchJSON.out.String()), "\n")
	if first := decode[wire.Batch](t, lines[0]); first.ID != b.Batch.ID || first.Done || first.Counts[gantry.StateQueued] != 4 {
		t.Errorf("first line of watch --batch --json = %+v, want the batch with 4 queued jobs", first)
	}
	if e := decode[wire.Event](t, lines[len(lines)-2]); e.Kind != client.EventBatchDone || e.BatchID != b.Batch.ID {
		t.Errorf("last event of watch --batch --json = %+v, want batch.done", e)
	}
	if last := decode[wire.Batch](t, lines[len(lines)-1]); !last.Done || last.Counts[gantry.StateFailed] != 1 {
		t.Errorf("last line of watch --batch --json = %+v, want the done batch", last)
	}
	started := 0
	for _, line := range lines[1 : len(lines)-2] {
		if e := decode[wire.Event](t, line); e.Kind == client.EventStarted {
			started++
		}
	}
	if started != 4 {
		t.Errorf("watch --batch --json printed %d job.started events, want 4:\n%s", started, watchJSON.out)
	}
	w.stop()
}

func TestBatchCommands(t *testing.T) {
	s := startTestServer(t)
	b, err := s.c.CreateBatch(t.Context(), client.BatchRequest{Name: "open-one", Open: true, Jobs: []client.JobRequest{
		{Type: demoNoop, Name: "a"}, {Type: demoNoop, Name: "b"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := b.Batch.ID

	if out := s.ok(t, "batches", "list"); !regexp.MustCompile(`(?m)^` + id + ` +open-one +open +0/2 +0 +0 +0 +\d+s$`).MatchString(out) {
		t.Errorf("batches list:\n%s", out)
	}
	if diff := cmp.Diff(s.rawGet(t, "/v1/batches"), decode[any](t, s.ok(t, "batches", "list", "--json"))); diff != "" {
		t.Errorf("batches list --json against the API (-api +cli):\n%s", diff)
	}
	if diff := cmp.Diff(s.rawGet(t, "/v1/batches/"+id), decode[any](t, s.ok(t, "batches", "get", id, "--json"))); diff != "" {
		t.Errorf("batches get --json against the API (-api +cli):\n%s", diff)
	}
	if out := s.ok(t, "batches", "get", id); !regexp.MustCompile(`(?m)^Status: +open$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Counts: +queued 2$`).MatchString(out) {
		t.Errorf("batches get:\n%s", out)
	}
	page := decode[wire.Page[wire.Job]](t, s.ok(t, "batches", "jobs", id, "--json"))
	var names []string
	for _, j := range page.Items {
		names = append(names, j.Name)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("batches jobs (-want +got):\n%s", diff)
	}
	if got := decode[wire.Batch](t, s.ok(t, "batches", "close", id, "--json")); !got.Closed || got.Done {
		t.Errorf("batches close: %+v, want closed, not done", got)
	}
	if out := s.ok(t, "batches", "cancel", id); !regexp.MustCompile(`(?m)^Status: +done$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Counts: +canceled 2$`).MatchString(out) {
		t.Errorf("batches cancel:\n%s", out)
	}
	if out := s.ok(t, "batches", "jobs", id, "--state", "queued"); out != "No jobs.\n" {
		t.Errorf("batches jobs --state queued = %q", out)
	}
	r := s.gantry(t, "batches", "get", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") || !strings.Contains(r.stderr, "404") {
		t.Errorf("batches get of an unknown batch: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestQueueAndWorkerCommands(t *testing.T) {
	s := startTestServer(t)
	if out := s.ok(t, "queues", "list"); out != "No queues.\n" {
		t.Errorf("queues list of a new server = %q", out)
	}
	s.ok(t, "submit", "demo.noop", "--queue", "mail")
	if out := s.ok(t, "queues", "pause", "mail"); out != "Queue mail (tenant default): paused\n" {
		t.Errorf("queues pause = %q", out)
	}
	if out := s.ok(t, "queues", "list"); !regexp.MustCompile(`(?m)^mail +default +yes +1 +0 +0 +0 +0 +0 +\S+$`).MatchString(out) {
		t.Errorf("queues list:\n%s", out)
	}
	// The age of the oldest queued job differs from one read to the next.
	noAge := cmp.FilterPath(func(p cmp.Path) bool {
		mi, ok := p.Last().(cmp.MapIndex)
		return ok && mi.Key().String() == "oldest_queued_seconds"
	}, cmp.Ignore())
	if diff := cmp.Diff(s.rawGet(t, "/v1/queues"), decode[any](t, s.ok(t, "queues", "list", "--json")), noAge); diff != "" {
		t.Errorf("queues list --json against the API (-api +cli):\n%s", diff)
	}
	if q := decode[wire.Queue](t, s.ok(t, "queues", "resume", "mail", "--json")); q.Paused || q.Name != "mail" {
		t.Errorf("queues resume --json = %+v", q)
	}

	w := s.startWorker(t, "--name", "w-one", "--types", "demo.noop,demo.slow", "--queues", "mail,other", "--concurrency", "3")
	var ws wire.Page[wire.Worker]
	for len(ws.Items) == 0 {
		ws = decode[wire.Page[wire.Worker]](t, s.ok(t, "workers", "list", "--json"))
	}
	x := ws.Items[0]
	if x.Name != "w-one" || x.Capacity != 3 || !slices.Equal(x.Types, []string{"demo.noop", "demo.slow"}) || !slices.Equal(x.Queues, []string{"mail", "other"}) {
		t.Errorf("the worker is %+v", x)
	}
	if out := s.ok(t, "workers", "list"); !regexp.MustCompile(`(?m)^` + x.ID + ` +w-one +\S+ +active +\d/3 +demo.noop,demo.slow +mail,other +`).MatchString(out) {
		t.Errorf("workers list:\n%s", out)
	}
	// Draining a worker makes it finish and leave: the command ends.
	if out := s.ok(t, "workers", "drain", x.ID); !strings.HasPrefix(out, "Worker "+x.ID+" (w-one): draining") {
		t.Errorf("workers drain = %q", out)
	}
	if code := w.wait(t); code != 0 {
		t.Errorf("the drained worker exited %d, want 0\n%s", code, w.errOut)
	}
	if out := s.ok(t, "workers", "list"); out != "No workers.\n" {
		t.Errorf("workers list after the worker left = %q", out)
	}
	r := s.gantry(t, "workers", "drain", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("workers drain of an unknown worker: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWorkerDrainsOnCancel(t *testing.T) {
	s := startTestServer(t)
	w := s.startWorker(t, "--grace", "1m")
	j := decode[wire.Job](t, s.ok(t, "submit", "demo.slow", "--param", "seconds:=0.5", "--json"))
	s.waitState(t, j.ID, "running")
	// Running in the store is not yet running in the worker: the lease's
	// answer may still be on its way, and a worker stopped then never
	// sees the job (leaving releases it). Give it time to arrive; the job
	// runs for 500 ms.
	time.Sleep(150 * time.Millisecond)
	// As SIGTERM: no new leases, the running job finishes, the worker
	// leaves.
	if code := w.stop(); code != 0 {
		t.Fatalf("the worker exited %d, want 0\n%s", code, w.errOut)
	}
	got, err := s.c.GetJob(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != gantry.StateSucceeded {
		t.Errorf("the job running when the worker stopped is %s, want succeeded", got.State)
	}
	ws, err := s.c.ListWorkers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 0 {
		t.Errorf("workers after the worker stopped: %+v, want none", ws)
	}
}

func TestWorkerShortGraceReleasesJobs(t *testing.T) {
	s := startTestServer(t)
	w := s.startWorker(t, "--grace", "10ms")
	j := decode[wire.Job](t, s.ok(t, "submit", "demo.slow", "--param", "seconds:=600", "--json"))
	s.waitState(t, j.ID, "running")
	if code := w.stop(); code != 0 {
		t.Fatalf("the worker exited %d, want 0\n%s", code, w.errOut)
	}
	// The job did not finish within the grace period: leaving released it.
	got := s.waitState(t, j.ID, "queued")
	if got.Attempt != 1 {
		t.Errorf("the released job has had %d attempts, want 1", got.Attempt)
	}
}

func TestClientFromEnvironment(t *testing.T) {
	s := startTestServer(t)
	s.ok(t, "submit", "demo.noop")

	// GANTRY_SERVER and GANTRY_TOKEN.
	t.Setenv(client.EnvServer, s.url)
	t.Setenv(client.EnvToken, s.token)
	if r := run(t.Context(), "jobs", "list"); r.code != 0 || !strings.Contains(r.stdout, "demo.noop") {
		t.Errorf("jobs list with the environment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --token beats GANTRY_TOKEN.
	if r := run(t.Context(), "jobs", "list", "--token", "wrong"); r.code != 1 || !strings.Contains(r.stderr, "(401 Unauthorized)") {
		t.Errorf("jobs list with a wrong --token: exit %d, stderr %q; want 1 and a 401", r.code, r.stderr)
	}
	// Without GANTRY_TOKEN: the token file of the working directory.
	t.Setenv(client.EnvToken, "")
	dir := t.TempDir()
	t.Chdir(dir)
	r := run(t.Context(), "jobs", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "(401 Unauthorized)") || !strings.Contains(r.stderr, "no token was found") {
		t.Errorf("jobs list without a token: exit %d, stderr %q; want 1, a 401 and a hint", r.code, r.stderr)
	}
	if err := os.MkdirAll(filepath.Dir(client.DefaultTokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(client.DefaultTokenFile, []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t.Context(), "jobs", "list"); r.code != 0 || !strings.Contains(r.stdout, "demo.noop") {
		t.Errorf("jobs list with the default token file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// --token-file names another; it must exist.
	if r := run(t.Context(), "jobs", "list", "--token-file", filepath.Join(s.dir, "admin.token")); r.code != 0 {
		t.Errorf("jobs list --token-file: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t.Context(), "jobs", "list", "--token-file", "missing"); r.code != 2 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("jobs list --token-file missing: exit %d, stderr %q; want 2", r.code, r.stderr)
	}
	// An unreachable server.
	if r := run(t.Context(), "jobs", "list", "--server", "http://127.0.0.1:1"); r.code != 1 || !strings.Contains(r.stderr, "cannot reach the Gantry server at http://127.0.0.1:1") {
		t.Errorf("jobs list of an unreachable server: exit %d, stderr %q", r.code, r.stderr)
	}
}
