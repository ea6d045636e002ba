package admission_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// TestExhaustionMinutes: two calls drawing on 10 minutes, 4 of which are
// used, run it out in 3 more minutes; the projection matches the cut and
// moves when a call ends; an unlimited budget has none.
func TestExhaustionMinutes(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	ten, yes := int64(10), true
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: &ten, AutoSuspend: &yes}})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p"})
	if _, ok, _, _ := e.Exhaustion(t0, "t"); ok {
		t.Fatal("exhaustion with no call drawing")
	}
	for _, id := range []string{"a", "b"} {
		if d := e.Admit(t0, out(id, "t", "u", "+1555")); !d.Admitted {
			t.Fatalf("rejected: %v", d.Rejection)
		}
		e.Answer(t0, id)
	}
	now := t0.Add(2 * time.Minute) // 4 minutes used
	m, ok, _, spendOK := e.Exhaustion(now, "t")
	if want := t0.Add(5 * time.Minute); !ok || !m.Equal(want) || spendOK {
		t.Fatalf("minutes run out at %v (ok %v, spend ok %v), want %v", m, ok, spendOK, want)
	}
	e.EndWith(now, "b", admission.End{})
	m, ok, _, _ = e.Exhaustion(now, "t")
	if want := now.Add(6 * time.Minute); !ok || !m.Equal(want) {
		t.Fatalf("after an end: %v (ok %v), want %v", m, ok, want)
	}
	for range 5 { // the alert threshold first, then the cut
		d, _ := e.NextDeadline()
		o := e.Tick(d)
		if len(o.Cuts) == 0 {
			continue
		}
		if len(o.Cuts) != 1 || !o.Cuts[0].At.Equal(m) {
			t.Fatalf("cut %+v at %v, projection %v", o.Cuts, d, m)
		}
		return
	}
	t.Fatal("no cut")
}

// TestExhaustionRoleMinutes: a user on a role with 3 minutes who has one
// call drawing runs out 3 minutes after its answer; a user with nothing
// drawing has no projection.
func TestExhaustionRoleMinutes(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	three := int64(3)
	mustPlan(t, e, admission.Plan{Name: "p"})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p", Roles: []admission.Role{{Name: "agents", MaxMonthlyMinutes: &three, Users: []string{"100", "101"}}}})
	for _, c := range []struct{ id, user string }{{"a", "100"}, {"b", "101"}} {
		if d := e.Admit(t0, out(c.id, "t", c.user, "+1555")); !d.Admitted {
			t.Fatalf("rejected: %v", d.Rejection)
		}
		e.Answer(t0, c.id)
	}
	now := t0.Add(time.Minute)
	e.EndWith(now, "b", admission.End{})
	got := map[string]admission.RoleUsage{}
	for _, r := range e.RoleUsages(now.Add(30*time.Second), "t") {
		got[r.User] = r
	}
	if r := got["100"]; !r.Exhausts || !r.ExhaustsAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("user 100: %+v, want exhausted at %v", r, t0.Add(3*time.Minute))
	}
	if r, ok := got["101"]; !ok || r.Exhausts {
		t.Errorf("user 101 (nothing drawing): %+v", r)
	}
}
