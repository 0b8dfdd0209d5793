package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkerJobsUseLeaseIndex checks that the queries reading the jobs a
// worker holds go through the jobs_lease partial index instead of
// scanning the jobs table, which also holds every finished job of the
// retention period: GetWorker runs for every worker each time a server
// refreshes its cached copy, so a scan made each worker call cost as much
// as the table is long (1,000 remote workers spent 60 % of the server's
// CPU there).
func TestWorkerJobsUseLeaseIndex(t *testing.T) {
	s, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "g.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, tc := range []struct {
		name, query string
		args        []any
	}{
		{"all workers", runningJobsQuery, nil},
		{"one worker", workerJobsQuery, []any{"w1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(plan, "; ")
			if !strings.Contains(got, "USING INDEX jobs_lease") || strings.Contains(got, "TEMP B-TREE") {
				t.Errorf("query plan of %q = %q, want a walk of the jobs_lease index without a sort", tc.query, got)
			}
		})
	}
}
