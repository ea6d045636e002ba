package control_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/internal/callrec"
	"github.com/tollgate/tollgate/store"
)

func TestSeedOnce(t *testing.T) {
	f := newFixture(t)
	plans, err := f.svc.ListPlans(ctx)
	mustNil(t, err)
	if len(plans) != 1 || plans[0].Name != "basic" {
		t.Fatalf("plans = %+v", plans)
	}
	// Seeded plans are normalised: unset limits are -1, threshold 80.
	if l := plans[0].Limits; *l.MaxParallelInbound != -1 || *l.AlertThresholdPct != 80 || *l.MonthlySpendLimit != configs.MoneyUnlimited {
		t.Fatalf("seeded plan limits not normalised: %+v", l)
	}
	tenants, err := f.svc.ListTenants(ctx)
	mustNil(t, err)
	if len(tenants) != 2 || tenants[0].Name != "acme" || tenants[1].Name != "beta" {
		t.Fatalf("tenants = %+v", tenants)
	}
	if p, ok := f.svc.Authenticate(opsSecret); !ok || p != (api.Principal{Name: "ops", Scope: api.ScopeAdmin}) {
		t.Fatalf("Authenticate(seeded secret) = %+v, %v", p, ok)
	}
	got := actions(f.audit(api.AuditQuery{}))
	want := []string{"seed plans/basic", "seed tenants/acme", "seed tenants/beta", "seed tokens/ops"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Fatalf("audit = %q, missing %q", got, w)
		}
	}
	for _, e := range f.audit(api.AuditQuery{}) {
		if e.Actor != "config" {
			t.Fatalf("seed entry actor = %q", e.Actor)
		}
		if strings.Contains(string(e.After), opsSecret) {
			t.Fatal("the token secret is in the audit log")
		}
	}
	if c := f.svc.Config(); len(c.Plans) != 1 || len(c.Tenants) != 2 || c.Carriers[0].Name != "up" {
		t.Fatalf("effective config = %+v", c)
	}

	// An API change survives a restart; the config file is not seeded again
	// (even when it changed).
	_, err = f.svc.PutPlan(ctx, "ops", configs.Plan{Name: "gold"}, true)
	mustNil(t, err)
	mustNil(t, f.svc.DeleteTenant(ctx, "ops", "beta"))
	f.cfg.Plans = append(f.cfg.Plans, configs.Plan{Name: "file-only"})
	f.cfg.ApplyDefaults()
	f.reopen()
	plans, _ = f.svc.ListPlans(ctx)
	if names := planNames(plans); !slices.Equal(names, []string{"basic", "gold"}) {
		t.Fatalf("plans after restart = %v", names)
	}
	tenants, _ = f.svc.ListTenants(ctx)
	if len(tenants) != 1 || tenants[0].Name != "acme" {
		t.Fatalf("tenants after restart = %+v", tenants)
	}
	n := 0
	for _, e := range f.audit(api.AuditQuery{}) {
		if e.Action == "seed" {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d seed entries after restart, want 4", n)
	}
	if _, ok := f.svc.Authenticate(opsSecret); !ok {
		t.Fatal("seeded token lost after restart")
	}
}

func planNames(ps []configs.Plan) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestSeedTokenErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		env  func(string) string
		want string
	}{
		"missing": {func(string) string { return "" }, "api.tokens[0].token_env"},
		"short":   {func(string) string { return "short" }, "api.tokens[0].token_env"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := control.Open(testConfig(t), store.NewMem(), control.Options{Now: newClock(t0).Now, Logger: zerolog.Nop(), Env: tc.env})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.HasPrefix(err.Error(), "control: ") {
				t.Fatalf("Open error = %v, want one naming %s", err, tc.want)
			}
		})
	}
	t.Run("sha256", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.API.Tokens = []configs.APIToken{{Name: "ro", Scope: "read", TokenSHA256: strings.ToUpper(sha("read-only-secret-xyz"))}}
		svc, err := control.Open(cfg, store.NewMem(), control.Options{Now: newClock(t0).Now, Logger: zerolog.Nop()})
		mustNil(t, err)
		defer svc.Close()
		if p, ok := svc.Authenticate("read-only-secret-xyz"); !ok || p.Scope != api.ScopeRead {
			t.Fatalf("Authenticate = %+v, %v", p, ok)
		}
	})
}

