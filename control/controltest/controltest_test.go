package controltest_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/control/controltest"
)

// The seed is what the package comment says.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	svc, edge := controltest.New(t)
	for secret, want := range map[string]api.Principal{
		controltest.AdminToken:    {Name: "root", Scope: api.ScopeAdmin},
		controltest.SettingsToken: {Name: "ops", Scope: api.ScopeSettings},
		controltest.BillingToken:  {Name: "finance", Scope: api.ScopeBilling},
		controltest.ReadToken:     {Name: "viewer", Scope: api.ScopeRead},
	} {
		if p, ok := svc.Authenticate(secret); !ok || p != want {
			t.Errorf("Authenticate(%s) = %v %v", secret, p, ok)
		}
	}
	if err := svc.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	tv, err := svc.GetTenant(ctx, "demo")
	if err != nil || tv.Status.ActiveCalls != 2 || len(tv.Roles) != 1 {
		t.Errorf("demo: %+v %v", tv, err)
	}
	u, err := svc.Usage(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var used map[string]string = map[string]string{}
	for _, c := range u.Caps {
		used[c.Cap] = c.Used.String()
	}
	// 42.5 minutes (600 + 900 + 1050 s) and 0.43 settled, plus the
	// answered call's 90 s and its two started 60 s increments.
	if used["max_monthly_minutes"] != "44" || used["monthly_spend_limit"] != "0.45" || used["max_parallel_calls"] != "2" {
		t.Errorf("usage caps %v", used)
	}
	if len(u.Days) != 2 || u.Days[0].Date != "2026-11-20" || u.Days[0].Calls != 2 || u.Days[1].Calls != 1 {
		t.Errorf("usage days %+v", u.Days)
	}
	if err := svc.Hangup(ctx, "root", controltest.Call1ID); err != nil {
		t.Fatal(err)
	}
	if got := svc.ActiveByTenant()["demo"]; got != 1 || len(edge.HungUp()) != 1 {
		t.Errorf("after a hang-up: %d active, hung up %v", got, edge.HungUp())
	}
}
