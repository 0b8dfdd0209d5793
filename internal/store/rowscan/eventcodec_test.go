package rowscan

import (
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

func TestChunkCorrupt(t *testing.T) {
	data := EncodeChunk([]job.Event{{Kind: job.EventStarted, At: time.Unix(1, 0), Tenant: "tenant", JobID: "job"}})
	for _, bad := range [][]byte{nil, {9}, data[:len(data)-2], append(append([]byte{}, data[:1]...), 200, 1)} {
		if _, err := DecodeChunk(nil, bad, 1, 0); err == nil {
			t.Errorf("DecodeChunk(%v) succeeded, want an error", bad)
		}
	}
}