func TestPlanCRUD(t *testing.T) {
	f := newFixture(t)
	gold := configs.Plan{Name: "gold", Limits: configs.Limits{MaxParallelCalls: i64(50)}}
	created, err := f.svc.PutPlan(ctx, "alice", gold, true)
	mustNil(t, err)
	if !created {
		t.Fatal("created = false")
	}
	_, err = f.svc.PutPlan(ctx, "alice", gold, true)
	wantErr(t, err, api.ErrConflict)
	gold.Limits.MaxParallelCalls = i64(60)
	created, err = f.svc.PutPlan(ctx, "alice", gold, false)
	mustNil(t, err)
	if created {
		t.Fatal("replace reported created")
	}
	p, err := f.svc.GetPlan(ctx, "gold")
	mustNil(t, err)
	if *p.Limits.MaxParallelCalls != 60 || *p.Limits.MaxMonthlyMinutes != -1 {
		t.Fatalf("gold = %+v", p.Limits)
	}
	_, err = f.svc.GetPlan(ctx, "nope")
	wantErr(t, err, api.ErrNotFound)
	wantErr(t, f.svc.DeletePlan(ctx, "alice", "nope"), api.ErrNotFound)
	wantErr(t, f.svc.DeletePlan(ctx, "alice", "basic"), api.ErrConflict)
	mustNil(t, f.svc.DeletePlan(ctx, "alice", "gold"))
	_, err = f.svc.GetPlan(ctx, "gold")
	wantErr(t, err, api.ErrNotFound)

	es := f.audit(api.AuditQuery{})
	var got []string
	for _, e := range es {
		if e.Actor == "alice" {
			got = append(got, e.Action)
		}
	}
	if want := []string{"plan.create", "plan.update", "plan.delete"}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
	upd := es[len(es)-2]
	var before, after configs.Plan
	mustNil(t, json.Unmarshal(upd.Before, &before))
	mustNil(t, json.Unmarshal(upd.After, &after))
	if *before.Limits.MaxParallelCalls != 50 || *after.Limits.MaxParallelCalls != 60 {
		t.Fatalf("plan.update before/after = %s / %s", upd.Before, upd.After)
	}

	// A plan change reaches the engine: basic's tenants inherit it.
	_, err = f.svc.PutPlan(ctx, "alice", configs.Plan{Name: "basic", Limits: configs.Limits{MaxParallelCalls: i64(3)}}, false)
	mustNil(t, err)
	l, err := f.svc.GetLimits(ctx, "beta")
	mustNil(t, err)
	if *l.Effective.MaxParallelCalls != 3 {
		t.Fatalf("effective max_parallel_calls = %d, want 3", *l.Effective.MaxParallelCalls)
	}
}

