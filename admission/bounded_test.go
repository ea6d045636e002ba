package admission_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// In a cluster, while the others' usage counts a silent node at its
// bound, a budget that runs out cuts its calls and refuses new ones, but
// it may not really have run out: it reports nothing and does not
// suspend. Once the usage is known again, a budget with time left admits,
// and one really out trips in full (cap_reached, suspension).
func TestBoundedClusterUsage(t *testing.T) {
	e := admission.NewEngine(admission.Settings{Cluster: true})
	yes := true
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1), AutoSuspend: &yes}})
	if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "a", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	// A budget with no parallel cap is leased all the same (Uncapped).
	if n, _ := e.SetLease("a", admission.LeaseParallel, 10, admission.Uncapped); n != 10 {
		t.Fatalf("lease set to %d", n)
	}
	count := func(o admission.Output, typ string) int {
		n := 0
		for _, ev := range o.Events {
			if ev.Type == typ {
				n++
			}
		}
		return n
	}
	if !e.Admit(t0, out("c1", "a", "100", "4930")).Admitted {
		t.Fatal("c1 rejected")
	}
	e.Answer(t0, "c1")
	// A silent node may have used 59 s: c1 has drawn 1 s by t0+1s.
	o, err := e.SetClusterUsage(t0.Add(time.Second), "a", 59*time.Second, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Cuts) != 1 || count(o, admission.EventCapReached)+count(o, admission.EventSuspended)+count(o, admission.EventThreshold) != 0 {
		t.Fatalf("bounded exhaustion: cuts %+v, events %+v; want c1 cut and nothing reported", o.Cuts, o.Events)
	}
	if s, _ := e.Suspended("a"); s {
		t.Fatal("suspended on a bound")
	}
	e.End(t0.Add(time.Second), "c1")
	if d := e.Admit(t0.Add(2*time.Second), out("c2", "a", "100", "4930")); d.Admitted || d.Rejection.Cause != admission.CauseMinutes ||
		count(d.Output, admission.EventCapReached) != 0 {
		t.Fatalf("bounded: c2 %+v, want refused for minutes with nothing reported", d)
	}
	// Known again: the silent node had used 30 s. 29 s are left.
	if _, err := e.SetClusterUsage(t0.Add(3*time.Second), "a", 30*time.Second, 0, 0, false); err != nil {
		t.Fatal(err)
	}
	if !e.Admit(t0.Add(3*time.Second), out("c3", "a", "100", "4930")).Admitted {
		t.Fatal("c3 rejected with budget left")
	}
	e.Answer(t0.Add(3*time.Second), "c3")
	// c3 runs the budget out for real 29 s later: cut, reported, suspended.
	o = e.Tick(t0.Add(40 * time.Second))
	if len(o.Cuts) != 1 || count(o, admission.EventCapReached) != 1 || count(o, admission.EventSuspended) != 1 {
		t.Fatalf("known exhaustion: cuts %+v, events %+v", o.Cuts, o.Events)
	}
	if s, _ := e.Suspended("a"); !s {
		t.Fatal("not suspended once the budget really ran out")
	}
}

// A role's minutes budget counted at a silent node's bound cuts and
// refuses the user's calls the same way, without a cap_reached: the
// budget may not really have run out.
func TestBoundedClusterUserUsage(t *testing.T) {
	e := admission.NewEngine(admission.Settings{Cluster: true})
	mustPlan(t, e, admission.Plan{Name: "p"})
	desk := admission.Role{Name: "desk", MaxMonthlyMinutes: lim(1), Users: []string{"100"}}
	if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "a", Plan: "p", Roles: []admission.Role{desk}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.SetUserLease("a", "100", 10, admission.Uncapped); n != 10 {
		t.Fatalf("user lease set to %d", n)
	}
	capReached := func(o admission.Output) int {
		n := 0
		for _, ev := range o.Events {
			if ev.Type == admission.EventCapReached || ev.Type == admission.EventThreshold {
				n++
			}
		}
		return n
	}
	if !e.Admit(t0, out("c1", "a", "100", "4930")).Admitted {
		t.Fatal("c1 rejected")
	}
	e.Answer(t0, "c1")
	o, err := e.SetClusterUserUsage(t0.Add(time.Second), "a", "100", 59*time.Second, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Cuts) != 1 || capReached(o) != 0 {
		t.Fatalf("bounded role exhaustion: cuts %+v, events %+v; want c1 cut and nothing reported", o.Cuts, o.Events)
	}
	e.End(t0.Add(time.Second), "c1")
	if d := e.Admit(t0.Add(2*time.Second), out("c2", "a", "100", "4930")); d.Admitted || capReached(d.Output) != 0 {
		t.Fatalf("bounded: c2 %+v, want refused with nothing reported", d)
	}
	// Known again with time left: admitted; then really out: reported.
	if _, err := e.SetClusterUserUsage(t0.Add(3*time.Second), "a", "100", 30*time.Second, 0, false); err != nil {
		t.Fatal(err)
	}
	if d := e.Admit(t0.Add(3*time.Second), out("c3", "a", "100", "4930")); !d.Admitted {
		t.Fatalf("c3 rejected with budget left: %+v", d.Rejection)
	}
	e.Answer(t0.Add(3*time.Second), "c3")
	if o := e.Tick(t0.Add(40 * time.Second)); len(o.Cuts) != 1 || capReached(o) == 0 {
		t.Fatalf("known role exhaustion: cuts %+v, events %+v", o.Cuts, o.Events)
	}
}

// NearCap lists, in a cluster, the tenants past a budget's alert
// threshold (the cluster shares their usage more often), and no other.
func TestNearCap(t *testing.T) {
	e := admission.NewEngine(admission.Settings{Cluster: true})
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1)}}) // threshold 80 %: 48 s
	for _, name := range []string{"a", "b"} {
		if _, err := e.UpsertTenant(t0, admission.Tenant{Name: name, Plan: "p"}); err != nil {
			t.Fatal(err)
		}
		e.SetLease(name, admission.LeaseParallel, 10, admission.Uncapped)
	}
	if !e.Admit(t0, out("c1", "a", "100", "4930")).Admitted {
		t.Fatal("c1 rejected")
	}
	e.Answer(t0, "c1")
	if got := e.NearCap(); len(got) != 0 {
		t.Fatalf("NearCap at 0 s of 60 = %v, want none", got)
	}
	e.Tick(t0.Add(50 * time.Second))
	if got := e.NearCap(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("NearCap with a at 50 s of 60 = %v, want [a]", got)
	}
}
