package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/worker"
)

// lockedBuffer collects a process's output for the failure messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gantryProcess is a 'gantry server' process.
type gantryProcess struct {
	cmd    *exec.Cmd
	url    string
	output *lockedBuffer // stdout and stderr
	done   chan struct{} // closed when the process exited
}

// buildGantry builds the gantry command into a temporary directory.
func buildGantry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gantry")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/gantryhq/gantry/cmd/gantry").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/gantry: %v\n%s", err, out)
	}
	return bin
}

var listeningRe = regexp.MustCompile(`^Gantry server listening on (http://\S+)$`)

// startGantryServer starts 'gantry server' on a free loopback port with
// args, and waits until it listens. The process is stopped (SIGTERM, then
// SIGKILL) when the test ends if it still runs.
func startGantryServer(t *testing.T, bin string, env []string, args ...string) *gantryProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"server", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &gantryProcess{cmd: cmd, output: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.output
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start gantry server: %v", err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(p.output, sc.Text())
			if m := listeningRe.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		_, _ = io.Copy(p.output, stdout)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
			t.Errorf("gantry server did not stop on SIGINT within 30s:\n%s", p.output)
		}
	})
	select {
	case p.url = <-urls:
		return p
	case <-p.done:
		t.Fatalf("gantry server exited before listening:\n%s", p.output)
	case <-time.After(30 * time.Second):
		t.Fatalf("gantry server did not listen within 30s:\n%s", p.output)
	}
	return nil
}

// crashWorker is a remote worker the crash test stops itself, whatever
// Run returns (the workers of the killed server may see errors).
type crashWorker struct {
	w    *worker.Worker
	stop context.CancelFunc
	done chan struct{}
}

func startCrashWorker(t *testing.T, c *client.Client, name string, handler func(w *worker.Worker) func(context.Context, *gantry.Job) (any, error)) *crashWorker {
	t.Helper()
	w := worker.New(c.WorkerTransport(), worker.Options{Name: name, Concurrency: 8, LeaseTTL: 2 * time.Second, Logger: clientQuiet})
	w.RegisterFunc("pg.crash", handler(w))
	ctx, stop := context.WithCancel(context.Background())
	cw := &crashWorker{w: w, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(cw.done)
		_ = w.Run(ctx)
	}()
	t.Cleanup(cw.Stop)
	return cw
}

// Stop stops the worker and waits for Run to return.
func (cw *crashWorker) Stop() {
	cw.stop()
	<-cw.done
}

// crashResult is what the crash test's handler returns.
type crashResult struct {
	Attempt int    `json:"attempt"`
	Worker  string `json:"worker"`
}

