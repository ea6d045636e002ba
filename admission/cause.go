package admission

import (
	"fmt"
	"strconv"
	"time"
)

// Cause says why a call was rejected or cut.
type Cause uint8

// Rejection causes. Their String forms are the names used in configuration
// (the rejects map), events and metrics.
const (
	// CauseNone means no rejection: the call was admitted.
	CauseNone Cause = iota
	// CauseParallelCalls: the tenant's max_parallel_calls cap is reached
	// (default 486 Busy Here).
	CauseParallelCalls
	// CauseParallelInbound: the tenant's max_parallel_inbound cap is reached
	// (default 486 Busy Here).
	CauseParallelInbound
	// CauseParallelOutbound: the tenant's max_parallel_outbound cap is
	// reached (default 486 Busy Here).
	CauseParallelOutbound
	// CauseCPS: the tenant's max_calls_per_second token bucket is empty
	// (default 503 Service Unavailable; the caller adds Retry-After from
	// Rejection.RetryAfter).
	CauseCPS
	// CauseMinutes: the tenant's max_monthly_minutes budget is exhausted
	// (default 403 Forbidden). Also the cause of a mid-call cut.
	CauseMinutes
	// CauseSpend: the tenant's monthly_spend_limit is exhausted (default 403
	// Forbidden). Also the cause of a mid-call cut.
	CauseSpend
	// CauseDestination: the dialled number is in a disabled destination
	// class (default 403 Forbidden).
	CauseDestination
	// CauseRoleParallel: the user's role max_parallel_calls cap is reached
	// (default 486 Busy Here).
	CauseRoleParallel
	// CauseRoleMinutes: the user's role max_monthly_minutes budget is
	// exhausted (default 403 Forbidden). Also the cause of a mid-call cut.
	CauseRoleMinutes
	// CauseSuspended: the tenant is suspended; outbound call (default 403
	// Forbidden). Also the cause of the cuts made by a suspension.
	CauseSuspended
	// CauseSuspendedInbound: the tenant is suspended; inbound call (default
	// 480 Temporarily Unavailable).
	CauseSuspendedInbound
	// CauseUnknownTenant: the request names a tenant the engine does not
	// know (default 403 Forbidden).
	CauseUnknownTenant
	// CauseLease: in a cluster, the node holds no lease left for the
	// dimension in Rejection.Lease, and the ledger could not be asked
	// (NATS unreachable, or the node's leases expired): 503 Service
	// Unavailable with Retry-After. Without CallRequest.LeaseFull a lease
	// miss is not final: the edge leases more and asks again, and no
	// event is emitted.
	CauseLease

	numCauses // keep last
)

var causeNames = [numCauses]string{
	CauseNone:             "none",
	CauseParallelCalls:    "parallel_calls",
	CauseParallelInbound:  "parallel_inbound",
	CauseParallelOutbound: "parallel_outbound",
	CauseCPS:              "cps",
	CauseMinutes:          "minutes",
	CauseSpend:            "spend",
	CauseDestination:      "destination_class",
	CauseRoleParallel:     "role_parallel_calls",
	CauseRoleMinutes:      "role_minutes",
	CauseSuspended:        "suspended",
	CauseSuspendedInbound: "suspended_inbound",
	CauseUnknownTenant:    "unknown_tenant",
	CauseLease:            "cluster_lease",
}

// String returns the cause's configuration name, e.g. "parallel_calls".
func (c Cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return "cause(" + strconv.Itoa(int(c)) + ")"
}

// ParseCause returns the rejection cause named s (e.g. "parallel_calls").
// It returns an error wrapping ErrUnknownCause for any other name, including
// "none", which is not a rejection cause.
func ParseCause(s string) (Cause, error) {
	for c := CauseNone + 1; c < numCauses; c++ {
		if causeNames[c] == s {
			return c, nil
		}
	}
	return CauseNone, fmt.Errorf("%w %q", ErrUnknownCause, s)
}

// Reject is the SIP answer configured for a cause: final response code and
// reason phrase.
type Reject struct {
	// Code is the SIP final response code, e.g. 486.
	Code int
	// Reason is the SIP reason phrase, e.g. "Busy Here".
	Reason string
}

