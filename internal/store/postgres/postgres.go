// Package postgres is the PostgreSQL [store.Store], for many server
// processes sharing one database. It uses pgx/v5 through a pgxpool.
//
// Every write call is one READ COMMITTED transaction. Claims read the best
// queued jobs of each (tenant, queue) through one partial index with
// FOR UPDATE SKIP LOCKED, then lease them in one UPDATE; completions and
// renewals are applied in a few statements over unnest arrays. A
// transaction that hits a deadlock or a serialization failure is retried
// whole.
//
// The hot jobs table holds only unfinished jobs: every transaction that
// finishes jobs moves them to jobs_done before it commits (see done.go),
// and RetryJob moves a job back, so the claim index and the table stay as
// small as the backlog. Reads by id, lists and counts look at both tables.
//
// Events: each transaction that emits events ends with one statement that
// increments the event_seq row of the counters table and inserts its
// events (encoded by rowscan.EncodeChunk, as in the SQLite store) as ONE
// event_chunks row keyed by its last sequence number. The
// row lock on event_seq is held until commit, so transactions take
// sequence numbers in commit order and the log is dense: a reader following
// ReadEvents(after) never misses an event that commits later with a smaller
// sequence number. Only the tails of event-emitting transactions are
// serialized, and that statement travels in one pipeline with COMMIT (see
// ptx), so the lock is never held across a round trip to this process.
//
// Fencing tokens come from the lease_token sequence (one value per
// LeaseJobs call), so they grow strictly across restarts and processes.
//
// Change hints: after a local commit the OnChange callbacks run, and the
// commit is announced to other processes by a NOTIFY on the channel
// gantry_<schema> with a small payload, sent after the commit and
// coalesced, hints of events only at most every eventHintGap (see
// notifier: NOTIFY inside a transaction would serialize all commits on a
// database-wide lock); a dedicated listener connection
// (reconnecting with backoff) turns notifications from other processes
// into callbacks. NOTIFY is only a hint: callers keep polling.
//
// Times are stored as Unix nanoseconds (0: none) and durations as
// milliseconds, as in the SQLite store, so both engines behave alike.
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Config configures [Open].
type Config struct {
	// URL is the PostgreSQL connection string (URL or key=value form).
	URL string
	// Schema holds Gantry's tables; it is created if needed. Defaults to
	// "public".
	Schema string
	// MaxConns bounds the connection pool. Defaults to DefaultMaxConns.
	MaxConns int
	// RenewConns is the size of a second, small pool kept for the calls
	// that keep leases alive — heartbeats and reservation acquire/renew — so
	// that a burst of other work holding every connection of the main pool
	// never lets a healthy lease expire. Defaults to 2.
	RenewConns int
	// StatementTimeout is the statement_timeout of Gantry's sessions.
	// Defaults to 30 seconds.
	StatementTimeout time.Duration
	// IdleInTransactionTimeout is the idle_in_transaction_session_timeout
	// of Gantry's sessions. Defaults to 60 seconds.
	IdleInTransactionTimeout time.Duration
	// Logger receives the store's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultMaxConns is the pool size of a store whose Config leaves MaxConns
// zero: the greater of 8 and twice the number of CPUs. Claims, outcome
// reports (several in flight per worker), submissions, event reads and
// batch settlement run at once; with fewer connections they queue for one
// while the database has cores to spare (measured: a pool of 4 on two cores
// moved a quarter fewer jobs under steady load than a pool of 8).
func DefaultMaxConns() int { return max(8, 2*runtime.NumCPU()) }

// Store is the PostgreSQL [store.Store].
type Store struct {
	cfg      Config
	log      *slog.Logger
	pool     *pgxpool.Pool
	renew    *pgxpool.Pool   // reserved for lease renewals (see Config.RenewConns)
	connCfg  *pgx.ConnConfig // for the listener
	channel  string          // NOTIFY channel of the schema
	instance string          // tags this Store's own notifications
	closed   atomic.Bool
	listener *listener
	notifier *notifier

	mu     sync.Mutex
	notify []func(store.Change)

	queues sync.Map // tenantQueue -> struct{}: queues known to exist

	// leaseGuess: leaseFilter -> tenantQueue, the one queue a filter
	// matched at its last claim (see leaseOneQuerySQL).
	leaseGuess sync.Map

	sightings sightings // of workers, see touchWorkers
}

var _ store.Store = (*Store)(nil)

type tenantQueue struct{ tenant, queue string }

var schemaRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

// withDefaults validates cfg and fills its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.URL == "" {
		return cfg, errors.New("postgres: Config.URL is required")
	}
	if cfg.Schema == "" {
		cfg.Schema = "public"
	}
	if !schemaRe.MatchString(cfg.Schema) {
		return cfg, fmt.Errorf("postgres: schema %q must be 1 to 50 of a-z 0-9 _, not starting with a digit", cfg.Schema)
	}
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = 30 * time.Second
	}
	if cfg.IdleInTransactionTimeout <= 0 {
		cfg.IdleInTransactionTimeout = 60 * time.Second
	}
	if cfg.RenewConns <= 0 {
		cfg.RenewConns = 2
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// connConfig parses cfg.URL and sets the session parameters of Gantry's
// connections.
func (cfg Config) connConfig() (*pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse URL: %w", err)
	}
	cfg.setParams(cc)
	return cc, nil
}

