package admission_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// A change replicated from another node does on this node what it does
// anywhere (cuts of its calls), but the events that only report the
// change are the other node's to publish: the Replica leaves them out,
// the runner keeps them.
func TestReplicaLeavesReportsOut(t *testing.T) {
	types := func(rd admission.Ready) map[string]int {
		m := map[string]int{}
		for _, ev := range rd.Events {
			m[ev.Type]++
		}
		return m
	}
	for _, replica := range []bool{false, true} {
		r := admission.NewRunner(admission.NewEngine(admission.Settings{}))
		if _, err := r.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(5)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.UpsertTenant(t0, admission.Tenant{Name: "a", Plan: "p"}); err != nil {
			t.Fatal(err)
		}
		if !r.Admit(t0, out("c", "a", "100", "4930")).Admitted {
			t.Fatal("rejected")
		}
		r.Answer(t0, "c")
		type ops interface {
			UpsertTenant(now time.Time, t admission.Tenant) (admission.Ready, error)
			Suspend(now time.Time, tenant, reason string) (admission.Ready, error)
			Resume(now time.Time, tenant, reason string) (admission.Ready, error)
		}
		var o ops = r
		if replica {
			o = r.Replica()
		}
		rd, err := o.UpsertTenant(t0.Add(time.Second), admission.Tenant{Name: "a", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: lim(3)}})
		if err != nil {
			t.Fatal(err)
		}
		if n := types(rd)[admission.EventLimits]; n != map[bool]int{false: 1, true: 0}[replica] {
			t.Errorf("replica %v: %d limits.changed", replica, n)
		}
		rd, err = o.Suspend(t0.Add(2*time.Second), "a", "fraud")
		if err != nil {
			t.Fatal(err)
		}
		if got := types(rd); got[admission.EventSuspended] != map[bool]int{false: 1, true: 0}[replica] ||
			got[admission.EventCallCut] != 1 || len(rd.Cuts) != 1 {
			t.Errorf("replica %v: suspend gave events %v and cuts %+v; want the cut of c either way", replica, got, rd.Cuts)
		}
		rd, err = o.Resume(t0.Add(3*time.Second), "a", "ok")
		if err != nil {
			t.Fatal(err)
		}
		if n := types(rd)[admission.EventResumed]; n != map[bool]int{false: 1, true: 0}[replica] {
			t.Errorf("replica %v: %d tenant.resumed", replica, n)
		}
		if s, _ := r.Suspended("a"); s {
			t.Errorf("replica %v: still suspended", replica)
		}
	}
}
