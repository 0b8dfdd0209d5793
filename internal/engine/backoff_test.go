package engine_test

import (
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
)

func TestBackoffDelay(t *testing.T) {
	fixed := func(r float64) func() float64 { return func() float64 { return r } }
	tests := []struct {
		name    string
		b       engine.Backoff
		attempt int
		want    time.Duration
	}{
		{"first attempt", engine.Backoff{Jitter: engine.JitterNone}, 1, time.Second},
		{"attempt zero counts as first", engine.Backoff{Jitter: engine.JitterNone}, 0, time.Second},
		{"doubles", engine.Backoff{Jitter: engine.JitterNone}, 2, 2 * time.Second},
		{"tenth", engine.Backoff{Jitter: engine.JitterNone}, 10, 512 * time.Second},
		{"capped at an hour", engine.Backoff{Jitter: engine.JitterNone}, 13, time.Hour},
		{"huge attempt stays capped", engine.Backoff{Jitter: engine.JitterNone}, 1 << 20, time.Hour},
		{"custom base and factor", engine.Backoff{Base: 100 * time.Millisecond, Factor: 3, Jitter: engine.JitterNone}, 3, 900 * time.Millisecond},
		{"custom max", engine.Backoff{Max: 5 * time.Second, Jitter: engine.JitterNone}, 4, 5 * time.Second},
		{"proportional low end", engine.Backoff{Rand: fixed(0)}, 3, 3200 * time.Millisecond},
		{"proportional middle", engine.Backoff{Rand: fixed(0.5)}, 3, 4 * time.Second},
		{"proportional custom fraction", engine.Backoff{JitterFraction: 0.5, Rand: fixed(0)}, 3, 2 * time.Second},
		{"proportional never above max", engine.Backoff{Rand: fixed(0.99)}, 20, time.Hour},
		{"full", engine.Backoff{Jitter: engine.JitterFull, Rand: fixed(0.25)}, 3, time.Second},
		{"equal", engine.Backoff{Jitter: engine.JitterEqual, Rand: fixed(0.5)}, 3, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Delay(tt.attempt); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

// TestBackoffJitterBounds draws real random delays and checks each lies
// within its mode's bounds.
func TestBackoffJitterBounds(t *testing.T) {
	tests := []struct {
		name     string
		b        engine.Backoff
		attempt  int
		min, max time.Duration
	}{
		{"default ±20%", engine.Backoff{}, 4, 6400 * time.Millisecond, 9600 * time.Millisecond},
		{"default at the cap", engine.Backoff{}, 30, 48 * time.Minute, time.Hour},
		{"full", engine.Backoff{Jitter: engine.JitterFull}, 4, 0, 8 * time.Second},
		{"equal", engine.Backoff{Jitter: engine.JitterEqual}, 4, 4 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 1000 {
				d := tt.b.Delay(tt.attempt)
				if d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.attempt, d, tt.min, tt.max)
				}
				seen[d] = true
			}
			if len(seen) < 100 {
				t.Errorf("1000 delays took only %d values: not randomized", len(seen))
			}
		})
	}
}
