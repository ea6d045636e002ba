// Package events is the contract of tollgate's usage events: the JSON
// each event is published as (Event), a JSON Schema per type (schema/),
// and the mapping from the engine's events. It does no I/O. docs/EVENTS.md
// shows an example of each type.
package events

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// Version is the value of every event's "schema" field. It changes only
// when a field changes meaning or is removed; new optional fields keep it.
const Version = 1

// Types lists every event type, in the order docs/EVENTS.md has them.
var Types = []string{
	admission.EventCallStarted, admission.EventCallAnswered, admission.EventCallEnded,
	admission.EventCallRejected, admission.EventCallCut,
	admission.EventThreshold, admission.EventCapReached,
	admission.EventSuspended, admission.EventResumed,
	admission.EventLimits, admission.EventRollover,
}

// Units of Usage.Unit: the cap's own unit.
const (
	UnitMinutes = "minutes"          // max_monthly_minutes, role minutes caps
	UnitMicros  = "micros"           // monthly_spend_limit: micro-units of the tenant's currency
	UnitCalls   = "calls"            // parallel-call caps
	UnitCPS     = "calls_per_second" // max_calls_per_second
)

// Event is the wire form of every event: the envelope, then the fields
// of its type. Call is set for the call.* events, Usage for the events
// about a cap (usage.*, call.cut, an automatic tenant.suspended, a
// call.rejected by a cap).
type Event struct {
	Schema int       `json:"schema"`
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`   // RFC 3339, UTC: when it happened
	Tenant string    `json:"tenant"` // "" only for cycle.rollover
	Node   string    `json:"node"`   // the gateway that produced it
	// User is the user identity: caller of an outbound call, callee of
	// an inbound one; the user of a role cap.
	User string `json:"user,omitempty"`
	*Call
	*Usage
	// Reason is a suspension's or resumption's reason.
	Reason string `json:"reason,omitempty"`
	// SuspendCap is, for a tenant.resumed that lifts an automatic
	// suspension, the cap that had suspended the tenant.
	SuspendCap string `json:"suspend_cap,omitempty"`
	// Limits are, for limits.changed, the tenant's effective limits.
	Limits *Limits `json:"limits,omitempty"`
	// CycleStart is, for cycle.rollover, the first instant of the new
	// monthly cycle.
	CycleStart *time.Time `json:"cycle_start,omitempty"`
	// Fact names what the event reports, for the events every gateway of
	// a cluster derives from the shared usage (FactID): the same on every
	// node, so a subscriber can tell one fact from its copies, and the
	// cluster publishes it once (its Nats-Msg-Id).
	Fact string `json:"fact,omitempty"`
}

// Call is what a call.* event says about its call.
type Call struct {
	// CallID is the SIP Call-ID of the caller's INVITE and FromTag its
	// From tag: together they name the call (the engine's call id is
	// "<Call-ID>;<from tag>"; a Call-ID never holds a ';').
	CallID    string `json:"call_id"`
	FromTag   string `json:"from_tag,omitempty"`
	Direction string `json:"direction"` // inbound | outbound, from the tenant
	Caller    string `json:"caller"`
	Callee    string `json:"callee"` // the dialled number, normalised
	Emergency bool   `json:"emergency"`
	// RatePrefix is the rate row the call is rated by ("" = the plan's
	// default row); absent when no row matched (a free call).
	RatePrefix *string `json:"rate_prefix,omitempty"`
	// AnsweredAt is the answer instant; absent when never answered.
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	// BilledUntil (call.ended) is where billing stopped: the end of
	// signalling, or with media-verified billing the last RTP packet plus
	// one packetisation interval, if earlier.
	BilledUntil *time.Time `json:"billed_until,omitempty"`
	// BilledSeconds and CostMicros (call.ended, call.cut): the call's
	// billed time (nanosecond precision) and rated cost, connect fee
	// included, in micro-units.
	BilledSeconds *float64 `json:"billed_seconds,omitempty"`
	CostMicros    *int64   `json:"cost_micros,omitempty"`
	// Cause: call.rejected — why (an admission cause such as
	// parallel_calls, or the edge's: sdp, loop, max_forwards, draining);
	// call.cut — the cap's cause (minutes, spend, role_minutes,
	// suspended); call.ended — what ended it (bye_caller, bye_callee,
	// cancel, rejected_<status>, timeout, media_timeout, media_ports,
	// minutes, spend, suspended, operator_hangup, gateway_restart, ...).
	Cause string `json:"cause,omitempty"`
	// HungUp (call.ended): caller, callee or gateway.
	HungUp string `json:"hung_up,omitempty"`
	// Status: call.rejected — the SIP status answered; call.ended — the
	// final status of a call that was never answered.
	Status int `json:"status,omitempty"`
	// Class (call.rejected, destination_class): the destination class.
	Class string `json:"class,omitempty"`
	// Media (call.ended of an anchored call): what each party sent.
	Media *Media `json:"media,omitempty"`
}

// Usage is a cap and where usage stands against it, in the cap's own
// unit (Unit).
type Usage struct {
	Cap   string  `json:"cap"`
	Unit  string  `json:"unit"`
	Limit float64 `json:"limit"`
	Value float64 `json:"value"`
}

// Media are an anchored call's RTP meters.
type Media struct {
	Caller MediaLeg `json:"caller"`
	Callee MediaLeg `json:"callee"`
}

// MediaLeg is what one party sent, read from RTP headers.
type MediaLeg struct {
	Packets     uint64     `json:"packets"`
	Bytes       uint64     `json:"bytes"`
	Lost        int64      `json:"lost"`      // expected minus received (RFC 3550); negative with duplicates
	JitterMs    float64    `json:"jitter_ms"` // interarrival jitter (RFC 3550)
	SSRCChanges uint64     `json:"ssrc_changes"`
	Dropped     uint64     `json:"dropped"`   // from a source other than the latched one
	Malformed   uint64     `json:"malformed"` // not RTP, not relayed
	RTCPPackets uint64     `json:"rtcp_packets"`
	FirstPacket *time.Time `json:"first_packet,omitempty"`
	LastPacket  *time.Time `json:"last_packet,omitempty"`
}

// Limits are a tenant's effective limits; -1 is unlimited.
type Limits struct {
	MaxParallelCalls    int64 `json:"max_parallel_calls"`
	MaxParallelInbound  int64 `json:"max_parallel_inbound"`
	MaxParallelOutbound int64 `json:"max_parallel_outbound"`
	MaxCallsPerSecond   int64 `json:"max_calls_per_second"`
	CPSBurst            int64 `json:"cps_burst"`
	MaxMonthlyMinutes   int64 `json:"max_monthly_minutes"`
	MonthlySpendLimit   int64 `json:"monthly_spend_limit_micros"`
	AlertThresholdPct   int64 `json:"alert_threshold_pct"`
	AutoSuspend         bool  `json:"auto_suspend"`
}

// FromEngine is the wire form of an engine event with its id, produced by
// node.
func FromEngine(node, id string, e admission.Event) Event {
	w := Event{Schema: Version, ID: id, Type: e.Type, Time: utc(e.At), Tenant: e.Tenant, Node: node, User: e.User, Reason: e.Reason,
		Fact: FactID(e)}
	if c := e.Call; c != nil {
		w.Call = fromCall(e.CallID, e.Type, c)
	}
	switch e.Type {
	case admission.EventThreshold, admission.EventCapReached:
		w.Usage = capUsage(e.Cap, e.Value, e.Limit)
	case admission.EventCallCut:
		if e.Cap == admission.CapSuspended {
			w.Usage = &Usage{Cap: e.Cap, Unit: UnitCalls}
		} else {
			w.Usage = capUsage(e.Cap, e.Value, e.Limit)
		}
	case admission.EventSuspended:
		if e.Cap != "" {
			w.Usage = capUsage(e.Cap, e.Value, e.Limit)
		}
	case admission.EventResumed:
		w.SuspendCap = e.Cap
	case admission.EventCallRejected:
		w.Usage = rejectionUsage(e.Call)
	case admission.EventLimits:
		if e.Limits != nil {
			w.Limits = fromLimits(e.Limits)
		}
	case admission.EventRollover:
		t := utc(e.At)
		w.CycleStart = &t
	}
	return w
}

func fromCall(id, typ string, c *admission.CallInfo) *Call {
	w := &Call{Direction: c.Direction.String(), Caller: c.Caller, Callee: c.Callee, Emergency: c.Emergency,
		Cause: c.Cause, Class: c.Class}
	w.CallID, w.FromTag = id, ""
	if i := strings.LastIndexByte(id, ';'); i >= 0 {
		w.CallID, w.FromTag = id[:i], id[i+1:]
	}
	if c.Rated {
		p := c.RatePrefix
		w.RatePrefix = &p
	}
	w.AnsweredAt = timePtr(c.AnsweredAt)
	switch typ {
	case admission.EventCallEnded, admission.EventCallCut:
		s, cost := c.Billed.Seconds(), c.Cost
		w.BilledSeconds, w.CostMicros = &s, &cost
	case admission.EventCallRejected:
		w.Status = c.Code
	}
	if end := c.End; end != nil && typ == admission.EventCallEnded {
		w.HungUp, w.Status = end.HungUp, end.Status
		w.BilledUntil = timePtr(end.BilledEnd)
		w.Media = MediaOf(end.Media)
	}
	return w
}

// MediaOf is the wire form of an anchored call's meters (nil: none).
func MediaOf(m *admission.Media) *Media {
	if m == nil {
		return nil
	}
	return &Media{Caller: fromLeg(m.Caller), Callee: fromLeg(m.Callee)}
}

func fromLeg(l admission.MediaLeg) MediaLeg {
	return MediaLeg{Packets: l.Packets, Bytes: l.Bytes, Lost: l.Lost, JitterMs: l.JitterMs, SSRCChanges: l.SSRCChanges,
		Dropped: l.Dropped, Malformed: l.Malformed, RTCPPackets: l.RTCPPackets,
		FirstPacket: timePtr(l.FirstPacket), LastPacket: timePtr(l.LastPacket)}
}

// capUsage converts the engine's units (seconds for minutes caps,
// micro-units for spend) to the cap's own.
func capUsage(capName string, value, limit int64) *Usage {
	if capName == admission.CapSpend {
		return &Usage{Cap: capName, Unit: UnitMicros, Limit: float64(limit), Value: float64(value)}
	}
	// max_monthly_minutes and role:<role>:max_monthly_minutes: seconds
	// in the engine; minutes to the millisecond on the wire.
	return &Usage{Cap: capName, Unit: UnitMinutes, Limit: minutes(limit), Value: minutes(value)}
}

func minutes(seconds int64) float64 { return math.Round(float64(seconds)/60*1000) / 1000 }

// rejectionUsage is the cap of a rejection by a cap, in the rejection's
// units (whole minutes for minutes caps); nil for other rejections.
func rejectionUsage(c *admission.CallInfo) *Usage {
	if c == nil {
		return nil
	}
	var capName, unit string
	switch c.Cause {
	case "parallel_calls", "parallel_inbound", "parallel_outbound":
		capName, unit = "max_"+c.Cause, UnitCalls
	case "role_parallel_calls":
		capName, unit = "role:max_parallel_calls", UnitCalls
	case "cps":
		capName, unit = "max_calls_per_second", UnitCPS
	case "minutes":
		capName, unit = admission.CapMinutes, UnitMinutes
	case "role_minutes":
		capName, unit = "role:max_monthly_minutes", UnitMinutes
	case "spend":
		capName, unit = admission.CapSpend, UnitMicros
	default:
		return nil
	}
	return &Usage{Cap: capName, Unit: unit, Limit: float64(c.Limit), Value: float64(c.Usage)}
}

func fromLimits(l *admission.Limits) *Limits {
	v := func(p *int64) int64 {
		if p == nil {
			return -1
		}
		return *p
	}
	w := &Limits{
		MaxParallelCalls: v(l.MaxParallelCalls), MaxParallelInbound: v(l.MaxParallelInbound),
		MaxParallelOutbound: v(l.MaxParallelOutbound), MaxCallsPerSecond: v(l.MaxCallsPerSecond),
		CPSBurst: v(l.CPSBurst), MaxMonthlyMinutes: v(l.MaxMonthlyMinutes), MonthlySpendLimit: v(l.MonthlySpendLimit),
		AlertThresholdPct: v(l.AlertThresholdPct),
	}
	if l.AutoSuspend != nil {
		w.AutoSuspend = *l.AutoSuspend
	}
	return w
}

func utc(t time.Time) time.Time { return t.UTC() }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Marshal is the event's JSON.
func (w *Event) Marshal() ([]byte, error) { return json.Marshal(w) }

// Decode parses an event's JSON.
func Decode(data []byte) (Event, error) {
	var w Event
	err := json.Unmarshal(data, &w)
	return w, err
}

// BilledDuration is BilledSeconds as a Duration, exact to the nanosecond
// (0 when absent).
func (c *Call) BilledDuration() time.Duration {
	if c == nil || c.BilledSeconds == nil {
		return 0
	}
	return time.Duration(math.Round(*c.BilledSeconds * 1e9))
}

// TenantOfSubject returns the tenant token of an event subject
// (tollgate.events.<tenant>.<type>); "" when it is not one.
func TenantOfSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return ""
	}
	tenant, _, _ := strings.Cut(rest, ".")
	return tenant
}
