// Package sqlite is the embedded [store.Store]: one SQLite file in WAL mode,
// opened through the pure-Go modernc.org/sqlite driver.
//
// All writes go through one writer goroutine that groups the calls waiting
// for it into one transaction (group commit): each call runs inside its own
// SAVEPOINT, so a call that fails rolls back alone, and one fsync makes many
// calls durable. Reads use a separate pool of read-only connections, which
// WAL lets run beside the writer.
//
// One process owns a database file at a time.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the driver

	"github.com/gantryhq/gantry/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Config configures [Open].
type Config struct {
	// Path is the database file. Its directory is created if needed.
	Path string
	// Synchronous is SQLite's synchronous pragma: "FULL" (every commit is
	// durable before it is acknowledged) or "NORMAL" (a power loss may lose
	// the last commits; faster). Defaults to FULL.
	Synchronous string
	// MaxGroup bounds how many calls share one transaction. Defaults to 256.
	MaxGroup int
	// ReadConns is the size of the read pool. Defaults to 4.
	ReadConns int
	// Logger receives the store's logs. Defaults to slog.Default().
	Logger *slog.Logger
}

// Store is the SQLite [store.Store].
type Store struct {
	cfg    Config
	log    *slog.Logger
	wdb    *sql.DB // one connection, owned by the writer goroutine
	rdb    *sql.DB // read-only pool
	ckpt   *checkpointer
	w      *writer
	mu     sync.Mutex
	notify []func(store.Change)
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at cfg.Path, applies pending
// migrations and starts the writer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: Config.Path is required")
	}
	switch strings.ToUpper(cfg.Synchronous) {
	case "":
		cfg.Synchronous = "FULL"
	case "FULL", "NORMAL", "EXTRA":
		cfg.Synchronous = strings.ToUpper(cfg.Synchronous)
	default:
		return nil, fmt.Errorf("sqlite: Synchronous must be FULL, EXTRA or NORMAL, not %q", cfg.Synchronous)
	}
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 256
	}
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: create directory: %w", err)
		}
	}
	s := &Store{cfg: cfg, log: cfg.Logger}
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn(cfg.Path, cfg.Synchronous, false)); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, s.wdb); err != nil {
		s.wdb.Close()
		return nil, err
	}
	if s.rdb, err = sql.Open("sqlite", dsn(cfg.Path, cfg.Synchronous, true)); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.rdb.SetMaxOpenConns(cfg.ReadConns)
	s.rdb.SetMaxIdleConns(cfg.ReadConns)
	if s.ckpt, err = startCheckpointer(cfg.Path, cfg.Synchronous, cfg.Logger); err != nil {
		s.rdb.Close()
		s.wdb.Close()
		return nil, err
	}
	if s.w, err = startWriter(ctx, s); err != nil {
		s.ckpt.stop()
		s.rdb.Close()
		s.wdb.Close()
		return nil, err
	}
	return s, nil
}

func dsn(path, sync string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(OFF)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-32000)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	} else {
		q.Add("_txlock", "immediate")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerCheckpointPages))
	}
	return "file:" + path + "?" + q.Encode()
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: bad version: %w", base, err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrationFS.ReadFile(name)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, v, base); err != nil {
			tx.Rollback()
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
	}
	return nil
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Transactions is the number of group transactions committed.
	Transactions int64
	// Calls is the number of write calls they carried.
	Calls int64
	// Checkpoints is the number of checkpoints run beside the writer
	// (copies of the WAL into the database file; see checkpointer).
	Checkpoints int64
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{Transactions: s.w.groups.Load(), Calls: s.w.calls.Load(), Checkpoints: s.ckpt.runs.Load()}
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
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Close implements [store.Store]: it waits for the writer to finish the
// transaction under way, fails the calls still waiting, and closes the file.
func (s *Store) Close() error {
	s.w.stop()
	return errors.Join(s.ckpt.stop(), s.rdb.Close(), s.wdb.Close())
}

// checkOpen returns [store.ErrClosed] once Close has been called.
func (s *Store) checkOpen() error {
	select {
	case <-s.w.closed:
		return store.ErrClosed
	default:
		return nil
	}
}

// unavailable wraps a database error as [store.ErrUnavailable].
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return fmt.Errorf("sqlite: %s: %w: %w", op, store.ErrUnavailable, err)
}
