package control_test

import (
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
)

// apply creating a tenant pre-fills the limits it leaves unset from
// tenant_defaults, as POST /v1/tenants does; an update does not.
func TestApplyCreateUsesTenantDefaults(t *testing.T) {
	f := newFixture(t)
	doc := api.ApplyDoc{Tenants: []configs.Tenant{
		{Name: "gamma", Plan: "basic", Carrier: "up", Sources: []string{"10.3.0.0/24"}},
		{Name: "beta", Plan: "basic", Carrier: "up", Sources: []string{"10.2.0.0/24"}},
	}}
	_, err := f.svc.Apply(ctx, "alice", doc, false)
	mustNil(t, err)
	lv, err := f.svc.GetLimits(ctx, "gamma")
	mustNil(t, err)
	if v := lv.Overrides.MaxParallelCalls; v == nil || *v != 5 {
		t.Fatalf("created tenant's max_parallel_calls override = %v, want 5 (tenant_defaults)", v)
	}
	lv, err = f.svc.GetLimits(ctx, "beta")
	mustNil(t, err)
	if v := lv.Overrides.MaxParallelCalls; v != nil {
		t.Fatalf("updated tenant's max_parallel_calls override = %d, want none", *v)
	}
	// The same as POST /v1/tenants.
	_, err = f.svc.PutTenant(ctx, "alice", configs.Tenant{Name: "delta", Plan: "basic", Carrier: "up", Sources: []string{"10.4.0.0/24"}}, true)
	mustNil(t, err)
	lv2, err := f.svc.GetLimits(ctx, "delta")
	mustNil(t, err)
	if a, b := lv2.Overrides.MaxParallelCalls, 5; a == nil || *a != int64(b) {
		t.Fatalf("POST tenant override = %v, want %d", a, b)
	}
}
