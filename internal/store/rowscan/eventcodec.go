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
// took a noticeable share of the writer's time. A chunk is a version byte,
// then for each event: its kind and state as indexes into job.Kinds and
// gantry.States, the time as Unix nanoseconds, the attempt, and the
// strings tenant, job id, batch id, type, queue and error, each as a
// length and its bytes. Seq is not stored: the events of a chunk are
// numbered from its first_seq.

const chunkVersion = 1

// ErrBadChunk is the error of DecodeChunk for data EncodeChunk did not make.
var ErrBadChunk = errors.New("corrupt event chunk")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// EncodeChunk encodes events for the event_chunks table of both stores.
func EncodeChunk(evs []job.Event) []byte {
	b := make([]byte, 0, 1+len(evs)*96)
	b = append(b, chunkVersion)
	for i := range evs {
		e := &evs[i]
		b = append(b, byte(slices.Index(job.Kinds, e.Kind)+1), byte(slices.Index(gantry.States, e.State)+1))
		b = binary.AppendVarint(b, e.At.UnixNano())
		b = binary.AppendUvarint(b, uint64(max(e.Attempt, 0)))
		for _, s := range [...]string{e.Tenant, e.JobID, e.BatchID, e.Type, e.Queue, e.Error} {
			b = appendString(b, s)
		}
	}
	return b
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
	if r.byte() != chunkVersion {
		return out, ErrBadChunk
	}
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
		e.At = time.Unix(0, r.varint()).UTC()
		e.Attempt = int(r.uvarint())
		e.Tenant, e.JobID, e.BatchID, e.Type, e.Queue, e.Error = r.string(), r.string(), r.string(), r.string(), r.string(), r.string()
		if r.err != nil {
			return out, r.err
		}
		e.Seq = seq
		if seq > after {
			out = append(out, e)
		}
	}
	return out, r.err
}
