package admission

import "fmt"

// Field names of the limits, as used in configuration, the admin API, error
// messages, events and Reason headers.
const (
	fieldMaxParallelCalls    = "max_parallel_calls"
	fieldMaxParallelInbound  = "max_parallel_inbound"
	fieldMaxParallelOutbound = "max_parallel_outbound"
	fieldMaxCallsPerSecond   = "max_calls_per_second"
	fieldCPSBurst            = "cps_burst"
	fieldMaxMonthlyMinutes   = "max_monthly_minutes"
	fieldMonthlySpendLimit   = "monthly_spend_limit"
	fieldAlertThresholdPct   = "alert_threshold_pct"
)

// Cap names used in events and cuts.
const (
	// CapMinutes names the tenant's max_monthly_minutes budget.
	CapMinutes = fieldMaxMonthlyMinutes
	// CapSpend names the tenant's monthly_spend_limit budget.
	CapSpend = fieldMonthlySpendLimit
	// CapSuspended is the Cut.Cap of calls cut because their tenant was
	// suspended.
	CapSuspended = "suspended"
)

// RoleMinutesCap returns the cap name of a role's minutes budget,
// "role:<role>:max_monthly_minutes".
func RoleMinutesCap(role string) string {
	return "role:" + role + ":" + fieldMaxMonthlyMinutes
}

// DefaultAlertThresholdPct is the alert threshold used when
// alert_threshold_pct is unset in both the tenant and its plan.
const DefaultAlertThresholdPct = 80

// MicroUnits is the number of micro-units in one currency unit: money is
// always an int64 count of micro-units.
const MicroUnits = 1_000_000

// Upper bounds that keep the int64 arithmetic of the budgets exact. They
// are the one definition of the limits' ranges: configs' user-facing
// validation uses them (configs.MaxCPS, ...), and the engine checks them
// again on what it is given.
const (
	MaxParallel       = 1<<62 - 1             // parallel-call caps
	MaxMonthlyMinutes = 100_000_000           // ~190 years of call time per month
	MaxMoney          = 1_000_000_000_000_000 // 10^9 units in micro-units
	MaxCPS            = 1_000_000_000         // one call per nanosecond

	maxMonthlyMinutes = MaxMonthlyMinutes
	maxMoney          = MaxMoney
	maxCPS            = MaxCPS
)

// Limits is a set of limits, used as a plan's defaults, as a tenant's
// overrides and as Settings.TenantDefaults.
//
// Count limits are *int64: nil = inherit (in a tenant) / unlimited (in a
// plan), -1 = unlimited, 0 = blocked (nothing allowed), N > 0 = cap.
type Limits struct {
	// MaxParallelCalls caps the tenant's concurrent calls, inbound and
	// outbound together (max_parallel_calls).
	MaxParallelCalls *int64
	// MaxParallelInbound caps concurrent inbound calls
	// (max_parallel_inbound).
	MaxParallelInbound *int64
	// MaxParallelOutbound caps concurrent outbound calls
	// (max_parallel_outbound).
	MaxParallelOutbound *int64
	// MaxCallsPerSecond is the token bucket rate in calls per second
	// (max_calls_per_second); 0 blocks every call.
	MaxCallsPerSecond *int64
	// CPSBurst is the token bucket size (cps_burst); nil means
	// max(1, rate). When set it must be >= 1.
	CPSBurst *int64
	// MaxMonthlyMinutes caps the billed minutes, inbound plus outbound, per
	// UTC calendar month (max_monthly_minutes).
	MaxMonthlyMinutes *int64
	// MonthlySpendLimit caps the rated cost per UTC calendar month in
	// micro-units (monthly_spend_limit).
	MonthlySpendLimit *int64
	// AlertThresholdPct is the percentage of a minutes or spend budget at
	// which one usage.threshold event is emitted per cycle
	// (alert_threshold_pct, 1..100); 80 when unset everywhere.
	AlertThresholdPct *int64
	// AutoSuspend makes the minutes and spend caps hard: reaching one
	// rejects, cuts the calls drawing on it and suspends the tenant
	// (auto_suspend); false when unset everywhere.
	AutoSuspend *bool
	// Destinations maps a destination class to enabled. A class absent from
	// both the tenant's and the plan's map is enabled; the tenant's entry
	// wins over the plan's.
	Destinations map[string]bool
}

