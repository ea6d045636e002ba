package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/configs"
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
	a, err := o.Subscribe(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Subscribe(context.Background(), time.Time{})
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
	if _, err := o.Subscribe(context.Background(), time.Now().Add(-time.Minute)); !errors.Is(err, api.ErrNoHistory) {
		t.Errorf("a history from the outbox: %v, want ErrNoHistory", err)
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

// TestNATSEventsSince: from the NATS events stream a subscriber gets the
// events published after it subscribed, and with since also those
// published since then (the console's history).
func TestNATSEventsSince(t *testing.T) {
	_, url := bustest.Start(t, t.TempDir())
	_, js := bustest.Connect(t, url)
	sc := configs.NATSStream{Name: "TOLLGATE_EVENTS", Replicas: 1, MaxAge: time.Hour, MaxBytes: -1, MaxMsgs: -1, DuplicateWindow: time.Minute, Storage: "memory"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := bus.EnsureStream(ctx, js, sc, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	publish := func(id string) {
		t.Helper()
		msg := nats.NewMsg(events.SubjectPrefix + ".acme.call.ended")
		msg.Header.Set("Nats-Msg-Id", id)
		msg.Data = []byte(`{"id":"` + id + `"}`)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	publish("old")
	n := &natsEvents{js: js, stream: sc.Name}
	live, err := n.Subscribe(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := n.Subscribe(ctx, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	publish("new")
	for name, want := range map[string][]string{"live": {"new"}, "since a minute": {"old", "new"}} {
		ch := map[string]<-chan api.Event{"live": live, "since a minute": hist}[name]
		for _, id := range want {
			select {
			case ev := <-ch:
				if ev.ID != id || ev.Tenant != "acme" || ev.Type != "call.ended" {
					t.Fatalf("%s: event %+v, want %s", name, ev, id)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: no event %s", name, id)
			}
		}
	}
}
