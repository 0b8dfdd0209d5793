package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// database is where a run keeps its data: a SQLite directory, or a
// PostgreSQL schema of its own.
type database struct {
	dir     string // SQLite: the data directory
	tempDir bool   // dir is ours to remove
	url     string // PostgreSQL
	schema  string
}

// openDatabase prepares the run's database: a directory for SQLite, a
// fresh schema name for PostgreSQL (Gantry creates the schema).
func openDatabase(ctx context.Context, cfg Config) (*database, error) {
	if cfg.Store == StorePostgres {
		var b [6]byte
		_, _ = rand.Read(b[:])
		db := &database{url: cfg.DatabaseURL, schema: "gantry_bench_" + hex.EncodeToString(b[:])}
		conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("bench: connect to PostgreSQL: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return db, nil
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "gantry.db")); err == nil {
			return nil, fmt.Errorf("bench: %s already holds a database; give an empty directory", cfg.DataDir)
		}
		return &database{dir: cfg.DataDir}, nil
	}
	dir, err := os.MkdirTemp("", "gantry-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &database{dir: dir, tempDir: true}, nil
}

// size returns the database's size: the SQLite files, or the tables and
// indexes of the schema.
func (d *database) size(ctx context.Context) (int64, error) {
	if d.url == "" {
		var total int64
		for _, name := range []string{"gantry.db", "gantry.db-wal"} {
			fi, err := os.Stat(filepath.Join(d.dir, name))
			if err == nil {
				total += fi.Size()
			}
		}
		return total, nil
	}
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return 0, fmt.Errorf("bench: database size: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE ns.nspname = $1 AND c.relkind IN ('r', 'p', 'm')`, d.schema).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("bench: database size: %w", err)
	}
	return n, nil
}

// close removes a temporary directory or drops the schema.
func (d *database) close() error {
	var err error
	if d.tempDir {
		err = os.RemoveAll(d.dir)
	}
	if d.url == "" {
		return err
	}
	return errors.Join(err, d.dropSchema())
}

// dropSchema drops the run's PostgreSQL schema.
func (d *database) dropSchema() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.url)
	if err != nil {
		return fmt.Errorf("bench: drop schema %s: %w", d.schema, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{d.schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("bench: drop schema %s: %w", d.schema, err)
	}
	return nil
}

// procRSS returns the resident memory (VmRSS) and its peak (VmHWM) of the
// process pid, in bytes; zeros when /proc does not tell.
func procRSS(pid int) (cur, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != "VmRSS" && key != "VmHWM" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if key == "VmRSS" {
			cur = kb * 1024
		} else {
			peak = kb * 1024
		}
	}
	return cur, peak
}

// errNoProc is returned when a worker process ended before it was asked to.
var errNoProc = errors.New("bench: a worker process exited early")
