package admission

import (
	"strconv"
	"time"
)

// Direction is the direction of a call as seen from the tenant.
type Direction uint8

// Call directions.
const (
	// Outbound calls come from the tenant and go to a carrier.
	Outbound Direction = iota + 1
	// Inbound calls come from a carrier and go to the tenant.
	Inbound
)

// String returns "outbound" or "inbound".
func (d Direction) String() string {
	switch d {
	case Outbound:
		return "outbound"
	case Inbound:
		return "inbound"
	default:
		return "direction(" + strconv.Itoa(int(d)) + ")"
	}
}

// CallRequest is what the SIP edge asks the engine about a new call.
type CallRequest struct {
	// CallID identifies the call (the SIP layer uses Call-ID;from-tag);
	// Admit is idempotent by it and Answer and End take it.
	CallID string
	// Tenant is the name of the tenant the call was classified to.
	Tenant string
	// Direction is the call's direction relative to the tenant; anything
	// but Inbound is treated as Outbound.
	Direction Direction
	// Caller is the user part of From/PAI: the user identity of an
	// outbound call.
	Caller string
	// Callee is the dialled number, normalised (NormalizeNumber: no
	// visual separators, no parameters, tel: and user=phone resolved): the
	// user identity of an inbound call, and what destination classes,
	// rates and emergency numbers are matched against.
	Callee string
	// LeaseFull (cluster mode) lists the dimensions the ledger has no
	// capacity left for: a lease miss on one of them is the cap's own
	// rejection (e.g. parallel_calls, 486) instead of CauseLease.
	LeaseFull LeaseSet
}

// user returns the user identity of the call: Caller for outbound, Callee
// for inbound.
func (r *CallRequest) user() string {
	if r.Direction == Inbound {
		return r.Callee
	}
	return r.Caller
}

// Output is every effect of an engine step, as data. The caller carries
// them out: publishes the events, tears down the cut calls.
type Output struct {
	// Events to publish, in the order they happened.
	Events []Event
	// Cuts are the calls to tear down now (BYE both legs, Reason header).
	Cuts []Cut
}

// Empty reports whether o holds no effect.
func (o *Output) Empty() bool { return len(o.Events) == 0 && len(o.Cuts) == 0 }

// Cut orders the teardown of a call.
type Cut struct {
	// CallID is the call to tear down.
	CallID string
	// Cause is CauseMinutes, CauseSpend, CauseRoleMinutes or
	// CauseSuspended.
	Cause Cause
	// Cap names the budget that ran out, e.g. "max_monthly_minutes",
	// "monthly_spend_limit", "role:agents:max_monthly_minutes", or
	// "suspended".
	Cap string
	// At is the exact instant the budget ran out; billing stopped there.
	At time.Time
}

// Event types.
const (
	EventThreshold  = "usage.threshold"   // usage crossed alert_threshold_pct of a cap
	EventCapReached = "usage.cap_reached" // a minutes or spend cap was reached
	EventSuspended  = "tenant.suspended"  // the tenant was suspended (manual or auto)
	EventResumed    = "tenant.resumed"    // the tenant was resumed
	EventRollover   = "cycle.rollover"    // a new monthly cycle started
	EventCallCut    = "call.cut"          // a call was cut (see Output.Cuts)

	EventCallStarted  = "call.started"   // a call was admitted (Event.Call)
	EventCallAnswered = "call.answered"  // an admitted call was answered
	EventCallEnded    = "call.ended"     // a call ended: its CDR, billed time and cost
	EventCallRejected = "call.rejected"  // a call was refused (Event.Call.Cause, Code)
	EventLimits       = "limits.changed" // a tenant's effective limits changed (Event.Limits)
)

// Event is a usage event for billing and alerting systems.
type Event struct {
	// Type is one of the Event* constants.
	Type string
	// Tenant is the tenant concerned ("" for cycle.rollover).
	Tenant string
	// User is the user identity, for role caps and cut calls.
	User string
	// CallID is set for call.cut.
	CallID string
	// Cap names the cap: "max_monthly_minutes", "monthly_spend_limit",
	// "role:<role>:max_monthly_minutes", "suspended" (call.cut by a
	// suspension); for an automatic tenant.suspended, the cap that
	// triggered it.
	Cap string
	// Value is the usage: seconds for minutes caps, micro-units for spend.
	Value int64
	// Limit is the limit in the same unit (minutes caps: limit*60 seconds).
	Limit int64
	// Reason is the suspend/resume reason.
	Reason string
	// At is when it happened (for deadline-driven events: the exact
	// instant, which may be earlier than the step that reported it).
	At time.Time
	// Call is the call of a call.* event.
	Call *CallInfo
	// Limits are, for limits.changed, the tenant's new effective limits
	// (destinations not included).
	Limits *Limits
	// Shared marks an event every node of a cluster derives from the
	// shared usage, once per cap per cycle: usage.threshold,
	// usage.cap_reached, the automatic tenant.suspended that comes with a
	// cap_reached, cycle.rollover and the tenant.resumed of a rollover.
	// events.FactID names such an event by what it reports, so that the
	// cluster publishes it once.
	Shared bool
}

