package apitest_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/api/apitest"
	"github.com/tollgate/tollgate/configs"
)

var ctx = context.Background()

func ptr[T any](v T) *T { return &v }

func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FieldError", err)
	}
	return fe.Field
}

func TestSeed(t *testing.T) {
	b := apitest.NewBackend()
	for secret, want := range map[string]api.Principal{
		"admin-secret":    {Name: "root", Scope: api.ScopeAdmin},
		"settings-secret": {Name: "ops", Scope: api.ScopeSettings},
		"billing-secret":  {Name: "finance", Scope: api.ScopeBilling},
		"read-secret":     {Name: "viewer", Scope: api.ScopeRead},
	} {
		if p, ok := b.Authenticate(secret); !ok || p != want {
			t.Errorf("Authenticate(%s) = %v %v", secret, p, ok)
		}
	}
	if _, ok := b.Authenticate(""); ok {
		t.Error("empty token authenticates")
	}
	p, err := b.GetPlan(ctx, "standard")
	if err != nil || *p.Limits.MaxParallelCalls != 10 || *p.Limits.MaxMonthlyMinutes != 10000 ||
		*p.Limits.MonthlySpendLimit != configs.MustMoney("500") || len(p.Rates) != 1 ||
		*p.Rates[0].PerMinute != configs.MustMoney("0.01") || p.Rates[0].Increments.String() != "60/60" {
		t.Errorf("plan %+v %v", p, err)
	}
	tv, err := b.GetTenant(ctx, "demo")
	if err != nil || tv.Plan != "standard" || tv.PBX.Address != "127.0.0.10:5070" || tv.PBX.Transport != "udp" ||
		len(tv.Roles) != 1 || tv.Roles[0].Name != "reception" || *tv.Roles[0].MaxParallelCalls != 2 ||
		tv.Status.ActiveCalls != 2 {
		t.Errorf("tenant %+v %v", tv, err)
	}
	u, err := b.Usage(ctx, "demo")
	if err != nil || len(u.Caps) != 3 || len(u.Days) != 2 || !u.CycleStart.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("usage %+v %v", u, err)
	}
	if got := b.ActiveByTenant(); got["demo"] != 2 || len(got) != 1 {
		t.Errorf("ActiveByTenant %v", got)
	}
	if err := b.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	b.SetReady(errors.New("x"))
	if err := b.Ready(); !errors.Is(err, api.ErrNotReady) {
		t.Errorf("Ready: %v", err)
	}
}

func TestPlansAndTenants(t *testing.T) {
	b := apitest.NewBackend()
	b.Now = func() time.Time { return time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC) }
	if _, err := b.PutPlan(ctx, "ops", configs.Plan{Name: "standard"}, true); !errors.Is(err, api.ErrConflict) {
		t.Errorf("create existing plan: %v", err)
	}
	if _, err := b.PutPlan(ctx, "ops", configs.Plan{}, true); fieldOf(t, err) != "name" {
		t.Errorf("empty plan name: %v", err)
	}
	if _, err := b.PutPlan(ctx, "ops", configs.Plan{Name: "x", Limits: configs.Limits{MaxParallelCalls: ptr(int64(-2))}}, true); fieldOf(t, err) != "limits.max_parallel_calls" {
		t.Errorf("count below -1: %v", err)
	}
	if created, err := b.PutPlan(ctx, "ops", configs.Plan{Name: "gold"}, false); err != nil || !created {
		t.Errorf("put new plan: %v %v", created, err)
	}
	if created, err := b.PutPlan(ctx, "ops", configs.Plan{Name: "gold"}, false); err != nil || created {
		t.Errorf("put existing plan: %v %v", created, err)
	}
	if err := b.DeletePlan(ctx, "ops", "standard"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("delete used plan: %v", err)
	}
	if err := b.DeletePlan(ctx, "ops", "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("delete missing plan: %v", err)
	}
	if err := b.DeletePlan(ctx, "ops", "gold"); err != nil {
		t.Errorf("delete plan: %v", err)
	}
	bad := configs.Tenant{Name: "t", Plan: "nope", Carrier: "c", Sources: []string{"10.0.0.1/32"}}
	if _, err := b.PutTenant(ctx, "root", bad, true); fieldOf(t, err) != "plan" {
		t.Errorf("unknown plan: %v", err)
	}
	if err := b.DeleteTenant(ctx, "root", "demo"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("delete tenant with calls: %v", err)
	}
	// Returned values are copies.
	p, _ := b.GetPlan(ctx, "standard")
	*p.Limits.MaxParallelCalls = 99
	if p2, _ := b.GetPlan(ctx, "standard"); *p2.Limits.MaxParallelCalls != 10 {
		t.Error("GetPlan shares memory with the store")
	}
	log := b.AuditLog()
	last := log[len(log)-1]
	if last.Action != "plan.delete" || last.Actor != "ops" || last.Resource != "plans/gold" ||
		!last.At.Equal(b.Now()) || last.ID == "" {
		t.Errorf("audit %+v", last)
	}
}

