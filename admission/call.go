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
	// CallID identifies the call (the dialog); Admit is idempotent by it and
	// Release takes it. It must be non-empty and unique per call.
	CallID string
	// Tenant is the name of the tenant the call was classified to.
	Tenant string
	// Direction is the call's direction relative to the tenant.
	Direction Direction
	// Caller is the user part of From/PAI (outbound identity); may be empty.
	Caller string
	// Callee is the dialled number; may be empty.
	Callee string
}

// Decision is the engine's answer to a CallRequest.
type Decision struct {
	// Admitted reports whether the call may proceed.
	Admitted bool
	// Rejection says why the call was refused; it is the zero value when
	// Admitted is true.
	Rejection Rejection
}

// call is the per-call record of an admitted, still active call.
type call struct {
	tenant     *tenantState
	admittedAt time.Time
	direction  Direction
}
