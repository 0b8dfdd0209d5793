package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/worker"
)

// The built-in job types: the handlers compiled into the gantry binary,
// which gantry worker and gantry demo run.
const (
	demoFlaky = "demo.flaky"
	demoSlow  = "demo.slow"
	demoNoop  = "demo.noop"
)

// Tuning of the demo's handlers.
const (
	// flakyRetryable and flakyPermanent are the chances that an attempt of
	// demo.flaky fails with a retryable or a permanent error.
	flakyRetryable = 0.15
	flakyPermanent = 0.03
	// slowMin and slowMax bound how long demo.slow takes by default.
	slowMin, slowMax = time.Second, 3 * time.Second
	// slowLongest bounds the seconds a demo.slow job may ask for.
	slowLongest = time.Hour
	// slowSteps is the number of progress reports of demo.slow.
	slowSteps = 10
)

// builtinHandlers are the handlers of the built-in job types.
var builtinHandlers = map[string]gantry.HandlerFunc{
	demoFlaky: flakyHandler,
	demoSlow:  slowHandler,
	demoNoop:  noopHandler,
}

// builtinTypes returns the built-in job types, sorted.
func builtinTypes() []string { return sortedKeys(builtinHandlers) }

// registerBuiltins registers the handlers of types (all built-in types
// when empty) on w. An unknown type is a usage error.
func registerBuiltins(w *worker.Worker, types []string) error {
	if len(types) == 0 {
		types = builtinTypes()
	}
	seen := map[string]bool{}
	for _, t := range types {
		h, ok := builtinHandlers[t]
		if !ok {
			return usagef("no built-in handler for job type %q; this binary runs %s", t, strings.Join(builtinTypes(), ", "))
		}
		if !seen[t] {
			seen[t] = true
			w.Register(t, h)
		}
	}
	return nil
}

// sleep waits d or until ctx is done, then returns ctx's cause.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// flakyParams are the optional params of demo.flaky.
type flakyParams struct {
	// Fail forces the outcome: "permanent" fails without retry,
	// "transient" fails and is retried, "never" succeeds. Empty leaves it
	// to chance.
	Fail string `json:"fail"`
}

// flakyHandler succeeds quickly, except for the attempts that fail.
func flakyHandler(ctx context.Context, job *gantry.Job) (any, error) {
	var p flakyParams
	if err := job.Decode(&p); err != nil {
		return nil, err
	}
	if !slices.Contains([]string{"", "permanent", "transient", "never"}, p.Fail) {
		return nil, gantry.Permanent(fmt.Errorf("demo: params.fail is %q; want permanent, transient or never", p.Fail))
	}
	if err := sleep(ctx, time.Duration(2+rand.IntN(18))*time.Millisecond); err != nil {
		return nil, err
	}
	r := rand.Float64()
	switch {
	case p.Fail == "permanent" || p.Fail == "" && r < flakyPermanent:
		return nil, gantry.Permanent(errors.New("demo: simulated permanent failure"))
	case p.Fail == "transient" || p.Fail == "" && r < flakyPermanent+flakyRetryable:
		delay := time.Duration(200+rand.IntN(600)) * time.Millisecond
		return nil, gantry.RetryAfter(errors.New("demo: simulated transient failure"), delay)
	}
	return map[string]bool{"ok": true}, nil
}

// slowParams are the optional params of demo.slow.
type slowParams struct {
	// Seconds is how long the job takes. Zero picks 1 to 3 seconds.
	Seconds float64 `json:"seconds"`
}

// slowHandler takes a while and reports its progress in steps.
func slowHandler(ctx context.Context, job *gantry.Job) (any, error) {
	var p slowParams
	if err := job.Decode(&p); err != nil {
		return nil, err
	}
	d := slowMin + rand.N(slowMax-slowMin)
	if p.Seconds < 0 || p.Seconds > slowLongest.Seconds() {
		return nil, gantry.Permanent(fmt.Errorf("demo: params.seconds is %v; want 0 to %v", p.Seconds, slowLongest.Seconds()))
	}
	if p.Seconds > 0 {
		d = time.Duration(p.Seconds * float64(time.Second))
	}
	for step := 1; step <= slowSteps; step++ {
		if err := sleep(ctx, d/slowSteps); err != nil {
			return nil, err
		}
		if err := job.Progress(ctx, step*100/slowSteps, fmt.Sprintf("step %d/%d", step, slowSteps)); err != nil {
			return nil, err
		}
	}
	return map[string]any{"steps": slowSteps, "seconds": d.Seconds()}, nil
}

// noopHandler does nothing.
func noopHandler(context.Context, *gantry.Job) (any, error) { return nil, nil }
