package store_test

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/store/storetest"
)

func TestMemConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := store.NewMem()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestBadgerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openBadger(t, t.TempDir(), false)
	})
}

// openBadger opens a Badger store closed at the end of the test.
func openBadger(t testing.TB, dir string, sync bool) *store.Badger {
	t.Helper()
	s, err := store.Open(dir, store.Options{Sync: sync, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
