package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// resTTL is the reservation TTL the suite uses unless a test says otherwise.
const resTTL = 10 * time.Second

func (h *harness) acquire(tenant, name, holder string, now time.Time, ttl time.Duration) (*job.Reservation, error) {
	h.t.Helper()
	return h.s.AcquireReservation(h.t.Context(), &store.AcquireReservationParams{Tenant: tenant, Name: name, Holder: holder, TTL: ttl, Now: now})
}

// mustAcquire acquires and fails the test on error.
func (h *harness) mustAcquire(tenant, name, holder string, now time.Time) *job.Reservation {
	h.t.Helper()
	r, err := h.acquire(tenant, name, holder, now, resTTL)
	if err != nil {
		h.t.Fatalf("AcquireReservation(%q, %q, %q, %v): %v", tenant, name, holder, now, err)
	}
	return r
}

func (h *harness) renew(r *job.Reservation, holder string, token int64, now time.Time, ttl time.Duration) (*job.Reservation, error) {
	h.t.Helper()
	return h.s.RenewReservation(h.t.Context(), &store.RenewReservationParams{Tenant: r.Tenant, Name: r.Name, Holder: holder, Token: token, TTL: ttl, Now: now})
}

func (h *harness) release(r *job.Reservation, holder string, token int64, now time.Time) error {
	h.t.Helper()
	return h.s.ReleaseReservation(h.t.Context(), &store.ReleaseReservationParams{Tenant: r.Tenant, Name: r.Name, Holder: holder, Token: token, Now: now})
}

func (h *harness) getReservation(tenant, name string, now time.Time) *job.Reservation {
	h.t.Helper()
	r, err := h.s.GetReservation(h.t.Context(), tenant, name, now)
	if err != nil {
		h.t.Fatalf("GetReservation(%q, %q): %v", tenant, name, err)
	}
	return r
}

// held is the record of a reservation granted to holder with token.
func held(tenant, name, holder string, token int64, acquired, expires time.Time) *job.Reservation {
	return &job.Reservation{Tenant: tenant, Name: name, Holder: holder, Token: token, AcquiredAt: acquired, ExpiresAt: expires}
}

// wantConflict fails the test unless err is ErrConflict.
func wantConflict(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("%s: error %v, want ErrConflict", op, err)
	}
}

