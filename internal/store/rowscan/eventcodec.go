package rowscan

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

// Event chunks are stored in a compact binary form: encoding them as JSON
// took a noticeable share of the writer's time, and a chunk small enough
// to stay in its row (under about 2 KB for a batch of a hundred events)
// spares the database compressing it and writing it out of line.
//
// A chunk is a version byte, then its events. Version 2 (written now)
// stores each event as its kind and state (indexes into job.Kinds and
// gantry.States), a flags byte, the time as the difference in Unix
// nanoseconds from the previous event's (from zero for the first), the
// attempt, then the strings tenant, job id, batch id, type, queue and
// error, each as a length and its bytes, except where a flag says that
// it equals the previous event's (tenant, batch id, type, queue), that
// it is empty (error), or that the job id is a canonical UUID stored as
// its bytes: how many leading bytes it shares with the previous UUID job
// id of the chunk (ids made at once share their time prefix), then the
// others. Version 1 (still read) had no flags byte, absolute times
// and every string in full. Seq is not stored: the events of a chunk are
// numbered from its first_seq.

const (
	chunkV1 = 1
	chunkV2 = 2
)

// Flags of a version 2 event.
const (
	sameTenant = 1 << iota
	sameBatch
	sameType
	sameQueue
	binaryID
	noError
)

// ErrBadChunk is the error of DecodeChunk for data EncodeChunk did not make.
var ErrBadChunk = errors.New("corrupt event chunk")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// EncodeChunk encodes events for the event_chunks table of both stores.
func EncodeChunk(evs []job.Event) []byte {
	b := make([]byte, 0, 1+len(evs)*40)
	b = append(b, chunkV2)
	var (
		prev   job.Event
		prevAt int64
		prevID [16]byte
	)
	for i := range evs {
		e := &evs[i]
		var flags byte
		if i > 0 {
			if e.Tenant == prev.Tenant {
				flags |= sameTenant
			}
			if e.BatchID == prev.BatchID {
				flags |= sameBatch
			}
			if e.Type == prev.Type {
				flags |= sameType
			}
			if e.Queue == prev.Queue {
				flags |= sameQueue
			}
		}
		id, isUUID := parseUUID(e.JobID)
		if isUUID {
			flags |= binaryID
		}
		if e.Error == "" {
			flags |= noError
		}
		b = append(b, byte(slices.Index(job.Kinds, e.Kind)+1), byte(slices.Index(gantry.States, e.State)+1), flags)
		at := e.At.UnixNano()
		b = binary.AppendVarint(b, at-prevAt)
		prevAt = at
		b = binary.AppendUvarint(b, uint64(max(e.Attempt, 0)))
		if flags&sameTenant == 0 {
			b = appendString(b, e.Tenant)
		}
		if isUUID {
			k := 0
			for k < 16 && id[k] == prevID[k] {
				k++
			}
			b = append(b, byte(k))
			b = append(b, id[k:]...)
			prevID = id
		} else {
			b = appendString(b, e.JobID)
		}
		if flags&sameBatch == 0 {
			b = appendString(b, e.BatchID)
		}
		if flags&sameType == 0 {
			b = appendString(b, e.Type)
		}
		if flags&sameQueue == 0 {
			b = appendString(b, e.Queue)
		}
		if flags&noError == 0 {
			b = appendString(b, e.Error)
		}
		prev = *e
	}
	return b
}

// parseUUID returns the 16 bytes of s when s is a UUID in canonical form
// (lowercase hex, 8-4-4-4-12), which formatUUID gives back exactly.
func parseUUID(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
		i += 2
	}
	return id, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// formatUUID is the canonical form of id.
func formatUUID(id []byte) string {
	const digits = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = digits[c>>4], digits[c&0xf]
		j += 2
	}
	return string(s[:])
}

// chunkReader decodes a chunk.
type chunkReader struct {
	b   []byte
	err error
}

func (r *chunkReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = ErrBadChunk
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *chunkReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrBadChunk
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = ErrBadChunk
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *chunkReader) string() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = ErrBadChunk
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// DecodeChunk decodes a chunk whose first event has sequence number first,
// appending its events with Seq > after to out.
func DecodeChunk(out []job.Event, data []byte, first, after int64) ([]job.Event, error) {
	r := chunkReader{b: data}
	version := r.byte()
	if version != chunkV1 && version != chunkV2 {
		return out, ErrBadChunk
	}
	var (
		prev   job.Event
		prevAt int64
		prevID [16]byte
	)
	for seq := first; len(r.b) > 0 && r.err == nil; seq++ {
		var e job.Event
		kind, state := int(r.byte()), int(r.byte())
		if kind < 1 || kind > len(job.Kinds) || state > len(gantry.States) {
			return out, ErrBadChunk
		}
		e.Kind = job.Kinds[kind-1]
		if state > 0 {
			e.State = gantry.States[state-1]
		}
		if version == chunkV1 {
			e.At = time.Unix(0, r.varint()).UTC()
			e.Attempt = int(r.uvarint())
			e.Tenant, e.JobID, e.BatchID, e.Type, e.Queue, e.Error = r.string(), r.string(), r.string(), r.string(), r.string(), r.string()
		} else {
			flags := r.byte()
			prevAt += r.varint()
			e.At = time.Unix(0, prevAt).UTC()
			e.Attempt = int(r.uvarint())
			e.Tenant = r.stringOr(flags&sameTenant != 0, prev.Tenant)
			if flags&binaryID != 0 {
				k := int(r.byte())
				if k > 16 {
					return out, ErrBadChunk
				}
				copy(prevID[k:], r.bytes(16-k))
				e.JobID = formatUUID(prevID[:])
			} else {
				e.JobID = r.string()
			}
			e.BatchID = r.stringOr(flags&sameBatch != 0, prev.BatchID)
			e.Type = r.stringOr(flags&sameType != 0, prev.Type)
			e.Queue = r.stringOr(flags&sameQueue != 0, prev.Queue)
			e.Error = r.stringOr(flags&noError != 0, "")
		}
		if r.err != nil {
			return out, r.err
		}
		e.Seq = seq
		prev = e
		if seq > after {
			out = append(out, e)
		}
	}
	return out, r.err
}

// stringOr returns s when given (the field was not stored), else the next
// string.
func (r *chunkReader) stringOr(given bool, s string) string {
	if given {
		return s
	}
	return r.string()
}

// bytes returns the next n bytes.
func (r *chunkReader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = ErrBadChunk
		return make([]byte, n)
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}
