package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// inProcess is Gantry in this process: package embedded with workers over
// its in-process transport, as a program embedding Gantry runs it.
type inProcess struct {
	cfg   Config
	db    *database
	g     *embedded.Gantry
	specs []embedded.JobSpec

	stop   context.CancelFunc
	wg     sync.WaitGroup
	errs   []error
	errsMu sync.Mutex
	latMu  sync.Mutex
	lat    map[string]time.Duration
}

func openInProcess(ctx context.Context, cfg Config) (*inProcess, error) {
	db, err := openDatabase(ctx, cfg)
	if err != nil {
		return nil, err
	}
	g, err := embedded.Open(ctx, embedded.Config{
		Path: filepath.Join(db.dir, "gantry.db"), DatabaseURL: db.url, Schema: db.schema, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: %w", err), db.close())
	}
	specs := make([]embedded.JobSpec, cfg.Batch)
	for i := range specs {
		specs[i] = embedded.JobSpec{Type: JobType, Queue: Queue}
	}
	return &inProcess{cfg: cfg, db: db, g: g, specs: specs, lat: map[string]time.Duration{}}, nil
}

func (p *inProcess) submit(ctx context.Context, n int) error {
	_, _, err := p.g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: p.specs[:n]})
	return err
}

func (p *inProcess) setPaused(ctx context.Context, paused bool) error {
	var err error
	if paused {
		_, err = p.g.PauseQueue(ctx, "", Queue)
	} else {
		_, err = p.g.ResumeQueue(ctx, "", Queue)
	}
	if err != nil {
		return fmt.Errorf("bench: pause or resume the queue: %w", err)
	}
	return nil
}

func (p *inProcess) counts(ctx context.Context) (map[gantry.State]int, error) {
	qs, err := p.g.Queues(ctx, "")
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

// handle is the workers' no-op handler; it records the time from the
// job's creation (stamped when Submit began) to now.
func (p *inProcess) handle(_ context.Context, j *gantry.Job) (any, error) {
	now := time.Now()
	p.latMu.Lock()
	p.lat[j.ID] = now.Sub(j.CreatedAt)
	p.latMu.Unlock()
	return nil, nil
}

func (p *inProcess) handled() int {
	p.latMu.Lock()
	defer p.latMu.Unlock()
	return len(p.lat)
}

func (p *inProcess) startWorkers(ctx context.Context) error {
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	for i := range p.cfg.Workers {
		w := worker.New(p.g.Transport(), worker.Options{
			Name: fmt.Sprintf("bench-%d", i+1), Concurrency: p.cfg.Concurrency,
			Queues: []string{Queue}, Logger: p.cfg.Logger,
		})
		w.RegisterFunc(JobType, p.handle)
		p.wg.Go(func() {
			if err := w.Run(wctx); err != nil && !errors.Is(err, context.Canceled) {
				p.errsMu.Lock()
				p.errs = append(p.errs, err)
				p.errsMu.Unlock()
			}
		})
	}
	return waitRegistered(ctx, p.cfg.Workers, func(ctx context.Context) (int, error) {
		ws, err := p.g.Workers(ctx)
		n := 0
		for _, w := range ws {
			if w.State == embedded.WorkerActive {
				n++
			}
		}
		return n, err
	})
}

func (p *inProcess) stopWorkers() error {
	if p.stop == nil {
		return nil
	}
	p.stop()
	p.wg.Wait()
	p.stop = nil
	p.errsMu.Lock()
	defer p.errsMu.Unlock()
	if err := errors.Join(p.errs...); err != nil {
		return fmt.Errorf("bench: worker: %w", err)
	}
	return nil
}

func (p *inProcess) startLatencies() map[string]time.Duration {
	p.latMu.Lock()
	defer p.latMu.Unlock()
	return p.lat
}

func (p *inProcess) jobs(ctx context.Context, f func(id string, created, started, finished time.Time)) error {
	for j, err := range p.g.ListJobs(ctx, embedded.JobFilter{Queue: Queue, State: gantry.StateSucceeded, PageSize: 1000}) {
		if err != nil {
			return err
		}
		f(j.ID, j.CreatedAt, j.StartedAt, j.FinishedAt)
	}
	return nil
}

func (p *inProcess) rss() (cur, peak, workers int64) {
	cur, peak = procRSS(os.Getpid())
	return cur, peak, 0
}

func (p *inProcess) dbSize(ctx context.Context) (int64, error) { return p.db.size(ctx) }

func (p *inProcess) close() error {
	err := p.stopWorkers()
	return errors.Join(err, p.g.Close(), p.db.close())
}

// waitRegistered waits until count says n workers are active.
func waitRegistered(ctx context.Context, n int, count func(context.Context) (int, error)) error {
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := count(ctx)
		if err != nil {
			return fmt.Errorf("bench: list workers: %w", err)
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: only %d of %d workers registered within a minute", got, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
