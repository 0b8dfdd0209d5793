package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/embedded"
	"github.com/gantryhq/gantry/worker"
)

// side is one job system set up on a fresh PostgreSQL schema or a fresh
// SQLite file with one client (River) or one worker (Gantry) of the given
// concurrency, not yet working.
type side interface {
	// insert queues n no-op jobs in one call (River InsertMany, Gantry
	// SubmitBatch); bulk uses the fastest bulk insert the system has, for
	// untimed preloading.
	insert(ctx context.Context, n int, bulk bool) error
	// insertOne queues one job.
	insertOne(ctx context.Context) error
	// start starts working jobs.
	start(ctx context.Context) error
	// completions counts the completions observed.
	completions() *counter
	// measure makes the handler send each job's submit-to-start latency.
	measure() <-chan time.Duration
	// confirm checks in the database that at least n jobs are completed.
	confirm(ctx context.Context, n int) error
	// close stops the system and deletes its schema or file.
	close() error
}

// jobKind is the job kind (River) and type (Gantry) of the no-op jobs.
const jobKind = "bench_noop"

// noopArgs are the no-op job's arguments on both sides: the submitter's
// clock when it submitted the job, in Unix nanoseconds.
type noopArgs struct {
	T int64 `json:"t"`
}

// Kind is the River job kind.
func (noopArgs) Kind() string { return jobKind }

// latencySink collects start latencies when measuring.
type latencySink struct {
	on atomic.Bool
	ch chan time.Duration
}

func newLatencySink() *latencySink { return &latencySink{ch: make(chan time.Duration, 1024)} }

func (l *latencySink) record(submitted int64) {
	if !l.on.Load() {
		return
	}
	d := time.Since(time.Unix(0, submitted))
	select {
	case l.ch <- d:
	default:
	}
}

func (l *latencySink) measure() <-chan time.Duration {
	l.on.Store(true)
	return l.ch
}

// counter counts completions and tells when a count is reached.
type counter struct {
	mu      sync.Mutex
	n       int64
	target  int64
	reached chan time.Time
}

func (c *counter) add(k int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += k
	if c.reached != nil && c.n >= c.target {
		c.reached <- time.Now()
		c.reached = nil
	}
}

func (c *counter) load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// wait returns when the count reached target.
func (c *counter) wait(ctx context.Context, target int64) (time.Time, error) {
	c.mu.Lock()
	if c.n >= target {
		c.mu.Unlock()
		return time.Now(), nil
	}
	ch := make(chan time.Time, 1)
	c.target, c.reached = target, ch
	c.mu.Unlock()
	select {
	case t := <-ch:
		return t, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("%d of %d completions: %w", c.load(), target, ctx.Err())
	}
}

// schemaName returns a fresh schema name for system.
func schemaName(system string) string {
	return fmt.Sprintf("vsriver_%s_%d", system, time.Now().UnixNano())
}

func dropSchema(url, schema string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	return nil
}

// riverSettings are River's tuning, from River's own benchmark
// (cmd/river/riverbench): FetchCooldown 2 ms and FetchPollInterval 20 ms
// "perform quite well. Much better than the client's default values".
type riverSettings struct {
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
}

// riverSide is River with one client on a database of its own: a fresh
// schema (riverpgxv5) or a fresh SQLite file (riversqlite). TTx is the
// driver's transaction type.
type riverSide[TTx any] struct {
	store     riverStore[TTx]
	client    *river.Client[TTx]
	done      counter
	lat       *latencySink
	cancelSub func()
	subDone   chan struct{}
	params    []river.InsertManyParams
}

// riverStore is the database a River side runs on.
type riverStore[TTx any] struct {
	driver   riverdriver.Driver[TTx]
	schema   string // empty on SQLite, which has none
	jobTable string // river_job, qualified as the driver needs
	// release frees the database once the client stopped: closes the
	// pool, then drops the schema or deletes the file.
	release func() error
}

type riverWorker struct {
	river.WorkerDefaults[noopArgs]
	lat *latencySink
}

func (w *riverWorker) Work(_ context.Context, j *river.Job[noopArgs]) error {
	w.lat.record(j.Args.T)
	return nil
}

