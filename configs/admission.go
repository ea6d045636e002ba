package configs

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// AdmissionLimits converts config limits into engine limits. The result
// shares no memory with l. MonthlySpendLimit keeps its encoding: micro-units,
// -1 unlimited.
func (l Limits) AdmissionLimits() admission.Limits {
	out := admission.Limits{
		MaxParallelCalls:    clonePtr(l.MaxParallelCalls),
		MaxParallelInbound:  clonePtr(l.MaxParallelInbound),
		MaxParallelOutbound: clonePtr(l.MaxParallelOutbound),
		MaxCallsPerSecond:   clonePtr(l.MaxCallsPerSecond),
		CPSBurst:            clonePtr(l.CPSBurst),
		MaxMonthlyMinutes:   clonePtr(l.MaxMonthlyMinutes),
		AlertThresholdPct:   clonePtr(l.AlertThresholdPct),
		AutoSuspend:         clonePtr(l.AutoSuspend),
		Destinations:        maps.Clone(l.Destinations),
	}
	if l.MonthlySpendLimit != nil {
		out.MonthlySpendLimit = ptrTo(int64(*l.MonthlySpendLimit))
	}
	return out
}

// LimitsFromEngine converts engine limits (nil count: unlimited), such as
// Runner.EffectiveLimits, into the config shape (-1 unlimited). The result
// shares no memory with l.
func LimitsFromEngine(l admission.Limits) Limits {
	count := func(p *int64) *int64 {
		if p == nil {
			v := int64(-1)
			return &v
		}
		v := *p
		return &v
	}
	spend := MoneyUnlimited
	if l.MonthlySpendLimit != nil {
		spend = Money(*l.MonthlySpendLimit)
	}
	return Limits{
		MaxParallelCalls:    count(l.MaxParallelCalls),
		MaxParallelInbound:  count(l.MaxParallelInbound),
		MaxParallelOutbound: count(l.MaxParallelOutbound),
		MaxCallsPerSecond:   count(l.MaxCallsPerSecond),
		CPSBurst:            clonePtr(l.CPSBurst), // nil: no bucket (unlimited rate)
		MaxMonthlyMinutes:   count(l.MaxMonthlyMinutes),
		MonthlySpendLimit:   &spend,
		AlertThresholdPct:   clonePtr(l.AlertThresholdPct),
		AutoSuspend:         clonePtr(l.AutoSuspend),
		Destinations:        maps.Clone(l.Destinations),
	}
}

// AdmissionRate converts a rate row into the engine's. A nil PerMinute
// (rejected by Validate) is 0.
func (r Rate) AdmissionRate() admission.Rate {
	inc := r.Increments
	if inc == (Increments{}) {
		inc = DefaultIncrements
	}
	out := admission.Rate{
		Prefix:     r.Prefix,
		ConnectFee: int64(r.ConnectFee),
		Initial:    inc.Initial,
		Subsequent: inc.Subsequent,
	}
	if r.PerMinute != nil {
		out.PerMinute = int64(*r.PerMinute)
	}
	return out
}

// AdmissionPlan converts a plan (limits and rate table) into the engine's.
func (p Plan) AdmissionPlan() admission.Plan {
	out := admission.Plan{Name: p.Name, Limits: p.Limits.AdmissionLimits()}
	if len(p.Rates) > 0 {
		out.Rates = make([]admission.Rate, len(p.Rates))
		for i, r := range p.Rates {
			out.Rates[i] = r.AdmissionRate()
		}
	}
	return out
}

// AdmissionRole converts a role into the engine's.
func (r Role) AdmissionRole() admission.Role {
	return admission.Role{
		Name:              r.Name,
		MaxParallelCalls:  clonePtr(r.MaxParallelCalls),
		MaxMonthlyMinutes: clonePtr(r.MaxMonthlyMinutes),
		Users:             slices.Clone(r.Users),
		Patterns:          slices.Clone(r.Patterns),
	}
}

// AdmissionTenant converts a tenant (plan, overrides, roles) into the
// engine's.
func (t Tenant) AdmissionTenant() admission.Tenant {
	out := admission.Tenant{Name: t.Name, Plan: t.Plan, Overrides: t.Limits.AdmissionLimits()}
	if len(t.Roles) > 0 {
		out.Roles = make([]admission.Role, len(t.Roles))
		for i, r := range t.Roles {
			out.Roles[i] = r.AdmissionRole()
		}
	}
	return out
}

// AdmissionSettings builds the engine-wide settings: the SIP answer per
// rejection cause (admission.reject over the engine's defaults), the
// destination classes, the emergency numbers, the rollover behaviour and
// the tenant defaults. It expects ApplyDefaults to have run (unset
// resume_on_rollover and emergency_numbers take their defaults anyway).
func (c *Config) AdmissionSettings() (admission.Settings, error) {
	rejects := admission.DefaultRejects()
	for _, name := range slices.Sorted(maps.Keys(c.Admission.Reject)) {
		cause, err := admission.ParseCause(name)
		if err != nil {
			return admission.Settings{}, fmt.Errorf("admission.reject.%s: %w", name, err)
		}
		r := c.Admission.Reject[name]
		rejects[cause] = admission.Reject{Code: r.Code, Reason: r.Reason}
	}
	var classes map[string][]string
	if len(c.DestinationClasses) > 0 {
		classes = make(map[string][]string, len(c.DestinationClasses))
		for class, prefixes := range c.DestinationClasses {
			classes[class] = slices.Clone(prefixes)
		}
	}
	emergency := c.EmergencyNumbers
	if emergency == nil {
		emergency = DefaultEmergencyNumbers
	}
	resume := true
	if c.Admission.ResumeOnRollover != nil {
		resume = *c.Admission.ResumeOnRollover
	}
	return admission.Settings{
		Rejects:            rejects,
		DestinationClasses: classes,
		EmergencyNumbers:   slices.Clone(emergency),
		ResumeOnRollover:   resume,
		TenantDefaults:     c.TenantDefaults.AdmissionLimits(),
		Cluster:            c.Cluster.Enabled,
	}, nil
}

// AdmissionRunner builds the admission engine from the config: settings
// (AdmissionSettings), then every plan with its rate table, then every
// tenant with its overrides and roles, all upserted at now, wrapped in a
// runner. Errors name the config path, e.g. `plans[1] (plan "gold"): ...`.
// The config should have passed Validate; the engine checks again.
func (c *Config) AdmissionRunner(now time.Time) (*admission.Runner, error) {
	settings, err := c.AdmissionSettings()
	if err != nil {
		return nil, err
	}
	e := admission.NewEngine(settings)
	for i, p := range c.Plans {
		if _, err := e.UpsertPlan(now, p.AdmissionPlan()); err != nil {
			return nil, fmt.Errorf("plans[%d] (plan %q): %w", i, p.Name, err)
		}
	}
	for i, t := range c.Tenants {
		if _, err := e.UpsertTenant(now, t.AdmissionTenant()); err != nil {
			return nil, fmt.Errorf("tenants[%d] (tenant %q): %w", i, t.Name, err)
		}
	}
	return admission.NewRunner(e), nil
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
