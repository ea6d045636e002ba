package admission_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// t0 is the fixed clock of the unit tests; the engine never reads time.
var t0 = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func out(id, tenant, caller, callee string) admission.CallRequest {
	return admission.CallRequest{CallID: id, Tenant: tenant, Direction: admission.Outbound, Caller: caller, Callee: callee}
}

func mustPlan(t testing.TB, e *admission.Engine, p admission.Plan) {
	t.Helper()
	if _, err := e.UpsertPlan(t0, p); err != nil {
		t.Fatalf("UpsertPlan: %v", err)
	}
}

func mustTenant(t testing.TB, e *admission.Engine, tn admission.Tenant) {
	t.Helper()
	if _, err := e.UpsertTenant(t0, tn); err != nil {
		t.Fatalf("UpsertTenant: %v", err)
	}
}
