package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgTestURL returns the URL of the test database, skipping the test when
// PostgreSQL does not answer there (failing it when CI=true).
func pgTestURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("GANTRY_TEST_DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		err = conn.Ping(ctx)
		conn.Close(ctx)
	}
	if err != nil {
		msg := "PostgreSQL at " + url + " does not answer (set GANTRY_TEST_DATABASE_URL): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return url
}

func TestPostgres(t *testing.T) {
	url := pgTestURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "gantry_server_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	dir := filepath.Join(t.TempDir(), "data")
	s, err := newServer(t, Config{DataDir: dir, DatabaseURL: url, Schema: schema, AdminToken: "pg-server-token-0123456789abcdef"})
	if err != nil {
		t.Fatalf("New on PostgreSQL: %v", err)
	}
	if !s.eng.Config().Elect {
		t.Error("the engine of a PostgreSQL server does not elect its maintenance leader")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a PostgreSQL server given its token created the data directory (stat: %v)", err)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/readyz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /readyz = %d %s, want 200", rec.Code, rec.Body)
	}
	var tables int
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'jobs'", schema).Scan(&tables); err != nil || tables != 1 {
		t.Errorf("the jobs table in schema %s: %d, %v; want it migrated on start", schema, tables, err)
	}

	// An SQLite server runs maintenance alone.
	lite, err := newServer(t, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if lite.eng.Config().Elect {
		t.Error("an SQLite server elects a leader")
	}
}
