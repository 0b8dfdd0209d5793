package job

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/google/uuid"
)

var idGen struct {
	sync.Mutex
	lastMS  int64
	counter uint16 // 12 bits used
}

// NewID returns a UUIDv7 (RFC 9562) whose timestamp is now, in its canonical
// string form. IDs made by one process are strictly increasing, even within
// a millisecond and if now goes backwards, so they sort in creation order.
func NewID(now time.Time) string {
	ms := now.UnixMilli()
	idGen.Lock()
	if ms <= idGen.lastMS {
		ms = idGen.lastMS
		idGen.counter++
		if idGen.counter >= 1<<12 {
			ms++
			idGen.counter = 0
		}
	} else {
		idGen.counter = 0
	}
	idGen.lastMS = ms
	ctr := idGen.counter
	idGen.Unlock()

	var u uuid.UUID
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(ms))
	copy(u[0:6], ts[2:8])
	u[6] = 0x70 | byte(ctr>>8)
	u[7] = byte(ctr)
	_, _ = rand.Read(u[8:])
	u[8] = 0x80 | u[8]&0x3f
	return u.String()
}

// ValidID reports whether s is a canonical UUID string.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
