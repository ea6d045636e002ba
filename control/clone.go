package control

import (
	"maps"
	"slices"

	"github.com/tollgate/tollgate/configs"
)

// Deep copies: the service never shares memory with its callers or the
// store.

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneLimits(l configs.Limits) configs.Limits {
	return configs.Limits{
		MaxParallelCalls:    clonePtr(l.MaxParallelCalls),
		MaxParallelInbound:  clonePtr(l.MaxParallelInbound),
		MaxParallelOutbound: clonePtr(l.MaxParallelOutbound),
		MaxCallsPerSecond:   clonePtr(l.MaxCallsPerSecond),
		CPSBurst:            clonePtr(l.CPSBurst),
		MaxMonthlyMinutes:   clonePtr(l.MaxMonthlyMinutes),
		MonthlySpendLimit:   clonePtr(l.MonthlySpendLimit),
		AlertThresholdPct:   clonePtr(l.AlertThresholdPct),
		AutoSuspend:         clonePtr(l.AutoSuspend),
		Destinations:        maps.Clone(l.Destinations),
	}
}

func clonePlan(p configs.Plan) configs.Plan {
	out := configs.Plan{Name: p.Name, Limits: cloneLimits(p.Limits)}
	if p.Rates != nil {
		out.Rates = make([]configs.Rate, len(p.Rates))
		for i, r := range p.Rates {
			r.PerMinute = clonePtr(r.PerMinute)
			out.Rates[i] = r
		}
	}
	return out
}

func cloneRole(r configs.Role) configs.Role {
	return configs.Role{
		Name:              r.Name,
		MaxParallelCalls:  clonePtr(r.MaxParallelCalls),
		MaxMonthlyMinutes: clonePtr(r.MaxMonthlyMinutes),
		Users:             slices.Clone(r.Users),
		Patterns:          slices.Clone(r.Patterns),
	}
}

func cloneRoles(rs []configs.Role) []configs.Role {
	if rs == nil {
		return nil
	}
	out := make([]configs.Role, len(rs))
	for i, r := range rs {
		out[i] = cloneRole(r)
	}
	return out
}

func cloneTenant(t configs.Tenant) configs.Tenant {
	return configs.Tenant{
		Name:    t.Name,
		Plan:    t.Plan,
		Carrier: t.Carrier,
		Sources: slices.Clone(t.Sources),
		DIDs:    slices.Clone(t.DIDs),
		PBX:     t.PBX,
		Limits:  cloneLimits(t.Limits),
		Roles:   cloneRoles(t.Roles),
	}
}
