// Command vsriver runs the same workloads on River (riverqueue/river) and
// on Gantry (package embedded, in-process) on the same database, one
// system after the other, for several rounds, and prints the medians side
// by side. On PostgreSQL (River's riverpgxv5 driver):
//
//	(a) drain: work N jobs inserted beforehand;
//	(b) steady: insert and work at once for a fixed duration;
//	(c) latency: submit-to-start of single jobs with idle workers;
//	(d) deep: throughput of the first jobs of a queue D jobs deep.
//
// On SQLite (River's riversqlite driver over modernc.org/sqlite, Gantry's
// SQLite store), the same measurements as (a) and (b):
//
//	(e) drain N' jobs (-sqlite-jobs) inserted beforehand;
//	(f) steady insert and work for the same duration as (b).
//
// On PostgreSQL each system runs in a schema of its own, created and
// dropped for every measurement, with the same connection pool size
// (-max-conns, default Gantry's default: the greater of 8 and twice the
// number of CPUs). On SQLite each opens a fresh database file in a
// temporary directory (under $TMPDIR), deleted after the measurement; both
// use WAL with synchronous=FULL, River with one connection (its
// recommendation, see riverSQLiteDSN), Gantry with its own writer and
// readers. Both systems get the same worker concurrency and the same batch
// size everywhere.
//
//	go run . [flags]          the comparison (see -help)
//	go run . chart [flags]    throughput against queue depth, as an SVG
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// defaultURL is the database used without -database-url.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test"

// options are the comparison's flags.
type options struct {
	url          string
	rounds       int
	concurrency  int
	batch        int
	jobs         int           // (a)
	steady       time.Duration // (b) and (f)
	latencyJobs  int           // (c)
	depth        int           // (d)
	depthJobs    int           // (d)
	sqliteJobs   int           // (e)
	scenarios    string
	systems      string
	cpuProfile   string
	json         bool
	river        riverSettings
	maxConns     int
	measureLimit time.Duration
	observe      string
}

// flags defines the flags setting o, with their defaults.
func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "database-url", defaultURL, "PostgreSQL database; each system gets schemas of its own there")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each reports the median")
	fs.IntVar(&o.maxConns, "max-conns", max(8, 2*runtime.NumCPU()), "connection pool size of both systems (Gantry's default: the greater of 8 and twice the number of CPUs)")
	fs.IntVar(&o.concurrency, "concurrency", 200, "worker concurrency of both systems (River MaxWorkers, Gantry worker Concurrency)")
	fs.IntVar(&o.batch, "batch", 1000, "jobs per insert call (River InsertMany, Gantry SubmitBatch)")
	fs.IntVar(&o.jobs, "jobs", 20000, "(a) jobs inserted, then drained")
	fs.DurationVar(&o.steady, "steady", 10*time.Second, "(b), (f) how long to insert and work at once")
	fs.IntVar(&o.latencyJobs, "latency-jobs", 200, "(c) single jobs submitted one at a time")
	fs.IntVar(&o.depth, "depth", 1000000, "(d) jobs queued before working")
	fs.IntVar(&o.depthJobs, "depth-jobs", 20000, "(d) jobs worked from the deep queue for the measure")
	fs.IntVar(&o.sqliteJobs, "sqlite-jobs", 20000, "(e) jobs inserted into SQLite, then drained")
	fs.StringVar(&o.scenarios, "scenarios", "a,b,c,d,e,f", "scenarios to run, comma-separated")
	fs.StringVar(&o.systems, "systems", "river,gantry", "systems to measure, comma-separated (one alone: for profiling; ratios need both)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to this file")
	fs.BoolVar(&o.json, "json", false, `print {"scenarios": [...]} as JSON`)
	fs.DurationVar(&o.river.FetchCooldown, "river-fetch-cooldown", 2*time.Millisecond, "River FetchCooldown (River's benchmark uses 2ms)")
	fs.DurationVar(&o.river.FetchPollInterval, "river-fetch-poll-interval", 20*time.Millisecond, "River FetchPollInterval (River's benchmark uses 20ms)")
	fs.StringVar(&o.observe, "gantry-observe", observeEvents, "how Gantry's completions are seen: events (job.succeeded events, as River's completed events) or handler (counted as handlers return, confirmed in the store at the end; (c)'s completion p50 is then the handler's return)")
	fs.DurationVar(&o.measureLimit, "timeout", 10*time.Minute, "longest one measurement may take")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	args := os.Args[1:]
	var err error
	if len(args) > 0 && args[0] == "chart" {
		err = runChart(ctx, args[1:], os.Stdout, os.Stderr)
	} else {
		err = runCompare(ctx, args, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vsriver:", err)
		os.Exit(1)
	}
}

