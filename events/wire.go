// Package events is the contract of tollgate's usage events: the JSON
// each event is published as, its JSON Schema, and the mapping from the
// engine's events. It does no I/O.
package events

import (
	"encoding/json"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// Version is the value of every event's "schema" field.
const Version = 1

// Event is the wire form of an event (provisional; the catalogue grows).
type Event struct {
	Schema int       `json:"schema"`
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
	Tenant string    `json:"tenant,omitempty"`
	Node   string    `json:"node"`
}

func fromEngine(node, id string, e admission.Event) Event {
	return Event{Schema: Version, ID: id, Type: e.Type, Time: e.At.UTC(), Tenant: e.Tenant, Node: node}
}

func (w Event) marshal() ([]byte, error) { return json.Marshal(w) }
