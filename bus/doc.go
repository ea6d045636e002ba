// Package bus is tollgate's NATS side: the embedded nats-server (the
// default) or the connection to an external NATS, the JetStream stream
// the events are kept in, and the Publisher that drains the store's
// outbox into it exactly once.
//
// Nothing below cmd/ imports it: the engine (admission/) and the store
// know nothing of NATS. The Publisher only reads the store's outbox and
// deletes what JetStream has acknowledged; it runs in its own goroutine,
// so admission never waits for NATS.
//
// Subjects are tollgate.events.<tenant>.<type> (package events); the
// stream takes tollgate.events.> (Subjects).
package bus

import "github.com/tollgate/tollgate/events"

// Subjects is the subject filter of the events stream.
const Subjects = events.SubjectPrefix + ".>"
