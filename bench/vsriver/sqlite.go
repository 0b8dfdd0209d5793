package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	_ "modernc.org/sqlite" // the database/sql driver River's SQLite side uses, and Gantry's store too

	"github.com/gantryhq/gantry/embedded"
)

// tempDatabase makes a fresh directory under os.TempDir() ($TMPDIR) for
// system's SQLite database and returns the database file's path and a
// function deleting the directory with the file, its WAL and shared memory.
func tempDatabase(system string) (path string, remove func() error, err error) {
	dir, err := os.MkdirTemp("", "vsriver-"+system+"-")
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory: %w", err)
	}
	remove = func() error {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
		return nil
	}
	return filepath.Join(dir, system+".sqlite3"), remove, nil
}

// riverSQLiteDSN is the modernc.org/sqlite data source of River's database
// at path:
//
//   - journal_mode=WAL, as River's own tests open SQLite (rivershared's
//     riversharedtest.dbPoolSQLite, which found it needed against
//     intermittent "database is locked (SQLITE_BUSY)" errors);
//   - synchronous=FULL, every commit synced before it is acknowledged:
//     Gantry's default (embedded.Config.Synchronous), and also what River
//     gets when it sets nothing, SQLite's default being FULL in WAL mode
//     too with modernc.org/sqlite. Pinned here, and checked at open, so
//     that both sides pay the same fsyncs;
//   - no busy_timeout: River sets none (its tests note that a busy timeout
//     did not avoid SQLITE_BUSY where a single connection does), and with
//     one connection in one process no lock is ever waited for.
//
// Gantry's other pragmas (cache_size 32 MB, temp_store MEMORY,
// foreign_keys OFF) are its own choices; River is left at its documented
// setup.
func riverSQLiteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
}

// openRiverSQLite sets River up with riversqlite over database/sql and
// modernc.org/sqlite on a fresh database file, with one connection:
// River's recommendation (riverqueue.com/docs/sqlite, the riversqlite
// package doc, riversharedtest, and River's CLI for sqlite:// URLs), as
// River works enough in parallel that more connections fail with
// SQLITE_BUSY.
func openRiverSQLite(ctx context.Context, concurrency, batch int, s riverSettings) (side, error) {
	path, remove, err := tempDatabase("river")
	if err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	db, err := sql.Open("sqlite", riverSQLiteDSN(path))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("river: %w", err), remove())
	}
	db.SetMaxOpenConns(1)
	release := func() error { return errors.Join(db.Close(), remove()) }
	if err := checkSQLite(ctx, db); err != nil {
		return nil, errors.Join(fmt.Errorf("river: %w", err), release())
	}
	return openRiver(ctx, riverStore[*sql.Tx]{driver: riversqlite.New(db), jobTable: "river_job", release: release}, concurrency, batch, s)
}

// checkSQLite confirms that db runs in WAL mode with synchronous=FULL.
func checkSQLite(ctx context.Context, db *sql.DB) error {
	var mode string
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal_mode: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("synchronous: %w", err)
	}
	if mode != "wal" || sync != 2 {
		return fmt.Errorf("journal_mode %s, synchronous %d; want wal and 2 (FULL)", mode, sync)
	}
	return nil
}

// openGantrySQLite sets Gantry up on a fresh SQLite file with its defaults:
// one writer connection and a pool of readers, WAL, busy_timeout 10 s and
// synchronous=FULL (Config.Synchronous left empty).
func openGantrySQLite(ctx context.Context, concurrency, batch int, observe string) (side, error) {
	path, remove, err := tempDatabase("gantry")
	if err != nil {
		return nil, fmt.Errorf("gantry: %w", err)
	}
	return openGantry(ctx, embedded.Config{Path: path}, concurrency, batch, observe, remove)
}