// scenarioResult is one line of the JSON output. The p50 is null for the
// throughput scenarios, the jobs/s null for the latency one. Ratio is
// Gantry ÷ River in jobs/s, and River ÷ Gantry in p50 for the latency
// scenario: above 1, Gantry is ahead.
type scenarioResult struct {
	Name             string   `json:"name"`
	Database         string   `json:"database"` // postgresql or sqlite
	RiverJobsPerSec  *float64 `json:"river_jobs_per_sec"`
	GantryJobsPerSec *float64 `json:"gantry_jobs_per_sec"`
	Ratio            float64  `json:"ratio"`
	RiverP50Ms       *float64 `json:"river_p50_ms"`
	GantryP50Ms      *float64 `json:"gantry_p50_ms"`
	// The latency scenario also gives the p50 of submit to the job's
	// completion being stored and announced (null elsewhere).
	RiverCompletionP50Ms  *float64 `json:"river_completion_p50_ms,omitempty"`
	GantryCompletionP50Ms *float64 `json:"gantry_completion_p50_ms,omitempty"`
}

// measurement is what one scenario measured on one system in one round.
type measurement struct {
	jobsPerSec float64
	p50ms      float64
	doneP50ms  float64 // latency scenario: submit to completion stored
	cpu        cpuUse  // over the timed window of the throughput scenarios
}

// The databases the scenarios run on.
const (
	dbPostgres = "postgresql"
	dbSQLite   = "sqlite"
)

// runFunc measures one scenario on a side set up for it.
type runFunc func(ctx context.Context, o *options, s side) (measurement, error)

// scenario is one workload on one database.
type scenario struct {
	key, name string
	db        string // dbPostgres (the zero value stands for it too) or dbSQLite
	latency   bool   // the headline is the p50, not jobs/s
	run       runFunc
}

// database is the database sc runs on, dbPostgres or dbSQLite.
func (sc scenario) database() string {
	if sc.db == "" {
		return dbPostgres
	}
	return sc.db
}

// scenarios lists every scenario, named after o's counts.
func scenarios(o *options) []scenario {
	return []scenario{
		{key: "a", name: fmt.Sprintf("(a) drain %d queued jobs", o.jobs), db: dbPostgres, run: drain(o.jobs)},
		{key: "b", name: fmt.Sprintf("(b) steady insert+work, %s", o.steady), db: dbPostgres, run: steady},
		{key: "c", name: fmt.Sprintf("(c) single-job latency, idle workers (%d jobs)", o.latencyJobs), db: dbPostgres, latency: true, run: latency},
		{key: "d", name: fmt.Sprintf("(d) work %d jobs of a %d-deep queue", o.depthJobs, o.depth), db: dbPostgres, run: deep},
		{key: "e", name: fmt.Sprintf("(e) SQLite: drain %d queued jobs", o.sqliteJobs), db: dbSQLite, run: drain(o.sqliteJobs)},
		{key: "f", name: fmt.Sprintf("(f) SQLite: steady insert+work, %s", o.steady), db: dbSQLite, run: steady},
	}
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("vsriver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	want := strings.Split(o.scenarios, ",")
	var results []scenarioResult
	for _, sc := range scenarios(&o) {
		if !slices.Contains(want, sc.key) {
			continue
		}
		river, gantry, err := rounds(ctx, &o, sc, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		results = append(results, summarize(sc, river, gantry))
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"scenarios": results})
	}
	return writeTable(stdout, &o, results)
}