// TestPostgresServerCrash runs two real 'gantry server' processes on one
// database with remote workers on both, kills one with SIGKILL mid-run,
// lets the dead server's workers reach the live one through their "load
// balancer" (a TCP proxy), and checks that every job succeeded exactly once
// as recorded: one succeeded attempt per job, whose result is that of the
// attempt the server recorded (no stale completion accepted), no job lost.
func TestPostgresServerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gantry and runs two server processes; skipped in -short mode")
	}
	dbURL := pgNeed(t)
	schema := pgSchema(t, dbURL)
	bin := buildGantry(t)
	const token = "pg-crash-shared-token-0123456789abcdef"
	env := []string{"GANTRY_ADMIN_TOKEN=" + token, "GANTRY_DATABASE_URL="}
	args := []string{"--database-url", dbURL, "--schema", schema, "--lease-ttl", "2s", "--leader-ttl", "2s", "--log-level", "error"}
	if out, err := exec.CommandContext(t.Context(), bin, "migrate", "--database-url", dbURL, "--schema", schema).CombinedOutput(); err != nil {
		t.Fatalf("gantry migrate: %v\n%s", err, out)
	}
	// B starts first, so that it is likely the maintenance leader when it
	// is killed: A then takes over within the leader TTL.
	srvB := startGantryServer(t, bin, env, args...)
	srvA := startGantryServer(t, bin, env, args...)

	newClient := func(base string) *client.Client {
		c, err := client.New(base, client.WithToken(token))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca := newClient(srvA.url)
	bURL, err := url.Parse(srvB.url)
	if err != nil {
		t.Fatal(err)
	}
	aURL, err := url.Parse(srvA.url)
	if err != nil {
		t.Fatal(err)
	}
	// B's workers reach B through "load balancers": lb moves b-0 to A as
	// soon as B dies; lbCut leaves b-1 cut off from every server for longer
	// than its lease TTL, so that its leases expire and the jobs it held run
	// again elsewhere, and only then moves it to A.
	lb := startTCPProxy(t, bURL.Host)
	lbCut := startTCPProxy(t, bURL.Host)

	var runs atomic.Int64
	handler := func(d time.Duration) func(w *worker.Worker) func(context.Context, *gantry.Job) (any, error) {
		return func(w *worker.Worker) func(context.Context, *gantry.Job) (any, error) {
			return func(ctx context.Context, j *gantry.Job) (any, error) {
				runs.Add(1)
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil, context.Cause(ctx)
				}
				return crashResult{Attempt: j.Attempt, Worker: w.ID()}, nil
			}
		}
	}
	startCrashWorker(t, ca, "a-0", handler(2*time.Millisecond))
	startCrashWorker(t, ca, "a-1", handler(2*time.Millisecond))
	startCrashWorker(t, newClient("http://"+lb.Addr()), "b-0", handler(2*time.Millisecond))
	// b-1 is slow: it holds leases all the time.
	startCrashWorker(t, newClient("http://"+lbCut.Addr()), "b-1", handler(200*time.Millisecond))

	const total = 2000
	reqs := make([]client.JobRequest, total)
	for i := range reqs {
		reqs[i] = client.JobRequest{Type: "pg.crash", MaxAttempts: 25, Params: map[string]int{"i": i}}
	}
	created, err := ca.CreateBatch(t.Context(), client.BatchRequest{Name: "crash", Jobs: reqs})
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}

	deadline := time.Now().Add(45 * time.Second)
	for runs.Load() < total/3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d jobs ran in 45s\nserver A:\n%s\nserver B:\n%s", runs.Load(), total, srvA.output, srvB.output)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srvB.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL server B: %v", err)
	}
	<-srvB.done
	t.Logf("server B killed after %d of %d runs", runs.Load(), total)
	lbCut.Cut()
	lb.SetTarget(aURL.Host) // the load balancer sends b-0 to A
	lb.Cut()                // connections to the dead server are gone
	lb.Restore()
	time.Sleep(3 * time.Second) // b-1's 2s leases expire meanwhile
	lbCut.SetTarget(aURL.Host)
	lbCut.Restore()

	for {
		b, err := ca.GetBatch(t.Context(), created.Batch.ID)
		if err == nil && b.Counts[gantry.StateSucceeded] == total {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := pgConn(t, dbURL).Query(t.Context(), `SELECT id::text, worker_id, token, lease_expires_at, lease_ttl_ms, attempt, (extract(epoch from now())*1e9)::bigint, attempts::text, attempt_base FROM "`+schema+`".jobs WHERE state = 'running'`)
			for rows != nil && rows.Next() {
				var id, w string
				var tok, exp, ttl, now int64
				var att int
				var atts string
				var base int
				rows.Scan(&id, &w, &tok, &exp, &ttl, &att, &now, &atts, &base)
				t.Logf("attempts base %d: %s", base, atts)
				t.Logf("stuck: %s worker %s token %d expires in %v ttl %dms attempt %d", id, w, tok, time.Duration(exp-now), ttl, att)
			}
			t.Fatalf("batch after 45s: %+v, %v; want %d succeeded\nserver A:\n%s", b, err, total, srvA.output)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Every job, as recorded.
	type verdict struct {
		id      string
		err     error
		retried bool // the job has an attempt before the succeeded one
	}
	ids := make(chan string)
	verdicts := make(chan verdict)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range ids {
				j, err := ca.GetJob(t.Context(), id)
				if err == nil {
					err = checkCrashJob(j)
				}
				verdicts <- verdict{id, err, err == nil && len(j.Attempts) > 1}
			}
		})
	}
	go func() {
		for _, id := range created.JobIDs {
			ids <- id
		}
		close(ids)
		wg.Wait()
		close(verdicts)
	}()
	bad, retried := 0, 0
	for v := range verdicts {
		if v.retried {
			retried++
		}
		if v.err != nil {
			bad++
			if bad <= 10 {
				t.Errorf("job %s: %v", v.id, v.err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d jobs not succeeded exactly once as recorded", bad, total)
	}
	if len(created.JobIDs) != total {
		t.Errorf("the batch created %d jobs, want %d", len(created.JobIDs), total)
	}
	// The jobs b-1 held when it was cut off ran again after their leases
	// expired.
	if retried == 0 {
		t.Errorf("no job has more than one attempt: the leases of the worker cut off from every server did not expire")
	}
	t.Logf("%d handler runs for %d jobs; %d jobs ran more than once", runs.Load(), total, retried)
}

// checkCrashJob checks that j succeeded exactly once: one succeeded
// attempt, its last, whose recorded result is the one its own run returned.
func checkCrashJob(j *client.Job) error {
	if j.State != gantry.StateSucceeded {
		return fmt.Errorf("state %s, want succeeded", j.State)
	}
	if len(j.Attempts) == 0 || len(j.Attempts) != j.Attempt {
		return fmt.Errorf("attempt %d with %d attempts recorded", j.Attempt, len(j.Attempts))
	}
	succeeded := 0
	for _, a := range j.Attempts {
		if a.Outcome == client.OutcomeSucceeded {
			succeeded++
		}
	}
	last := j.Attempts[len(j.Attempts)-1]
	if succeeded != 1 || last.Outcome != client.OutcomeSucceeded {
		return fmt.Errorf("attempts %+v: want exactly one succeeded, the last", j.Attempts)
	}
	for i := 1; i < len(j.Attempts); i++ {
		if j.Attempts[i].Token <= j.Attempts[i-1].Token {
			return fmt.Errorf("attempts %+v: fencing tokens do not increase", j.Attempts)
		}
	}
	var r crashResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return fmt.Errorf("result %s: %w", j.Result, err)
	}
	if r.Attempt != last.Attempt || r.Worker != last.WorkerID {
		return fmt.Errorf("result of attempt %d by worker %s recorded for the succeeded attempt %d by worker %s: a stale completion was accepted",
			r.Attempt, r.Worker, last.Attempt, last.WorkerID)
	}
	return nil
}