// Rate is one row of a plan's rate table.
type Rate struct {
	// Prefix is the dialled-number prefix; "" matches everything (the
	// default row). The longest matching prefix wins.
	Prefix string
	// PerMinute is the price per minute in micro-units.
	PerMinute int64
	// ConnectFee is charged at answer, in micro-units.
	ConnectFee int64
	// Initial is the length in seconds of the first billing increment
	// (e.g. 60, 6, 1); >= 1.
	Initial int64
	// Subsequent is the length in seconds of each following increment;
	// >= 1.
	Subsequent int64
}

// Plan is a named set of default limits and a rate table shared by the
// tenants on it.
type Plan struct {
	// Name identifies the plan; tenants refer to it by this name.
	Name string
	// Limits are the plan's default limits; nil fields mean unlimited.
	Limits Limits
	// Rates is the plan's rate table (longest prefix of the callee wins).
	Rates []Rate
}

// Role caps each user on it individually. A user is the caller identity
// for outbound calls and the dialled number for inbound calls.
type Role struct {
	// Name identifies the role within its tenant.
	Name string
	// MaxParallelCalls caps each user's concurrent calls; nil or -1 =
	// no individual cap, 0 = blocked.
	MaxParallelCalls *int64
	// MaxMonthlyMinutes caps each user's billed minutes per UTC month;
	// nil or -1 = no individual cap, 0 = blocked. Always hard.
	MaxMonthlyMinutes *int64
	// Users lists explicit user identities (exact match, checked before
	// any pattern, over all roles; the first role listing a user wins).
	Users []string
	// Patterns are path.Match globs on the user identity, e.g. "1555*";
	// roles and patterns are tried in order and the first match wins.
	Patterns []string
}

// Tenant is a customer of the gateway: one plan, per-tenant overrides of
// the plan's limits, and roles.
type Tenant struct {
	// Name identifies the tenant; CallRequest.Tenant refers to it.
	Name string
	// Plan is the name of the tenant's plan, which must exist.
	Plan string
	// Overrides win over the plan's limits where set (non-nil).
	Overrides Limits
	// Roles are the tenant's per-user caps.
	Roles []Role
}

// Settings are engine-wide.
type Settings struct {
	// Rejects overrides DefaultRejects per cause; nil or missing causes
	// keep their defaults.
	Rejects map[Cause]Reject
	// DestinationClasses maps a class (e.g. "premium") to number prefixes.
	// The longest prefix over all classes wins; a prefix listed in several
	// classes belongs to the class whose name sorts first.
	DestinationClasses map[string][]string
	// EmergencyNumbers are dialled numbers (exact string match on
	// CallRequest.Callee, e.g. "112", "911") that are always admitted,
	// never cut and not counted against any cap.
	EmergencyNumbers []string
	// ResumeOnRollover lifts, at the start of each cycle, suspensions that
	// were caused by a monthly cap (manual suspensions stay).
	ResumeOnRollover bool
	// TenantDefaults pre-fills the overrides of tenants created with
	// CreateTenant and is what ResetTenant restores.
	TenantDefaults Limits
	// Cluster makes the parallel and CPS caps leased (package cluster): a
	// tenant's capped dimension admits only within the capacity the node
	// holds (SetLease, AddCPSTokens), which starts at 0.
	Cluster bool
}

// unlimited is the effective value of an unset or -1 count limit.
const unlimited = -1

// effective holds the resolved limits of a tenant, cached at every change
// of the tenant or its plan. Count limits use -1 for unlimited.
type effective struct {
	parallel, parallelIn, parallelOut int64
	cps, burst                        int64
	minutes, spend                    int64
	threshold                         int64
	autoSuspend                       bool
}

// resolveLimits resolves a tenant's overrides against its plan's limits.
func resolveLimits(o, p *Limits) effective {
	count := func(a, b *int64) int64 {
		if a != nil {
			return *a
		}
		if b != nil {
			return *b
		}
		return unlimited
	}
	ef := effective{
		parallel:    count(o.MaxParallelCalls, p.MaxParallelCalls),
		parallelIn:  count(o.MaxParallelInbound, p.MaxParallelInbound),
		parallelOut: count(o.MaxParallelOutbound, p.MaxParallelOutbound),
		cps:         count(o.MaxCallsPerSecond, p.MaxCallsPerSecond),
		burst:       count(o.CPSBurst, p.CPSBurst),
		minutes:     count(o.MaxMonthlyMinutes, p.MaxMonthlyMinutes),
		spend:       count(o.MonthlySpendLimit, p.MonthlySpendLimit),
		threshold:   count(o.AlertThresholdPct, p.AlertThresholdPct),
	}
	if ef.threshold == unlimited {
		ef.threshold = DefaultAlertThresholdPct
	}
	if ef.burst == unlimited {
		ef.burst = max(1, ef.cps)
	}
	switch {
	case o.AutoSuspend != nil:
		ef.autoSuspend = *o.AutoSuspend
	case p.AutoSuspend != nil:
		ef.autoSuspend = *p.AutoSuspend
	}
	return ef
}

