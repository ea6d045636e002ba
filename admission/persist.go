package admission

import "time"

// Durable state. The engine reports, after every step, the part of its
// state that must survive a restart (counters, suspensions, once-per-cycle
// flags, answered calls, settlements, events) as a Step handed to a
// Journal. Restore rebuilds that state from the records a store kept.

// Flag bits of TenantRecord.Flags and UserRecord.Flags: the
// once-per-cycle events already sent.
const (
	FlagMinutesThreshold uint8 = 1 << iota // usage.threshold sent for max_monthly_minutes (users: the role cap)
	FlagMinutesCap                         // usage.cap_reached sent for max_monthly_minutes (users: the role cap)
	FlagSpendThreshold                     // usage.threshold sent for monthly_spend_limit
	FlagSpendCap                           // usage.cap_reached sent for monthly_spend_limit
)

// TenantRecord is the durable state of one tenant: its settled usage in
// the current cycle and its suspension.
type TenantRecord struct {
	Tenant string
	// Cycle is the first instant (UTC) of the month the counters belong to.
	Cycle time.Time
	// Seconds is the billed time of the tenant's settled calls (ended or
	// cut) in the cycle; running calls are not included.
	Seconds time.Duration
	// Spend is the rated cost of the settled calls in the cycle (micro-units).
	Spend int64
	// EmergencySeconds is the billed time of settled emergency calls.
	EmergencySeconds time.Duration
	// Flags are Flag* bits.
	Flags uint8
	// Suspended, SuspendReason and SuspendCap ("" = manual) are the
	// suspension state.
	Suspended     bool
	SuspendReason string
	SuspendCap    string
	// SuspendedAt is when the suspension began (zero in records written
	// before it was kept).
	SuspendedAt time.Time
}

// UserRecord is the durable state of one user identity of a tenant: its
// settled billed time in the cycle (what its role's minutes cap counts).
type UserRecord struct {
	Tenant  string
	User    string
	Cycle   time.Time
	Seconds time.Duration
	Flags   uint8 // FlagMinutesThreshold / FlagMinutesCap for the role cap
}

// CallRecord is an answered call, persisted at answer and deleted when it
// is released.
type CallRecord struct {
	CallID     string
	Tenant     string
	Direction  Direction
	Caller     string
	Callee     string
	Emergency  bool
	AnsweredAt time.Time
	// Payload is opaque data of the SIP layer (the dialog: tags, targets,
	// route sets, CSeqs), given to Runner.AnswerWith.
	Payload []byte
}

// Charge is usage settled by the engine: a call's billed time and cost
// when it ends or is cut, or the part of a running call that belongs to a
// month that just ended (at rollover).
type Charge struct {
	Tenant    string
	User      string
	CallID    string
	Direction Direction
	Emergency bool
	Seconds   time.Duration
	Spend     int64
	// At is the settlement instant: end or cut, or the last nanosecond of
	// the old month for the rollover part of a running call.
	At time.Time
	// Final is true for the call's last charge (count it as one call).
	Final bool
}

// Step is the durable effect of one engine step. Everything in one Step
// must be stored atomically (in one batch).
type Step struct {
	// At is the engine time of the step.
	At       time.Time
	Tenants  []TenantRecord // full records of the tenants whose durable state changed
	Users    []UserRecord   // full records of the users whose durable state changed
	Answered []CallRecord   // calls answered in this step
	Released []string       // ids of answered calls released in this step
	Charges  []Charge
	Events   []Event
}

// Empty reports whether the step carries nothing.
func (s *Step) Empty() bool {
	return len(s.Tenants)+len(s.Users)+len(s.Answered)+len(s.Released)+len(s.Charges)+len(s.Events) == 0
}

// Journal receives the durable effect of every engine step. The Runner
// calls Record under its lock, in step order; the Step and its slices are
// reused after Record returns, so the Journal copies what it keeps and
// must not block for long (no I/O).
type Journal interface {
	Record(s *Step)
}

// Snapshot is the durable state a store kept, given to Restore.
type Snapshot struct {
	// At is the time of the last durable commit: calls still active in the
	// snapshot are billed up to it.
	At      time.Time
	Tenants []TenantRecord
	Users   []UserRecord
	Calls   []CallRecord
}

// RoleUsage is the usage of one user on a role with a minutes cap.
type RoleUsage struct {
	User    string
	Role    string
	Seconds time.Duration // billed this cycle, running calls included
	Limit   int64         // the role's max_monthly_minutes (minutes); -1 unlimited
	// ExhaustsAt is when the user's minutes run out if the user's calls
	// drawing on them now go on (Exhausts false: nothing draws, or not
	// this cycle); at or before now when already exhausted.
	ExhaustsAt time.Time
	Exhausts   bool
}
