package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gantryhq/gantry/internal/auth"
	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/wire"
)

// Reservations (named leases), API.md §Reservations. Acquire, renew and
// release need the Work or Submit permission (a worker or a submitting
// service may hold one), reads need Read. A reservation belongs to the
// credential's tenant; an admin names one with ?tenant= or the body's
// tenant member (default "default"), and lists every tenant's without
// one. The engine's own reservations are out of reach: see
// [engine.ReservedPrefix].

// reservationTenant returns the tenant a reservation call acts on: the
// ?tenant= parameter or the body's tenant member (they must agree), as
// [tenantFor] allows.
func reservationTenant(r *http.Request, p auth.Principal, bodyTenant string) (string, error) {
	requested := bodyTenant
	if q := r.URL.Query().Get("tenant"); q != "" {
		if requested != "" && requested != q {
			return "", badParam("tenant", "differs from the body's tenant member")
		}
		requested = q
	}
	if requested != "" && !job.ValidName(requested) {
		return "", badParam("tenant", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
	}
	return tenantFor(p, requested, job.DefaultTenant)
}

// reservationWriter is what acquire, renew and release need: any of the
// Submit and Work permissions.
func reservationWriter(p auth.Principal) error {
	if p.Allows(auth.Submit) || p.Allows(auth.Work) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, detail: "the credential's role does not allow this operation"}
}

// ttlParam converts a required ttl_seconds member.
func ttlParam(s *float64) (time.Duration, error) {
	if s == nil {
		return 0, badInput(&job.FieldError{Field: "ttl_seconds", Problem: "is required"})
	}
	return wire.Seconds(s), nil
}

// acquireReservation is POST /v1/reservations/{name}/acquire {holder,
// ttl_seconds}: 200 with the grant, or 409 (reservation-held) naming the
// holder and when its grant expires.
func (a *API) acquireReservation(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := reservationWriter(p); err != nil {
		return err
	}
	var req wire.AcquireRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ttl, err := ttlParam(req.TTLSeconds)
	if err != nil {
		return err
	}
	tenant, err := reservationTenant(r, p, req.Tenant)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	g, err := a.eng.AcquireReservation(r.Context(), tenant, name, req.Holder, ttl)
	var held *store.HeldError
	if errors.As(err, &held) {
		return &apiError{status: http.StatusConflict, slug: "reservation-held",
			detail: fmt.Sprintf("reservation %s is held by %q until %s", name, held.Holder, held.ExpiresAt.UTC().Format(wire.TimeFormat)),
			holder: held.Holder, expiresAt: wire.T(held.ExpiresAt)}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromGrant(g, ttl))
}

// renewReservation is POST /v1/reservations/{name}/renew {holder, token,
// ttl_seconds}: 200 with the grant, or 409 (reservation-lost) when the
// grant is no longer current.
func (a *API) renewReservation(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := reservationWriter(p); err != nil {
		return err
	}
	var req wire.RenewRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ttl, err := ttlParam(req.TTLSeconds)
	if err != nil {
		return err
	}
	tenant, err := reservationTenant(r, p, req.Tenant)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	g, err := a.eng.RenewReservation(r.Context(), tenant, name, req.Holder, req.Token, ttl)
	if errors.Is(err, store.ErrConflict) {
		return a.lostReservation(r.Context(), tenant, name, req.Holder, req.Token)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromGrant(g, ttl))
}

// releaseReservation is POST /v1/reservations/{name}/release {holder,
// token}: 204, or 409 (reservation-lost) when the grant is not current.
func (a *API) releaseReservation(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := reservationWriter(p); err != nil {
		return err
	}
	var req wire.ReleaseRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	tenant, err := reservationTenant(r, p, req.Tenant)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	err = a.eng.ReleaseReservation(r.Context(), tenant, name, req.Holder, req.Token)
	if errors.Is(err, store.ErrConflict) {
		return a.lostReservation(r.Context(), tenant, name, req.Holder, req.Token)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lostReservation is the 409 of a renewal or release whose grant is not
// current; when someone else holds the name now, it names them.
func (a *API) lostReservation(ctx context.Context, tenant, name, holder string, token int64) error {
	e := &apiError{status: http.StatusConflict, slug: "reservation-lost",
		detail: fmt.Sprintf("reservation %s is not held by %q with token %d: it expired, was released or was never granted", name, holder, token)}
	cur, err := a.eng.GetReservation(ctx, tenant, name)
	if err == nil && cur.Holder != "" && (cur.Holder != holder || cur.Token != token) {
		e.holder, e.expiresAt = cur.Holder, wire.T(cur.ExpiresAt)
		e.detail = fmt.Sprintf("reservation %s is not held by %q with token %d: %q holds it until %s",
			name, holder, token, cur.Holder, cur.ExpiresAt.UTC().Format(wire.TimeFormat))
	}
	return e
}

// getReservation is GET /v1/reservations/{name}[?tenant=]: the current
// holder (null when free) and the latest grants.
func (a *API) getReservation(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	tenant, err := reservationTenant(r, p, "")
	if err != nil {
		return err
	}
	res, err := a.eng.GetReservation(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, wire.FromReservation(res, true))
}

// listReservations is GET /v1/reservations[?tenant=&limit=&cursor=]: a
// page of reservations by tenant then name, without history.
func (a *API) listReservations(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	lp := engine.ReservationListParams{Tenant: p.Scope()}
	var err error
	if lp.Limit, lp.Cursor, err = page(q); err != nil {
		return err
	}
	if t := q.Get("tenant"); t != "" {
		if !job.ValidName(t) {
			return badParam("tenant", "must be 1 to 128 of A-Z a-z 0-9 . _ : -")
		}
		if lp.Tenant, err = tenantFor(p, t, ""); err != nil {
			return err
		}
	}
	rs, next, err := a.eng.ListReservations(r.Context(), lp)
	if err != nil {
		return err
	}
	items := make([]wire.Reservation, len(rs))
	for i, res := range rs {
		items[i] = wire.FromReservation(res, false)
	}
	return writeJSON(w, http.StatusOK, wire.NewPage(items, next))
}