func TestPatchLimits(t *testing.T) {
	b := apitest.NewBackend()
	l, err := b.PatchLimits(ctx, "ops", "demo", api.LimitsPatch{Set: configs.Limits{
		MaxParallelCalls: ptr(int64(4)),
		Destinations:     map[string]bool{"premium": false, "intl": true},
	}})
	if err != nil || *l.Overrides.MaxParallelCalls != 4 || *l.Effective.MaxParallelCalls != 4 || len(l.Effective.Destinations) != 2 {
		t.Fatalf("set: %+v %v", l, err)
	}
	l, err = b.PatchLimits(ctx, "ops", "demo", api.LimitsPatch{Clear: []string{"max_parallel_calls"}, ClearDestinations: []string{"premium"}})
	if err != nil || l.Overrides.MaxParallelCalls != nil || *l.Effective.MaxParallelCalls != 10 || len(l.Overrides.Destinations) != 1 {
		t.Fatalf("clear: %+v %v", l, err)
	}
	l, _ = b.PatchLimits(ctx, "ops", "demo", api.LimitsPatch{Clear: []string{"destinations"}})
	if l.Overrides.Destinations != nil {
		t.Errorf("destinations not cleared: %v", l.Overrides.Destinations)
	}
	if _, err := b.PatchLimits(ctx, "ops", "demo", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: ptr(int64(-3))}}); fieldOf(t, err) != "max_monthly_minutes" {
		t.Errorf("patch below -1: %v", err)
	}
	if _, err := b.PatchLimits(ctx, "ops", "nope", api.LimitsPatch{}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing tenant: %v", err)
	}
}

