package control_test

import (
	"strings"
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// provFixture is the test fixture with plan "basic" capped at 2 DIDs and
// 2 users, and tenant_defaults setting max_users 3.
func provFixture(t *testing.T, defaults configs.Limits) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: testConfig(t), st: store.NewMem(), clock: newClock(t0)}
	f.cfg.Plans[0].Limits.MaxDIDs = i64(2)
	f.cfg.Plans[0].Limits.MaxUsers = i64(2)
	f.cfg.TenantDefaults = defaults
	f.open()
	return f
}

func newTenant(name, net string, dids ...string) configs.Tenant {
	t := configs.Tenant{Name: name, Plan: "basic", Carrier: "up", Sources: []string{net}, DIDs: dids}
	if len(dids) > 0 {
		t.PBX = configs.Hop{Address: strings.TrimSuffix(net, "0/24") + "10:5060"}
	}
	return t
}

func wantCapErr(t *testing.T, err error, field, msg string) {
	t.Helper()
	fe := wantField(t, err, field)
	if !strings.HasPrefix(fe.Message, msg) {
		t.Fatalf("message = %q, want it to start with %q", fe.Message, msg)
	}
}

// POST and PUT /v1/tenants refuse the (N+1)th DID with the field named;
// the plan's cap applies, a tenant override wins over it.
func TestProvisioningTenantDIDs(t *testing.T) {
	f := provFixture(t, configs.Limits{})
	_, err := f.svc.PutTenant(ctx, "alice", newTenant("gamma", "10.3.0.0/24", "+1601", "+1602", "+1603"), true)
	wantCapErr(t, err, "dids", "3 DIDs, max_dids is 2")
	if _, err := f.svc.GetTenant(ctx, "gamma"); err == nil {
		t.Fatal("the refused tenant was created")
	}
	_, err = f.svc.PutTenant(ctx, "alice", newTenant("gamma", "10.3.0.0/24", "+1601", "+1602"), true)
	mustNil(t, err)

	// Update (PUT): the third DID is refused.
	_, err = f.svc.PutTenant(ctx, "alice", newTenant("gamma", "10.3.0.0/24", "+1601", "+1602", "+1603"), false)
	wantCapErr(t, err, "dids", "3 DIDs, max_dids is 2")
	tv, err := f.svc.GetTenant(ctx, "gamma")
	mustNil(t, err)
	if len(tv.DIDs) != 2 {
		t.Fatalf("DIDs after the refused update = %v", tv.DIDs)
	}
	if p := tv.Provisioning; p == nil || p.DIDs != (api.ProvisionedCount{Used: 2, Limit: 2}) || p.Users != (api.ProvisionedCount{Used: 0, Limit: 2}) {
		t.Fatalf("provisioning = %+v", p)
	}

	// A tenant override raises it.
	withOverride := newTenant("gamma", "10.3.0.0/24", "+1601", "+1602", "+1603")
	withOverride.Limits.MaxDIDs = i64(3)
	_, err = f.svc.PutTenant(ctx, "alice", withOverride, false)
	mustNil(t, err)
	// 0: none may be added.
	zero := newTenant("delta", "10.4.0.0/24", "+1701")
	zero.Limits.MaxDIDs = i64(0)
	_, err = f.svc.PutTenant(ctx, "alice", zero, true)
	wantCapErr(t, err, "dids", "1 DID, max_dids is 0")
	// -1: unlimited.
	zero.Limits.MaxDIDs = i64(-1)
	zero.DIDs = []string{"+1701", "+1702", "+1703", "+1704"}
	_, err = f.svc.PutTenant(ctx, "alice", zero, true)
	mustNil(t, err)
}