func TestTenantCRUD(t *testing.T) {
	f := newFixture(t)
	gamma := configs.Tenant{Name: "gamma", Plan: "basic", Carrier: "up", Sources: []string{"10.3.0.0/24"}}
	created, err := f.svc.PutTenant(ctx, "alice", gamma, true)
	mustNil(t, err)
	if !created {
		t.Fatal("created = false")
	}
	if f.edge.Routing() != 1 {
		t.Fatalf("SetRouting called %d times, want 1", f.edge.Routing())
	}
	if c := f.edge.RoutingSeen()[0]; len(c.Tenants) != 3 {
		t.Fatalf("routing config has %d tenants", len(c.Tenants))
	}
	_, err = f.svc.PutTenant(ctx, "alice", gamma, true)
	wantErr(t, err, api.ErrConflict)
	v, err := f.svc.GetTenant(ctx, "gamma")
	mustNil(t, err)
	// Created through the API: overrides pre-filled from tenant_defaults.
	if v.Limits.MaxParallelCalls == nil || *v.Limits.MaxParallelCalls != 5 || v.PBX.Transport != "" {
		t.Fatalf("gamma = %+v", v.Tenant)
	}
	_, err = f.svc.GetTenant(ctx, "nope")
	wantErr(t, err, api.ErrNotFound)

	// Replace: the body as it is; DIDs and a PBX without transport (udp).
	gamma.DIDs = []string{"+4930"}
	gamma.PBX = configs.Hop{Address: "10.3.0.5:5060"}
	created, err = f.svc.PutTenant(ctx, "alice", gamma, false)
	mustNil(t, err)
	if created {
		t.Fatal("replace reported created")
	}
	v, _ = f.svc.GetTenant(ctx, "gamma")
	if v.Limits.MaxParallelCalls != nil || v.PBX.Transport != "udp" {
		t.Fatalf("replaced gamma = %+v", v.Tenant)
	}
	if f.edge.Routing() != 2 {
		t.Fatalf("SetRouting called %d times, want 2", f.edge.Routing())
	}

	// Busy: a tenant with an active call is not deleted.
	if d := f.call("c1", "gamma", "100", "200", true); !d.Admitted {
		t.Fatalf("call rejected: %+v", d.Rejection)
	}
	wantErr(t, f.svc.DeleteTenant(ctx, "alice", "gamma"), api.ErrConflict)
	v, _ = f.svc.GetTenant(ctx, "gamma")
	if v.Status.ActiveCalls != 1 {
		t.Fatalf("status = %+v", v.Status)
	}
	f.end("c1")
	mustNil(t, f.svc.DeleteTenant(ctx, "alice", "gamma"))
	wantErr(t, f.svc.DeleteTenant(ctx, "alice", "gamma"), api.ErrNotFound)
	if _, err := f.svc.GetTenant(ctx, "gamma"); err == nil {
		t.Fatal("deleted tenant still there")
	}
	if slices.Contains(f.svc.Runner().Tenants(), "gamma") {
		t.Fatal("deleted tenant still in the engine")
	}
	var got []string
	for _, e := range f.audit(api.AuditQuery{Tenant: "gamma"}) {
		got = append(got, e.Action)
	}
	if want := []string{"tenant.create", "tenant.update", "tenant.delete"}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

func TestValidationNamesBodyFields(t *testing.T) {
	f := newFixture(t)
	tenant := func(mod func(*configs.Tenant)) configs.Tenant {
		tn := configs.Tenant{Name: "gamma", Plan: "basic", Carrier: "up", Sources: []string{"10.3.0.0/24"}}
		mod(&tn)
		return tn
	}
	for _, tc := range []struct {
		name  string
		err   func() error
		field string
	}{
		{"tenant bad limit", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Limits.MaxParallelCalls = i64(-5) }), true)
			return err
		}, "limits.max_parallel_calls"},
		{"tenant unknown plan", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Plan = "platinum" }), true)
			return err
		}, "plan"},
		{"tenant overlapping sources", func() error {
			// 10.1.0.128/25 is inside acme's 10.1.0.0/24; acme sorts first.
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Sources = []string{"10.9.0.0/24", "10.1.0.128/25"} }), true)
			return err
		}, "sources[1]"},
		{"tenant overlapping a later tenant", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Name = "aaa"; t.Sources = []string{"10.2.0.0/16"} }), true)
			return err
		}, "sources[0]"},
		{"tenant DID claimed", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) {
				t.DIDs = []string{"+1555"}
				t.PBX = configs.Hop{Address: "10.3.0.1:5060"}
			}), true)
			return err
		}, "dids[0]"},
		{"tenant unknown destination class", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Limits.Destinations = map[string]bool{"mars": false} }), true)
			return err
		}, "limits.destinations.mars"},
		{"tenant name", func() error {
			_, err := f.svc.PutTenant(ctx, "a", tenant(func(t *configs.Tenant) { t.Name = "bad name" }), true)
			return err
		}, "name"},
		{"plan rate per_minute missing", func() error {
			_, err := f.svc.PutPlan(ctx, "a", configs.Plan{Name: "gold", Rates: []configs.Rate{{Prefix: "44"}}}, true)
			return err
		}, "rates[0].per_minute"},
		{"plan bad threshold", func() error {
			_, err := f.svc.PutPlan(ctx, "a", configs.Plan{Name: "gold", Limits: configs.Limits{AlertThresholdPct: i64(101)}}, true)
			return err
		}, "limits.alert_threshold_pct"},
		{"patch bad limit", func() error {
			_, err := f.svc.PatchLimits(ctx, "a", "acme", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: i64(-2)}})
			return err
		}, "max_monthly_minutes"},
		{"patch unknown class", func() error {
			_, err := f.svc.PatchLimits(ctx, "a", "acme", api.LimitsPatch{Set: configs.Limits{Destinations: map[string]bool{"mars": true}}})
			return err
		}, "destinations.mars"},
		{"patch unknown clear", func() error {
			_, err := f.svc.PatchLimits(ctx, "a", "acme", api.LimitsPatch{Clear: []string{"max_fun"}})
			return err
		}, "max_fun"},
		{"role bad pattern", func() error {
			_, err := f.svc.PutRole(ctx, "a", "acme", configs.Role{Name: "agents", Patterns: []string{"[bad"}})
			return err
		}, "patterns[0]"},
		{"roles duplicate name", func() error {
			_, err := f.svc.PutRoles(ctx, "a", "acme", []configs.Role{{Name: "x"}, {Name: "x"}})
			return err
		}, "[1].name"},
		{"token name", func() error {
			_, err := f.svc.CreateToken(ctx, "a", "bad name", api.ScopeRead)
			return err
		}, "name"},
		{"token scope", func() error {
			_, err := f.svc.CreateToken(ctx, "a", "ci", "root")
			return err
		}, "scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fe := wantField(t, tc.err(), tc.field)
			if fe.Message == "" {
				t.Fatal("empty message")
			}
		})
	}
	// Nothing of the rejected changes was made.
	if _, err := f.svc.GetTenant(ctx, "gamma"); err == nil {
		t.Fatal("invalid tenant stored")
	}
	if _, err := f.svc.GetPlan(ctx, "gold"); err == nil {
		t.Fatal("invalid plan stored")
	}
	roles, _ := f.svc.GetRoles(ctx, "acme")
	if len(roles) != 0 {
		t.Fatalf("roles = %+v", roles)
	}
}