func (cfg Config) setParams(cc *pgx.ConnConfig) {
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["search_path"] = cfg.Schema
	cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.IdleInTransactionTimeout.Milliseconds(), 10)
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "gantry"
	}
}

// Open connects to the database, applies pending migrations to
// cfg.Schema, and starts the change listener.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse URL: %w", err)
	}
	cfg.setParams(pc.ConnConfig)
	if cfg.MaxConns > 0 {
		pc.MaxConns = int32(cfg.MaxConns)
	}
	connCfg := pc.ConnConfig.Copy()
	if err := migrate(ctx, connCfg, cfg.Schema); err != nil {
		return nil, err
	}
	rc := pc.Copy()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: open pool: %w: %w", store.ErrUnavailable, err)
	}
	rc.MaxConns = int32(cfg.RenewConns)
	rc.MinConns = 0
	renew, err := pgxpool.NewWithConfig(ctx, rc)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open renewal pool: %w: %w", store.ErrUnavailable, err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Store{
		cfg: cfg, log: cfg.Logger, pool: pool, renew: renew, connCfg: connCfg,
		channel: "gantry_" + cfg.Schema, instance: hex.EncodeToString(id[:]),
	}
	s.listener = startListener(s)
	s.notifier = startNotifier(s)
	return s, nil
}

// Migrate applies the embedded migrations that schema (default "public")
// lacks, creating the schema if needed. Processes migrating at once are
// serialized by a transaction-scoped advisory lock.
func Migrate(ctx context.Context, url, schema string) error {
	cfg, err := Config{URL: url, Schema: schema}.withDefaults()
	if err != nil {
		return err
	}
	cc, err := cfg.connConfig()
	if err != nil {
		return err
	}
	return migrate(ctx, cc, cfg.Schema)
}

// migrationLockKey is the advisory lock (with the schema's hash) that
// serializes migrations.
const migrationLockKey = 0x67616e747279 // "gantry"

func migrate(ctx context.Context, cc *pgx.ConnConfig, schema string) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("postgres: migrate: connect: %w: %w", store.ErrUnavailable, err)
	}
	defer conn.Close(context.Background())
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	slices.Sort(names)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w: %w", store.ErrUnavailable, err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::bigint # hashtextextended($2, 0))`, int64(migrationLockKey), schema); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	ident := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{
		`CREATE SCHEMA IF NOT EXISTS ` + ident,
		`SET LOCAL search_path TO ` + ident,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
	}
	for _, name := range names {
		base := path.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("postgres: migration %s: bad version: %w", base, err)
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, v).Scan(&done); err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if done {
			continue
		}
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("postgres: migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, v, base); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: commit: %w", err)
	}
	return nil
}

// OnChange implements [store.Store].
func (s *Store) OnChange(f func(store.Change)) {
	s.mu.Lock()
	s.notify = append(s.notify, f)
	s.mu.Unlock()
}

func (s *Store) changed(c store.Change) {
	s.mu.Lock()
	fs := s.notify
	s.mu.Unlock()
	for _, f := range fs {
		f(c)
	}
}

// Ping implements [store.Store].
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close implements [store.Store]: it stops the listener and closes the
// pool, waiting for the calls under way to return their connections.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.listener.stop()
	s.notifier.close()
	s.pool.Close()
	s.renew.Close()
	return nil
}

