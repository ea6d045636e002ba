package events

import (
	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/store"
)

// SubjectPrefix is the first two tokens of every event subject:
// tollgate.events.<tenant>.<type>.
const SubjectPrefix = "tollgate.events"

// SystemTenant is the subject token of events that belong to no tenant
// (cycle.rollover).
const SystemTenant = "_system"

// Message is one event ready to publish.
type Message struct {
	Subject string // tollgate.events.<tenant>.<type>
	ID      string // the event id: Nats-Msg-Id
	Data    []byte // the JSON event
}

// Subject is the subject of an event of type typ of tenant ("" for
// events of no tenant).
func Subject(tenant, typ string) string {
	if tenant == "" {
		tenant = SystemTenant
	}
	return SubjectPrefix + "." + tenant + "." + typ
}

// Encode turns an outbox entry into the message to publish; node names
// the gateway that produced it. An entry the store kept in its published
// form (store.Options.EncodeEvent = Wire) is sent as stored.
func Encode(node string, e store.OutboxEntry) (Message, error) {
	if e.Data != nil {
		return Message{Subject: Subject(e.Event.Tenant, e.Event.Type), ID: e.ID, Data: e.Data}, nil
	}
	w := FromEngine(node, e.ID, e.Event)
	data, err := w.Marshal()
	if err != nil {
		return Message{}, err
	}
	return Message{Subject: Subject(e.Event.Tenant, e.Event.Type), ID: e.ID, Data: data}, nil
}

// Wire is the store's EventEncoder for node: the published JSON of an
// event, made once, when the event is written to the outbox.
func Wire(node string) store.EventEncoder {
	return func(id string, e admission.Event) ([]byte, error) {
		w := FromEngine(node, id, e)
		return w.Marshal()
	}
}