// DefaultRejects returns the default SIP answer per cause: 486 Busy Here
// for the parallel caps (tenant and role), 503 Service Unavailable for CPS,
// 480 Temporarily Unavailable for an inbound call to a suspended tenant and
// 403 Forbidden for everything else. The map is a fresh copy the caller may
// modify.
func DefaultRejects() map[Cause]Reject {
	busy := Reject{Code: 486, Reason: "Busy Here"}
	forbidden := Reject{Code: 403, Reason: "Forbidden"}
	return map[Cause]Reject{
		CauseParallelCalls:    busy,
		CauseParallelInbound:  busy,
		CauseParallelOutbound: busy,
		CauseCPS:              {Code: 503, Reason: "Service Unavailable"},
		CauseMinutes:          forbidden,
		CauseSpend:            forbidden,
		CauseDestination:      forbidden,
		CauseRoleParallel:     busy,
		CauseRoleMinutes:      forbidden,
		CauseSuspended:        forbidden,
		CauseSuspendedInbound: {Code: 480, Reason: "Temporarily Unavailable"},
		CauseUnknownTenant:    forbidden,
		CauseLease:            {Code: 503, Reason: "Service Unavailable"},
	}
}

// Rejection is the typed value returned for a refused call: the cause, the
// SIP code and reason phrase to answer with, and the limit and usage that
// caused it (zero where not applicable). It implements error. The zero
// Rejection (CauseNone) means no rejection.
type Rejection struct {
	// Cause says which check refused the call.
	Cause Cause
	// Code is the SIP final response code to answer with.
	Code int
	// Reason is the SIP reason phrase to answer with.
	Reason string
	// Limit is the effective limit that refused, in the limit's own unit:
	// a call count, minutes, micro-units or calls per second.
	Limit int64
	// Usage is the usage at the moment of the decision in the same unit
	// (whole minutes rounded down for minutes caps; 0 for CPS).
	Usage int64
	// Class is the destination class, for CauseDestination.
	Class string
	// RetryAfter is, for CauseCPS, the time until the bucket holds a token
	// again (always > 0; 1 s when the rate is 0); for CauseLease, when the
	// ledger may be back.
	RetryAfter time.Duration
	// Lease is, for CauseLease, the dimension the node holds no lease of.
	Lease LeaseDim
	// User is the user whose lease is missing (Lease == LeaseUser).
	User string
}

// Error describes the rejection, e.g.
// "admission: rejected (parallel_calls): max_parallel_calls 50 reached".
func (r Rejection) Error() string {
	if r.Cause == CauseNone {
		return "admission: no rejection"
	}
	return "admission: rejected (" + r.Cause.String() + "): " + r.Text()
}

// Text returns the human text used for a SIP Reason header, e.g.
// "max_parallel_calls 50 reached", "max_monthly_minutes 100 exhausted",
// "destination class premium disabled", "tenant suspended", or for a limit
// of 0 "max_parallel_calls 0: calls blocked". It is empty for CauseNone.
func (r Rejection) Text() string {
	switch r.Cause {
	case CauseNone:
		return ""
	case CauseParallelCalls:
		return capText(fieldMaxParallelCalls, r.Limit, "reached")
	case CauseParallelInbound:
		return capText(fieldMaxParallelInbound, r.Limit, "reached")
	case CauseParallelOutbound:
		return capText(fieldMaxParallelOutbound, r.Limit, "reached")
	case CauseCPS:
		return capText(fieldMaxCallsPerSecond, r.Limit, "exceeded")
	case CauseMinutes:
		return capText(fieldMaxMonthlyMinutes, r.Limit, "exhausted")
	case CauseSpend:
		return capText(fieldMonthlySpendLimit, r.Limit, "exhausted")
	case CauseDestination:
		return "destination class " + r.Class + " disabled"
	case CauseRoleParallel:
		return "role " + capText(fieldMaxParallelCalls, r.Limit, "reached")
	case CauseRoleMinutes:
		return "role " + capText(fieldMaxMonthlyMinutes, r.Limit, "exhausted")
	case CauseSuspended, CauseSuspendedInbound:
		return "tenant suspended"
	case CauseUnknownTenant:
		return "unknown tenant"
	case CauseLease:
		return "cluster ledger unavailable (" + r.Lease.String() + ")"
	default:
		return r.Cause.String()
	}
}

func capText(field string, limit int64, verb string) string {
	if limit == 0 {
		return field + " 0: calls blocked"
	}
	return field + " " + strconv.FormatInt(limit, 10) + " " + verb
}