func (o *options) check() error {
	switch {
	case o.rounds < 1:
		return errors.New("-rounds must be at least 1")
	case o.concurrency < 1 || o.concurrency > 10000:
		return errors.New("-concurrency must be between 1 and 10000 (River's MaxWorkers bound)")
	case o.maxConns < 1 || o.maxConns > 1000:
		return errors.New("-max-conns must be between 1 and 1000")
	case o.batch < 1 || o.batch > 10000:
		return errors.New("-batch must be between 1 and 10000")
	case o.jobs < 1 || o.latencyJobs < 1 || o.depthJobs < 1 || o.depth < o.depthJobs:
		return errors.New("-jobs, -latency-jobs and -depth-jobs must be at least 1, -depth at least -depth-jobs")
	case o.sqliteJobs < 1:
		return errors.New("-sqlite-jobs must be at least 1")
	case o.steady <= 0:
		return errors.New("-steady must be positive")
	case o.observe != observeEvents && o.observe != observeHandler:
		return errors.New("-gantry-observe must be events or handler")
	}
	return nil
}

// rounds runs sc on both systems o.rounds times, alternating which goes
// first, and returns their measurements.
func rounds(ctx context.Context, o *options, sc scenario, log io.Writer) (river, gantry []measurement, err error) {
	for i := range o.rounds {
		order := []string{"river", "gantry"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, system := range order {
			if !slices.Contains(strings.Split(o.systems, ","), system) {
				continue
			}
			m, err := measureOnce(ctx, o, sc, system)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, round %d: %w", system, i+1, err)
			}
			if system == "river" {
				river = append(river, m)
			} else {
				gantry = append(gantry, m)
			}
			fmt.Fprintf(log, "%s  round %d/%d  %-6s  %s\n", sc.name, i+1, o.rounds, system, m.format(sc.latency))
		}
	}
	return river, gantry, nil
}

func (m measurement) format(latency bool) string {
	if latency {
		return fmt.Sprintf("p50 %.2f ms  (completion stored: p50 %.2f ms)", m.p50ms, m.doneP50ms)
	}
	if c := m.cpu.String(); c != "" {
		return fmt.Sprintf("%.0f jobs/s  (%s)", m.jobsPerSec, c)
	}
	return fmt.Sprintf("%.0f jobs/s", m.jobsPerSec)
}

// measureOnce sets system up on a fresh schema or database file, runs sc
// and tears down.
func measureOnce(ctx context.Context, o *options, sc scenario, system string) (m measurement, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.measureLimit)
	defer cancel()
	s, err := openSide(ctx, o, system, sc.db)
	if err != nil {
		return m, err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	return sc.run(ctx, o, s)
}

// openSide sets system (river or gantry) up on database db.
func openSide(ctx context.Context, o *options, system, db string) (side, error) {
	switch {
	case system == "river" && db == dbSQLite:
		return openRiverSQLite(ctx, o.concurrency, o.batch, o.river)
	case system == "river":
		return openRiverPostgres(ctx, o.url, o.concurrency, o.batch, o.maxConns, o.river)
	case db == dbSQLite:
		return openGantrySQLite(ctx, o.concurrency, o.batch, o.observe)
	default:
		return openGantryPostgres(ctx, o.url, o.concurrency, o.batch, o.maxConns, o.observe)
	}
}

// preload inserts n jobs in batches from 2 goroutines, untimed.
func preload(ctx context.Context, o *options, s side, n int) error {
	return insertLoop(ctx, o, s, n, time.Time{}, true, nil)
}

