package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
	"github.com/gantryhq/gantry/internal/store/storetest"
)

func newStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "gantry.db")})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestConformance runs the store conformance suite against SQLite.
func TestConformance(t *testing.T) {
	storetest.Run(t, newStore, storetest.WithRestart(restartable))
}

// restartable opens a store on a new file and returns it with a function
// that closes the current store and opens the file again.
func restartable(t *testing.T) (store.Store, func() store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gantry.db")
	var cur *sqlite.Store
	open := func() store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		cur = s
		return s
	}
	t.Cleanup(func() {
		if err := cur.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	first := open()
	return first, func() store.Store {
		if err := cur.Close(); err != nil {
			t.Fatalf("Close before restart: %v", err)
		}
		return open()
	}
}
