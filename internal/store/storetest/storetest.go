// Package storetest is the conformance suite every [store.Store]
// implementation must pass. An engine's test calls [Run] with a function
// that makes a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "g.db")})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite checks the contract written on [store.Store] and the lease rules
// of RELIABILITY.md that a store enforces: fencing tokens, compare-and-swap
// renewals and rescues, attempts counted at grant, the startup grace. Every
// call passes explicit times (a fixed base time plus offsets), so the suite
// never sleeps and never depends on the machine's clock. Times are compared
// at millisecond precision and JSON by value, so a store may keep
// milliseconds and re-encode JSON.
package storetest

import (
	"testing"

	"github.com/gantryhq/gantry/internal/store"
)

// newStoreFunc makes a fresh, empty store for one test and arranges (with
// t.Cleanup) for it to be closed.
type newStoreFunc = func(t *testing.T) store.Store

// Option adds to what the suite can do with an engine's stores.
type Option func(*suiteOptions)

type suiteOptions struct {
	restartable func(t *testing.T) (store.Store, func() store.Store)
}

// options are the options of the running suite (Run is not run twice at
// once in one test binary).
var options suiteOptions

// WithRestart gives the suite stores it can restart: open returns a fresh
// store and a function that closes the current one and opens the same
// database again, as a server restart does (open arranges with t.Cleanup
// for the last one to be closed). The model-based reservation test then
// restarts the store at random steps.
func WithRestart(open func(t *testing.T) (store.Store, func() store.Store)) Option {
	return func(o *suiteOptions) { o.restartable = open }
}

// Run runs the conformance suite against stores made by newStore; each call
// gives a fresh, empty store, closed by newStore's own t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	t.Helper()
	options = suiteOptions{}
	for _, o := range opts {
		o(&options)
	}
	groups := []struct {
		name string
		run  func(t *testing.T, newStore newStoreFunc)
	}{
		{"Insert", testInsert},
		{"GetList", testGetList},
		{"Lease", testLease},
		{"Heartbeat", testHeartbeat},
		{"Finish", testFinish},
		{"CancelRetryDelete", testCancelRetryDelete},
		{"Rescue", testRescue},
		{"Promote", testPromote},
		{"Batch", testBatch},
		{"Worker", testWorker},
		{"Queue", testQueue},
		{"Events", testEvents},
		{"Webhook", testWebhook},
		{"Retention", testRetention},
		{"OnChange", testOnChange},
		{"Concurrency", testConcurrency},
		{"Ownership", testOwnership},
		{"Lifecycle", testLifecycle},
		{"Reservation", testReservation},
		{"Schedule", testSchedule},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) { g.run(t, newStore) })
	}
}
