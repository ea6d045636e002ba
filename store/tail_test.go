package store_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/store/storetest"
)

// The outbox tail (the newest entries, kept in memory) answers Outbox
// exactly as Badger does: every read after any batch, ack and restart,
// including reads older than the tail and after more entries than it
// holds.
func TestOutboxTailMatchesBadger(t *testing.T) {
	enc := func(id string, e admission.Event) ([]byte, error) {
		if e.Tenant == "bad" {
			return nil, fmt.Errorf("cannot encode")
		}
		return []byte(fmt.Sprintf(`{"id":%q,"type":%q,"tenant":%q}`, id, e.Type, e.Tenant)), nil
	}
	dir := t.TempDir()
	open := func() *store.Badger {
		s, err := store.Open(dir, store.Options{Logger: zerolog.Nop(), EncodeEvent: enc})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer func() { s.Close() }()
	var last, acked uint64
	check := func(when string) {
		t.Helper()
		for _, after := range []uint64{0, acked, acked + 1, (acked + last) / 2, last - 1, last, last + 1} {
			for _, limit := range []int{1, 7, 256, 10000} {
				got, err := s.Outbox(after, limit)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s.OutboxFromDisk(after, limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) || len(got) > 0 && !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: Outbox(%d, %d): %d entries, Badger %d; first %+v, want %+v",
						when, after, limit, len(got), len(want), first(got), first(want))
				}
			}
		}
	}
	batch := func(n int) {
		b := &store.Batch{}
		for i := range n {
			e := storetest.Event(i)
			e.At = storetest.T0.Add(time.Duration(last+uint64(i)) * 1500 * time.Microsecond)
			b.Events = append(b.Events, e)
		}
		if err := s.Apply(b); err != nil {
			t.Fatal(err)
		}
		last += uint64(n)
	}
	ack := func(upTo uint64) {
		if err := s.AckOutbox(upTo); err != nil {
			t.Fatal(err)
		}
		acked = upTo
	}
	check("empty")
	batch(30)
	check("one batch")
	ack(10)
	check("acked in part")
	for range 200 { // 6,000 entries: more than the tail holds
		batch(30)
	}
	check("more than the tail")
	ack(last - 100)
	check("acked to near the end")
	ack(last)
	check("all acked")
	batch(5)
	check("after all acked")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Outbox(0, 10); err == nil {
		t.Fatal("Outbox after Close: no error")
	}
	s = open()
	check("after a restart")
	batch(40)
	check("after a restart and a batch")
	// A batch that fails writes nothing to the tail either.
	bad := storetest.Event(2)
	bad.Tenant = "bad"
	if err := s.Apply(&store.Batch{Events: []admission.Event{storetest.Event(1), bad}}); err == nil {
		t.Fatal("a batch with an event that cannot be encoded committed")
	}
	check("after a failed batch")
	batch(3)
	check("after a failed batch and a good one")
}

func first(es []store.OutboxEntry) any {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}
