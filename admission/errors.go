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
	// ErrInvalidLimit is returned for a limit value outside its domain (a
	// count below -1); the wrapping error names the field.
	ErrInvalidLimit = errors.New("admission: invalid limit")
	// ErrEmptyName is returned when a plan or tenant has an empty name.
	ErrEmptyName = errors.New("admission: empty name")
	// ErrUnknownCause is returned by ParseCause for a name that is not a
	// rejection cause.
	ErrUnknownCause = errors.New("admission: unknown cause")
)
