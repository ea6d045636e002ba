package configs

import (
	"fmt"

	"github.com/tollgate/tollgate/admission"
)

// AdmissionLimits converts config limits into engine limits.
func (l Limits) AdmissionLimits() admission.Limits {
	return admission.Limits{MaxParallelCalls: l.MaxParallelCalls}
}

// AdmissionRunner builds the admission engine from the config's plans,
// tenants and rejection answers, wrapped in a runner.
func (c *Config) AdmissionRunner() (*admission.Runner, error) {
	rejects := admission.DefaultRejects()
	for name, r := range c.Admission.Reject {
		cause, err := admission.ParseCause(name)
		if err != nil {
			return nil, fmt.Errorf("admission.reject.%s: %w", name, err)
		}
		rejects[cause] = admission.Reject{Code: r.Code, Reason: r.Reason}
	}
	e := admission.NewEngine(rejects)
	for i, p := range c.Plans {
		if err := e.UpsertPlan(admission.Plan{Name: p.Name, Limits: p.Limits.AdmissionLimits()}); err != nil {
			return nil, fmt.Errorf("plans[%d]: %w", i, err)
		}
	}
	for i, t := range c.Tenants {
		if err := e.UpsertTenant(admission.Tenant{Name: t.Name, Plan: t.Plan, Overrides: t.Limits.AdmissionLimits()}); err != nil {
			return nil, fmt.Errorf("tenants[%d]: %w", i, err)
		}
	}
	return admission.NewRunner(e), nil
}
