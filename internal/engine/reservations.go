package engine

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// Bounds of the reservations that users (API clients) acquire.
const (
	// MinReservationTTL and MaxReservationTTL bound a reservation's TTL.
	MinReservationTTL = time.Second
	MaxReservationTTL = 24 * time.Hour
	// MaxHolderLen bounds a holder's length, in bytes.
	MaxHolderLen = 256
	// ReservedPrefix starts the names that no user may reserve, in any
	// tenant: they are kept for Gantry's own reservations (such as
	// [LeaderReservation], which lives in tenant "", out of users' reach).
	ReservedPrefix = "gantry:"
)

// ReservationListParams page [Engine.ListReservations].
type ReservationListParams struct {
	Tenant string // "" lists every tenant's (an admin)
	Limit  int    // DefaultPageSize when not positive, at most MaxPageSize
	Cursor string // from a previous page; "" for the first
}

// The user-facing reservations: the same primitive as the engine's
// leader election, scoped to a tenant. Expiry is judged with the engine's
// clock only (RELIABILITY.md rule 1). Tenant "" is the engine's own
// namespace: these methods refuse it, so no credential can touch the
// engine's reservations.

// AcquireReservation grants name of tenant to holder for ttl: a free name
// with a new token, greater than every token issued before; a name the
// holder already holds is extended, keeping its token. A name another
// holder holds is a *store.HeldError (which wraps store.ErrConflict). Bad
// arguments are a *job.FieldError naming the field.
func (e *Engine) AcquireReservation(ctx context.Context, tenant, name, holder string, ttl time.Duration) (*job.Reservation, error) {
	if err := checkReservation(tenant, name, holder, ttl, true); err != nil {
		return nil, err
	}
	r, err := e.st.AcquireReservation(ctx, &store.AcquireReservationParams{
		Tenant: tenant, Name: name, Holder: holder, TTL: ttl, Now: e.now(),
	})
	if err != nil {
		return nil, fmt.Errorf("engine: acquire reservation %s: %w", name, err)
	}
	return r, nil
}