func TestPatchLimits(t *testing.T) {
	f := newFixture(t)
	v, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{
		MaxParallelCalls:  i64(3),
		MonthlySpendLimit: money("12.5"),
		Destinations:      map[string]bool{"premium": false},
	}})
	mustNil(t, err)
	if *v.Overrides.MaxParallelCalls != 3 || *v.Effective.MaxParallelCalls != 3 || *v.Effective.MonthlySpendLimit != configs.MustMoney("12.5") ||
		*v.Effective.MaxParallelInbound != -1 || v.Effective.Destinations["premium"] || v.Plan != "basic" {
		t.Fatalf("after set: %+v / %+v", v.Overrides, v.Effective)
	}
	// null clears: the plan's value applies again.
	v, err = f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Clear: []string{"max_parallel_calls"}, ClearDestinations: []string{"premium"}})
	mustNil(t, err)
	if v.Overrides.MaxParallelCalls != nil || *v.Effective.MaxParallelCalls != 10 || v.Overrides.Destinations != nil ||
		*v.Overrides.MonthlySpendLimit != configs.MustMoney("12.5") {
		t.Fatalf("after clear: %+v / %+v", v.Overrides, v.Effective)
	}
	got, err := f.svc.GetLimits(ctx, "acme")
	mustNil(t, err)
	if got.Overrides.MaxParallelCalls != nil || *got.Overrides.MonthlySpendLimit != configs.MustMoney("12.5") {
		t.Fatalf("GetLimits = %+v", got.Overrides)
	}
	// Reset: tenant_defaults.
	v, err = f.svc.ResetLimits(ctx, "alice", "acme")
	mustNil(t, err)
	if *v.Overrides.MaxParallelCalls != 5 || v.Overrides.MonthlySpendLimit != nil {
		t.Fatalf("after reset: %+v", v.Overrides)
	}
	_, err = f.svc.PatchLimits(ctx, "alice", "nope", api.LimitsPatch{})
	wantErr(t, err, api.ErrNotFound)

	es := f.audit(api.AuditQuery{Tenant: "acme"})
	var got2 []string
	for _, e := range es {
		if e.Actor == "alice" {
			got2 = append(got2, e.Action+" "+e.Resource)
		}
	}
	want := []string{"limits.update tenants/acme/limits", "limits.update tenants/acme/limits", "limits.reset tenants/acme/limits"}
	if !slices.Equal(got2, want) {
		t.Fatalf("audit = %q", got2)
	}
	last := es[len(es)-1]
	if !strings.Contains(string(last.Before), `"monthly_spend_limit":12.5`) || !strings.Contains(string(last.After), `"max_parallel_calls":5`) {
		t.Fatalf("limits.reset before/after = %s / %s", last.Before, last.After)
	}
	// The overrides survive a restart.
	f.reopen()
	got, _ = f.svc.GetLimits(ctx, "acme")
	if *got.Overrides.MaxParallelCalls != 5 {
		t.Fatalf("after restart: %+v", got.Overrides)
	}
}

func TestLimitChangeAppliesToNextAdmit(t *testing.T) {
	f := newFixture(t)
	if d := f.call("c1", "acme", "100", "200", true); !d.Admitted {
		t.Fatal("first call rejected")
	}
	_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxParallelCalls: i64(1)}})
	mustNil(t, err)
	f.clock.Advance(time.Second)
	d := f.call("c2", "acme", "101", "201", true)
	if d.Admitted || d.Rejection.Cause != admission.CauseParallelCalls {
		t.Fatalf("second call: admitted=%v rejection=%+v, want parallel_calls", d.Admitted, d.Rejection)
	}
	// The lowered cap does not cut the running call.
	if cuts := f.edge.Cuts(); len(cuts) != 0 {
		t.Fatalf("cuts = %v", cuts)
	}
}

func TestLowerMinutesMovesDeadline(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: i64(100), AutoSuspend: bptr(true)}})
	mustNil(t, err)
	f.call("c1", "acme", "100", "200", true)
	before := f.svc.Runner().Tick(f.clock.Now()).Deadline
	if want := t0.Add(80 * time.Minute); !before.Equal(want) {
		t.Fatalf("deadline = %v, want the threshold at %v", before, want)
	}
	f.clock.Advance(time.Minute)
	n := len(f.edge.EffectsSeen())
	_, err = f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: i64(10)}})
	mustNil(t, err)
	after := f.edge.Deadline()
	if !after.Before(before) {
		t.Fatalf("deadline %v -> %v, want earlier", before, after)
	}
	// The next deadline is the alert threshold: 80 % of 10 minutes.
	if want := t0.Add(8 * time.Minute); !after.Equal(want) {
		t.Fatalf("deadline = %v, want %v", after, want)
	}
	if len(f.edge.EffectsSeen()) <= n {
		t.Fatal("the edge was not handed the step's effects (it re-arms its timer there)")
	}
}

