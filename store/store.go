// Package store keeps everything that outlives the process: plans,
// tenants, API tokens, per-cycle counters, answered calls with their
// dialog data, per-day usage, the audit log and the event outbox. Badger
// is the real thing (Open); Mem is its in-memory twin for tests. Both pass
// the same conformance suite (storetest).
package store

import (
	"errors"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store: closed")

// Token is an API token as stored: the secret only as its SHA-256 hash.
type Token struct {
	Name    string    `json:"name"`
	Scope   string    `json:"scope"` // an api.Scope: admin, settings, billing, read
	Hash    string    `json:"hash"`  // hex SHA-256 of the secret
	Created time.Time `json:"created"`
}

// DayDelta adds usage to one tenant's UTC day.
type DayDelta struct {
	Tenant           string
	Day              time.Time // midnight UTC
	Calls            int64
	Seconds          time.Duration
	Spend            int64
	EmergencySeconds time.Duration
}

// Day is one tenant's stored usage for one UTC day.
type Day struct {
	Tenant           string
	Day              time.Time
	Calls            int64
	Seconds          time.Duration
	Spend            int64
	EmergencySeconds time.Duration
}

// OutboxEntry is an event waiting to be published; Seq increases by one
// per event, in commit order. ID is the event's id, unique across stores
// and stable across restarts: the store's instance (8 random bytes drawn
// when its first event is written, in hex), "-", and Seq.
type OutboxEntry struct {
	Seq   uint64
	ID    string
	Event admission.Event
	// Data is the event as it is published, made once when it was
	// written by the store's EventEncoder; Event then holds only its
	// Type, Tenant and At. Nil for a store without an encoder (Event is
	// whole).
	Data []byte
}

// EventEncoder makes the published form of an event when it is written
// to the outbox (events.Wire), so the publisher sends stored bytes
// instead of decoding the event and encoding it again.
type EventEncoder func(id string, e admission.Event) ([]byte, error)

// Batch is one atomic write. Apply stores all of it or none of it.
type Batch struct {
	// At becomes the store clock (State.Clock) when the batch commits: the
	// time up to which running calls are billed after a crash.
	At time.Time

	PutPlans      []configs.Plan
	DeletePlans   []string
	PutTenants    []configs.Tenant
	DeleteTenants []string // also deletes the tenant's counters, users and calls
	PutTokens     []Token
	DeleteTokens  []string

	Counters    []admission.TenantRecord
	Users       []admission.UserRecord
	PutCalls    []admission.CallRecord
	DeleteCalls []string // deleting an absent call is not an error
	Days        []DayDelta
	Events      []admission.Event // appended to the outbox
	Audit       []AuditEntry      // ID assigned by the store when empty
	// Unreplicated marks configuration objects changed here and not yet
	// replicated to the other gateways of a cluster (a mark with Done
	// set is deleted). It is written in the batch of the change itself,
	// so a restart before NATS is back still publishes the change.
	Unreplicated []Unreplicated

	// Seeded marks the store as seeded from the config file.
	Seeded bool
}

// Empty reports whether the batch writes nothing but the clock.
func (b *Batch) Empty() bool {
	return len(b.PutPlans)+len(b.DeletePlans)+len(b.PutTenants)+len(b.DeleteTenants)+
		len(b.PutTokens)+len(b.DeleteTokens)+len(b.Counters)+len(b.Users)+len(b.PutCalls)+
		len(b.DeleteCalls)+len(b.Days)+len(b.Events)+len(b.Audit)+len(b.Unreplicated) == 0 && !b.Seeded
}

// State is everything a starting gateway loads.
type State struct {
	Seeded   bool
	Clock    time.Time // At of the last committed batch (zero: never)
	Plans    []configs.Plan
	Tenants  []configs.Tenant
	Tokens   []Token
	Counters []admission.TenantRecord
	Users    []admission.UserRecord
	Calls    []admission.CallRecord
	// Unreplicated are the marks of configuration changes not yet
	// replicated (sorted by kind, then name).
	Unreplicated []Unreplicated
}

// Unreplicated is the mark of one configuration object (Kind and Name,
// the cluster's replication kinds) changed here by Actor at At and not
// yet replicated to the other gateways. Done deletes the mark.
type Unreplicated struct {
	Kind  string    `json:"kind"`
	Name  string    `json:"name"`
	Actor string    `json:"actor,omitempty"`
	At    time.Time `json:"at"`
	Done  bool      `json:"-"`
}

// Store is the narrow storage interface.
type Store interface {
	// Apply commits b atomically; when it returns nil the batch is durable
	// (fsynced when the store was opened with Sync).
	Apply(b *Batch) error
	// Load returns the whole durable state (sorted by name / id).
	Load() (*State, error)
	// Days returns the tenant's days in [from, to), oldest first.
	Days(tenant string, from, to time.Time) ([]Day, error)
	// Audit returns entries matching q, newest first.
	Audit(q AuditQuery) ([]AuditEntry, error)
	// Outbox returns up to limit entries with Seq > after, in order.
	Outbox(after uint64, limit int) ([]OutboxEntry, error)
	// AckOutbox deletes the entries with Seq <= upTo.
	AckOutbox(upTo uint64) error
	// OutboxDepth is the number of entries waiting.
	OutboxDepth() (int, error)
	// Size is the on-disk size in bytes (0 for Mem).
	Size() int64
	Close() error
}
