package bench_test

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gantryhq/gantry/internal/bench"
	"github.com/gantryhq/gantry/internal/cli"
	"github.com/gantryhq/gantry/internal/store/postgres/pgtest"
)

// envGantry makes the test binary run gantry's command line instead of the
// tests: remote mode re-executes it as "gantry worker".
const envGantry = "GANTRY_BENCH_TEST_RUN_GANTRY"

func TestMain(m *testing.M) {
	if os.Getenv(envGantry) == "1" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	tests := []struct {
		name  string
		store string
		mode  string
		cfg   bench.Config
	}{
		{name: "sqlite inprocess", store: bench.StoreSQLite, mode: bench.ModeInProcess, cfg: bench.Config{Jobs: 500, Preload: 200}},
		{name: "sqlite remote", store: bench.StoreSQLite, mode: bench.ModeRemote, cfg: bench.Config{Jobs: 500, Preload: 200}},
		{name: "sqlite inprocess duration", store: bench.StoreSQLite, mode: bench.ModeInProcess, cfg: bench.Config{Duration: 500 * time.Millisecond, Batch: 50}},
		{name: "postgres inprocess", store: bench.StorePostgres, mode: bench.ModeInProcess, cfg: bench.Config{Jobs: 500, Preload: 200}},
		{name: "postgres remote", store: bench.StorePostgres, mode: bench.ModeRemote, cfg: bench.Config{Jobs: 500, Preload: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Store, cfg.Mode = tt.store, tt.mode
			cfg.Workers, cfg.Concurrency, cfg.Batch = 2, 20, max(cfg.Batch, 100)
			if tt.store == bench.StorePostgres {
				cfg.DatabaseURL = pgtest.URL(t)
			}
			if tt.mode == bench.ModeRemote {
				cfg.WorkerCommand = []string{os.Args[0]}
				cfg.WorkerEnv = []string{envGantry + "=1"}
			}
			progressed := 0
			cfg.Progress = func(bench.Progress) { progressed++ }
			res, err := bench.Run(t.Context(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			t.Logf("%+v", res)
			if tt.cfg.Duration == 0 {
				if res.Submitted != cfg.Jobs || res.Completed != cfg.Jobs+cfg.Preload {
					t.Errorf("submitted %d, completed %d; want %d and %d", res.Submitted, res.Completed, cfg.Jobs, cfg.Jobs+cfg.Preload)
				}
				if res.SubmitToStart.N != cfg.Jobs || res.SubmitToFinish.N != cfg.Jobs {
					t.Errorf("latencies of %d and %d jobs; want %d (the preloaded ones left out)", res.SubmitToStart.N, res.SubmitToFinish.N, cfg.Jobs)
				}
			} else if res.Submitted == 0 || res.Completed == 0 || res.Completed > res.Submitted {
				t.Errorf("submitted %d, completed %d; want some, completed at most submitted", res.Submitted, res.Completed)
			}
			if res.Failed != 0 {
				t.Errorf("%d jobs failed", res.Failed)
			}
			l := res.SubmitToFinish
			if l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 {
				t.Errorf("submit-to-finish %+v; want 0 < p50 <= p90 <= p99", l)
			}
			if res.SubmitToStart.P50 > l.P50 {
				t.Errorf("submit-to-start p50 %v after submit-to-finish p50 %v", res.SubmitToStart.P50, l.P50)
			}
			if res.CompletedPerSec <= 0 || res.SubmittedPerSec <= 0 {
				t.Errorf("rates %v and %v; want positive", res.SubmittedPerSec, res.CompletedPerSec)
			}
			if res.ServerRSSBytes <= 0 || res.ServerPeakRSSBytes < res.ServerRSSBytes {
				t.Errorf("server RSS %d, peak %d", res.ServerRSSBytes, res.ServerPeakRSSBytes)
			}
			if tt.mode == bench.ModeRemote && res.WorkersPeakRSSBytes <= 0 {
				t.Errorf("workers' peak RSS %d; want positive", res.WorkersPeakRSSBytes)
			}
			if res.DatabaseBytes <= 0 {
				t.Errorf("database size %d; want positive", res.DatabaseBytes)
			}
			if progressed == 0 {
				t.Error("Progress was never called")
			}
		})
	}
}

func TestRunBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  bench.Config
	}{
		{"unknown store", bench.Config{Store: "mysql"}},
		{"postgres without URL", bench.Config{Store: bench.StorePostgres}},
		{"unknown mode", bench.Config{Mode: "cloud"}},
		{"remote without command", bench.Config{Mode: bench.ModeRemote}},
		{"negative jobs", bench.Config{Jobs: -1}},
		{"batch too big", bench.Config{Batch: 20000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := bench.Run(t.Context(), tt.cfg); err == nil {
				t.Error("Run succeeded; want an error")
			}
		})
	}
}
