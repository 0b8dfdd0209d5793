package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantryhq/gantry/internal/bench"
)

func TestBenchUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown store", []string{"--store", "mysql"}, "--store must be sqlite or postgres"},
		{"postgres without URL", []string{"--store", "postgres"}, "--store postgres needs --database-url"},
		{"data dir with postgres", []string{"--store", "postgres", "--database-url", "postgres://x", "--data-dir", "d"}, "--data-dir applies to --store sqlite only"},
		{"unknown mode", []string{"--mode", "cloud"}, "--mode must be inprocess or remote"},
		{"no jobs", []string{"--jobs", "0"}, "--jobs must be at least 1"},
		{"jobs and duration", []string{"--jobs", "10", "--duration", "1s"}, "give --jobs or --duration, not both"},
		{"negative duration", []string{"--duration", "-1s"}, "--duration must not be negative"},
		{"negative preload", []string{"--preload", "-1"}, "--preload must not be negative"},
		{"no workers", []string{"--workers", "0"}, "--workers must be between 1 and 64"},
		{"too much concurrency", []string{"--concurrency", "10001"}, "--concurrency must be between 1 and 10000"},
		{"batch too big", []string{"--batch", "10001"}, "--batch must be between 1 and 10000"},
		{"server flag", []string{"--server", "http://x"}, "--server does not apply to gantry bench"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t.Context(), append([]string{"bench"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestBench(t *testing.T) {
	r := run(t.Context(), "bench", "--jobs", "300", "--preload", "100", "--workers", "2", "--concurrency", "10", "--batch", "50")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"gantry bench: sqlite, inprocess, 2 workers × 10, 300 jobs, 100 preloaded", "completed            400 jobs", "submit→start    p50", "database"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr is not empty (no progress bar off a terminal): %q", r.stderr)
	}

	r = run(t.Context(), "bench", "--json", "--duration", "300ms", "--concurrency", "10", "--batch", "20")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("stdout is not a result in JSON: %v\n%s", err, r.stdout)
	}
	if res.Duration != 0.3 || res.Submitted == 0 || res.Completed == 0 || res.DatabaseBytes == 0 {
		t.Errorf("result %+v; want a 0.3 s run that submitted and completed jobs", res)
	}
}
