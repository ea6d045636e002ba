package store_test

import (
	"bytes"
	"fmt"
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
	enc := func(id string, e admission.Event) ([]byte, error) {
		return []byte(fmt.Sprintf(`{"id":%q,"type":%q}`, id, e.Type)), nil
	}
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
