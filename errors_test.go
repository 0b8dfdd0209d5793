package gantry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func TestPermanentAndRetryAfter(t *testing.T) {
	base := errors.New("boom")
	p := fmt.Errorf("wrapped: %w", gantry.Permanent(base))
	if !gantry.IsPermanent(p) || !errors.Is(p, base) {
		t.Errorf("IsPermanent(wrapped Permanent) = false or base lost")
	}
	if gantry.IsPermanent(base) {
		t.Error("IsPermanent(plain error) = true")
	}
	r := fmt.Errorf("wrapped: %w", gantry.RetryAfter(base, time.Minute))
	if d, ok := gantry.RetryDelay(r); !ok || d != time.Minute {
		t.Errorf("RetryDelay = %v, %v; want 1m, true", d, ok)
	}
	if _, ok := gantry.RetryDelay(base); ok {
		t.Error("RetryDelay(plain error) reported a delay")
	}
	if d, _ := gantry.RetryDelay(gantry.RetryAfter(nil, -time.Second)); d != 0 {
		t.Errorf("RetryAfter with a negative delay = %v, want 0", d)
	}
	if gantry.Permanent(nil) == nil {
		t.Error("Permanent(nil) = nil")
	}
}

func TestStates(t *testing.T) {
	terminal := map[gantry.State]bool{gantry.StateSucceeded: true, gantry.StateFailed: true, gantry.StateCanceled: true}
	for _, s := range gantry.States {
		if !s.Valid() || s.Terminal() != terminal[s] {
			t.Errorf("%s: Valid %v, Terminal %v", s, s.Valid(), s.Terminal())
		}
	}
	if gantry.State("done").Valid() {
		t.Error(`State("done").Valid() = true`)
	}
}

func TestJobProgress(t *testing.T) {
	var got []int
	j := gantry.Job{ID: "x"}.WithProgress(func(_ context.Context, pct int, _ string) error {
		got = append(got, pct)
		return nil
	})
	for _, p := range []int{-5, 40, 250} {
		if err := j.Progress(t.Context(), p, ""); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[0 40 100]" {
		t.Errorf("progress reports = %v, want [0 40 100] (clamped)", got)
	}
	var v struct{ A int }
	j.Params = []byte(`{"A":3}`)
	if err := j.Decode(&v); err != nil || v.A != 3 {
		t.Errorf("Decode = %v, %+v", err, v)
	}
	j.Params = []byte(`{`)
	if err := j.Decode(&v); !gantry.IsPermanent(err) {
		t.Errorf("Decode of bad params = %v, want a permanent error", err)
	}
}
