package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
	"github.com/gantryhq/gantry/internal/server"
)

// workerStopTimeout bounds a worker process's graceful stop.
const workerStopTimeout = 15 * time.Second

// remote is a Gantry server in this process on a loopback port, with
// "gantry worker" processes leasing over HTTP and submission over HTTP.
type remote struct {
	cfg   Config
	db    *database
	srv   *server.Server
	url   string
	token string
	hc    *http.Client
	c     *client.Client
	reqs  []client.JobRequest

	serveDone chan error
	procs     []*workerProc
	peaks     int64 // sum of the worker processes' peak RSS, read as they stopped
}

// workerProc is one worker process.
type workerProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error // what Wait returned, once done is closed
}

func openRemote(ctx context.Context, cfg Config) (*remote, error) {
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	dataDir := db.dir
	if dataDir == "" { // PostgreSQL: the server still wants a data directory
		if dataDir, err = os.MkdirTemp("", "gantry-bench-"); err != nil {
			return nil, errors.Join(fmt.Errorf("bench: %w", err), db.close())
		}
		db.dir, db.tempDir = dataDir, true
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "bench-" + hex.EncodeToString(b[:])
	srv, err := server.New(ctx, server.Config{
		DataDir: dataDir, DatabaseURL: db.url, Schema: db.schema, AdminToken: token, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: start the server: %w", err), removeAll(db))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: listen: %w", err), srv.Shutdown(context.WithoutCancel(ctx)), removeAll(db))
	}
	r := &remote{cfg: cfg, db: db, srv: srv, url: "http://" + ln.Addr().String(), token: token, serveDone: make(chan error, 1)}
	go func() { r.serveDone <- srv.Serve(ln) }()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	r.hc = &http.Client{Transport: t}
	if r.c, err = client.New(r.url, client.WithToken(token), client.WithHTTPClient(r.hc)); err != nil {
		return nil, errors.Join(fmt.Errorf("bench: %w", err), r.close())
	}
	r.reqs = make([]client.JobRequest, cfg.Batch)
	for i := range r.reqs {
		r.reqs[i] = client.JobRequest{Type: JobType, Queue: Queue}
	}
	return r, nil
}

// removeAll removes what openDatabase prepared, for the error paths
// before the server owns it.
func removeAll(db *database) error { return db.close() }

func (r *remote) submit(ctx context.Context, n int) error {
	_, err := r.c.CreateBatch(ctx, client.BatchRequest{Jobs: r.reqs[:n]})
	return err
}

func (r *remote) setPaused(ctx context.Context, paused bool) error {
	var err error
	if paused {
		_, err = r.c.PauseQueue(ctx, "", Queue)
	} else {
		_, err = r.c.ResumeQueue(ctx, "", Queue)
	}
	if err != nil {
		return fmt.Errorf("bench: pause or resume the queue: %w", err)
	}
	return nil
}

func (r *remote) counts(ctx context.Context) (map[gantry.State]int, error) {
	qs, err := r.c.ListQueues(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: read the queue's counts: %w", err)
	}
	for _, q := range qs {
		if q.Name == Queue {
			return q.Counts, nil
		}
	}
	return map[gantry.State]int{}, nil
}

func (r *remote) handled() int { return -1 }

func (r *remote) startWorkers(ctx context.Context) error {
	for i := range r.cfg.Workers {
		args := append(r.cfg.WorkerCommand[1:len(r.cfg.WorkerCommand):len(r.cfg.WorkerCommand)],
			"worker", "--server", r.url, "--name", fmt.Sprintf("bench-%d", i+1),
			"--concurrency", strconv.Itoa(r.cfg.Concurrency), "--types", JobType, "--queues", Queue,
			"--log-level", "warn", "--grace", "10s")
		cmd := exec.Command(r.cfg.WorkerCommand[0], args...)
		cmd.Env = append(append(os.Environ(), client.EnvToken+"="+r.token), r.cfg.WorkerEnv...)
		p := &workerProc{cmd: cmd, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = &p.stderr, &p.stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("bench: start a worker process: %w", err)
		}
		go func() {
			p.err = cmd.Wait()
			close(p.done)
		}()
		r.procs = append(r.procs, p)
	}
	return waitRegistered(ctx, r.cfg.Workers, func(ctx context.Context) (int, error) {
		for _, p := range r.procs {
			select {
			case <-p.done:
				return 0, fmt.Errorf("%w: %v: %s", errNoProc, p.err, p.stderr.String())
			default:
			}
		}
		ws, err := r.c.ListWorkers(ctx)
		n := 0
		for _, w := range ws {
			if w.State == client.WorkerActive {
				n++
			}
		}
		return n, err
	})
}

func (r *remote) stopWorkers() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range r.procs {
		_, peak := procRSS(p.cmd.Process.Pid)
		r.peaks += peak
		wg.Go(func() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(workerStopTimeout):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
			if p.err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("bench: worker process: %w: %s", p.err, p.stderr.String()))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.procs = nil
	return errors.Join(errs...)
}

func (r *remote) startLatencies() map[string]time.Duration { return nil }

func (r *remote) jobs(ctx context.Context, f func(id string, created, started, finished time.Time)) error {
	for j, err := range r.c.ListJobs(ctx, client.ListJobsOptions{Queue: Queue, State: gantry.StateSucceeded, Limit: 1000}) {
		if err != nil {
			return err
		}
		f(j.ID, j.CreatedAt, j.StartedAt, j.FinishedAt)
	}
	return nil
}

func (r *remote) rss() (cur, peak, workers int64) {
	cur, peak = procRSS(os.Getpid())
	return cur, peak, r.peaks
}

func (r *remote) dbSize(ctx context.Context) (int64, error) { return r.db.size(ctx) }

func (r *remote) close() error {
	err := r.stopWorkers()
	if r.hc != nil {
		r.hc.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(err, r.srv.Shutdown(ctx))
	if serr := <-r.serveDone; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, r.db.close())
}
