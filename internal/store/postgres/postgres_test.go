package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/postgres"
	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
	"github.com/gantryhq/gantry/internal/store/storetest"
)

// testURL returns the test database's URL: GANTRY_TEST_DATABASE_URL, or a
// local default (without checking that it answers).
func testURL() string {
	if u := os.Getenv("GANTRY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return pgtest.DefaultURL
}

// needDB returns the test database's URL; see pgtest.URL.
func needDB(t testing.TB) string {
	t.Helper()
	return pgtest.URL(t)
}

// freshSchema returns a new schema, dropped when t ends; see pgtest.Schema.
func freshSchema(t testing.TB, url string) string {
	t.Helper()
	return pgtest.Schema(t, url)
}

// open opens a store on schema and closes it when t ends.
func open(t testing.TB, url, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Config{URL: url, Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t *testing.T) store.Store {
	t.Helper()
	url := needDB(t)
	return open(t, url, freshSchema(t, url))
}

// TestConformance runs the store conformance suite against PostgreSQL,
// each test in a fresh schema.
func TestConformance(t *testing.T) {
	needDB(t)
	storetest.Run(t, newStore, storetest.WithRestart(restartable))
}

// restartable opens a store on a fresh schema and returns it with a
// function that closes the current store and opens the schema again.
func restartable(t *testing.T) (store.Store, func() store.Store) {
	t.Helper()
	url := needDB(t)
	schema := freshSchema(t, url)
	var cur *postgres.Store
	open := func() store.Store {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: url, Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		cur = s
		return s
	}
	t.Cleanup(func() {
		if err := cur.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	first := open()
	return first, func() store.Store {
		if err := cur.Close(); err != nil {
			t.Fatalf("Close before restart: %v", err)
		}
		return open()
	}
}