func TestApply(t *testing.T) {
	b := apitest.NewBackend()
	doc := api.ApplyDoc{
		Plans: []configs.Plan{
			{Name: "standard", Limits: configs.Limits{MaxParallelCalls: ptr(int64(10)), MaxMonthlyMinutes: ptr(int64(10000)), MonthlySpendLimit: ptr(configs.MustMoney("500"))},
				Rates: []configs.Rate{{PerMinute: ptr(configs.MustMoney("0.01"))}}},
			{Name: "gold"},
		},
		Tenants: []configs.Tenant{{Name: "acme", Plan: "gold", Carrier: "carrier", Sources: []string{"10.2.0.0/16"}}},
	}
	res, err := b.Apply(ctx, "root", doc, true)
	if err != nil || !res.DryRun || len(res.Changes) != 3 ||
		res.Changes[0].Op != "unchanged" || res.Changes[1].Op != "create" || res.Changes[2].Op != "create" {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if _, err := b.GetPlan(ctx, "gold"); !errors.Is(err, api.ErrNotFound) {
		t.Error("dry run created a plan")
	}
	if _, err := b.Apply(ctx, "root", doc, false); err != nil {
		t.Fatal(err)
	}
	doc.Plans[1].Limits.MaxParallelCalls = ptr(int64(3))
	res, _ = b.Apply(ctx, "root", doc, false)
	if c := res.Changes[1]; c.Op != "update" || len(c.Diff) != 1 || c.Diff[0] != "limits.max_parallel_calls: -1 -> 3" {
		t.Errorf("update: %+v", c)
	}
	if res.Changes[2].Op != "unchanged" {
		t.Errorf("tenant: %+v", res.Changes[2])
	}
	doc.Tenants[0].Plan = "nope"
	if _, err := b.Apply(ctx, "root", doc, false); fieldOf(t, err) != "tenants[0].plan" {
		t.Errorf("bad tenant plan: %v", err)
	}
}

func TestCallsTokensStatus(t *testing.T) {
	b := apitest.NewBackend()
	if err := b.Hangup(ctx, "root", "f81d4fae-7dec-11d0@10.0.0.7"); err != nil { // by SIP Call-ID
		t.Errorf("hangup by Call-ID: %v", err)
	}
	if calls, _ := b.Calls(ctx, ""); len(calls) != 1 || calls[0].ID != apitest.Call1ID {
		t.Errorf("calls %+v", calls)
	}
	nt, err := b.CreateToken(ctx, "root", "ci", api.ScopeRead)
	if err != nil || nt.Token == "" {
		t.Fatal(err)
	}
	if p, ok := b.Authenticate(nt.Token); !ok || p.Name != "ci" {
		t.Errorf("new token: %v %v", p, ok)
	}
	if _, err := b.CreateToken(ctx, "root", "ci", api.ScopeRead); !errors.Is(err, api.ErrConflict) {
		t.Errorf("duplicate token: %v", err)
	}
	if _, err := b.CreateToken(ctx, "root", "x", "god"); fieldOf(t, err) != "scope" {
		t.Errorf("bad scope: %v", err)
	}
	st, err := b.Suspend(ctx, "root", "demo", "unpaid")
	if err != nil || !st.Suspended || st.ActiveCalls != 1 {
		t.Errorf("suspend: %+v %v", st, err)
	}
	if _, err := b.Suspend(ctx, "root", "demo", ""); fieldOf(t, err) != "reason" {
		t.Errorf("suspend without reason: %v", err)
	}
	if st, _ := b.Resume(ctx, "root", "demo", ""); st.Suspended {
		t.Error("still suspended")
	}
	entries, _ := b.Audit(ctx, api.AuditQuery{Tenant: "demo", Limit: 2})
	if len(entries) != 2 || entries[0].Action != "tenant.resume" || entries[1].Action != "tenant.suspend" {
		t.Errorf("audit %+v", entries)
	}
}

func TestBlockedAndUnblock(t *testing.T) {
	b := apitest.NewBackend()
	list, err := b.Blocked(ctx)
	if err != nil || len(list) != 2 || list[0].IP != apitest.BlockedIP4 || list[1].IP != apitest.BlockedIP6 {
		t.Fatalf("Blocked = %+v %v", list, err)
	}
	if err := b.Unblock(ctx, "ops", netip.MustParseAddr("192.0.2.1")); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Unblock of a source not blocked: %v", err)
	}
	if err := b.Unblock(ctx, "ops", netip.MustParseAddr("2001:db8:0::bad")); err != nil {
		t.Fatal(err)
	}
	if list, _ := b.Blocked(ctx); len(list) != 1 || list[0].IP != apitest.BlockedIP4 {
		t.Fatalf("after Unblock: %+v", list)
	}
	log := b.AuditLog()
	if last := log[len(log)-1]; last.Actor != "ops" || last.Action != "source.unblock" || last.Resource != "blocked/2001:db8::bad" || len(last.Before) == 0 {
		t.Fatalf("audit %+v", last)
	}
}
