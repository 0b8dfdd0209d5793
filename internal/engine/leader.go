package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/store"
)

// LeaderReservation is the reservation (of tenant "") that the engines
// sharing one database hold to elect the one that runs maintenance.
const LeaderReservation = "gantry:maintenance"

// defaultLeaderTTL is the default [Config.LeaderTTL].
const defaultLeaderTTL = 15 * time.Second

// elector keeps this engine's claim on [LeaderReservation]: it acquires
// the reservation, renews it every TTL/3 and releases it on close. The
// store decides expiry with the engine's clock (RELIABILITY.md rule 1);
// the elector trusts its leadership only until TTL minus a margin after
// the last successful acquire or renew was sent, on the monotonic clock
// (rule 3), so it stops leading before the store could grant the name to
// another engine, even if the store cannot be reached.
type elector struct {
	st       store.Store
	holder   string
	ttl      time.Duration
	interval time.Duration // between renewals, and between tries to acquire
	margin   time.Duration // subtracted from the TTL for the trust window
	clock    func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	token int64     // the held reservation's token; 0 when not held
	until time.Time // leadership is trusted before this instant (monotonic)
}

func newElector(st store.Store, cfg Config) *elector {
	return &elector{
		st: st, holder: cfg.LeaderID, ttl: cfg.LeaderTTL,
		interval: cfg.LeaderTTL / 3, margin: cfg.LeaderTTL / 5,
		clock: cfg.Clock, log: cfg.Logger,
	}
}

// randomLeaderID returns a random holder name for an engine.
func randomLeaderID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "engine-" + hex.EncodeToString(b[:])
}

// IsLeader reports whether the last successful acquire or renew was sent
// less than TTL minus the margin ago.
func (l *elector) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token != 0 && time.Now().Before(l.until)
}

// run holds or tries to acquire the reservation every interval until ctx
// is done.
func (l *elector) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		l.step(ctx)
		t.Reset(l.interval)
	}
}

// step renews the reservation if it is held, else tries to acquire it.
func (l *elector) step(ctx context.Context) {
	l.mu.Lock()
	token := l.token
	l.mu.Unlock()
	// A call that outlives the trust window is useless: bound it.
	cctx, cancel := context.WithTimeout(ctx, l.ttl-l.margin)
	defer cancel()
	sent := time.Now()
	if token != 0 {
		_, err := l.st.RenewReservation(cctx, &store.RenewReservationParams{
			Name: LeaderReservation, Holder: l.holder, Token: token, TTL: l.ttl, Now: l.clock(),
		})
		switch {
		case err == nil:
			l.trust(token, sent)
			return
		case errors.Is(err, store.ErrConflict):
			l.log.Warn("engine: lost maintenance leadership", "holder", l.holder, "token", token)
			l.lose(token)
			// Try to acquire it again at once: the name may be free.
		default:
			if ctx.Err() == nil {
				l.log.Error("engine: renew maintenance leadership", "err", err)
			}
			// Keep the token: the trust window runs out by itself, and a
			// later renewal may still succeed.
			return
		}
		sent = time.Now()
	}
	r, err := l.st.AcquireReservation(cctx, &store.AcquireReservationParams{
		Name: LeaderReservation, Holder: l.holder, TTL: l.ttl, Now: l.clock(),
	})
	var held *store.HeldError
	switch {
	case err == nil:
		l.log.Info("engine: acquired maintenance leadership", "holder", l.holder, "token", r.Token)
		l.trust(r.Token, sent)
	case errors.As(err, &held):
		l.log.Debug("engine: maintenance leader is another engine", "leader", held.Holder, "expires_at", held.ExpiresAt)
	case ctx.Err() == nil:
		l.log.Error("engine: acquire maintenance leadership", "err", err)
	}
}

// trust records that token was granted or renewed by a call sent at sent.
func (l *elector) trust(token int64, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.token, l.until = token, sent.Add(l.ttl-l.margin)
}

// lose forgets token if it is still the one held.
func (l *elector) lose(token int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == token {
		l.token, l.until = 0, time.Time{}
	}
}

// release stops leading and frees the reservation, so that another engine
// takes over at its next try rather than after the TTL.
func (l *elector) release() {
	l.mu.Lock()
	token := l.token
	l.token, l.until = 0, time.Time{}
	l.mu.Unlock()
	if token == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.interval)
	defer cancel()
	err := l.st.ReleaseReservation(ctx, &store.ReleaseReservationParams{
		Name: LeaderReservation, Holder: l.holder, Token: token, Now: l.clock(),
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		l.log.Error("engine: release maintenance leadership", "err", err)
	}
}
