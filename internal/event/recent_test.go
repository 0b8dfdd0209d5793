package event_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

// eventfulStore is a SQLite store whose change callbacks carry the
// committed events (store.Change.Events), as the PostgreSQL store's do,
// except the commit whose last seq is withhold; it counts the ReadEvents
// calls made to it.
type eventfulStore struct {
	*sqlite.Store
	reads    atomic.Int64
	withhold atomic.Int64

	mu   sync.Mutex
	prev int64 // newest seq reported so far
}

func (s *eventfulStore) OnChange(f func(store.Change)) {
	s.Store.OnChange(func(c store.Change) {
		if c.LastSeq > 0 {
			s.mu.Lock()
			evs, err := s.Store.ReadEvents(context.Background(), s.prev, int(c.LastSeq-s.prev))
			s.prev = max(s.prev, c.LastSeq)
			s.mu.Unlock()
			if err == nil && c.LastSeq != s.withhold.Load() {
				c.Events = evs
			}
		}
		f(c)
	})
}

func (s *eventfulStore) ReadEvents(ctx context.Context, after int64, limit int) ([]job.Event, error) {
	s.reads.Add(1)
	return s.Store.ReadEvents(ctx, after, limit)
}

// TestLocalEventsNeedNoRead checks that a hub given the events of local
// commits fans them out without reading the store, and that when one
// commit's events are missing it reads them, in order, with no repeat.
func TestLocalEventsNeedNoRead(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		inner, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "gantry.db")})
		if err != nil {
			t.Fatal(err)
		}
		defer inner.Close()
		st := &eventfulStore{Store: inner}
		hub := event.NewHub(st, event.Options{})
		done := make(chan error)
		go func() { done <- hub.Run(context.Background()) }()
		defer func() {
			hub.Close()
			<-done
		}()
		h := &harness{t: t, st: inner, hub: hub}

		sub := h.subscribe(event.Filter{}, 0)
		synctest.Wait()
		h.insert("a", 3)
		synctest.Wait()
		readsBefore := st.reads.Load()
		h.insert("a", 2)
		h.insert("b", 4)
		got := receive(t, sub, 9)
		if r := st.reads.Load() - readsBefore; r != 0 {
			t.Errorf("hub read the store %d times for events it was given", r)
		}

		st.withhold.Store(11)
		h.insert("c", 2) // events 10-11 only in the store
		h.insert("d", 1) // 12, given
		got = append(got, receive(t, sub, 3)...)
		if diff := cmp.Diff(seqRange(1, 12), seqs(got)); diff != "" {
			t.Errorf("seqs delivered (-want +got):\n%s", diff)
		}
		if r := st.reads.Load() - readsBefore; r == 0 {
			t.Errorf("hub never read the store for the events it was not given")
		}
		quiet(t, sub)
	})
}