func testReservation(t *testing.T, newStore newStoreFunc) {
	t.Run("AcquireFree", func(t *testing.T) {
		h := begin(t, newStore)
		r := h.mustAcquire(tenantA, "nightly", "h1", at(0))
		if r.Token <= 0 {
			t.Fatalf("token %d, want > 0", r.Token)
		}
		want := held(tenantA, "nightly", "h1", r.Token, at(0), at(resTTL))
		if diff := cmp.Diff(want, r, cmpOpts); diff != "" {
			t.Errorf("AcquireReservation mismatch (-want +got):\n%s", diff)
		}
		want.History = []job.ReservationEntry{{Holder: "h1", Token: r.Token, AcquiredAt: at(0), Ended: job.ReservationHeld}}
		if diff := cmp.Diff(want, h.getReservation(tenantA, "nightly", at(time.Second)), cmpOpts); diff != "" {
			t.Errorf("GetReservation mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("SameHolderExtendsKeepingToken", func(t *testing.T) {
		h := begin(t, newStore)
		r1 := h.mustAcquire(tenantA, "n", "h1", at(0))
		r2, err := h.acquire(tenantA, "n", "h1", at(5*time.Second), 20*time.Second)
		if err != nil {
			t.Fatalf("second AcquireReservation: %v", err)
		}
		want := held(tenantA, "n", "h1", r1.Token, at(0), at(25*time.Second))
		if diff := cmp.Diff(want, r2, cmpOpts); diff != "" {
			t.Errorf("re-acquire mismatch (-want +got):\n%s", diff)
		}
		if got := h.getReservation(tenantA, "n", at(24*time.Second)); got.Holder != "h1" || len(got.History) != 1 {
			t.Errorf("GetReservation after extension: holder %q, %d history entries; want h1 and 1", got.Holder, len(got.History))
		}
	})

	t.Run("HeldByAnother", func(t *testing.T) {
		h := begin(t, newStore)
		r := h.mustAcquire(tenantA, "n", "h1", at(0))
		before := h.getReservation(tenantA, "n", at(time.Second))
		_, err := h.acquire(tenantA, "n", "h2", at(time.Second), resTTL)
		var he *store.HeldError
		if !errors.As(err, &he) {
			t.Fatalf("AcquireReservation by h2: error %v, want a *store.HeldError", err)
		}
		wantConflict(t, "AcquireReservation by h2", err)
		if diff := cmp.Diff(&store.HeldError{Holder: "h1", ExpiresAt: r.ExpiresAt}, he, cmpOpts); diff != "" {
			t.Errorf("HeldError mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(before, h.getReservation(tenantA, "n", at(time.Second)), cmpOpts); diff != "" {
			t.Errorf("a refused acquire changed the reservation (-before +after):\n%s", diff)
		}
	})

	t.Run("ExpiredIsTakenOverWithNewToken", func(t *testing.T) {
		tests := []struct {
			name  string
			taker string
		}{
			{"another holder", "h2"},
			{"the same holder", "h1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				r1 := h.mustAcquire(tenantA, "n", "h1", at(0))
				// Expired exactly at ExpiresAt.
				r2 := h.mustAcquire(tenantA, "n", tt.taker, r1.ExpiresAt)
				if r2.Token <= r1.Token {
					t.Errorf("token after expiry %d, want > %d", r2.Token, r1.Token)
				}
				want := held(tenantA, "n", tt.taker, r2.Token, r1.ExpiresAt, r1.ExpiresAt.Add(resTTL))
				want.History = []job.ReservationEntry{
					{Holder: tt.taker, Token: r2.Token, AcquiredAt: r1.ExpiresAt, Ended: job.ReservationHeld},
					{Holder: "h1", Token: r1.Token, AcquiredAt: at(0), EndedAt: r1.ExpiresAt, Ended: job.ReservationExpired},
				}
				if diff := cmp.Diff(want, h.getReservation(tenantA, "n", r1.ExpiresAt), cmpOpts); diff != "" {
					t.Errorf("GetReservation mismatch (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("GetExpiredShowsFree", func(t *testing.T) {
		h := begin(t, newStore)
		r := h.mustAcquire(tenantA, "n", "h1", at(0))
		want := &job.Reservation{Tenant: tenantA, Name: "n", History: []job.ReservationEntry{
			{Holder: "h1", Token: r.Token, AcquiredAt: at(0), EndedAt: r.ExpiresAt, Ended: job.ReservationExpired},
		}}
		if diff := cmp.Diff(want, h.getReservation(tenantA, "n", r.ExpiresAt), cmpOpts); diff != "" {
			t.Errorf("GetReservation mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		h := begin(t, newStore)
		h.mustAcquire(tenantA, "n", "h1", at(0))
		for _, c := range []struct{ tenant, name string }{{tenantA, "other"}, {tenantB, "n"}} {
			if _, err := h.s.GetReservation(t.Context(), c.tenant, c.name, at(0)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetReservation(%q, %q): error %v, want ErrNotFound", c.tenant, c.name, err)
			}
		}
	})

	t.Run("Renew", func(t *testing.T) {
		h := begin(t, newStore)
		r := h.mustAcquire(tenantA, "n", "h1", at(0))
		got, err := h.renew(r, "h1", r.Token, at(9*time.Second), 30*time.Second)
		if err != nil {
			t.Fatalf("RenewReservation: %v", err)
		}
		if diff := cmp.Diff(held(tenantA, "n", "h1", r.Token, at(0), at(39*time.Second)), got, cmpOpts); diff != "" {
			t.Errorf("RenewReservation mismatch (-want +got):\n%s", diff)
		}
		if got := h.getReservation(tenantA, "n", at(38*time.Second)); got.Holder != "h1" || !got.ExpiresAt.Equal(at(39*time.Second)) {
			t.Errorf("after renewal: holder %q expires %v, want h1 until %v", got.Holder, got.ExpiresAt, at(39*time.Second))
		}
	})

	t.Run("RenewRefused", func(t *testing.T) {
		tests := []struct {
			name   string
			setup  func(h *harness) (r *job.Reservation, holder string, token int64, now time.Time)
			wantBy string // the holder afterwards ("" free)
		}{
			{"wrong token", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				return r, "h1", r.Token + 1, at(time.Second)
			}, "h1"},
			{"wrong holder", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				return r, "h2", r.Token, at(time.Second)
			}, "h1"},
			{"expired", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				return r, "h1", r.Token, r.ExpiresAt
			}, ""},
			{"released", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				if err := h.release(r, "h1", r.Token, at(time.Second)); err != nil {
					h.t.Fatalf("ReleaseReservation: %v", err)
				}
				return r, "h1", r.Token, at(2 * time.Second)
			}, ""},
			{"taken over after expiry", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				h.mustAcquire(tenantA, "n", "h2", r.ExpiresAt)
				return r, "h1", r.Token, r.ExpiresAt
			}, "h2"},
			{"other tenant", func(h *harness) (*job.Reservation, string, int64, time.Time) {
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				h.mustAcquire(tenantB, "n", "h1", at(0))
				other := *r
				other.Tenant = tenantB
				return &other, "h1", r.Token, at(time.Second)
			}, "h1"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				r, holder, token, now := tt.setup(h)
				before := h.getReservation(r.Tenant, r.Name, now)
				_, err := h.renew(r, holder, token, now, time.Hour)
				wantConflict(t, "RenewReservation", err)
				after := h.getReservation(r.Tenant, r.Name, now)
				if diff := cmp.Diff(before, after, cmpOpts); diff != "" {
					t.Errorf("a refused renewal changed the reservation (-before +after):\n%s", diff)
				}
				if after.Holder != tt.wantBy {
					t.Errorf("holder %q, want %q", after.Holder, tt.wantBy)
				}
			})
		}
		t.Run("unknown name", func(t *testing.T) {
			h := begin(t, newStore)
			_, err := h.renew(&job.Reservation{Tenant: tenantA, Name: "nope"}, "h1", 1, at(0), resTTL)
			wantConflict(t, "RenewReservation", err)
		})
	})

	t.Run("Release", func(t *testing.T) {
		h := begin(t, newStore)
		r := h.mustAcquire(tenantA, "n", "h1", at(0))
		if err := h.release(r, "h1", r.Token, at(3*time.Second)); err != nil {
			t.Fatalf("ReleaseReservation: %v", err)
		}
		want := &job.Reservation{Tenant: tenantA, Name: "n", History: []job.ReservationEntry{
			{Holder: "h1", Token: r.Token, AcquiredAt: at(0), EndedAt: at(3 * time.Second), Ended: job.ReservationReleased},
		}}
		if diff := cmp.Diff(want, h.getReservation(tenantA, "n", at(3*time.Second)), cmpOpts); diff != "" {
			t.Errorf("GetReservation after release mismatch (-want +got):\n%s", diff)
		}
		wantConflict(t, "second ReleaseReservation", h.release(r, "h1", r.Token, at(4*time.Second)))
		// Free again at once, with a new token, even for the same holder.
		r2 := h.mustAcquire(tenantA, "n", "h1", at(4*time.Second))
		if r2.Token <= r.Token {
			t.Errorf("token after release %d, want > %d", r2.Token, r.Token)
		}
		wantConflict(t, "stale ReleaseReservation", h.release(r, "h1", r.Token, at(5*time.Second)))
		if got := h.getReservation(tenantA, "n", at(5*time.Second)); got.Token != r2.Token {
			t.Errorf("a stale release changed the reservation: token %d, want %d", got.Token, r2.Token)
		}
	})

	t.Run("ReleaseRefused", func(t *testing.T) {
		tests := []struct {
			name   string
			holder string
			dToken int64
			now    time.Duration
		}{
			{"wrong holder", "h2", 0, time.Second},
			{"wrong token", "h1", -1, time.Second},
			{"expired", "h1", 0, resTTL},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				r := h.mustAcquire(tenantA, "n", "h1", at(0))
				before := h.getReservation(tenantA, "n", at(tt.now))
				wantConflict(t, "ReleaseReservation", h.release(r, tt.holder, r.Token+tt.dToken, at(tt.now)))
				if diff := cmp.Diff(before, h.getReservation(tenantA, "n", at(tt.now)), cmpOpts); diff != "" {
					t.Errorf("a refused release changed the reservation (-before +after):\n%s", diff)
				}
			})
		}
	})

	t.Run("HistoryKeepsLastTen", func(t *testing.T) {
		h := begin(t, newStore)
		var want []job.ReservationEntry
		now := at(0)
		for i := range 13 {
			holder := fmt.Sprintf("h%d", i)
			r := h.mustAcquire(tenantA, "n", holder, now)
			e := job.ReservationEntry{Holder: holder, Token: r.Token, AcquiredAt: now}
			switch {
			case i == 12:
				e.Ended = job.ReservationHeld
			case i%2 == 0:
				now = now.Add(time.Second)
				if err := h.release(r, holder, r.Token, now); err != nil {
					t.Fatalf("ReleaseReservation: %v", err)
				}
				e.EndedAt, e.Ended = now, job.ReservationReleased
			default:
				now = r.ExpiresAt
				e.EndedAt, e.Ended = now, job.ReservationExpired
			}
			want = append(want, e)
		}
		slices.Reverse(want)
		got := h.getReservation(tenantA, "n", now)
		if diff := cmp.Diff(want[:job.ReservationHistoryLen], got.History, cmpOpts); diff != "" {
			t.Errorf("History mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("TokensIncreaseAcrossNames", func(t *testing.T) {
		h := begin(t, newStore)
		var last int64
		for i, name := range []string{"a", "b", "a", "c", "b"} {
			r := h.mustAcquire(tenantA, name, fmt.Sprintf("h%d", i), at(time.Duration(i)*resTTL))
			if r.Token <= last {
				t.Errorf("grant %d (%s): token %d, want > %d", i, name, r.Token, last)
			}
			last = r.Token
		}
	})

	t.Run("TenantScopingAndList", func(t *testing.T) {
		h := begin(t, newStore)
		a := h.mustAcquire(tenantA, "n", "h1", at(0))
		b := h.mustAcquire(tenantB, "n", "h2", at(0)) // names are per tenant
		e := h.mustAcquire("", "gantry:maintenance", "engine", at(0))
		x := h.mustAcquire(tenantA, "m", "h3", at(0))
		if err := h.release(x, "h3", x.Token, at(time.Second)); err != nil {
			t.Fatalf("ReleaseReservation: %v", err)
		}
		tests := []struct {
			tenant string
			want   []*job.Reservation
		}{
			{"", []*job.Reservation{e, {Tenant: tenantA, Name: "m"}, a, b}},
			{tenantA, []*job.Reservation{{Tenant: tenantA, Name: "m"}, a}},
			{tenantB, []*job.Reservation{b}},
			{"nobody", nil},
		}
		for _, tt := range tests {
			got, err := h.s.ListReservations(t.Context(), tt.tenant, at(time.Second))
			if err != nil {
				t.Fatalf("ListReservations(%q): %v", tt.tenant, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("ListReservations(%q) mismatch (-want +got):\n%s", tt.tenant, diff)
			}
		}
		// An expired grant lists as free.
		got, err := h.s.ListReservations(t.Context(), tenantB, b.ExpiresAt)
		if err != nil {
			t.Fatalf("ListReservations: %v", err)
		}
		if diff := cmp.Diff([]*job.Reservation{{Tenant: tenantB, Name: "n"}}, got, cmpOpts); diff != "" {
			t.Errorf("ListReservations after expiry mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		h := begin(t, newStore)
		for _, p := range []store.AcquireReservationParams{
			{Tenant: tenantA, Holder: "h", TTL: resTTL, Now: t0},
			{Tenant: tenantA, Name: "n", TTL: resTTL, Now: t0},
			{Tenant: tenantA, Name: "n", Holder: "h", Now: t0},
		} {
			if _, err := h.s.AcquireReservation(t.Context(), &p); err == nil || errors.Is(err, store.ErrConflict) {
				t.Errorf("AcquireReservation(%+v): error %v, want a validation error", p, err)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) { testReservationRace(t, newStore) })
	t.Run("Model", func(t *testing.T) { testReservationModel(t, newStore) })
}

// raceClock is the shared fake clock of testReservationRace. Calls hold it
// read-locked while they run, so every call in flight sees one instant and
// time moves forward only between calls: a call's Now is then consistent
// with the order the store applies calls in.
type raceClock struct {
	mu  sync.RWMutex
	now time.Time
}

// grantEvent is a successful reservation call seen by testReservationRace.
type grantEvent struct {
	name, holder string
	token        int64
	now, until   time.Time // until: expiry, or the release time
	released     bool
}

// testReservationRace races goroutines acquiring, renewing and releasing
// few names, then checks the recorded grants: never two unexpired holders
// of one name at any instant, and tokens strictly increasing per name in
// the order of the grants.
func testReservationRace(t *testing.T, newStore newStoreFunc) {
	h := begin(t, newStore)
	const goroutines, rounds = 8, 120
	names := []string{"a", "b", "c"}
	clock := &raceClock{now: t0}
	var (
		mu     sync.Mutex
		events []grantEvent
		wg     sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			holder := fmt.Sprintf("g%d", g)
			mine := map[string]int64{} // tokens this goroutine believes it holds
			for range rounds {
				name := names[rng.IntN(len(names))]
				ttl := time.Duration(1+rng.IntN(20)) * 100 * time.Millisecond
				clock.mu.RLock()
				now := clock.now
				var ev *grantEvent
				var err error
				switch tok, ok := mine[name]; {
				case !ok || rng.IntN(4) == 0:
					var r *job.Reservation
					if r, err = h.s.AcquireReservation(t.Context(), &store.AcquireReservationParams{Name: name, Holder: holder, TTL: ttl, Now: now}); err == nil {
						ev = &grantEvent{name: name, holder: holder, token: r.Token, now: now, until: r.ExpiresAt}
						mine[name] = r.Token
					}
				case rng.IntN(3) == 0:
					if err = h.s.ReleaseReservation(t.Context(), &store.ReleaseReservationParams{Name: name, Holder: holder, Token: tok, Now: now}); err == nil {
						ev = &grantEvent{name: name, holder: holder, token: tok, now: now, until: now, released: true}
					}
					delete(mine, name)
				default:
					var r *job.Reservation
					if r, err = h.s.RenewReservation(t.Context(), &store.RenewReservationParams{Name: name, Holder: holder, Token: tok, TTL: ttl, Now: now}); err == nil {
						ev = &grantEvent{name: name, holder: holder, token: tok, now: now, until: r.ExpiresAt}
						if r.Token != tok {
							err = fmt.Errorf("renewal changed the token from %d to %d", tok, r.Token)
						}
					} else {
						delete(mine, name)
					}
				}
				clock.mu.RUnlock()
				if err != nil && !errors.Is(err, store.ErrConflict) {
					t.Errorf("%s on %s: %v", holder, name, err)
					return
				}
				if ev != nil {
					mu.Lock()
					events = append(events, *ev)
					mu.Unlock()
				}
				if rng.IntN(3) == 0 {
					clock.mu.Lock()
					clock.now = clock.now.Add(time.Duration(rng.IntN(800)) * time.Millisecond)
					clock.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := checkGrants(events); err != nil {
		t.Error(err)
	}
	if len(events) < goroutines {
		t.Errorf("only %d calls succeeded: the race exercised nothing", len(events))
	}
}

// checkGrants checks a history of successful reservation calls, each
// holder's calls in the order it made them: per name, each token's hold
// runs from its grant to the expiry its last call set (or its release);
// holds of different tokens never overlap, later tokens hold later, no
// token has two holders and nothing succeeds on a released token.
func checkGrants(events []grantEvent) error {
	type hold struct {
		holder      string
		token       int64
		from, until time.Time
		released    bool // the last call was a release
	}
	holds := map[string]map[int64]*hold{}
	for _, e := range events {
		if holds[e.name] == nil {
			holds[e.name] = map[int64]*hold{}
		}
		h := holds[e.name][e.token]
		if h == nil {
			h = &hold{holder: e.holder, token: e.token, from: e.now, until: e.until}
			holds[e.name][e.token] = h
		}
		if h.holder != e.holder {
			return fmt.Errorf("name %s token %d held by both %s and %s", e.name, e.token, h.holder, e.holder)
		}
		if h.released {
			return fmt.Errorf("name %s token %d: a call by %s succeeded after its release", e.name, e.token, e.holder)
		}
		// A renewal sets the expiry to its Now+TTL, which may shorten it:
		// the hold ends where the token's last call left it.
		h.until, h.released = e.until, e.released
	}
	for name, byToken := range holds {
		list := make([]*hold, 0, len(byToken))
		for _, h := range byToken {
			list = append(list, h)
		}
		slices.SortFunc(list, func(a, b *hold) int { return cmpInt64(a.token, b.token) })
		for i := 1; i < len(list); i++ {
			prev, cur := list[i-1], list[i]
			if cur.from.Before(prev.until) {
				return fmt.Errorf("name %s: %s (token %d) held from %v while %s (token %d) held until %v",
					name, cur.holder, cur.token, cur.from.Sub(t0), prev.holder, prev.token, prev.until.Sub(t0))
			}
		}
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// modelRes is the reference model's state of one name.
type modelRes struct {
	holder  string
	token   int64
	expires time.Time
	history []job.ReservationEntry // newest first, ended as of the last change
}

// testReservationModel runs random sequences of acquire, renew, release,
// get, clock advances and (WithRestart) store restarts against the store
// and a simple reference model,
// comparing every result: success or conflict, holder, expiry, and whether
// the token is the held one or a new one greater than every token seen.
func testReservationModel(t *testing.T, newStore newStoreFunc) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			h := begin(t, newStore)
			var restart func() store.Store
			restarts := 0
			defer func() {
				if restart != nil && restarts == 0 {
					t.Errorf("the store was never restarted: the sequence proved less than it should")
				}
			}()
			if options.restartable != nil {
				h.s, restart = options.restartable(t)
			}
			rng := rand.New(rand.NewPCG(seed, 2))
			names := []string{"x", "y"}
			holders := []string{"p", "q", "r"}
			model := map[string]*modelRes{}
			now := t0
			var maxToken int64
			var seen []int64
			for step := range 150 {
				name := names[rng.IntN(len(names))]
				holder := holders[rng.IntN(len(holders))]
				m := model[name]
				live := m != nil && m.holder != "" && m.expires.After(now)
				// A token to present: usually the held one, sometimes a stale one.
				var token int64
				if m != nil && m.holder != "" && rng.IntN(4) != 0 {
					token = m.token
				} else if len(seen) > 0 {
					token = seen[rng.IntN(len(seen))]
				}
				if live && rng.IntN(3) != 0 {
					holder = m.holder // mostly act as the holder, so renewals and releases succeed
				}
				ttl := time.Duration(1+rng.IntN(10)) * time.Second
				where := fmt.Sprintf("step %d (at +%v, %s on %s)", step, now.Sub(t0), holder, name)
				switch op := rng.IntN(10); {
				case op < 3: // acquire
					r, err := h.acquire("", name, holder, now, ttl)
					switch {
					case live && m.holder != holder:
						var he *store.HeldError
						if !errors.As(err, &he) || !cmp.Equal(*he, store.HeldError{Holder: m.holder, ExpiresAt: m.expires}, cmpOpts) {
							t.Fatalf("%s: acquire: error %v, want HeldError{%s, %v}", where, err, m.holder, m.expires)
						}
					case err != nil:
						t.Fatalf("%s: acquire: %v", where, err)
					case live: // extended
						if r.Token != m.token || r.Holder != holder || !r.ExpiresAt.Equal(now.Add(ttl)) {
							t.Fatalf("%s: re-acquire = %s/%d until %v, want %s/%d until %v", where, r.Holder, r.Token, r.ExpiresAt, holder, m.token, now.Add(ttl))
						}
						m.expires = r.ExpiresAt
					default: // new grant
						if r.Token <= maxToken || r.Holder != holder || !r.ExpiresAt.Equal(now.Add(ttl)) {
							t.Fatalf("%s: acquire = %s/%d until %v, want %s/>%d until %v", where, r.Holder, r.Token, r.ExpiresAt, holder, maxToken, now.Add(ttl))
						}
						maxToken = r.Token
						seen = append(seen, r.Token)
						if m == nil {
							m = &modelRes{}
							model[name] = m
						}
						if m.holder != "" {
							m.history[0].EndedAt, m.history[0].Ended = m.expires, job.ReservationExpired
						}
						m.holder, m.token, m.expires = holder, r.Token, r.ExpiresAt
						m.history = append([]job.ReservationEntry{{Holder: holder, Token: r.Token, AcquiredAt: now}}, m.history...)
						if len(m.history) > job.ReservationHistoryLen {
							m.history = m.history[:job.ReservationHistoryLen]
						}
					}
				case op < 6: // renew
					r, err := h.renew(&job.Reservation{Name: name}, holder, token, now, ttl)
					if live && m.holder == holder && m.token == token {
						if err != nil {
							t.Fatalf("%s: renew: %v", where, err)
						}
						if r.Token != token || !r.ExpiresAt.Equal(now.Add(ttl)) {
							t.Fatalf("%s: renew = %d until %v, want %d until %v", where, r.Token, r.ExpiresAt, token, now.Add(ttl))
						}
						m.expires = r.ExpiresAt
					} else if !errors.Is(err, store.ErrConflict) {
						t.Fatalf("%s: renew with token %d: error %v, want ErrConflict", where, token, err)
					}
				case op < 8: // release
					err := h.release(&job.Reservation{Name: name}, holder, token, now)
					if live && m.holder == holder && m.token == token {
						if err != nil {
							t.Fatalf("%s: release: %v", where, err)
						}
						m.holder = ""
						m.history[0].EndedAt, m.history[0].Ended = now, job.ReservationReleased
					} else if !errors.Is(err, store.ErrConflict) {
						t.Fatalf("%s: release with token %d: error %v, want ErrConflict", where, token, err)
					}
				case op < 9: // get
					got, err := h.s.GetReservation(t.Context(), "", name, now)
					if m == nil {
						if !errors.Is(err, store.ErrNotFound) {
							t.Fatalf("%s: get of a never acquired name: error %v, want ErrNotFound", where, err)
						}
						break
					}
					if err != nil {
						t.Fatalf("%s: get: %v", where, err)
					}
					if diff := cmp.Diff(m.view(name, now), got, cmpOpts); diff != "" {
						t.Fatalf("%s: get mismatch (-model +store):\n%s", where, diff)
					}
				default: // advance time, sometimes exactly to an expiry; or restart
					switch {
					case restart != nil && rng.IntN(4) == 0:
						// A restart keeps every grant and the token order.
						h.s = restart()
						restarts++
					case live && rng.IntN(2) == 0:
						now = m.expires
					default:
						now = now.Add(time.Duration(rng.IntN(6000)) * time.Millisecond)
					}
				}
			}
		})
	}
}

// view is what GetReservation must return for the model's name at now.
func (m *modelRes) view(name string, now time.Time) *job.Reservation {
	r := &job.Reservation{Name: name, History: slices.Clone(m.history)}
	if m.holder != "" && m.expires.After(now) {
		r.Holder, r.Token, r.AcquiredAt, r.ExpiresAt = m.holder, m.token, m.history[0].AcquiredAt, m.expires
		r.History[0].Ended = job.ReservationHeld
	} else if m.holder != "" {
		r.History[0].EndedAt, r.History[0].Ended = m.expires, job.ReservationExpired
	}
	return r
}
