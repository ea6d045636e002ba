package admission_test

import (
	"time"

	"github.com/tollgate/tollgate/admission"
)

// t0 is the fixed clock used by the tests; the engine never reads time.
var t0 = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

// lim returns a pointer to v, for Limits fields.
func lim(v int64) *int64 { return &v }

// limStr renders a count limit for test messages.
func limStr(p *int64) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// newEngine returns an engine with plan "p" (max_parallel_calls = plan) and
// tenant "t" on it with the given override.
func newEngine(tb interface {
	Helper()
	Fatalf(string, ...any)
}, rejects map[admission.Cause]admission.Reject, plan, override *int64) *admission.Engine {
	tb.Helper()
	e := admission.NewEngine(rejects)
	if err := e.UpsertPlan(admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: plan}}); err != nil {
		tb.Fatalf("UpsertPlan: %v", err)
	}
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: override}}); err != nil {
		tb.Fatalf("UpsertTenant: %v", err)
	}
	return e
}