// openRiverPostgres sets River up with riverpgxv5 on a fresh schema, its
// pool of maxConns connections.
func openRiverPostgres(ctx context.Context, url string, concurrency, batch, maxConns int, s riverSettings) (side, error) {
	schema := schemaName("river")
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	pc.MaxConns = int32(maxConns) // the same size as Gantry's pool
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	release := func() error {
		pool.Close()
		return dropSchema(url, schema)
	}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, errors.Join(fmt.Errorf("river: %w", err), release())
	}
	return openRiver(ctx, riverStore[pgx.Tx]{
		driver:   riverpgxv5.New(pool),
		schema:   schema,
		jobTable: pgx.Identifier{schema, "river_job"}.Sanitize(),
		release:  release,
	}, concurrency, batch, s)
}

// openRiver migrates st and makes a client on it, not yet started; on an
// error it releases st.
func openRiver[TTx any](ctx context.Context, st riverStore[TTx], concurrency, batch int, s riverSettings) (side, error) {
	r := &riverSide[TTx]{store: st, lat: newLatencySink(), params: make([]river.InsertManyParams, batch)}
	fail := func(err error) (side, error) {
		return nil, errors.Join(fmt.Errorf("river: %w", err), st.release())
	}
	m, err := rivermigrate.New(st.driver, &rivermigrate.Config{Schema: st.schema, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fail(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fail(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{lat: r.lat})
	r.client, err = river.NewClient(st.driver, &river.Config{
		FetchCooldown:     s.FetchCooldown,
		FetchPollInterval: s.FetchPollInterval,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: concurrency}},
		Workers:           workers,
		Schema:            st.schema,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fail(err)
	}
	r.subscribe()
	return r, nil
}

// subscribe counts completions as River's own benchmark does: completed
// events, sent once the completer has stored the jobs' state.
func (r *riverSide[TTx]) subscribe() {
	events, cancel := r.client.SubscribeConfig(&river.SubscribeConfig{ChanSize: 1 << 20, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	r.cancelSub, r.subDone = cancel, make(chan struct{})
	go func() {
		defer close(r.subDone)
		for range events {
			r.done.add(1)
		}
	}()
}

func (r *riverSide[TTx]) insert(ctx context.Context, n int, bulk bool) error {
	now := time.Now().UnixNano()
	for i := range n {
		r.params[i] = river.InsertManyParams{Args: noopArgs{T: now}}
	}
	var err error
	if bulk {
		_, err = r.client.InsertManyFast(ctx, r.params[:n])
	} else {
		_, err = r.client.InsertMany(ctx, r.params[:n])
	}
	return err
}

func (r *riverSide[TTx]) insertOne(ctx context.Context) error {
	_, err := r.client.Insert(ctx, noopArgs{T: time.Now().UnixNano()}, nil)
	return err
}

func (r *riverSide[TTx]) start(ctx context.Context) error {
	return r.client.Start(context.WithoutCancel(ctx))
}

func (r *riverSide[TTx]) completions() *counter { return &r.done }

func (r *riverSide[TTx]) measure() <-chan time.Duration { return r.lat.measure() }

func (r *riverSide[TTx]) confirm(ctx context.Context, n int) error {
	var got int
	err := r.store.driver.GetExecutor().QueryRow(ctx, "SELECT count(*) FROM "+r.store.jobTable+" WHERE state = 'completed'").Scan(&got)
	if err != nil {
		return fmt.Errorf("river: confirm: %w", err)
	}
	if got < n {
		return fmt.Errorf("river: %d jobs completed in the table, want at least %d", got, n)
	}
	return nil
}

func (r *riverSide[TTx]) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.client.Stop(ctx)
	r.cancelSub()
	<-r.subDone
	return errors.Join(err, r.store.release())
}

// gantrySide is Gantry embedded (package embedded) on a database of its
// own, a fresh PostgreSQL schema or a fresh SQLite file, with one worker
// over its in-process transport.
type gantrySide struct {
	g          *embedded.Gantry
	release    func() error // after g.Close: drops the schema or deletes the file
	w          *worker.Worker
	done       counter
	lat        *latencySink
	sub        *embedded.Subscription
	subDone    chan struct{}
	stopWorker context.CancelFunc
	workerDone chan error
	specs      []embedded.JobSpec
}

// Ways of observing Gantry's completions.
const (
	observeEvents  = "events"  // job.succeeded events (Gantry.Subscribe)
	observeHandler = "handler" // the handler returned; the store confirms at the end
)

// openGantryPostgres sets Gantry up on a fresh schema, its pool of
// maxConns connections.
func openGantryPostgres(ctx context.Context, url string, concurrency, batch, maxConns int, observe string) (side, error) {
	schema := schemaName("gantry")
	cfg := embedded.Config{DatabaseURL: url, Schema: schema, DatabaseMaxConns: maxConns}
	return openGantry(ctx, cfg, concurrency, batch, observe, func() error { return dropSchema(url, schema) })
}

// openGantry opens Gantry with cfg and makes its worker, not yet running;
// release frees the database after Gantry is closed, and is called on an
// error too.
func openGantry(ctx context.Context, cfg embedded.Config, concurrency, batch int, observe string, release func() error) (side, error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	g, err := embedded.Open(ctx, cfg)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("gantry: %w", err), release())
	}
	s := &gantrySide{g: g, release: release, lat: newLatencySink(), specs: make([]embedded.JobSpec, batch)}
	s.w = worker.New(g.Transport(), worker.Options{Name: "vsriver", Concurrency: concurrency, Logger: slog.New(slog.DiscardHandler)})
	s.w.RegisterFunc(jobKind, s.handle(observe))
	s.subDone = make(chan struct{})
	if observe == observeHandler {
		close(s.subDone)
		return s, nil
	}
	if err := s.subscribe(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("gantry: %w", err), g.Close(), release())
	}
	return s, nil
}

