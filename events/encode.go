package events

import (
	"encoding/json"

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

// FactID names what a Shared engine event reports (admission.Event.Shared:
// usage.threshold, usage.cap_reached, the automatic tenant.suspended that
// comes with one, cycle.rollover and a rollover's tenant.resumed):
// "<type>/<tenant>/<user>/<cap>/<cycle YYYY-MM>". Every gateway of a
// cluster derives the same fact from the shared usage, at about the same
// instant, and names it the same. "" for every other event.
func FactID(e admission.Event) string {
	if !e.Shared {
		return ""
	}
	return e.Type + "/" + e.Tenant + "/" + e.User + "/" + e.Cap + "/" + e.At.UTC().Format("2006-01")
}

// ClusterEncode is Encode for a gateway of a cluster: a Shared event is
// published with its FactID as Nats-Msg-Id, so that JetStream stores the
// first node's copy of a fact and acknowledges the others' as duplicates
// (within the stream's dedup window). Every other event keeps its own id.
func ClusterEncode(node string) func(store.OutboxEntry) (Message, error) {
	return func(e store.OutboxEntry) (Message, error) {
		m, err := Encode(node, e)
		if err != nil || !factType(e.Event.Type) {
			return m, err
		}
		fact := FactID(e.Event)
		if e.Data != nil { // the stored form: Event holds only Type, Tenant and At
			var w struct {
				Fact string `json:"fact"`
			}
			if err := json.Unmarshal(e.Data, &w); err != nil {
				return Message{}, err
			}
			fact = w.Fact
		}
		if fact != "" {
			m.ID = fact
		}
		return m, nil
	}
}

// factType reports the event types that can be Shared.
func factType(typ string) bool {
	switch typ {
	case admission.EventThreshold, admission.EventCapReached, admission.EventSuspended,
		admission.EventResumed, admission.EventRollover:
		return true
	}
	return false
}
