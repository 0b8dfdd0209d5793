package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
)

// TestWriteTransactions checks the transaction runner (BEGIN sent with the
// first statement, COMMIT with the events statement) on a pool of one
// connection, so that every write reuses the connection the previous one
// left: what a failed or abandoned transaction did is undone, and the
// connection is usable again.
func TestWriteTransactions(t *testing.T) {
	url := pgtest.URL(t)
	s, err := Open(t.Context(), Config{URL: url, Schema: pgtest.Schema(t, url), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE tx_probe (k text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM tx_probe`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(k string) func(*ptx) error {
		return func(tx *ptx) error {
			_, err := tx.exec(`INSERT INTO tx_probe (k) VALUES ($1)`, k)
			return err
		}
	}
	boom := errors.New("boom")
	steps := []struct {
		name    string
		fn      func(*ptx) error
		wantErr bool
		want    int // rows after the step
	}{
		{"one statement, committed", insert("a"), false, 1},
		{"the caller fails after a statement: rolled back", func(tx *ptx) error {
			if err := insert("b")(tx); err != nil {
				return err
			}
			return boom
		}, true, 1},
		{"a statement fails (duplicate key): rolled back", func(tx *ptx) error {
			if err := insert("c")(tx); err != nil {
				return err
			}
			return insert("a")(tx)
		}, true, 1},
		{"the first statement fails", insert("a"), true, 1},
		{"rows read, then a write, committed", func(tx *ptx) error {
			var n int
			if err := tx.queryRow(`SELECT count(*) FROM tx_probe`).Scan(&n); err != nil {
				return err
			}
			return insert("d")(tx)
		}, false, 2},
		{"a savepoint undoes a failed statement only", func(tx *ptx) error {
			if err := insert("e")(tx); err != nil {
				return err
			}
			if err := tx.savepoint("sp"); err != nil {
				return err
			}
			if err := insert("a")(tx); err == nil {
				return errors.New("duplicate key accepted")
			}
			return tx.rollbackTo("sp")
		}, false, 3},
		{"events committed with the transaction", func(tx *ptx) error {
			tx.emit(job.Event{Kind: job.EventSubmitted, At: time.Now(), Tenant: "t", JobID: "j"})
			return insert("f")(tx)
		}, false, 4},
		{"no statement at all", func(*ptx) error { return nil }, false, 4},
		{"preferIndexes holds for the transaction", func(tx *ptx) error {
			if err := tx.preferIndexes(); err != nil {
				return err
			}
			return seqScan(tx, "off")
		}, false, 4},
		{"and not after it", func(tx *ptx) error { return seqScan(tx, "on") }, false, 4},
		{"preferIndexes with only the events statement", func(tx *ptx) error {
			tx.emit(job.Event{Kind: job.EventSubmitted, At: time.Now(), Tenant: "t", JobID: "j2"})
			return tx.preferIndexes()
		}, false, 4},
		{"preferIndexes after the first statement", func(tx *ptx) error {
			if err := seqScan(tx, "on"); err != nil {
				return err
			}
			if err := tx.preferIndexes(); err != nil {
				return err
			}
			return seqScan(tx, "off")
		}, false, 4},
	}
	for _, st := range steps {
		err := s.write(ctx, "probe", st.fn)
		if (err != nil) != st.wantErr {
			t.Fatalf("%s: error %v, want error %v", st.name, err, st.wantErr)
		}
		if got := count(); got != st.want {
			t.Fatalf("%s: %d rows, want %d", st.name, got, st.want)
		}
	}
	_, newest, err := s.EventBounds(ctx)
	if err != nil || newest != 2 {
		t.Errorf("EventBounds newest = %d, %v; want 2 (the two committed events)", newest, err)
	}
	// A canceled context mid-transaction: the write fails, the pool
	// recovers.
	cctx, cancel := context.WithCancel(ctx)
	err = s.write(cctx, "probe", func(tx *ptx) error {
		if err := insert("g")(tx); err != nil {
			return err
		}
		cancel()
		_, err := tx.exec(`SELECT pg_sleep(0.05)`)
		return err
	})
	if err == nil {
		t.Fatal("write with a canceled context succeeded")
	}
	if err := s.write(ctx, "probe", insert("h")); err != nil {
		t.Fatalf("write after a canceled one: %v", err)
	}
	if got := count(); got != 5 {
		t.Errorf("%d rows after the canceled write and another, want 5", got)
	}
}

// seqScan fails unless enable_seqscan is want in tx.
func seqScan(tx *ptx, want string) error {
	var got string
	if err := tx.queryRow(`SHOW enable_seqscan`).Scan(&got); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("enable_seqscan = %s, want %s", got, want)
	}
	return nil
}
