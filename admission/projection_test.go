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
