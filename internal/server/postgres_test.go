package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
)

func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, url)
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
