package control_test

import (
	"slices"
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
)

func TestApply(t *testing.T) {
	f := newFixture(t)
	stored := func() (plans []configs.Plan, tenants []api.TenantView) {
		plans, _ = f.svc.ListPlans(ctx)
		tenants, _ = f.svc.ListTenants(ctx)
		return
	}
	doc := api.ApplyDoc{
		Plans: []configs.Plan{
			// basic as seeded: unchanged once normalised.
			{Name: "basic", Limits: configs.Limits{MaxParallelCalls: i64(10), MaxMonthlyMinutes: i64(1000)},
				Rates: []configs.Rate{{PerMinute: money("1"), Increments: configs.Increments{Initial: 1, Subsequent: 1}}}},
			{Name: "gold", Limits: configs.Limits{MaxParallelCalls: i64(100)}},
		},
		Tenants: []configs.Tenant{
			{Name: "acme", Plan: "gold", Carrier: "up", Sources: []string{"10.1.0.0/24", "10.0.0.0/24"},
				DIDs: []string{"+1555"}, PBX: configs.Hop{Address: "10.1.0.10:5060"}, Limits: configs.Limits{MaxParallelCalls: i64(20)}},
			{Name: "beta", Plan: "basic", Carrier: "up", Sources: []string{"10.2.0.0/24"}},
			{Name: "delta", Plan: "gold", Carrier: "up", Sources: []string{"10.4.0.0/24"}},
		},
	}

	// Dry run: the changes are reported, nothing is made.
	p0, t0s := stored()
	res, err := f.svc.Apply(ctx, "alice", doc, true)
	mustNil(t, err)
	if !res.DryRun {
		t.Fatal("DryRun = false")
	}
	ops := func(res api.ApplyResult) []string {
		var out []string
		for _, c := range res.Changes {
			out = append(out, c.Kind+"/"+c.Name+" "+c.Op)
		}
		return out
	}
	want := []string{"plan/basic unchanged", "plan/gold create", "tenant/acme update", "tenant/beta unchanged", "tenant/delta create"}
	if got := ops(res); !slices.Equal(got, want) {
		t.Fatalf("dry run ops = %q, want %q", got, want)
	}
	acme := res.Changes[2]
	wantDiff := []string{
		"limits.max_parallel_calls: null -> 20",
		"plan: basic -> gold",
		"sources[1]: <none> -> 10.0.0.0/24",
	}
	if !slices.Equal(acme.Diff, wantDiff) {
		t.Fatalf("acme diff = %q, want %q", acme.Diff, wantDiff)
	}
	// A null object replaced by members: the members from null, not the
	// object going away besides.
	dest := doc
	dest.Plans = nil
	dest.Tenants = []configs.Tenant{doc.Tenants[1]}
	dest.Tenants[0].Limits.Destinations = map[string]bool{"premium": false}
	dres, err := f.svc.Apply(ctx, "alice", dest, true)
	mustNil(t, err)
	if want := []string{"limits.destinations.premium: null -> false"}; len(dres.Changes) != 1 || !slices.Equal(dres.Changes[0].Diff, want) {
		t.Fatalf("destinations diff = %+v, want %q", dres.Changes, want)
	}
	if p1, t1 := stored(); len(p1) != len(p0) || len(t1) != len(t0s) || t1[0].Plan != "basic" {
		t.Fatalf("dry run changed the store: %+v %+v", p1, t1)
	}
	if _, err := f.svc.GetPlan(ctx, "gold"); err == nil {
		t.Fatal("dry run created a plan")
	}
	if n := f.edge.Routing(); n != 0 {
		t.Fatalf("dry run rebuilt routing %d times", n)
	}

	// For real.
	res, err = f.svc.Apply(ctx, "alice", doc, false)
	mustNil(t, err)
	if got := ops(res); res.DryRun || !slices.Equal(got, want) {
		t.Fatalf("apply ops = %q", got)
	}
	v, err := f.svc.GetTenant(ctx, "acme")
	mustNil(t, err)
	if v.Plan != "gold" || len(v.Sources) != 2 || v.PBX.Transport != "udp" {
		t.Fatalf("acme = %+v", v.Tenant)
	}
	l, _ := f.svc.GetLimits(ctx, "delta")
	if *l.Effective.MaxParallelCalls != 5 || l.Overrides.MaxParallelCalls == nil || *l.Overrides.MaxParallelCalls != 5 {
		t.Fatalf("delta limits = %+v / %+v (a tenant apply creates is pre-filled from tenant_defaults)", l.Overrides, l.Effective)
	}
	if f.edge.Routing() != 1 {
		t.Fatalf("SetRouting called %d times, want 1", f.edge.Routing())
	}
	var got []string
	for _, e := range f.audit(api.AuditQuery{}) {
		if e.Actor == "alice" {
			got = append(got, e.Action+" "+e.Resource)
		}
	}
	if w := []string{"plan.create plans/gold", "tenant.update tenants/acme", "tenant.create tenants/delta"}; !slices.Equal(got, w) {
		t.Fatalf("audit = %q, want %q", got, w)
	}

	// Again: everything unchanged, nothing written.
	res, err = f.svc.Apply(ctx, "alice", doc, false)
	mustNil(t, err)
	for _, c := range res.Changes {
		if c.Op != "unchanged" || len(c.Diff) != 0 {
			t.Fatalf("second apply: %+v", c)
		}
	}
	if n := len(f.audit(api.AuditQuery{})); n != len(got)+4 {
		t.Fatalf("%d audit entries after an unchanged apply", n)
	}

	// The document's paths name errors.
	bad := api.ApplyDoc{Tenants: []configs.Tenant{
		{Name: "epsilon", Plan: "gold", Carrier: "up", Sources: []string{"10.5.0.0/24"}},
		{Name: "zeta", Plan: "gold", Carrier: "up", Sources: []string{"10.5.0.0/25"}},
	}}
	_, err = f.svc.Apply(ctx, "alice", bad, true)
	wantField(t, err, "tenants[1].sources[0]")
	bad = api.ApplyDoc{Plans: []configs.Plan{{Name: "x", Rates: []configs.Rate{{}}}}}
	_, err = f.svc.Apply(ctx, "alice", bad, false)
	wantField(t, err, "plans[0].rates[0].per_minute")
	bad = api.ApplyDoc{Tenants: []configs.Tenant{{Name: "eta", Plan: "nope", Carrier: "up", Sources: []string{"10.6.0.0/24"}}}}
	_, err = f.svc.Apply(ctx, "alice", bad, false)
	wantField(t, err, "tenants[0].plan")
	if _, err := f.svc.GetPlan(ctx, "x"); err == nil {
		t.Fatal("invalid apply stored a plan")
	}

	// Applied state survives a restart.
	f.reopen()
	if v, _ := f.svc.GetTenant(ctx, "delta"); v.Plan != "gold" {
		t.Fatalf("delta after restart = %+v", v.Tenant)
	}
}