// checkOpen returns [store.ErrClosed] once Close has been called.
func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// wrap adds context to a database error: [store.ErrClosed] after Close,
// the store's sentinel errors as they are, and [store.ErrUnavailable] for
// everything the database or the network did.
func (s *Store) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrClosed),
		errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrInvalidCursor):
		return err
	case s.closed.Load():
		return fmt.Errorf("postgres: %s: %w", op, store.ErrClosed)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
}

// pgCode returns the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

const (
	codeUniqueViolation      = "23505"
	codeDeadlock             = "40P01"
	codeSerializationFailure = "40001"
)

// emit queues an event; it is written with the transaction's other events.
func (t *ptx) emit(e job.Event) { t.events = append(t.events, e) }

// expectEvents makes room for n more events, for a statement about to
// emit one per row: events are large, and growing the slice by appends
// was a tenth of the store's allocations under load.
func (t *ptx) expectEvents(n int) { t.events = slices.Grow(t.events, n) }

// writeEventsSQL numbers a transaction's $1 events (the last one at $2,
// all encoded in $3 by rowscan.EncodeChunk) and appends them to the event
// log as one chunk, returning the last number.
const writeEventsSQL = `WITH c AS (UPDATE counters SET value = value + $1 WHERE name = 'event_seq' RETURNING value)
	INSERT INTO event_chunks (seq, first_seq, at, data) SELECT value, value - $1 + 1, $2, $3 FROM c RETURNING seq`

// maxTxRetries bounds how often a transaction that lost a deadlock or a
// serialization failure is run again.
const maxTxRetries = 10

// write runs fn in a transaction and commits it, running it again whole
// after a deadlock or a serialization failure; fn must set its results
// afresh on each run.
func (s *Store) write(ctx context.Context, op string, fn func(t *ptx) error) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	for try := 0; ; try++ {
		err := s.writeOnce(ctx, op, fn)
		if err == nil {
			return nil
		}
		if c := pgCode(err); (c == codeDeadlock || c == codeSerializationFailure) && try < maxTxRetries && ctx.Err() == nil {
			continue
		}
		return s.wrap(op, err)
	}
}

// renewalOps are the writes that run on the reserved renewal pool.
var renewalOps = map[string]bool{"heartbeat": true, "renew reservation": true, "acquire reservation": true}

func (s *Store) writeOnce(ctx context.Context, op string, fn func(t *ptx) error) error {
	pool := s.pool
	if renewalOps[op] {
		pool = s.renew
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	t := &ptx{s: s, ctx: ctx, conn: conn}
	committed := false
	defer func() {
		if !committed {
			t.rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	var (
		last int64
		data []byte
	)
	if n := len(t.events); n > 0 {
		// One statement takes the sequence numbers and writes the chunk,
		// in one pipeline with COMMIT: the counter's row lock, which
		// orders event-emitting commits, is held for them only.
		data = rowscan.EncodeChunk(t.events)
		if err := t.commit(writeEventsSQL, []any{n, t2i(t.events[n-1].At), data}, &last); err != nil {
			return fmt.Errorf("write events and commit: %w", err)
		}
	} else if err := t.commit("", nil); err != nil {
		return err
	}
	committed = true
	for _, f := range t.after {
		f()
	}
	if t.jobsAvailable || last > 0 {
		c := store.Change{JobsAvailable: t.jobsAvailable, LastSeq: last}
		if last > 0 {
			// The events as ReadEvents will return them, for this
			// process's followers of the log to take without reading it.
			first := last - int64(len(t.events)) + 1
			if evs, err := rowscan.DecodeChunk(make([]job.Event, 0, len(t.events)), data, first, first-1); err == nil {
				c.Events = evs
			}
		}
		s.changed(c)
		s.notifier.hint(t.jobsAvailable, last)
	}
	return nil
}

// encodeHint makes a NOTIFY payload: "<instance> <0|1> <last seq>".
func encodeHint(instance string, jobs bool, last int64) string {
	j := "0"
	if jobs {
		j = "1"
	}
	return instance + " " + j + " " + strconv.FormatInt(last, 10)
}

// decodeHint parses a NOTIFY payload made by encodeHint.
func decodeHint(payload string) (instance string, c store.Change, ok bool) {
	f := strings.Fields(payload)
	if len(f) != 3 {
		return "", c, false
	}
	seq, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return "", c, false
	}
	return f[0], store.Change{JobsAvailable: f[1] == "1", LastSeq: seq}, true
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// t2i and i2t encode times as the stores keep them (see rowscan).
var (
	t2i = rowscan.Nanos
	i2t = rowscan.Time
)