// RenewReservation extends holder's grant of name, with token, to ttl from
// now. A grant that is no longer current (expired, released, or another
// token) is store.ErrConflict (wrapped) and nothing changes.
func (e *Engine) RenewReservation(ctx context.Context, tenant, name, holder string, token int64, ttl time.Duration) (*job.Reservation, error) {
	if err := checkReservation(tenant, name, holder, ttl, true); err != nil {
		return nil, err
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	r, err := e.st.RenewReservation(ctx, &store.RenewReservationParams{
		Tenant: tenant, Name: name, Holder: holder, Token: token, TTL: ttl, Now: e.now(),
	})
	if err != nil {
		return nil, fmt.Errorf("engine: renew reservation %s: reservation %s is not held by %q with token %d: %w", name, name, holder, token, err)
	}
	return r, nil
}

// ReleaseReservation frees holder's grant of name, with token, so that
// another holder may acquire it at once. A grant that is no longer current
// is store.ErrConflict (wrapped) and nothing changes.
func (e *Engine) ReleaseReservation(ctx context.Context, tenant, name, holder string, token int64) error {
	if err := checkReservation(tenant, name, holder, 0, false); err != nil {
		return err
	}
	if err := checkToken(token); err != nil {
		return err
	}
	err := e.st.ReleaseReservation(ctx, &store.ReleaseReservationParams{
		Tenant: tenant, Name: name, Holder: holder, Token: token, Now: e.now(),
	})
	if err != nil {
		return fmt.Errorf("engine: release reservation %s: reservation %s is not held by %q with token %d: %w", name, name, holder, token, err)
	}
	return nil
}

// GetReservation returns name of tenant as of now, with its history: the
// holder fields are empty when nobody holds it. A name never acquired is
// store.ErrNotFound (wrapped).
func (e *Engine) GetReservation(ctx context.Context, tenant, name string) (*job.Reservation, error) {
	if err := checkTenantName(tenant, name); err != nil {
		return nil, err
	}
	r, err := e.st.GetReservation(ctx, tenant, name, e.now())
	if err != nil {
		return nil, fmt.Errorf("engine: get reservation %s: reservation %s: %w", name, name, err)
	}
	return r, nil
}

// ListReservations returns a page of reservations, by tenant then name,
// without history, and the cursor of the next page ("" at the end). The
// engine's own reservations (tenant "") are never listed.
func (e *Engine) ListReservations(ctx context.Context, p ReservationListParams) ([]*job.Reservation, string, error) {
	if p.Tenant != "" && !job.ValidName(p.Tenant) {
		return nil, "", &job.FieldError{Field: "tenant", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	}
	afterTenant, afterName, err := parseReservationCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	rs, err := e.st.ListReservations(ctx, p.Tenant, e.now())
	if err != nil {
		return nil, "", fmt.Errorf("engine: list reservations: %w", err)
	}
	rs = slices.DeleteFunc(rs, func(r *job.Reservation) bool { return r.Tenant == "" })
	if p.Cursor != "" {
		i, _ := slices.BinarySearchFunc(rs, [2]string{afterTenant, afterName}, func(r *job.Reservation, k [2]string) int {
			if c := strings.Compare(r.Tenant, k[0]); c != 0 {
				return c
			}
			return strings.Compare(r.Name, k[1])
		})
		for i < len(rs) && rs[i].Tenant == afterTenant && rs[i].Name == afterName {
			i++
		}
		rs = rs[i:]
	}
	n := pageSize(p.Limit)
	if len(rs) <= n {
		return rs, "", nil
	}
	last := rs[n-1]
	return rs[:n], reservationCursor(last.Tenant, last.Name), nil
}

// reservationCursorPrefix marks the page cursors of reservation lists.
const reservationCursorPrefix = "res:"

func reservationCursor(tenant, name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(reservationCursorPrefix + tenant + "\x00" + name))
}

func parseReservationCursor(c string) (tenant, name string, err error) {
	if c == "" {
		return "", "", nil
	}
	b, derr := base64.RawURLEncoding.DecodeString(c)
	rest, ok := strings.CutPrefix(string(b), reservationCursorPrefix)
	if ok && derr == nil {
		tenant, name, ok = strings.Cut(rest, "\x00")
	}
	if derr != nil || !ok {
		return "", "", fmt.Errorf("engine: list reservations: bad cursor: %w", store.ErrInvalidCursor)
	}
	return tenant, name, nil
}

// checkTenantName checks a reservation's tenant and name.
func checkTenantName(tenant, name string) error {
	switch {
	case tenant == "":
		// The engine's own namespace: no user reaches it.
		return &job.FieldError{Field: "tenant", Problem: "is required: reservations belong to a tenant"}
	case !job.ValidName(tenant):
		return &job.FieldError{Field: "tenant", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	case !job.ValidName(name):
		return &job.FieldError{Field: "name", Problem: "must be 1 to 128 of A-Z a-z 0-9 . _ : -"}
	case strings.HasPrefix(name, ReservedPrefix):
		return &job.FieldError{Field: "name", Problem: "must not start with " + ReservedPrefix + " (reserved for Gantry's own reservations)"}
	}
	return nil
}

// checkReservation checks the arguments of a reservation call; the TTL
// only when needTTL.
func checkReservation(tenant, name, holder string, ttl time.Duration, needTTL bool) error {
	if err := checkTenantName(tenant, name); err != nil {
		return err
	}
	if err := CheckHolder(holder); err != nil {
		return err
	}
	if needTTL && (ttl < MinReservationTTL || ttl > MaxReservationTTL) {
		return &job.FieldError{Field: "ttl_seconds", Problem: fmt.Sprintf("must be from %g to %g", MinReservationTTL.Seconds(), MaxReservationTTL.Seconds())}
	}
	return nil
}

// CheckHolder checks a reservation holder: 1 to [MaxHolderLen] bytes of
// UTF-8 without control characters. Its error is a *job.FieldError
// naming "holder".
func CheckHolder(holder string) error {
	switch {
	case holder == "":
		return &job.FieldError{Field: "holder", Problem: "is required"}
	case len(holder) > MaxHolderLen || !utf8.ValidString(holder) || strings.ContainsFunc(holder, unicode.IsControl):
		return &job.FieldError{Field: "holder", Problem: fmt.Sprintf("must be 1 to %d bytes of UTF-8 without control characters", MaxHolderLen)}
	}
	return nil
}

func checkToken(token int64) error {
	if token <= 0 {
		return &job.FieldError{Field: "token", Problem: "must be a positive token from acquire"}
	}
	return nil
}