// handle is the no-op job's handler.
func (s *gantrySide) handle(observe string) gantry.HandlerFunc {
	return func(_ context.Context, j *gantry.Job) (any, error) {
		if observe == observeHandler {
			s.done.add(1)
		}
		if s.lat.on.Load() {
			var a noopArgs
			if err := json.Unmarshal(j.Params, &a); err != nil {
				return nil, err
			}
			s.lat.record(a.T)
		}
		return nil, nil
	}
}

// subscribe counts completions as Gantry reports them: job.succeeded
// events, published once the success is stored.
func (s *gantrySide) subscribe(ctx context.Context) error {
	sub, err := s.g.Subscribe(ctx, embedded.EventFilter{Kinds: []string{embedded.EventSucceeded}}, -1)
	if err != nil {
		return err
	}
	s.sub = sub
	go func() {
		defer close(s.subDone)
		for range sub.Events() {
			s.done.add(1)
		}
	}()
	return nil
}

func params(t int64) json.RawMessage {
	return json.RawMessage(`{"t":` + strconv.FormatInt(t, 10) + `}`)
}

func (s *gantrySide) insert(ctx context.Context, n int, _ bool) error {
	p := params(time.Now().UnixNano())
	for i := range n {
		s.specs[i] = embedded.JobSpec{Type: jobKind, Params: p}
	}
	_, _, err := s.g.SubmitBatch(ctx, embedded.BatchSpec{Jobs: s.specs[:n]})
	return err
}

func (s *gantrySide) insertOne(ctx context.Context) error {
	_, err := s.g.Submit(ctx, embedded.JobSpec{Type: jobKind, Params: params(time.Now().UnixNano())})
	return err
}

func (s *gantrySide) start(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopWorker, s.workerDone = cancel, make(chan error, 1)
	go func() { s.workerDone <- s.w.Run(wctx) }()
	return nil
}

func (s *gantrySide) completions() *counter { return &s.done }

func (s *gantrySide) measure() <-chan time.Duration { return s.lat.measure() }

func (s *gantrySide) confirm(ctx context.Context, n int) error {
	qs, err := s.g.Queues(ctx, "")
	if err != nil {
		return fmt.Errorf("gantry: confirm: %w", err)
	}
	got := 0
	for _, q := range qs {
		got += q.Counts[gantry.StateSucceeded]
	}
	if got < n {
		return fmt.Errorf("gantry: %d jobs succeeded in the store, want at least %d", got, n)
	}
	return nil
}

func (s *gantrySide) close() error {
	var err error
	if s.stopWorker != nil {
		s.stopWorker()
		if werr := <-s.workerDone; werr != nil && !errors.Is(werr, context.Canceled) {
			err = werr
		}
	}
	if s.sub != nil {
		s.sub.Close()
	}
	<-s.subDone
	return errors.Join(err, s.g.Close(), s.release())
}