func TestSuspendCutsCallsAndAudits(t *testing.T) {
	f := newFixture(t)
	f.call("c1", "acme", "100", "200", true)
	f.call("c2", "acme", "101", "201", false)
	f.call("c3", "beta", "100", "200", true)
	suspendedAt := f.clock.Now()
	st, err := f.svc.Suspend(ctx, "alice", "acme", "unpaid invoice")
	mustNil(t, err)
	if !st.Suspended || st.SuspendReason != "unpaid invoice" || st.SuspendCap != "" {
		t.Fatalf("status = %+v", st)
	}
	if st.SuspendedSince == nil || !st.SuspendedSince.Equal(suspendedAt) {
		t.Fatalf("suspended since %v, want %v", st.SuspendedSince, suspendedAt)
	}
	cuts := f.edge.Cuts()
	slices.Sort(cuts)
	if !slices.Equal(cuts, []string{"c1", "c2"}) {
		t.Fatalf("cuts = %v, want c1 c2", cuts)
	}
	if d := f.call("c4", "acme", "100", "200", false); d.Admitted || d.Rejection.Cause != admission.CauseSuspended {
		t.Fatalf("call of a suspended tenant: %+v", d)
	}
	f.clock.Advance(time.Minute)
	v, _ := f.svc.GetTenant(ctx, "acme")
	if !v.Status.Suspended || v.Status.SuspendedSince == nil || !v.Status.SuspendedSince.Equal(suspendedAt) {
		t.Fatalf("GetTenant status %+v, want suspended since %v", v.Status, suspendedAt)
	}
	if v, _ := f.svc.GetTenant(ctx, "beta"); v.Status.SuspendedSince != nil {
		t.Fatalf("beta: %+v", v.Status)
	}
	st, err = f.svc.Resume(ctx, "bob", "acme", "paid")
	mustNil(t, err)
	if st.Suspended || st.SuspendedSince != nil {
		t.Fatalf("status after resume = %+v", st)
	}
	_, err = f.svc.Suspend(ctx, "alice", "nope", "x")
	wantErr(t, err, api.ErrNotFound)

	var got []string
	for _, e := range f.audit(api.AuditQuery{Tenant: "acme"}) {
		if e.Action == "tenant.suspend" || e.Action == "tenant.resume" {
			got = append(got, e.Actor+" "+e.Action+" "+e.Reason)
		}
	}
	if want := []string{"alice tenant.suspend unpaid invoice", "bob tenant.resume paid"}; !slices.Equal(got, want) {
		t.Fatalf("audit = %q", got)
	}
	// The suspension is durable (journaled).
	_, err = f.svc.Suspend(ctx, "alice", "beta", "fraud")
	mustNil(t, err)
	f.reopen()
	if v, _ := f.svc.GetTenant(ctx, "beta"); !v.Status.Suspended || v.Status.SuspendReason != "fraud" {
		t.Fatalf("after restart: %+v", v.Status)
	}
}

func TestAutomaticSuspensionAudit(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: i64(1), AutoSuspend: bptr(true)}})
	mustNil(t, err)
	f.call("c1", "acme", "100", "200", true)
	f.clock.Advance(2 * time.Minute)
	out := f.svc.Runner().Tick(f.clock.Now())
	if len(out.Cuts) != 1 || !out.Cuts[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("tick cuts = %+v", out.Cuts)
	}
	var entry api.AuditEntry
	eventually(t, "automatic suspension audit entry", func() bool {
		for _, e := range f.audit(api.AuditQuery{Tenant: "acme"}) {
			if e.Action == "tenant.suspend" {
				entry = e
				return true
			}
		}
		return false
	})
	if entry.Actor != "system" || entry.Cap != "max_monthly_minutes" || entry.Usage != 60 || entry.Limit != 60 || entry.Tenant != "acme" {
		t.Fatalf("entry = %+v", entry)
	}
	v, _ := f.svc.GetTenant(ctx, "acme")
	if !v.Status.Suspended || v.Status.SuspendCap != "max_monthly_minutes" {
		t.Fatalf("status = %+v", v.Status)
	}
}

