package rowscan

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

func TestChunkRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	evs := []job.Event{
		{Seq: 7, Kind: job.EventSubmitted, At: at, Tenant: "t", JobID: "j1", Type: "x", Queue: "q", State: gantry.StateQueued},
		{Seq: 8, Kind: job.EventFailed, At: at.Add(time.Second), Tenant: "t", JobID: "j1", BatchID: "b", Type: "x", Queue: "q", State: gantry.StateFailed, Attempt: 3, Error: "boom ✗ \x00"},
		{Seq: 9, Kind: job.EventBatchDone, At: at, Tenant: "t", BatchID: "b"},
	}
	data := EncodeChunk(evs)
	for _, tc := range []struct {
		after int64
		want  []job.Event
	}{{0, evs}, {7, evs[1:]}, {9, nil}} {
		got, err := DecodeChunk(nil, data, 7, tc.after)
		if err != nil {
			t.Fatalf("DecodeChunk(after %d): %v", tc.after, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("DecodeChunk(after %d) mismatch (-want +got):\n%s", tc.after, diff)
		}
	}
}

func TestChunkRoundTripShared(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 1, time.UTC)
	id := "01a2483a-f2f5-7001-8da5-4f64d8ff8207"
	evs := []job.Event{
		{Seq: 1, Kind: job.EventStarted, At: at, Tenant: "acme", JobID: id, BatchID: "b1", Type: "email.send", Queue: "default", State: gantry.StateRunning, Attempt: 1},
		{Seq: 2, Kind: job.EventStarted, At: at, Tenant: "acme", JobID: "01A2483A-F2F5-7001-8DA5-4F64D8FF8207", BatchID: "b1", Type: "email.send", Queue: "default", State: gantry.StateRunning, Attempt: 1},
		{Seq: 3, Kind: job.EventSucceeded, At: at.Add(-time.Millisecond), Tenant: "acme", JobID: "not-a-uuid", BatchID: "b1", Type: "report", Queue: "default", State: gantry.StateSucceeded, Attempt: 2},
		{Seq: 4, Kind: job.EventFailed, At: at.Add(time.Hour), Tenant: "", JobID: "01a2483a-f2f5-7001-8da5-4f64d8ff820g", Type: "report", Queue: "other", State: gantry.StateFailed, Error: "x"},
		{Seq: 5, Kind: job.EventBatchDone, At: at.Add(time.Hour), Tenant: "", BatchID: "b2"},
	}
	data := EncodeChunk(evs)
	got, err := DecodeChunk(nil, data, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	// A hundred events of one batch: small enough to stay in the row.
	many := make([]job.Event, 100)
	for i := range many {
		many[i] = job.Event{Kind: job.EventSucceeded, At: at, Tenant: "acme", JobID: job.NewID(at), BatchID: "01a2483a-f2f5-7001-8da5-4f64d8ff8299", Type: "email.send", Queue: "default", State: gantry.StateSucceeded, Attempt: 1}
	}
	data = EncodeChunk(many)
	if got, err := DecodeChunk(nil, data, 1, 0); err != nil || len(got) != len(many) || got[99].JobID != many[99].JobID {
		t.Fatalf("DecodeChunk of 100 events: %d events, %v", len(got), err)
	}
	if n := len(data); n > 2000 {
		t.Errorf("a chunk of 100 like events takes %d bytes, want at most 2000", n)
	}
}

// TestChunkVersion1 decodes a chunk in the format of the first version,
// which databases written before version 2 still hold.
func TestChunkVersion1(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 5, time.UTC)
	b := []byte{1}
	for _, e := range []job.Event{
		{Kind: job.EventStarted, State: gantry.StateRunning, At: at, Attempt: 2, Tenant: "t", JobID: "j", BatchID: "b", Type: "x", Queue: "q", Error: ""},
		{Kind: job.EventFailed, State: gantry.StateFailed, At: at.Add(time.Second), Attempt: 2, Tenant: "t", JobID: "j", Type: "x", Queue: "q", Error: "boom"},
	} {
		b = append(b, byte(slices.Index(job.Kinds, e.Kind)+1), byte(slices.Index(gantry.States, e.State)+1))
		b = binary.AppendVarint(b, e.At.UnixNano())
		b = binary.AppendUvarint(b, uint64(e.Attempt))
		for _, s := range []string{e.Tenant, e.JobID, e.BatchID, e.Type, e.Queue, e.Error} {
			b = appendString(b, s)
		}
	}
	got, err := DecodeChunk(nil, b, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []job.Event{
		{Seq: 10, Kind: job.EventStarted, State: gantry.StateRunning, At: at, Attempt: 2, Tenant: "t", JobID: "j", BatchID: "b", Type: "x", Queue: "q"},
		{Seq: 11, Kind: job.EventFailed, State: gantry.StateFailed, At: at.Add(time.Second), Attempt: 2, Tenant: "t", JobID: "j", Type: "x", Queue: "q", Error: "boom"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("version 1 mismatch (-want +got):\n%s", diff)
	}
}

func TestChunkCorrupt(t *testing.T) {
	data := EncodeChunk([]job.Event{{Kind: job.EventStarted, At: time.Unix(1, 0), Tenant: "tenant", JobID: "job"}})
	for _, bad := range [][]byte{nil, {9}, data[:len(data)-2], append(append([]byte{}, data[:1]...), 200, 1)} {
		if _, err := DecodeChunk(nil, bad, 1, 0); err == nil {
			t.Errorf("DecodeChunk(%v) succeeded, want an error", bad)
		}
	}
}
