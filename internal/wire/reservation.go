package wire

import (
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

// AcquireRequest is the body of POST /v1/reservations/{name}/acquire.
type AcquireRequest struct {
	Holder     string   `json:"holder"`
	TTLSeconds *float64 `json:"ttl_seconds"`
	// Tenant is for admin credentials; others may name only their own.
	Tenant string `json:"tenant,omitempty"`
}

// RenewRequest is the body of POST /v1/reservations/{name}/renew.
type RenewRequest struct {
	Holder     string   `json:"holder"`
	Token      int64    `json:"token"`
	TTLSeconds *float64 `json:"ttl_seconds"`
	Tenant     string   `json:"tenant,omitempty"`
}

// ReleaseRequest is the body of POST /v1/reservations/{name}/release.
type ReleaseRequest struct {
	Holder string `json:"holder"`
	Token  int64  `json:"token"`
	Tenant string `json:"tenant,omitempty"`
}

// Grant is the answer to acquire and renew: the reservation as granted.
// TTLSeconds is the granted duration: a holder counts its trust window
// from when it sent the request, for TTLSeconds (minus a margin), and
// never compares ExpiresAt with its own clock.
type Grant struct {
	Name       string  `json:"name"`
	Tenant     string  `json:"tenant"`
	Holder     string  `json:"holder"`
	Token      int64   `json:"token"`
	AcquiredAt *Time   `json:"acquired_at"`
	ExpiresAt  *Time   `json:"expires_at"`
	TTLSeconds float64 `json:"ttl_seconds"`
}

// FromGrant converts a granted reservation and its TTL.
func FromGrant(r *job.Reservation, ttl time.Duration) Grant {
	return Grant{Name: r.Name, Tenant: r.Tenant, Holder: r.Holder, Token: r.Token,
		AcquiredAt: T(r.AcquiredAt), ExpiresAt: T(r.ExpiresAt), TTLSeconds: S(ttl)}
}

// Reservation is the reservation object of GET /v1/reservations[/{name}]:
// holder, token, acquired_at and expires_at are null when nobody holds
// it; History (the latest grants, newest first) only in GET of one.
type Reservation struct {
	Name       string             `json:"name"`
	Tenant     string             `json:"tenant"`
	Holder     *string            `json:"holder"`
	Token      *int64             `json:"token"`
	AcquiredAt *Time              `json:"acquired_at"`
	ExpiresAt  *Time              `json:"expires_at"`
	History    []ReservationEntry `json:"history,omitempty"`
}

// ReservationEntry is one grant in a reservation's history; Ended is
// "held", "released" or "expired", and EndedAt null while held.
type ReservationEntry struct {
	Holder     string `json:"holder"`
	Token      int64  `json:"token"`
	AcquiredAt *Time  `json:"acquired_at"`
	EndedAt    *Time  `json:"ended_at"`
	Ended      string `json:"ended"`
}

// FromReservation converts a stored reservation; the history is included
// (an empty list when none) when withHistory is set.
func FromReservation(r *job.Reservation, withHistory bool) Reservation {
	o := Reservation{Name: r.Name, Tenant: r.Tenant}
	if r.Holder != "" {
		h, tok := r.Holder, r.Token
		o.Holder, o.Token = &h, &tok
		o.AcquiredAt, o.ExpiresAt = T(r.AcquiredAt), T(r.ExpiresAt)
	}
	if withHistory {
		o.History = make([]ReservationEntry, len(r.History))
		for i, h := range r.History {
			o.History[i] = ReservationEntry{Holder: h.Holder, Token: h.Token, AcquiredAt: T(h.AcquiredAt),
				EndedAt: T(h.EndedAt), Ended: h.Ended}
		}
	}
	return o
}
