package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// Reservations are named leases: at most one holder holds a name of a
// tenant at a time, for a TTL it renews, and each grant carries a fencing
// token greater than every token issued before. The calls act on the
// token's tenant ("default" for the admin token). Names are 1 to 128 of
// A-Z a-z 0-9 . _ : - and may not start with "gantry:"; holders are 1 to
// 256 bytes; TTLs 1 s to 24 h. [Client.Hold] and [Singleton] build on
// them.

// ErrReservationLost: a reservation is no longer held by the caller: a
// renewal or release found it expired, released or granted to another
// holder (HTTP 409), or [Client.Hold] could not renew it within its trust
// window. Errors that match it from a renewal or release also match
// [ErrConflict].
var ErrReservationLost = errors.New("client: reservation lost")

// Reservation is a reservation as the server sees it. When nobody holds
// it, Holder is "", Token 0 and the times zero.
type Reservation struct {
	// Name and Tenant identify the reservation.
	Name, Tenant string
	// Holder holds it with Token since AcquiredAt.
	Holder string
	Token  int64
	// AcquiredAt and ExpiresAt are by the server's clock: show them, do not
	// compare them with the local clock.
	AcquiredAt, ExpiresAt time.Time
	// TTL is the duration granted, from the server's receipt of an
	// acquire or renew request (set by those calls only).
	TTL time.Duration
	// History holds the latest grants, newest first (set by
	// [Client.GetReservation] only).
	History []ReservationEntry
}

// ReservationEntry is one grant in a reservation's history.
type ReservationEntry struct {
	Holder     string
	Token      int64
	AcquiredAt time.Time
	// EndedAt is zero while the grant is held.
	EndedAt time.Time
	// Ended is "held", "released" or "expired".
	Ended string
}

// ReservationHeldError is the error of [Client.AcquireReservation] when
// another holder holds the name. It matches [ErrConflict]; errors.As
// also finds its *[Error].
type ReservationHeldError struct {
	// Name is the reservation asked for.
	Name string
	// Holder holds it until ExpiresAt, by the server's clock.
	Holder    string
	ExpiresAt time.Time
	// Err is the server's answer.
	Err *Error
}

// Error implements error.
func (e *ReservationHeldError) Error() string {
	return fmt.Sprintf("client: reservation %s is held by %q until %s", e.Name, e.Holder, e.ExpiresAt.UTC().Format(time.RFC3339))
}

// Unwrap returns the server's answer.
func (e *ReservationHeldError) Unwrap() error { return e.Err }

func reservationPath(name, tail string) string {
	return "/v1/reservations/" + url.PathEscape(name) + tail
}

// NewHolder returns a holder name unique to this call, made of the host
// name, the process ID and a random suffix: "host:1234:9f86d081".
func NewHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b[:])
}

// AcquireReservation asks for name for holder, for ttl: a free name is
// granted with a new token; a name holder already holds is extended,
// keeping its token. A name another holder holds is a
// *[ReservationHeldError]. Count the grant from when the call was made,
// for the returned TTL: the server's clock decides when it expires.
func (c *Client) AcquireReservation(ctx context.Context, name, holder string, ttl time.Duration) (*Reservation, error) {
	body := wire.AcquireRequest{Holder: holder, TTLSeconds: ptr(wire.S(ttl))}
	var w wire.Grant
	_, err := c.do(ctx, call{method: "POST", path: reservationPath(name, "/acquire"), body: &body, out: &w})
	var e *Error
	if errors.As(err, &e) && e.Status == 409 && e.Holder != "" {
		return nil, &ReservationHeldError{Name: name, Holder: e.Holder, ExpiresAt: e.ExpiresAt, Err: e}
	}
	if err != nil {
		return nil, err
	}
	return fromWireGrant(&w), nil
}