func TestUsageView(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MonthlySpendLimit: money("10")}})
	mustNil(t, err)
	_, err = f.svc.PutRole(ctx, "alice", "acme", configs.Role{Name: "agents", MaxMonthlyMinutes: i64(2), Patterns: []string{"1*"}})
	mustNil(t, err)
	f.call("c1", "acme", "100", "200", true)
	f.call("c2", "acme", "200", "300", true)
	f.clock.Advance(30 * time.Second)
	f.end("c2")
	f.clock.Advance(60 * time.Second)
	// c1: 90 s, c2: 30 s at 1.00 per minute billed per second; c3 is
	// admitted, not answered.
	f.end("c1")
	f.call("c3", "acme", "100", "200", false)

	u, err := f.svc.Usage(ctx, "acme")
	mustNil(t, err)
	if !u.CycleStart.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !u.CycleEnd.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("cycle = %v .. %v", u.CycleStart, u.CycleEnd)
	}
	caps := map[string]api.CapUsage{}
	for _, c := range u.Caps {
		caps[c.Cap] = c
	}
	check := func(name, unit, used, limit string, pct float64) {
		t.Helper()
		c, ok := caps[name]
		if !ok {
			t.Fatalf("cap %s missing", name)
		}
		if c.Unit != unit || string(c.Used) != used || c.Limit == nil || string(*c.Limit) != limit || c.Percent == nil || *c.Percent != pct {
			t.Fatalf("%s = %+v (limit %v, percent %v)", name, c, deref(c.Limit), derefF(c.Percent))
		}
	}
	check("max_parallel_calls", "calls", "1", "10", 10)
	check("max_monthly_minutes", "minutes", "2", "1000", 0.2)
	check("monthly_spend_limit", "money", "2", "10", 20)
	if len(u.Users) != 1 || u.Users[0].User != "100" || u.Users[0].Role != "agents" || u.Users[0].Minutes != "1.5" ||
		u.Users[0].Limit == nil || *u.Users[0].Limit != "2" || *u.Users[0].Percent != 75 {
		t.Fatalf("users = %+v", u.Users)
	}
	if len(u.Days) != 1 || u.Days[0].Date != "2026-03-10" || u.Days[0].Calls != 2 || u.Days[0].Seconds != 120 || u.Days[0].Spend != configs.MustMoney("2") {
		t.Fatalf("days = %+v", u.Days)
	}
	if u.Status.ActiveCalls != 1 || u.AlertThresholdPct != 80 {
		t.Fatalf("status = %+v, alert threshold %d", u.Status, u.AlertThresholdPct)
	}
	// Nothing draws (c3 rings): no budget runs out.
	if caps["max_monthly_minutes"].ExhaustsAt != nil || caps["monthly_spend_limit"].ExhaustsAt != nil {
		t.Fatalf("exhausts_at with no call drawing: %+v", u.Caps)
	}
	// One answered call: 998 minutes left, and 8.00 of spend at 1.00 a
	// minute billed per second (the first increment charged at the answer).
	f.call("c4", "acme", "200", "300", true)
	now := f.clock.Now()
	u, err = f.svc.Usage(ctx, "acme")
	mustNil(t, err)
	for _, c := range u.Caps {
		switch c.Cap {
		case "max_monthly_minutes":
			if c.ExhaustsAt == nil || !c.ExhaustsAt.Equal(now.Add(998*time.Minute)) {
				t.Fatalf("minutes exhausts_at %v, want %v", c.ExhaustsAt, now.Add(998*time.Minute))
			}
		case "monthly_spend_limit":
			if c.ExhaustsAt == nil || c.ExhaustsAt.Before(now.Add(8*time.Minute-time.Second)) || c.ExhaustsAt.After(now.Add(8*time.Minute+time.Second)) {
				t.Fatalf("spend exhausts_at %v, want about %v", c.ExhaustsAt, now.Add(8*time.Minute))
			}
		case "max_parallel_calls":
			if c.ExhaustsAt != nil {
				t.Fatalf("parallel exhausts_at %v", c.ExhaustsAt)
			}
		}
	}
	if len(u.Users) != 1 || u.Users[0].ExhaustsAt != nil {
		t.Fatalf("users with nothing drawing: %+v", u.Users)
	}
	// User 100 (role agents, 2 minutes, 1.5 used) calls: 30 s left.
	f.call("c5", "acme", "100", "300", true)
	u, err = f.svc.Usage(ctx, "acme")
	mustNil(t, err)
	if len(u.Users) != 1 || u.Users[0].ExhaustsAt == nil || !u.Users[0].ExhaustsAt.Equal(now.Add(30*time.Second)) {
		t.Fatalf("user exhausts_at: %+v, want %v", u.Users, now.Add(30*time.Second))
	}
	// Unlimited caps have no limit nor percent.
	u, err = f.svc.Usage(ctx, "beta")
	mustNil(t, err)
	for _, c := range u.Caps {
		if c.Cap == "monthly_spend_limit" && (c.Limit != nil || c.Percent != nil || c.Used != "0") {
			t.Fatalf("unlimited spend cap = %+v", c)
		}
	}
	_, err = f.svc.Usage(ctx, "nope")
	wantErr(t, err, api.ErrNotFound)
}

func deref(n *json.Number) string {
	if n == nil {
		return "<nil>"
	}
	return string(*n)
}

func derefF(p *float64) string {
	if p == nil {
		return "<nil>"
	}
	return str(*p)
}

