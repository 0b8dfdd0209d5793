package rowscan

import "github.com/gantryhq/gantry/internal/job"

// ReservationRow is the current grant of a reservation as both stores keep
// it: times in Unix nanoseconds (see Nanos), an empty Holder for a name
// never acquired or released.
type ReservationRow struct {
	Holder            string
	Token             int64
	Acquired, Expires int64
}

// Held reports whether the row is a grant still unexpired at now.
func (r *ReservationRow) Held(now int64) bool { return r.Holder != "" && r.Expires > now }

// Record returns the reservation of tenant and name as of now, without
// its history: its holder, token and times only while the grant holds.
func (r *ReservationRow) Record(tenant, name string, now int64) *job.Reservation {
	res := &job.Reservation{Tenant: tenant, Name: name}
	if r.Held(now) {
		res.Holder, res.Token, res.AcquiredAt, res.ExpiresAt = r.Holder, r.Token, Time(r.Acquired), Time(r.Expires)
	}
	return res
}
