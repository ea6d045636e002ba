package configs

import (
	"maps"
	"slices"
)

// Deep copies of the config shapes: the control service and the store never
// share memory with their callers.

// Clone returns a deep copy of l.
func (l Limits) Clone() Limits {
	return Limits{
		MaxParallelCalls:    clonePtr(l.MaxParallelCalls),
		MaxParallelInbound:  clonePtr(l.MaxParallelInbound),
		MaxParallelOutbound: clonePtr(l.MaxParallelOutbound),
		MaxCallsPerSecond:   clonePtr(l.MaxCallsPerSecond),
		CPSBurst:            clonePtr(l.CPSBurst),
		MaxMonthlyMinutes:   clonePtr(l.MaxMonthlyMinutes),
		MonthlySpendLimit:   clonePtr(l.MonthlySpendLimit),
		AlertThresholdPct:   clonePtr(l.AlertThresholdPct),
		AutoSuspend:         clonePtr(l.AutoSuspend),
		MaxDIDs:             clonePtr(l.MaxDIDs),
		MaxUsers:            clonePtr(l.MaxUsers),
		Destinations:        maps.Clone(l.Destinations),
	}
}

// Clone returns a deep copy of p.
func (p Plan) Clone() Plan {
	out := Plan{Name: p.Name, Limits: p.Limits.Clone()}
	if p.Rates != nil {
		out.Rates = make([]Rate, len(p.Rates))
		for i, r := range p.Rates {
			r.PerMinute = clonePtr(r.PerMinute)
			out.Rates[i] = r
		}
	}
	return out
}

// Clone returns a deep copy of r.
func (r Role) Clone() Role {
	return Role{
		Name:              r.Name,
		MaxParallelCalls:  clonePtr(r.MaxParallelCalls),
		MaxMonthlyMinutes: clonePtr(r.MaxMonthlyMinutes),
		Users:             slices.Clone(r.Users),
		Patterns:          slices.Clone(r.Patterns),
	}
}

// CloneRoles returns a deep copy of rs (nil stays nil).
func CloneRoles(rs []Role) []Role {
	if rs == nil {
		return nil
	}
	out := make([]Role, len(rs))
	for i, r := range rs {
		out[i] = r.Clone()
	}
	return out
}

// Clone returns a deep copy of t.
func (t Tenant) Clone() Tenant {
	return Tenant{
		Name:    t.Name,
		Plan:    t.Plan,
		Carrier: t.Carrier,
		Sources: slices.Clone(t.Sources),
		DIDs:    slices.Clone(t.DIDs),
		PBX:     t.PBX,
		Limits:  t.Limits.Clone(),
		Roles:   CloneRoles(t.Roles),
	}
}
