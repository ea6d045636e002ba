package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/store/storetest"
)

// With an EventEncoder the outbox keeps each event in its published form,
// made with its final id, and returns it as Data with the event's type,
// tenant and instant; entries written before (JSON records) still read
// back whole.
func TestOutboxPublishedForm(t *testing.T) {
	enc := testWire
	for name, open := range map[string]func(t *testing.T) store.Store{
		"mem": func(*testing.T) store.Store { return store.NewMem().WithEventEncoder(enc) },
		"badger": func(t *testing.T) store.Store {
			s, err := store.Open(t.TempDir(), store.Options{Logger: zerolog.Nop(), EncodeEvent: enc})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			at := storetest.T0.Add(1500 * time.Millisecond)
			ev := admission.Event{Type: admission.EventCallEnded, Tenant: "acme", CallID: "c;1", At: at,
				Call: &admission.CallInfo{Billed: time.Second}}
			if err := s.Apply(&store.Batch{Events: []admission.Event{ev, storetest.Event(2)}}); err != nil {
				t.Fatal(err)
			}
			o, err := s.Outbox(0, 10)
			if err != nil || len(o) != 2 {
				t.Fatalf("outbox %+v, %v", o, err)
			}
			want := fmt.Sprintf(`{"id":%q,"type":"call.ended"}`, o[0].ID)
			if !bytes.Equal(o[0].Data, []byte(want)) || !strings.HasSuffix(o[0].ID, "-1") {
				t.Errorf("Data %s, want %s", o[0].Data, want)
			}
			if got := o[0].Event; got.Type != ev.Type || got.Tenant != "acme" || !got.At.Equal(at) || got.Call != nil {
				t.Errorf("Event %+v: want only type, tenant and instant", got)
			}
			if n, _ := s.OutboxDepth(); n != 2 {
				t.Errorf("depth %d", n)
			}
		})
	}
}

// A store written without an encoder and reopened with one (an upgrade)
// reads its old JSON entries whole and its new ones in published form.
func TestOutboxOldEntriesAfterUpgrade(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	old := storetest.Event(1)
	if err := s.Apply(&store.Batch{Events: []admission.Event{old}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = store.Open(dir, store.Options{Logger: zerolog.Nop(),
		EncodeEvent: func(id string, e admission.Event) ([]byte, error) { return []byte(id), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(&store.Batch{Events: []admission.Event{storetest.Event(2)}}); err != nil {
		t.Fatal(err)
	}
	o, err := s.Outbox(0, 10)
	if err != nil || len(o) != 2 {
		t.Fatalf("outbox %+v, %v", o, err)
	}
	if o[0].Data != nil || o[0].Event.CallID != old.CallID || o[0].Event.Value != old.Value {
		t.Errorf("old entry %+v", o[0])
	}
	if string(o[1].Data) != o[1].ID {
		t.Errorf("new entry Data %q, id %q", o[1].Data, o[1].ID)
	}
}

// testWire is a published form for the tests: the id and the type; an
// event of tenant "bad" cannot be encoded.
func testWire(id string, e admission.Event) ([]byte, error) {
	if e.Tenant == "bad" {
		return nil, errors.New("cannot encode")
	}
	return []byte(fmt.Sprintf(`{"id":%q,"type":%q}`, id, e.Type)), nil
}

// The outbox tail (the newest entries, kept in memory) answers Outbox
// exactly as Badger does: every read after any batch, ack and restart,
// including reads older than the tail and after more entries than it
// holds.
func TestOutboxTailMatchesBadger(t *testing.T) {
	dir := t.TempDir()
	open := func() *store.Badger {
		s, err := store.Open(dir, store.Options{Logger: zerolog.Nop(), EncodeEvent: testWire})
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