func TestRoles(t *testing.T) {
	f := newFixture(t)
	created, err := f.svc.PutRole(ctx, "alice", "acme", configs.Role{Name: "agents", MaxParallelCalls: i64(1), Users: []string{"100"}})
	mustNil(t, err)
	if !created {
		t.Fatal("created = false")
	}
	created, err = f.svc.PutRole(ctx, "alice", "acme", configs.Role{Name: "agents", MaxParallelCalls: i64(2), Users: []string{"100"}})
	mustNil(t, err)
	if created {
		t.Fatal("replace reported created")
	}
	_, err = f.svc.PutRole(ctx, "alice", "acme", configs.Role{Name: "managers"})
	mustNil(t, err)
	roles, err := f.svc.GetRoles(ctx, "acme")
	mustNil(t, err)
	if len(roles) != 2 || roles[0].Name != "agents" || *roles[0].MaxParallelCalls != 2 || roles[1].Name != "managers" {
		t.Fatalf("roles = %+v", roles)
	}
	// The role caps reach the engine.
	f.call("c1", "acme", "100", "200", false)
	f.call("c2", "acme", "100", "201", false)
	if d := f.call("c3", "acme", "100", "202", false); d.Admitted || d.Rejection.Cause != admission.CauseRoleParallel {
		t.Fatalf("third call of user 100: %+v", d)
	}
	wantErr(t, f.svc.DeleteRole(ctx, "alice", "acme", "nope"), api.ErrNotFound)
	mustNil(t, f.svc.DeleteRole(ctx, "alice", "acme", "agents"))
	out, err := f.svc.PutRoles(ctx, "alice", "acme", nil)
	mustNil(t, err)
	if out == nil || len(out) != 0 {
		t.Fatalf("PutRoles(nil) = %#v", out)
	}
	_, err = f.svc.GetRoles(ctx, "nope")
	wantErr(t, err, api.ErrNotFound)
	n := 0
	for _, e := range f.audit(api.AuditQuery{Tenant: "acme"}) {
		if e.Action == "roles.update" && e.Resource == "tenants/acme/roles" {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d roles.update entries, want 5", n)
	}
}

func TestCallsAndHangup(t *testing.T) {
	f := newFixture(t)
	for _, c := range []callrec.Call{
		{ID: "abc;t1", CallID: "abc", Tenant: "acme", Direction: "outbound"},
		{ID: "def;t2", CallID: "def", Tenant: "beta", Direction: "inbound"},
	} {
		f.edge.AddCall(c)
	}
	calls, err := f.svc.Calls(ctx, "acme")
	mustNil(t, err)
	if len(calls) != 1 || calls[0].ID != "abc;t1" {
		t.Fatalf("calls = %+v", calls)
	}
	all, _ := f.svc.Calls(ctx, "")
	if len(all) != 2 {
		t.Fatalf("all calls = %+v", all)
	}
	// An unknown tenant is not found (404), not an empty list.
	_, err = f.svc.Calls(ctx, "nope")
	wantErr(t, err, api.ErrNotFound)
	mustNil(t, f.svc.Hangup(ctx, "alice", "def"))
	wantErr(t, f.svc.Hangup(ctx, "alice", "def"), api.ErrNotFound)
	var got []api.AuditEntry
	for _, e := range f.audit(api.AuditQuery{}) {
		if e.Action == "call.hangup" {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Tenant != "beta" || got[0].Resource != "calls/def" || got[0].Actor != "alice" {
		t.Fatalf("hangup audit = %+v", got)
	}

	f.svc.SetEdge(nil)
	calls, err = f.svc.Calls(ctx, "")
	mustNil(t, err)
	if calls == nil || len(calls) != 0 {
		t.Fatalf("calls without edge = %#v", calls)
	}
	wantErr(t, f.svc.Hangup(ctx, "alice", "abc"), api.ErrNotFound)
}

func TestReady(t *testing.T) {
	f := newFixture(t)
	mustNil(t, f.svc.Ready())
	f.edge.SetReady(errTest("draining"))
	wantErr(t, f.svc.Ready(), api.ErrNotReady)
	f.svc.SetEdge(nil)
	wantErr(t, f.svc.Ready(), api.ErrNotReady)
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestActiveByTenant(t *testing.T) {
	f := newFixture(t)
	f.call("c1", "acme", "100", "200", true)
	f.call("c2", "acme", "101", "200", false)
	f.call("c3", "beta", "100", "200", true)
	got := f.svc.ActiveByTenant()
	if len(got) != 2 || got["acme"] != 2 || got["beta"] != 1 {
		t.Fatalf("ActiveByTenant = %v", got)
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	nt, err := f.svc.CreateToken(ctx, "ops", "ci", api.ScopeSettings)
	mustNil(t, err)
	if !strings.HasPrefix(nt.Token, "tg_") || len(nt.Token) != 3+64 || nt.Name != "ci" || nt.Scope != api.ScopeSettings || !nt.Created.Equal(t0) {
		t.Fatalf("token = %+v", nt)
	}
	if p, ok := f.svc.Authenticate(nt.Token); !ok || p != (api.Principal{Name: "ci", Scope: api.ScopeSettings}) {
		t.Fatalf("Authenticate = %+v, %v", p, ok)
	}
	if _, ok := f.svc.Authenticate(nt.Token + "x"); ok {
		t.Fatal("a wrong secret authenticated")
	}
	if _, ok := f.svc.Authenticate(""); ok {
		t.Fatal("an empty secret authenticated")
	}
	_, err = f.svc.CreateToken(ctx, "ops", "ci", api.ScopeRead)
	wantErr(t, err, api.ErrConflict)
	list, err := f.svc.ListTokens(ctx)
	mustNil(t, err)
	if len(list) != 2 || list[0].Name != "ci" || list[1].Name != "ops" {
		t.Fatalf("tokens = %+v", list)
	}
	// Durable: the hash is stored, the secret authenticates after a restart.
	f.reopen()
	if _, ok := f.svc.Authenticate(nt.Token); !ok {
		t.Fatal("token lost after restart")
	}
	mustNil(t, f.svc.DeleteToken(ctx, "ops", "ci"))
	if _, ok := f.svc.Authenticate(nt.Token); ok {
		t.Fatal("deleted token authenticates")
	}
	wantErr(t, f.svc.DeleteToken(ctx, "ops", "ci"), api.ErrNotFound)
	f.reopen()
	if _, ok := f.svc.Authenticate(nt.Token); ok {
		t.Fatal("deleted token authenticates after restart")
	}
	for _, e := range f.audit(api.AuditQuery{}) {
		if strings.Contains(string(e.Before)+string(e.After), nt.Token) || strings.Contains(string(e.Before)+string(e.After), "hash") {
			t.Fatalf("secret material in the audit log: %+v", e)
		}
	}
	var got []string
	for _, e := range f.audit(api.AuditQuery{}) {
		if strings.HasPrefix(e.Action, "token.") {
			got = append(got, e.Action+" "+e.Resource)
		}
	}
	if want := []string{"token.create tokens/ci", "token.delete tokens/ci"}; !slices.Equal(got, want) {
		t.Fatalf("audit = %q", got)
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Operations, calls and reads run concurrently (for the race detector).
func TestConcurrent(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				now := f.clock.Now()
				d := f.svc.Runner().Admit(now, admission.CallRequest{CallID: id, Tenant: "acme", Direction: admission.Outbound, Caller: "100", Callee: "200"})
				if d.Admitted {
					f.svc.Runner().AnswerWith(now, id, nil)
					f.svc.Runner().End(now.Add(time.Second), id)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if _, err := f.svc.PatchLimits(ctx, "a", "acme", api.LimitsPatch{Set: configs.Limits{MaxParallelCalls: i64(int64(i + 1))}}); err != nil {
				t.Error(err)
			}
			if _, err := f.svc.Usage(ctx, "acme"); err != nil {
				t.Error(err)
			}
			f.svc.ListTenants(ctx)
			f.svc.ActiveByTenant()
			f.svc.Config()
		}
	}()
	wg.Wait()
	if n := f.svc.Runner().Active("acme"); n != 0 {
		t.Fatalf("active = %d", n)
	}
}

func TestOnCommit(t *testing.T) {
	var commits atomic.Int64
	svc, err := control.Open(testConfig(t), store.NewMem(), control.Options{
		Now: newClock(t0).Now, Logger: zerolog.Nop(), Env: env,
		OnCommit: func(d time.Duration) {
			if d < 0 {
				t.Error("negative commit latency")
			}
			commits.Add(1)
		},
	})
	mustNil(t, err)
	defer svc.Close()
	n := commits.Load()
	_, err = svc.PutPlan(ctx, "ops", configs.Plan{Name: "gold"}, true)
	mustNil(t, err)
	if commits.Load() <= n {
		t.Fatal("OnCommit not called for a submitted change")
	}
}

// When a suspension began is kept with it, not read back from the audit
// log: it survives more audit entries of the tenant than the log's scan
// reads, and a restart.
func TestSuspendedSinceOutlivesTheAuditScan(t *testing.T) {
	f := newFixture(t)
	suspendedAt := f.clock.Now()
	_, err := f.svc.Suspend(ctx, "alice", "acme", "unpaid invoice")
	mustNil(t, err)
	for i := range 120 { // more entries of acme than the 100 the log's scan reads
		f.clock.Advance(time.Second)
		_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxParallelCalls: i64(int64(10 + i%2))}})
		mustNil(t, err)
	}
	f.reopen()
	v, err := f.svc.GetTenant(ctx, "acme")
	mustNil(t, err)
	if !v.Status.Suspended || v.Status.SuspendedSince == nil || !v.Status.SuspendedSince.Equal(suspendedAt) {
		t.Fatalf("status after 120 more audit entries and a restart: %+v, want suspended since %v", v.Status, suspendedAt)
	}
}
