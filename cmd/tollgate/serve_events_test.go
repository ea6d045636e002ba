package main

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// TestOutboxEvents: without NATS the events feed starts at the outbox's
// tail (events written before are not replayed) and hands every event
// written after to each subscriber, with its tenant and type; a cancelled
// subscription's channel closes.
func TestOutboxEvents(t *testing.T) {
	st := store.NewMem().WithEventEncoder(events.Wire("n1"))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old := make([]admission.Event, 1500) // more than one page of the tail scan
	for i := range old {
		old[i] = admission.Event{Type: admission.EventSuspended, Tenant: "old", At: at}
	}
	if err := st.Apply(&store.Batch{At: at, Events: old}); err != nil {
		t.Fatal(err)
	}
	o := startOutboxEvents(st, "n1", zerolog.Nop())
	defer o.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := o.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.ready: // the tail is found: what is written now is new
	case <-time.After(5 * time.Second):
		t.Fatal("the outbox tail was not found")
	}
	if err := st.Apply(&store.Batch{At: at, Events: []admission.Event{
		{Type: admission.EventSuspended, Tenant: "acme", Reason: "x", At: at},
		{Type: admission.EventResumed, Tenant: "acme", At: at},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan api.Event{a, b} {
		for _, want := range []string{"tenant.suspended", "tenant.resumed"} {
			select {
			case ev := <-c:
				if ev.Type != want || ev.Tenant != "acme" || ev.ID == "" || len(ev.Data) == 0 {
					t.Fatalf("event %+v, want %s of acme", ev, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no %s event", want)
			}
		}
	}
	cancel()
	select {
	case _, ok := <-a:
		if ok {
			t.Fatal("an event after the cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled subscription stays open")
	}
	if o.Source() != "outbox" {
		t.Errorf("source %q", o.Source())
	}
}

// TestEventFromSubject: the tenant and type come from the subject; the
// system tenant is "".
func TestEventFromSubject(t *testing.T) {
	ev := eventFromSubject("id1", "tollgate.events.acme.call.ended", []byte("{}"))
	if ev.Tenant != "acme" || ev.Type != "call.ended" || ev.ID != "id1" {
		t.Errorf("%+v", ev)
	}
	if ev := eventFromSubject("id2", "tollgate.events._system.cycle.rollover", nil); ev.Tenant != "" || ev.Type != "cycle.rollover" {
		t.Errorf("%+v", ev)
	}
}
