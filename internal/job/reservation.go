package job

import "time"

// How a reservation ended, in [ReservationEntry.Ended].
const (
	// ReservationHeld: the reservation is still held (unexpired).
	ReservationHeld = "held"
	// ReservationReleased: its holder released it.
	ReservationReleased = "released"
	// ReservationExpired: its TTL passed without a renewal.
	ReservationExpired = "expired"
)

// Reservation is a named lease: at most one holder at a time, each grant
// identified by a fencing token greater than every token issued before.
// Names are per tenant. When nobody holds the name (released, expired),
// Holder is "", Token 0 and AcquiredAt, ExpiresAt zero.
type Reservation struct {
	Tenant     string
	Name       string
	Holder     string
	Token      int64
	AcquiredAt time.Time // when the current holder was granted Token
	ExpiresAt  time.Time
	// History holds the latest grants (at most 10), newest first; filled
	// by the store's GetReservation only.
	History []ReservationEntry
}

// ReservationEntry is one grant of a reservation and how it ended.
type ReservationEntry struct {
	Holder     string
	Token      int64
	AcquiredAt time.Time
	EndedAt    time.Time // zero while held
	Ended      string    // ReservationHeld, ReservationReleased or ReservationExpired
}

// ReservationHistoryLen is how many grants a reservation's history keeps.
const ReservationHistoryLen = 10