// RenewReservation extends holder's grant of name, with token, to ttl
// from the server's receipt of the call. A grant that is no longer held
// is an error matching [ErrReservationLost] and [ErrConflict].
func (c *Client) RenewReservation(ctx context.Context, name, holder string, token int64, ttl time.Duration) (*Reservation, error) {
	body := wire.RenewRequest{Holder: holder, Token: token, TTLSeconds: ptr(wire.S(ttl))}
	var w wire.Grant
	if _, err := c.do(ctx, call{method: "POST", path: reservationPath(name, "/renew"), body: &body, out: &w}); err != nil {
		return nil, lostError(err)
	}
	return fromWireGrant(&w), nil
}

// ReleaseReservation frees holder's grant of name, with token, so that
// another holder may acquire it at once. A grant that is no longer held
// is an error matching [ErrReservationLost] and [ErrConflict].
func (c *Client) ReleaseReservation(ctx context.Context, name, holder string, token int64) error {
	body := wire.ReleaseRequest{Holder: holder, Token: token}
	_, err := c.do(ctx, call{method: "POST", path: reservationPath(name, "/release"), body: &body})
	return lostError(err)
}

// lostError makes a 409 answer match ErrReservationLost too.
func lostError(err error) error {
	if errors.Is(err, ErrConflict) {
		return fmt.Errorf("%w: %w", ErrReservationLost, err)
	}
	return err
}

// GetReservation returns a reservation with its history. A name never
// acquired (in the token's tenant) is [ErrNotFound].
func (c *Client) GetReservation(ctx context.Context, name string) (*Reservation, error) {
	var w wire.Reservation
	if _, err := c.do(ctx, call{method: "GET", path: reservationPath(name, ""), out: &w}); err != nil {
		return nil, err
	}
	return fromWireReservation(&w), nil
}

// ListReservationsOptions filter and page [Client.ListReservations].
type ListReservationsOptions struct {
	// Tenant, for admin tokens, lists one tenant's reservations; empty
	// lists every tenant's. Other tokens list their own tenant's.
	Tenant string
	// Limit is the number of reservations per page: 1 to 1000. Defaults
	// to the server's (50).
	Limit int
	// Cursor starts the list at a page returned by
	// [Client.ListReservationsPage].
	Cursor string
}

func (o *ListReservationsOptions) query(cursor string) url.Values {
	q := url.Values{}
	if o.Tenant != "" {
		q.Set("tenant", o.Tenant)
	}
	return pageQuery(q, o.Limit, cursor)
}

// ListReservationsPage returns one page of reservations, by tenant then
// name, without their history.
func (c *Client) ListReservationsPage(ctx context.Context, o ListReservationsOptions) (Page[*Reservation], error) {
	return getPage(ctx, c, "/v1/reservations", o.query(o.Cursor), fromWireReservation)
}

// ListReservations iterates over the reservations, by tenant then name,
// reading pages as it goes. An error ends the iteration after it is
// yielded.
func (c *Client) ListReservations(ctx context.Context, o ListReservationsOptions) iter.Seq2[*Reservation, error] {
	return all(ctx, o.Cursor, func(ctx context.Context, cursor string) (Page[*Reservation], error) {
		return getPage(ctx, c, "/v1/reservations", o.query(cursor), fromWireReservation)
	})
}

func fromWireGrant(w *wire.Grant) *Reservation {
	return &Reservation{Name: w.Name, Tenant: w.Tenant, Holder: w.Holder, Token: w.Token,
		AcquiredAt: tm(w.AcquiredAt), ExpiresAt: tm(w.ExpiresAt), TTL: seconds(w.TTLSeconds)}
}

func fromWireReservation(w *wire.Reservation) *Reservation {
	r := &Reservation{Name: w.Name, Tenant: w.Tenant, AcquiredAt: tm(w.AcquiredAt), ExpiresAt: tm(w.ExpiresAt)}
	if w.Holder != nil {
		r.Holder = *w.Holder
	}
	if w.Token != nil {
		r.Token = *w.Token
	}
	for _, h := range w.History {
		r.History = append(r.History, ReservationEntry{Holder: h.Holder, Token: h.Token,
			AcquiredAt: tm(h.AcquiredAt), EndedAt: tm(h.EndedAt), Ended: h.Ended})
	}
	return r
}

func ptr[T any](v T) *T { return &v }
