package admission

import (
	"fmt"
	"strconv"
)

// Cause says why a call was rejected.
type Cause uint8

// Rejection causes. Their String forms are the names used in configuration
// (the rejects map), events and metrics.
const (
	// CauseNone means no rejection: the call was admitted.
	CauseNone Cause = iota
	// CauseParallelCalls: the tenant's max_parallel_calls cap is reached.
	CauseParallelCalls
	// CauseUnknownTenant: the request names a tenant the engine does not know.
	CauseUnknownTenant

	numCauses // keep last
)

var causeNames = [numCauses]string{
	CauseNone:          "none",
	CauseParallelCalls: "parallel_calls",
	CauseUnknownTenant: "unknown_tenant",
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

// DefaultRejects returns the default SIP answer per cause:
// parallel_calls -> 486 Busy Here, unknown_tenant -> 403 Forbidden.
// The map is a fresh copy the caller may modify.
func DefaultRejects() map[Cause]Reject {
	return map[Cause]Reject{
		CauseParallelCalls: {Code: 486, Reason: "Busy Here"},
		CauseUnknownTenant: {Code: 403, Reason: "Forbidden"},
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
	// Limit is the effective limit that was reached.
	Limit int64
	// Usage is the tenant's usage at the time of the decision.
	Usage int64
}

// Error describes the rejection, e.g.
// "admission: parallel_calls limit 50 reached (usage 50)".
func (r Rejection) Error() string {
	switch r.Cause {
	case CauseNone:
		return "admission: no rejection"
	case CauseParallelCalls:
		return "admission: " + r.Cause.String() + " limit " + strconv.FormatInt(r.Limit, 10) +
			" reached (usage " + strconv.FormatInt(r.Usage, 10) + ")"
	case CauseUnknownTenant:
		return "admission: unknown tenant"
	default:
		return "admission: rejected: " + r.Cause.String()
	}
}

// Text returns the human text used for a SIP Reason header, e.g.
// "max_parallel_calls 50 reached" or, for a limit of 0,
// "max_parallel_calls 0: calls blocked". It is empty for CauseNone.
func (r Rejection) Text() string {
	switch r.Cause {
	case CauseNone:
		return ""
	case CauseParallelCalls:
		if r.Limit == 0 {
			return fieldMaxParallelCalls + " 0: calls blocked"
		}
		return fieldMaxParallelCalls + " " + strconv.FormatInt(r.Limit, 10) + " reached"
	case CauseUnknownTenant:
		return "unknown tenant"
	default:
		return r.Cause.String()
	}
}
