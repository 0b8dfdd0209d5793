package sqlite

import (
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints. In WAL mode a commit appends pages to the WAL, and a
// checkpoint copies them into the database file. SQLite's default is to
// checkpoint in the committing connection once the WAL holds 1,000 pages:
// here that is the writer goroutine, which every write of the store waits
// for. The checkpointer copies the WAL on a connection of its own instead,
// on another core, shortly after commits; the writer still checkpoints by
// itself when the WAL passes writerCheckpointPages (the checkpointer fell
// behind, or the WAL, never fully copied while the writer keeps appending,
// must start over from its beginning: only a checkpoint that completes
// between two of the writer's transactions lets the next one rewind it).
const (
	checkpointEvery       = 100 * time.Millisecond
	writerCheckpointPages = 4000
)

// checkpointer runs PASSIVE checkpoints (they never block the writer or
// readers) on its own connection when the writer has committed.
type checkpointer struct {
	db   *sql.DB
	log  *slog.Logger
	kick chan struct{} // a commit happened
	quit chan struct{}
	done chan struct{}
	once sync.Once
	err  error // of closing db

	runs atomic.Int64 // checkpoints that ran without error
}

// startCheckpointer opens the checkpointer's connection to the database
// at path and starts it.
func startCheckpointer(path, sync string, log *slog.Logger) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, sync, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, log: log, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// committed tells the checkpointer that the WAL grew; it never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run checkpoints checkpointEvery after a commit, until stopped.
func (c *checkpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		select {
		case <-c.quit:
			return
		case <-time.After(checkpointEvery):
		}
		var busy, frames, copied int
		if err := c.db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
			c.log.Warn("sqlite: checkpoint; the writer checkpoints when the WAL grows", "err", err)
			continue
		}
		c.runs.Add(1)
	}
}

// stop ends the checkpointer and closes its connection; calls after the
// first return the first's result.
func (c *checkpointer) stop() error {
	c.once.Do(func() {
		close(c.quit)
		<-c.done
		c.err = c.db.Close()
	})
	return c.err
}
