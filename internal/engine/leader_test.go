package engine_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// leaderTTL is the leader reservation TTL of these tests; engines renew
// every leaderTTL/3.
const leaderTTL = 3 * time.Second

// probeStore is one engine's view of a shared store: it counts the
// engine's maintenance calls and, once cut, fails its reservation calls
// as if the engine had lost the database.
type probeStore struct {
	store.Store
	maint atomic.Int64 // PromoteDue and RescueExpired calls
	cut   atomic.Bool
}

func (p *probeStore) PromoteDue(ctx context.Context, now time.Time, limit int) (int, time.Time, error) {
	p.maint.Add(1)
	return p.Store.PromoteDue(ctx, now, limit)
}

func (p *probeStore) RescueExpired(ctx context.Context, rp *store.RescueParams) ([]*job.Job, error) {
	p.maint.Add(1)
	return p.Store.RescueExpired(ctx, rp)
}

func (p *probeStore) AcquireReservation(ctx context.Context, rp *store.AcquireReservationParams) (*job.Reservation, error) {
	if p.cut.Load() {
		return nil, fmt.Errorf("probe: cut off: %w", store.ErrUnavailable)
	}
	return p.Store.AcquireReservation(ctx, rp)
}

func (p *probeStore) RenewReservation(ctx context.Context, rp *store.RenewReservationParams) (*job.Reservation, error) {
	if p.cut.Load() {
		return nil, fmt.Errorf("probe: cut off: %w", store.ErrUnavailable)
	}
	return p.Store.RenewReservation(ctx, rp)
}

// node is one elected engine over a shared store.
type node struct {
	id string
	p  *probeStore
	e  *engine.Engine
}

// elected starts engines with Elect over one fresh SQLite store, inside
// the caller's synctest bubble, and lets them elect a leader; they are
// closed when the test ends.
func elected(t *testing.T, ids ...string) (store.Store, []*node) {
	t.Helper()
	st := openStore(t, t.TempDir())
	var nodes []*node
	for _, id := range ids {
		p := &probeStore{Store: st}
		e := engine.New(p, engine.Config{
			Elect: true, LeaderTTL: leaderTTL, LeaderID: id, Logger: testLogger(t),
			RescueInterval: time.Second, PromoteInterval: time.Second,
		})
		e.Start(context.Background())
		t.Cleanup(e.Close)
		nodes = append(nodes, &node{id: id, p: p, e: e})
	}
	settle(0)
	return st, nodes
}

// leaders returns the nodes that report being the leader.
func leaders(nodes []*node) []*node {
	var out []*node
	for _, n := range nodes {
		if n.e.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// holder returns the current holder of the leader reservation.
func holder(t *testing.T, st store.Store) string {
	t.Helper()
	r, err := st.GetReservation(t.Context(), "", engine.LeaderReservation, time.Now())
	if err != nil {
		t.Fatalf("GetReservation: %v", err)
	}
	return r.Holder
}

// waitLeader steps the fake clock by 50ms until exactly n is the leader,
// checking at every step that no two nodes lead at once, and returns how
// long it took; it fails the test after limit.
func waitLeader(t *testing.T, nodes []*node, n *node, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ls := leaders(nodes)
		if len(ls) > 1 {
			t.Fatalf("after %v: %d leaders at once", time.Since(start), len(ls))
		}
		if len(ls) == 1 && ls[0] == n {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s not the leader %v after the start", n.id, limit)
		}
		settle(50 * time.Millisecond)
	}
}

// TestElectionOneLeader: of two engines on one store, exactly one leads at
// every moment, holds the reservation, and only it runs maintenance.
func TestElectionOneLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, nodes := elected(t, "a", "b")
		for i := range 30 {
			ls := leaders(nodes)
			if len(ls) != 1 {
				t.Fatalf("at step %d: %d leaders, want 1", i, len(ls))
			}
			if got := holder(t, st); got != ls[0].id {
				t.Fatalf("reservation held by %q, leader is %q", got, ls[0].id)
			}
			settle(time.Second)
		}
		leader, follower := nodes[0], nodes[1]
		if !leader.e.IsLeader() {
			leader, follower = follower, leader
		}
		if n := follower.p.maint.Load(); n != 0 {
			t.Errorf("follower %s made %d maintenance calls, want 0", follower.id, n)
		}
		if n := leader.p.maint.Load(); n < 30 {
			t.Errorf("leader %s made %d maintenance calls in 30s, want at least 30", leader.id, n)
		}
	})
}

// TestElectionFailoverOnClose: when the leader closes it releases the
// reservation, and the other engine takes over within TTL + the renewal
// interval.
func TestElectionFailoverOnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, nodes := elected(t, "a", "b")
		ls := leaders(nodes)
		if len(ls) != 1 {
			t.Fatalf("%d leaders, want 1", len(ls))
		}
		old := ls[0]
		other := nodes[0]
		if other == old {
			other = nodes[1]
		}
		settle(5 * time.Second)
		old.e.Close()
		if old.e.IsLeader() {
			t.Error("a closed engine still reports being the leader")
		}
		took := waitLeader(t, nodes, other, 2*leaderTTL)
		if limit := leaderTTL + leaderTTL/3; took > limit {
			t.Errorf("took over %v after the close, want within %v", took, limit)
		}
		r, err := st.GetReservation(t.Context(), "", engine.LeaderReservation, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.History) < 2 || r.History[0].Holder != other.id || r.History[1].Holder != old.id || r.History[1].Ended != job.ReservationReleased {
			t.Errorf("history %+v, want %s held after %s released", r.History, other.id, old.id)
		}
	})
}

// TestElectionLeaderCutOff: a leader whose renewals fail stops leading
// (and running maintenance) before its reservation could expire, and the
// other engine takes over within TTL + the renewal interval, never with
// both leading at once.
func TestElectionLeaderCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, nodes := elected(t, "a", "b")
		settle(2 * time.Second)
		ls := leaders(nodes)
		if len(ls) != 1 {
			t.Fatalf("%d leaders, want 1", len(ls))
		}
		old := ls[0]
		other := nodes[0]
		if other == old {
			other = nodes[1]
		}
		old.p.cut.Store(true)
		cutAt := time.Now()
		r, err := st.GetReservation(t.Context(), "", engine.LeaderReservation, cutAt)
		if err != nil {
			t.Fatal(err)
		}
		if r.Holder != old.id {
			t.Fatalf("reservation held by %q, want %q", r.Holder, old.id)
		}
		// Step through the trust window: the old leader must step down
		// while its reservation is still unexpired.
		for old.e.IsLeader() {
			if !time.Now().Before(r.ExpiresAt) {
				t.Fatalf("%s still leads at +%v, its reservation expired at +%v", old.id, time.Since(cutAt), r.ExpiresAt.Sub(cutAt))
			}
			if other.e.IsLeader() {
				t.Fatalf("both lead at +%v", time.Since(cutAt))
			}
			settle(50 * time.Millisecond)
		}
		calls := old.p.maint.Load()
		took := time.Since(cutAt) + waitLeader(t, nodes, other, 2*leaderTTL)
		if limit := leaderTTL + leaderTTL/3; took > limit {
			t.Errorf("took over %v after the cut, want within %v", took, limit)
		}
		settle(5 * time.Second)
		if n := old.p.maint.Load(); n != calls {
			t.Errorf("the old leader made %d maintenance calls after stepping down, want 0", n-calls)
		}
		if old.e.IsLeader() {
			t.Error("the cut-off engine leads again")
		}
	})
}