// CallInfo is what a call.* event says about its call.
type CallInfo struct {
	Direction Direction
	Caller    string
	Callee    string // normalised dialled number
	Emergency bool
	// Rated is false for a call no rate row matched (free); RatePrefix
	// is the matched row's prefix ("" for the default row).
	Rated      bool
	RatePrefix string
	// AnsweredAt is the answer instant (zero: never answered).
	AnsweredAt time.Time
	// Billed and Cost are what the call was charged so far (call.cut)
	// or in all (call.ended): the sum of its Charges, so the call.ended
	// events of a cycle add up to the tenant's counters.
	Billed time.Duration
	Cost   int64 // micro-units, connect fee included
	// Cause is, for call.rejected, the Rejection's cause (or the edge's
	// reason to refuse before asking the engine, e.g. sdp); for call.cut,
	// the cut's; for call.ended, the edge's (End.Cause).
	Cause string
	// Code is the SIP status a call.rejected was answered with; Class its
	// destination class (CauseDestination); Limit and Usage the
	// Rejection's, in the limit's own unit.
	Code  int
	Class string
	Limit int64
	Usage int64
	// End is, for call.ended, what the edge reported.
	End *End
}

// End is what the edge knows about how a call ended, given to EndWith
// and carried into call.ended.
type End struct {
	// BilledEnd stops billing earlier than now (media-verified billing:
	// the last RTP packet plus one packetisation interval); zero: now.
	BilledEnd time.Time
	// Cause is the edge's name for what ended the call, e.g. bye_caller,
	// cancel, rejected_486, media_timeout, minutes.
	Cause string
	// HungUp is who ended it: "caller", "callee" or "gateway" ("" when
	// unknown).
	HungUp string
	// Status is the final SIP status of a call that was never answered
	// (0 for answered calls).
	Status int
	// Media are the RTP meters of an anchored call (nil: not anchored).
	Media *Media
}

// Media are the meters of an anchored call: what each party sent.
type Media struct {
	Caller MediaLeg
	Callee MediaLeg
}

// MediaLeg is what one party sent, read from RTP headers.
type MediaLeg struct {
	Packets     uint64
	Bytes       uint64
	Lost        int64 // expected minus received (RFC 3550); negative with duplicates
	JitterMs    float64
	SSRCChanges uint64
	Dropped     uint64 // from a source other than the latched one
	Malformed   uint64
	RTCPPackets uint64
	FirstPacket time.Time
	LastPacket  time.Time
}

// Decision is the engine's answer to a CallRequest.
type Decision struct {
	// Admitted reports whether the call may proceed.
	Admitted bool
	// Emergency reports a call admitted as an emergency call: never cut,
	// not counted against caps.
	Emergency bool
	// Rejection says why the call was refused; zero when admitted.
	Rejection Rejection
	// Output holds the effects of this step, e.g. a lowered cap tripping
	// a suspension at this INVITE, or deadlines that were overdue.
	Output
}

// Usage is a tenant's usage in the current cycle: settled plus accrued up
// to the given instant.
type Usage struct {
	// Seconds is the billed time of the tenant's non-emergency calls.
	Seconds time.Duration
	// Spend is the rated cost in micro-units.
	Spend int64
	// EmergencySeconds is the billed time of emergency calls (metered,
	// never counted against a cap).
	EmergencySeconds time.Duration
}

// call is the engine's record of an admitted, not yet ended call.
type call struct {
	id        string
	seq       uint64 // admission order, for deterministic output
	t         *tenantState
	u         *userState // nil for emergency calls and users no role caps
	dir       Direction
	emergency bool
	answered  bool
	drawing   bool // answered, not cut: draws on the budgets
	cut       bool
	cutOrder  Cut       // the Cut emitted when cut
	ans       time.Time // answer instant
	rate      *Rate     // nil: free (no rate row matched)
	prior     int64     // cost charged to earlier cycles
	tidx      int       // index in t.calls
	uidx      int       // index in u.calls
	caller    string
	callee    string
	billedSum time.Duration // sum of its charges (call.ended)
	costSum   int64
	persisted bool // its CallRecord is in the journal (answered, not yet released)

	// Spend meter state of a drawing rated call (spend.go).
	billed  int64  // billed seconds charged so far
	chg     int64  // cost charged so far (connect fee included)
	next    int64  // Unix ns of the next billing boundary
	sidx    int    // index in the tenant's meter heap; -1 when not there
	lastAt  int64  // Unix ns of the last charge
	lastInc int64  // amount of the last charge
	sim     uint64 // replay generation that saved this call
}

// user is the call's user identity (caller for outbound, callee for
// inbound), tracked or not; "" for emergency calls.
func (c *call) user() string {
	switch {
	case c.emergency:
		return ""
	case c.dir == Inbound:
		return c.callee
	}
	return c.caller
}
