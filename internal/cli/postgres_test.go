package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
)

// pgURL returns the URL of the test database; see pgtest.URL.
func pgURL(t *testing.T) string {
	t.Helper()
	return pgtest.URL(t)
}

// pgSchema returns a fresh schema, dropped when the test ends; see
// pgtest.Schema.
func pgSchema(t *testing.T, url string) string {
	t.Helper()
	return pgtest.Schema(t, url)
}

func TestMigrateCommandUsage(t *testing.T) {
	t.Setenv(EnvDatabaseURL, "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no URL", []string{"migrate"}, "needs --database-url or $GANTRY_DATABASE_URL"},
		{"bad schema", []string{"migrate", "--database-url", "postgres://127.0.0.1:1/x", "--schema", "Public"}, "--schema must be"},
		{"client flag", []string{"migrate", "--database-url", "postgres://127.0.0.1:1/x", "--token", "x"}, "--token does not apply"},
		{"argument", []string{"migrate", "now"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t.Context(), tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("gantry %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
	r := run(t.Context(), "migrate", "--database-url", "postgres://127.0.0.1:1/x?connect_timeout=5")
	if r.code != 1 || !strings.Contains(r.stderr, "gantry: migrate: ") {
		t.Errorf("gantry migrate on an unreachable database: exit %d, stderr %q; want exit 1 and the error", r.code, r.stderr)
	}
}

func TestMigrateCommand(t *testing.T) {
	url := pgURL(t)
	schema := pgSchema(t, url)
	t.Setenv(EnvDatabaseURL, url) // the URL from the environment
	for i := range 2 {            // the second run finds nothing to do
		r := run(t.Context(), "migrate", "--schema", schema)
		if r.code != 0 || r.stdout != "Schema "+schema+" is up to date.\n" {
			t.Fatalf("run %d of gantry migrate: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied, distinct int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM "+schema+".schema_migrations").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied == 0 || applied != distinct {
		t.Errorf("schema_migrations holds %d rows of %d versions; want each migration once", applied, distinct)
	}
}

func TestServerCommandPostgres(t *testing.T) {
	url := pgURL(t)
	schema := pgSchema(t, url)
	const token = "pg-server-test-token-0123456789abcdef"
	t.Setenv(EnvAdminToken, token)
	t.Setenv(EnvDatabaseURL, url)
	dir := t.TempDir()

	srv, surl := startServerCommand(t, "--schema", schema, "--data-dir", dir)
	if out := srv.out.String(); !strings.Contains(out, "Database: PostgreSQL, schema "+schema+"\n") || !strings.Contains(out, "Admin token: from $GANTRY_ADMIN_TOKEN\n") {
		t.Errorf("the output does not name the database and the token's source:\n%s", out)
	}
	if r := run(t.Context(), "--server", surl, "--token", token, "submit", "demo.noop"); r.code != 0 {
		t.Fatalf("submit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("gantry server exited %d\n%s", code, srv.errOut)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("a PostgreSQL server given its token wrote to the data directory: %v, %v", entries, err)
	}

	// Another server on the same schema, the URL given by the flag, finds
	// the job.
	t.Setenv(EnvDatabaseURL, "")
	srv, surl = startServerCommand(t, "--database-url", url, "--schema", schema)
	defer srv.stop()
	r := run(t.Context(), "--server", surl, "--token", token, "jobs", "list", "--json")
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &page) != nil || len(page.Items) != 1 {
		t.Errorf("jobs list on the second server: exit %d, %d jobs\n%s%s; want the one job", r.code, len(page.Items), r.stdout, r.stderr)
	}
}
