package admission

import "errors"

// Sentinel errors returned (usually wrapped with detail) by the engine.
// Compare with errors.Is.
var (
	// ErrUnknownPlan is returned when a tenant refers to a plan the engine
	// does not know.
	ErrUnknownPlan = errors.New("admission: unknown plan")
	// ErrUnknownTenant is returned for operations on a tenant the engine does
	// not know.
	ErrUnknownTenant = errors.New("admission: unknown tenant")
	// ErrTenantExists is returned by CreateTenant for a name already in use.
	ErrTenantExists = errors.New("admission: tenant exists")
	// ErrInvalidLimit is returned for a limit value outside its domain (a
	// count below -1, a threshold outside 1..100, a burst below 1, a value
	// too large to meter); the wrapping error names the field.
	ErrInvalidLimit = errors.New("admission: invalid limit")
	// ErrInvalidRate is returned for a rate table row with a malformed or
	// duplicate prefix, a price or fee outside 0..MaxMoney or an increment
	// outside 1..MaxIncrement seconds (ValidateRates; the *FieldError
	// wrapping it names the field).
	ErrInvalidRate = errors.New("admission: invalid rate")
	// ErrInvalidRole is returned for a role with an empty, malformed or
	// duplicate name, a malformed user or one on two roles, or a malformed
	// pattern (ValidateRoles; the *FieldError wrapping it names the field).
	ErrInvalidRole = errors.New("admission: invalid role")
	// ErrEmptyName is returned when a plan or tenant has an empty name.
	ErrEmptyName = errors.New("admission: empty name")
	// ErrUnknownCause is returned by ParseCause for a name that is not a
	// rejection cause.
	ErrUnknownCause = errors.New("admission: unknown cause")
)

// Errors of deletions.
var (
	// ErrPlanInUse is returned by DeletePlan while a tenant is on the plan.
	ErrPlanInUse = errors.New("admission: plan in use")
	// ErrTenantBusy is returned by DeleteTenant while the tenant has active
	// calls.
	ErrTenantBusy = errors.New("admission: tenant has active calls")
)
