package worker

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry"
)

// TestBurstLeasing checks that while jobs wait, a worker keeps two lease
// calls in flight (so slots freed during one call are filled by the other),
// and that once the queue is empty it goes back to a single long poll.
func TestBurstLeasing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(30 * time.Second)
		var inflight, peak atomic.Int32
		f.hook = func(ctx context.Context, op string, n int) error {
			if op != "lease" {
				return nil
			}
			c := inflight.Add(1)
			for {
				p := peak.Load()
				if c <= p || peak.CompareAndSwap(p, c) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond) // the call's round trip
			inflight.Add(-1)
			return nil
		}
		work := func(context.Context, *gantry.Job) (any, error) {
			time.Sleep(5 * time.Millisecond)
			return nil, nil
		}
		h := startWorker(t, f, Options{Concurrency: 32}, map[string]gantry.HandlerFunc{"t": work})
		var ids []string
		for range 400 {
			ids = append(ids, f.submit("t", nil, 0))
		}
		for _, id := range ids {
			f.awaitState(t, id, gantry.StateSucceeded)
		}
		if got := peak.Load(); got != 2 {
			t.Errorf("peak lease calls in flight with a backlog = %d, want 2", got)
		}

		// Idle: one long poll at a time, and few calls.
		time.Sleep(time.Second)
		peak.Store(0)
		before := len(f.sizes("lease"))
		time.Sleep(time.Minute)
		if got := peak.Load(); got > 1 {
			t.Errorf("peak lease calls in flight while idle = %d, want 1", got)
		}
		if n := len(f.sizes("lease")) - before; n > 3 {
			t.Errorf("%d lease calls in an idle minute, want a long poll (about 2)", n)
		}
		if err := h.stop(); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
	})
}

// TestTakeSlots checks how many slots a lease asks for: all free ones at
// once when the worker is idle; when other jobs hold half the slots or
// more, those free now plus up to half of all that free up within
// fetchGather.
func TestTakeSlots(t *testing.T) {
	tests := []struct {
		name     string
		held     int           // slots other jobs hold
		freed    int           // of those, freed 1 ms after the call
		want     int           // slots taken
		wantWait time.Duration // when takeSlots returns
	}{
		{name: "idle worker", held: 0, want: 10, wantWait: 0},
		{name: "fewer than half held", held: 4, want: 6, wantWait: 0},
		{name: "busy, slots free up", held: 8, freed: 3, want: 5, wantWait: time.Millisecond},
		{name: "busy, nothing frees up", held: 8, want: 2, wantWait: fetchGather},
		{name: "busy, more than half free up", held: 9, freed: 8, want: 5, wantWait: time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &Worker{sem: make(chan struct{}, 10)}
				for range tc.held {
					w.sem <- struct{}{}
				}
				freer := make(chan struct{})
				go func() {
					defer close(freer)
					time.Sleep(time.Millisecond)
					for range tc.freed {
						<-w.sem
					}
				}()
				defer func() { <-freer }()
				begin := time.Now()
				if got := w.takeSlots(t.Context()); got != tc.want {
					t.Errorf("takeSlots() = %d, want %d", got, tc.want)
				}
				if d := time.Since(begin); d != tc.wantWait {
					t.Errorf("takeSlots returned after %v, want %v", d, tc.wantWait)
				}
			})
		})
	}
}