// insertLoop inserts n jobs, or batches until until, from 2 goroutines.
func insertLoop(ctx context.Context, o *options, s side, n int, until time.Time, bulk bool, count *atomic.Int64) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 2)
	var mu sync.Mutex // the sides reuse one slice of insert params
	for i := range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				size := o.batch
				if until.IsZero() {
					from := int(next.Add(int64(o.batch))) - o.batch
					if from >= n {
						return
					}
					size = min(size, n-from)
				} else if !time.Now().Before(until) {
					return
				}
				mu.Lock()
				err := s.insert(ctx, size, bulk)
				mu.Unlock()
				if err != nil {
					errs[i] = err
					return
				}
				if count != nil {
					count.Add(int64(size))
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// drain is scenarios (a) and (e): n jobs queued, then worked; from start
// to the n-th completion.
func drain(n int) runFunc {
	return func(ctx context.Context, o *options, s side) (measurement, error) {
		return drainFrom(ctx, o, s, n, n)
	}
}

// deep is scenario (d): D jobs queued; from start to the M-th completion.
func deep(ctx context.Context, o *options, s side) (measurement, error) {
	return drainFrom(ctx, o, s, o.depth, o.depthJobs)
}

func drainFrom(ctx context.Context, o *options, s side, queued, worked int) (measurement, error) {
	if err := preload(ctx, o, s, queued); err != nil {
		return measurement{}, fmt.Errorf("preload: %w", err)
	}
	t0, c0 := time.Now(), readCPU()
	if err := s.start(ctx); err != nil {
		return measurement{}, err
	}
	t1, err := s.completions().wait(ctx, int64(worked))
	if err != nil {
		return measurement{}, err
	}
	c1 := readCPU()
	if t, err := confirm(ctx, s, worked); err != nil {
		return measurement{}, err
	} else if !t.IsZero() {
		t1 = t
	}
	return measurement{jobsPerSec: float64(worked) / t1.Sub(t0).Seconds(), cpu: cpuBetween(c0, c1, int64(worked))}, nil
}

// steady is scenarios (b) and (f): insert (InsertMany / SubmitBatch, 2
// goroutines) and work at once; completions observed within the duration.
func steady(ctx context.Context, o *options, s side) (measurement, error) {
	if err := s.start(ctx); err != nil {
		return measurement{}, err
	}
	t0, c0 := time.Now(), readCPU()
	until := t0.Add(o.steady)
	var inserted atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- insertLoop(ctx, o, s, 0, until, false, &inserted) }()
	select {
	case <-time.After(time.Until(until)):
	case <-ctx.Done():
		return measurement{}, ctx.Err()
	}
	done := s.completions().load()
	c1 := readCPU()
	if err := <-errc; err != nil {
		return measurement{}, fmt.Errorf("insert: %w", err)
	}
	if _, err := confirm(ctx, s, int(done)); err != nil {
		return measurement{}, err
	}
	return measurement{jobsPerSec: float64(done) / o.steady.Seconds(), cpu: cpuBetween(c0, c1, done)}, nil
}

