// Package pgtest gives tests a PostgreSQL database: the URL of the test
// server, and fresh schemas dropped when the test ends. Tests that need
// PostgreSQL skip with a clear message when none answers, and fail instead
// when the environment says CI=true.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the test database used when GANTRY_TEST_DATABASE_URL is
// not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test"

// URL returns the URL of the test database (GANTRY_TEST_DATABASE_URL, else
// [DefaultURL]), skipping t when PostgreSQL does not answer there, and
// failing it instead when CI=true.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("GANTRY_TEST_DATABASE_URL")
	if u == "" {
		u = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		msg := "PostgreSQL at " + u + " does not answer (set GANTRY_TEST_DATABASE_URL): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}

// Schema returns the name of a fresh schema on the database at url (the
// store creates it), dropped with everything in it when t ends.
func Schema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "gantry_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}