// Lowering max_dids or max_users below what the tenant has (PATCH limits,
// or the plan's) is accepted and keeps the DIDs and users; afterwards a
// change that does not add any is accepted, one that adds is refused.
func TestProvisioningLowerBelowUse(t *testing.T) {
	f := provFixture(t, configs.Limits{})
	tn := newTenant("gamma", "10.3.0.0/24", "+1601", "+1602")
	tn.Roles = []configs.Role{{Name: "r", Users: []string{"u1", "u2"}}}
	_, err := f.svc.PutTenant(ctx, "alice", tn, true)
	mustNil(t, err)

	lv, err := f.svc.PatchLimits(ctx, "alice", "gamma", api.LimitsPatch{Set: configs.Limits{MaxDIDs: i64(1), MaxUsers: i64(0)}})
	mustNil(t, err)
	if e := lv.Effective; e.MaxDIDs == nil || *e.MaxDIDs != 1 || e.MaxUsers == nil || *e.MaxUsers != 0 {
		t.Fatalf("effective after the patch = %v / %v", str(e.MaxDIDs), str(e.MaxUsers))
	}
	tv, err := f.svc.GetTenant(ctx, "gamma")
	mustNil(t, err)
	if len(tv.DIDs) != 2 || len(tv.Users()) != 2 {
		t.Fatalf("the patch removed DIDs or users: %v %v", tv.DIDs, tv.Users())
	}
	if p := tv.Provisioning; p.DIDs != (api.ProvisionedCount{Used: 2, Limit: 1}) || p.Users != (api.ProvisionedCount{Used: 2, Limit: 0}) {
		t.Fatalf("provisioning = %+v", p)
	}

	// Unrelated changes of the over-cap tenant still go through.
	same := tv.Tenant.Clone()
	same.Sources = []string{"10.3.0.0/24", "10.33.0.0/24"}
	_, err = f.svc.PutTenant(ctx, "alice", same, false)
	mustNil(t, err)
	// So does replacing a DID or a user (the count stays) and removing one.
	same.DIDs = []string{"+1601", "+1609"}
	_, err = f.svc.PutTenant(ctx, "alice", same, false)
	mustNil(t, err)
	_, err = f.svc.PutRoles(ctx, "alice", "gamma", []configs.Role{{Name: "r", Users: []string{"u1", "u9"}}})
	mustNil(t, err)
	_, err = f.svc.PatchLimits(ctx, "alice", "gamma", api.LimitsPatch{Set: configs.Limits{MaxParallelCalls: i64(3)}})
	mustNil(t, err)
	// Other tenants are not affected by gamma being over its caps.
	_, err = f.svc.PutTenant(ctx, "alice", newTenant("delta", "10.4.0.0/24", "+1701"), true)
	mustNil(t, err)

	// Adding is refused.
	same.DIDs = append(same.DIDs, "+1610")
	_, err = f.svc.PutTenant(ctx, "alice", same, false)
	wantCapErr(t, err, "dids", "3 DIDs, max_dids is 1")
	_, err = f.svc.PutRoles(ctx, "alice", "gamma", []configs.Role{{Name: "r", Users: []string{"u1", "u9"}}, {Name: "s", Users: []string{"u3"}}})
	wantCapErr(t, err, "[1].users[0]", "3 users on the roles, max_users is 0")

	// A restart loads the over-cap tenant (not retroactive at load either).
	f.reopen()
	tv, err = f.svc.GetTenant(ctx, "gamma")
	mustNil(t, err)
	if len(tv.DIDs) != 2 {
		t.Fatalf("DIDs after restart = %v", tv.DIDs)
	}
}

// PUT roles (and PUT one role) refuse the (N+1)th user, naming it.
func TestProvisioningRoleUsers(t *testing.T) {
	f := provFixture(t, configs.Limits{})
	_, err := f.svc.PutRoles(ctx, "alice", "beta", []configs.Role{{Name: "r", Users: []string{"u1", "u2"}, Patterns: []string{"9*"}}})
	mustNil(t, err)
	_, err = f.svc.PutRoles(ctx, "alice", "beta", []configs.Role{
		{Name: "r", Users: []string{"u1", "u2"}},
		{Name: "s", Users: []string{"u3"}},
	})
	wantCapErr(t, err, "[1].users[0]", "3 users on the roles, max_users is 2")
	roles, err := f.svc.GetRoles(ctx, "beta")
	mustNil(t, err)
	if len(roles) != 1 {
		t.Fatalf("roles after the refused PUT = %+v", roles)
	}
	_, err = f.svc.PutRole(ctx, "alice", "beta", configs.Role{Name: "s", Users: []string{"u3"}})
	wantCapErr(t, err, "users[0]", "3 users on the roles, max_users is 2")
	// Users inside a tenant PUT count too.
	tv, err := f.svc.GetTenant(ctx, "beta")
	mustNil(t, err)
	nt := tv.Tenant.Clone()
	nt.Roles[0].Users = append(nt.Roles[0].Users, "u3")
	_, err = f.svc.PutTenant(ctx, "alice", nt, false)
	wantCapErr(t, err, "roles[0].users[2]", "3 users on the roles, max_users is 2")
}