// confirm waits until the database shows n completed jobs: at once when
// completions were observed as stored (events); else it returns when it
// saw them.
func confirm(ctx context.Context, s side, n int) (time.Time, error) {
	deadline := time.Now().Add(30 * time.Second)
	for first := true; ; first = false {
		err := s.confirm(ctx, n)
		if err == nil {
			if first {
				return time.Time{}, nil
			}
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// latency is scenario (c): one job at a time with idle workers; the p50
// of submit (the submitter's clock) to the handler starting, and of submit
// to the completion being observed as stored (River's completed event,
// Gantry's job.succeeded event), each job completed before the next is
// submitted.
func latency(ctx context.Context, o *options, s side) (measurement, error) {
	lat := s.measure()
	if err := s.start(ctx); err != nil {
		return measurement{}, err
	}
	done := s.completions()
	var ds, fs []time.Duration
	for i := range o.latencyJobs + 5 {
		time.Sleep(5 * time.Millisecond) // let the workers go back to waiting
		sent := time.Now()
		if err := s.insertOne(ctx); err != nil {
			return measurement{}, err
		}
		select {
		case d := <-lat:
			if i >= 5 { // the first jobs warm up
				ds = append(ds, d)
			}
		case <-time.After(30 * time.Second):
			return measurement{}, errors.New("a job did not start within 30 seconds")
		case <-ctx.Done():
			return measurement{}, ctx.Err()
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		t, err := done.wait(wctx, int64(i+1))
		cancel()
		if err != nil {
			return measurement{}, fmt.Errorf("a job's completion: %w", err)
		}
		if i >= 5 {
			fs = append(fs, t.Sub(sent))
		}
	}
	slices.Sort(ds)
	slices.Sort(fs)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return measurement{p50ms: ms(ds[len(ds)/2]), doneP50ms: ms(fs[len(fs)/2])}, nil
}

func median(ms []measurement, f func(measurement) float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	vs := make([]float64, len(ms))
	for i, m := range ms {
		vs[i] = f(m)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

func summarize(sc scenario, river, gantry []measurement) scenarioResult {
	r := scenarioResult{Name: sc.name, Database: sc.database()}
	if sc.latency {
		rp, gp := median(river, func(m measurement) float64 { return m.p50ms }), median(gantry, func(m measurement) float64 { return m.p50ms })
		r.RiverP50Ms, r.GantryP50Ms = &rp, &gp
		rd, gd := median(river, func(m measurement) float64 { return m.doneP50ms }), median(gantry, func(m measurement) float64 { return m.doneP50ms })
		r.RiverCompletionP50Ms, r.GantryCompletionP50Ms = &rd, &gd
		if gp > 0 {
			r.Ratio = rp / gp
		}
		return r
	}
	rj, gj := median(river, func(m measurement) float64 { return m.jobsPerSec }), median(gantry, func(m measurement) float64 { return m.jobsPerSec })
	r.RiverJobsPerSec, r.GantryJobsPerSec = &rj, &gj
	if rj > 0 {
		r.Ratio = gj / rj
	}
	return r
}

// hasDatabase tells whether one of rs ran on db.
func hasDatabase(rs []scenarioResult, db string) bool {
	return slices.ContainsFunc(rs, func(r scenarioResult) bool { return r.Database == db })
}

// writeTable prints rs as a table with a header giving the setup.
func writeTable(w io.Writer, o *options, rs []scenarioResult) error {
	fmt.Fprintf(w, "River vs Gantry: concurrency %d each, batches of %d, median of %d rounds\n", o.concurrency, o.batch, o.rounds)
	if hasDatabase(rs, dbPostgres) {
		fmt.Fprintf(w, "PostgreSQL: a fresh schema per system, pools of %d connections each\n", o.maxConns)
	}
	if hasDatabase(rs, dbSQLite) {
		fmt.Fprintf(w, "SQLite: a fresh file per system, WAL, synchronous=FULL; River with 1 connection (its recommendation), Gantry with its writer and readers\n")
	}
	fmt.Fprintf(w, "ratio: Gantry ÷ River in jobs/s, River ÷ Gantry in p50 (above 1: Gantry ahead)\n\n")
	width := len("scenario")
	for _, r := range rs {
		width = max(width, len(r.Name))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tRiver jobs/s\tGantry jobs/s\tratio\tRiver p50 ms\tGantry p50 ms\t\n", width, "scenario")
	num := func(p *float64, format string) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf(format, *p)
	}
	for _, r := range rs {
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%.2f\t%s\t%s\t\n", width, r.Name, num(r.RiverJobsPerSec, "%.0f"), num(r.GantryJobsPerSec, "%.0f"),
			r.Ratio, num(r.RiverP50Ms, "%.2f"), num(r.GantryP50Ms, "%.2f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rs {
		if r.RiverCompletionP50Ms != nil && r.GantryCompletionP50Ms != nil {
			fmt.Fprintf(w, "\n%s: submit to completion stored, p50: River %.2f ms, Gantry %.2f ms\n", r.Name, *r.RiverCompletionP50Ms, *r.GantryCompletionP50Ms)
		}
	}
	return nil
}