// limits returns the effective limits as a Limits value with fresh
// pointers; unlimited counts are nil. dest is the merged destination map.
func (ef effective) limits(dest map[string]bool) Limits {
	ptr := func(v int64) *int64 {
		if v == unlimited {
			return nil
		}
		return &v
	}
	auto := ef.autoSuspend
	thr := ef.threshold
	l := Limits{
		MaxParallelCalls:    ptr(ef.parallel),
		MaxParallelInbound:  ptr(ef.parallelIn),
		MaxParallelOutbound: ptr(ef.parallelOut),
		MaxCallsPerSecond:   ptr(ef.cps),
		MaxMonthlyMinutes:   ptr(ef.minutes),
		MonthlySpendLimit:   ptr(ef.spend),
		AlertThresholdPct:   &thr,
		AutoSuspend:         &auto,
		Destinations:        dest,
	}
	if ef.cps != unlimited {
		l.CPSBurst = ptr(ef.burst)
	}
	return l
}

// clone returns a deep copy of l, so the engine never aliases caller
// memory.
func (l Limits) clone() Limits {
	c := l
	c.MaxParallelCalls = clonePtr(l.MaxParallelCalls)
	c.MaxParallelInbound = clonePtr(l.MaxParallelInbound)
	c.MaxParallelOutbound = clonePtr(l.MaxParallelOutbound)
	c.MaxCallsPerSecond = clonePtr(l.MaxCallsPerSecond)
	c.CPSBurst = clonePtr(l.CPSBurst)
	c.MaxMonthlyMinutes = clonePtr(l.MaxMonthlyMinutes)
	c.MonthlySpendLimit = clonePtr(l.MonthlySpendLimit)
	c.AlertThresholdPct = clonePtr(l.AlertThresholdPct)
	c.AutoSuspend = clonePtr(l.AutoSuspend)
	if l.Destinations != nil {
		c.Destinations = make(map[string]bool, len(l.Destinations))
		for k, v := range l.Destinations {
			c.Destinations[k] = v
		}
	}
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// validate checks every limit is inside its domain. owner describes the
// plan or tenant for the error message.
func (l *Limits) validate(owner string) error {
	counts := []struct {
		field string
		p     *int64
		max   int64
	}{
		{fieldMaxParallelCalls, l.MaxParallelCalls, MaxParallel},
		{fieldMaxParallelInbound, l.MaxParallelInbound, MaxParallel},
		{fieldMaxParallelOutbound, l.MaxParallelOutbound, MaxParallel},
		{fieldMaxCallsPerSecond, l.MaxCallsPerSecond, maxCPS},
		{fieldMaxMonthlyMinutes, l.MaxMonthlyMinutes, maxMonthlyMinutes},
		{fieldMonthlySpendLimit, l.MonthlySpendLimit, maxMoney},
	}
	for _, c := range counts {
		if c.p == nil {
			continue
		}
		if *c.p < -1 || *c.p > c.max {
			return fmt.Errorf("%w: %s: %s = %d (want -1 unlimited, 0 blocked or 0 < N <= %d)",
				ErrInvalidLimit, owner, c.field, *c.p, c.max)
		}
	}
	if p := l.CPSBurst; p != nil && (*p < 1 || *p > maxCPS) {
		return fmt.Errorf("%w: %s: %s = %d (want 1..%d)", ErrInvalidLimit, owner, fieldCPSBurst, *p, maxCPS)
	}
	if p := l.AlertThresholdPct; p != nil && (*p < 1 || *p > 100) {
		return fmt.Errorf("%w: %s: %s = %d (want 1..100)", ErrInvalidLimit, owner, fieldAlertThresholdPct, *p)
	}
	return nil
}
