package admission

import "fmt"

// Field names of the limits, as used in configuration, the admin API and
// error messages.
const (
	fieldMaxParallelCalls = "max_parallel_calls"
)

// Limits is a set of count limits, used both as a plan's defaults and as a
// tenant's overrides.
//
// Every count limit is a *int64: nil = inherit (from the plan; unset in both
// the plan and the tenant means unlimited), -1 = unlimited, 0 = blocked
// (nothing allowed), N>0 = cap.
type Limits struct {
	// MaxParallelCalls caps the tenant's concurrent calls (inbound and
	// outbound together). Config/API field: max_parallel_calls.
	MaxParallelCalls *int64
}

// Plan is a named set of default limits shared by the tenants on it.
type Plan struct {
	// Name identifies the plan; tenants refer to it by this name.
	Name string
	// Limits are the plan's default limits; nil fields mean unlimited.
	Limits Limits
}

// Tenant is a customer of the gateway. A tenant is on one plan; Overrides
// win over the plan's value where set (non-nil).
type Tenant struct {
	// Name identifies the tenant; CallRequest.Tenant refers to it.
	Name string
	// Plan is the name of the tenant's plan, which must exist.
	Plan string
	// Overrides are per-tenant limits; nil fields inherit from the plan.
	Overrides Limits
}

// limit is the engine's internal form of a count limit: set=false means
// nil (inherit / unlimited).
type limit struct {
	v   int64
	set bool
}

func limitOf(p *int64) limit {
	if p == nil {
		return limit{}
	}
	return limit{v: *p, set: true}
}

// ptr returns a fresh pointer, so callers never alias engine state.
func (l limit) ptr() *int64 {
	if !l.set {
		return nil
	}
	v := l.v
	return &v
}

// limitSet is the internal, copied form of Limits.
type limitSet struct {
	maxParallelCalls limit
}

func limitSetOf(l Limits) limitSet {
	return limitSet{maxParallelCalls: limitOf(l.MaxParallelCalls)}
}

func (s limitSet) limits() Limits {
	return Limits{MaxParallelCalls: s.maxParallelCalls.ptr()}
}

// validate checks every count limit is nil or >= -1. owner describes the
// plan or tenant for the error message.
func (l Limits) validate(owner string) error {
	if err := validateCount(owner, fieldMaxParallelCalls, l.MaxParallelCalls); err != nil {
		return err
	}
	return nil
}

func validateCount(owner, field string, p *int64) error {
	if p == nil || *p >= -1 {
		return nil
	}
	return fmt.Errorf("%w: %s: %s = %d (want -1 unlimited, 0 blocked or N > 0)",
		ErrInvalidLimit, owner, field, *p)
}

// resolve returns the tenant override if set, else the plan value.
func resolve(override, plan limit) limit {
	if override.set {
		return override
	}
	return plan
}