// apply refuses a document that assigns the (N+1)th, naming the limit
// and the document's path; it applies nothing.
func TestProvisioningApply(t *testing.T) {
	f := provFixture(t, configs.Limits{})
	doc := api.ApplyDoc{Tenants: []configs.Tenant{
		newTenant("beta", "10.2.0.0/24"),
		newTenant("gamma", "10.3.0.0/24", "+1601", "+1602", "+1603"),
	}}
	_, err := f.svc.Apply(ctx, "alice", doc, true)
	wantCapErr(t, err, "tenants[1].dids", "3 DIDs, max_dids is 2")
	_, err = f.svc.Apply(ctx, "alice", doc, false)
	wantCapErr(t, err, "tenants[1].dids", "3 DIDs, max_dids is 2")
	if _, err := f.svc.GetTenant(ctx, "gamma"); err == nil {
		t.Fatal("apply created the refused tenant")
	}
	// The plan of the same document raises the cap.
	doc.Plans = []configs.Plan{f.cfg.Plans[0].Clone()}
	doc.Plans[0].Limits.MaxDIDs = i64(3)
	res, err := f.svc.Apply(ctx, "alice", doc, false)
	mustNil(t, err)
	if len(res.Changes) != 3 {
		t.Fatalf("changes = %+v", res.Changes)
	}
	// Lowering the plan's cap below gamma's DIDs by apply is accepted, and
	// re-applying gamma as it is, too; adding a fourth is refused.
	doc.Plans[0].Limits.MaxDIDs = i64(1)
	_, err = f.svc.Apply(ctx, "alice", doc, false)
	mustNil(t, err)
	doc.Tenants[1].DIDs = append(doc.Tenants[1].DIDs, "+1604")
	_, err = f.svc.Apply(ctx, "alice", doc, false)
	wantCapErr(t, err, "tenants[1].dids", "4 DIDs, max_dids is 1")
	// Users in apply.
	doc.Tenants[1].DIDs = doc.Tenants[1].DIDs[:3]
	doc.Plans[0].Limits.MaxUsers = i64(1)
	doc.Tenants[0].Roles = []configs.Role{{Name: "r", Users: []string{"u1", "u2"}}}
	_, err = f.svc.Apply(ctx, "alice", doc, false)
	wantCapErr(t, err, "tenants[0].roles[0].users[1]", "2 users on the roles, max_users is 1")
}

// The caps inherit as the other limits: the tenant's override, else the
// plan's; tenant_defaults pre-fill the overrides of tenants created
// through the API (and apply), and "reset to defaults" restores them.
func TestProvisioningInheritance(t *testing.T) {
	f := provFixture(t, configs.Limits{MaxUsers: i64(3)})
	// Plan: max_dids 2 (no override), effective with the plan as source.
	lv, err := f.svc.GetLimits(ctx, "beta")
	mustNil(t, err)
	if lv.Overrides.MaxDIDs != nil || lv.Effective.MaxDIDs == nil || *lv.Effective.MaxDIDs != 2 || *lv.Effective.MaxUsers != 2 {
		t.Fatalf("beta limits = overrides %v, effective %v/%v", str(lv.Overrides.MaxDIDs), str(lv.Effective.MaxDIDs), str(lv.Effective.MaxUsers))
	}
	// tenant_defaults: a created tenant gets max_users 3 as its override.
	tn := newTenant("gamma", "10.3.0.0/24")
	tn.Roles = []configs.Role{{Name: "r", Users: []string{"u1", "u2", "u3"}}}
	_, err = f.svc.PutTenant(ctx, "alice", tn, true)
	mustNil(t, err)
	lv, err = f.svc.GetLimits(ctx, "gamma")
	mustNil(t, err)
	if v := lv.Overrides.MaxUsers; v == nil || *v != 3 {
		t.Fatalf("gamma max_users override = %v, want 3 (tenant_defaults)", str(v))
	}
	tn.Name, tn.Sources = "delta", []string{"10.4.0.0/24"}
	tn.Roles[0].Users = append(tn.Roles[0].Users, "u4")
	_, err = f.svc.PutTenant(ctx, "alice", tn, true)
	wantCapErr(t, err, "roles[0].users[3]", "4 users on the roles, max_users is 3")
	// Clearing the override inherits the plan (2): accepted, not
	// retroactive; the next user is refused against the plan's cap.
	lv, err = f.svc.PatchLimits(ctx, "alice", "gamma", api.LimitsPatch{Clear: []string{"max_users"}})
	mustNil(t, err)
	if lv.Overrides.MaxUsers != nil || *lv.Effective.MaxUsers != 2 {
		t.Fatalf("after clearing: override %v, effective %v", str(lv.Overrides.MaxUsers), str(lv.Effective.MaxUsers))
	}
	_, err = f.svc.PutRole(ctx, "alice", "gamma", configs.Role{Name: "s", Users: []string{"u9"}})
	wantCapErr(t, err, "users[0]", "4 users on the roles, max_users is 2")
	// Reset to defaults: max_users 3 again.
	lv, err = f.svc.ResetLimits(ctx, "alice", "gamma")
	mustNil(t, err)
	if v := lv.Overrides.MaxUsers; v == nil || *v != 3 {
		t.Fatalf("after reset: %v", str(v))
	}
	// A plan change applies at once to the effective value.
	p := f.cfg.Plans[0].Clone()
	p.Limits.MaxDIDs = i64(7)
	_, err = f.svc.PutPlan(ctx, "alice", p, false)
	mustNil(t, err)
	lv, err = f.svc.GetLimits(ctx, "beta")
	mustNil(t, err)
	if *lv.Effective.MaxDIDs != 7 {
		t.Fatalf("effective max_dids after the plan change = %d", *lv.Effective.MaxDIDs)
	}
	tv, err := f.svc.GetTenant(ctx, "beta")
	mustNil(t, err)
	if tv.Provisioning.DIDs.Limit != 7 {
		t.Fatalf("tenant view limit = %d", tv.Provisioning.DIDs.Limit)
	}
}
