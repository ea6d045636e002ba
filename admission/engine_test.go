package admission_test

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

func TestNextDeadlineBeforeAnyTime(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	if _, ok := e.NextDeadline(); ok {
		t.Fatal("NextDeadline before any time")
	}
	e.Tick(t0)
	d, ok := e.NextDeadline()
	if !ok || !d.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("NextDeadline = %v, %v; want the next month start", d, ok)
	}
}

// A caller's clock read before it took the lock may be slightly older than
// the previous step: time never runs backwards inside the engine.
func TestTimeNeverRunsBackwards(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p"})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p"})
	e.Admit(t0, out("c", "t", "100", "4930"))
	e.Answer(t0.Add(10*time.Second), "c")
	e.End(t0.Add(5*time.Second), "c") // older than the answer: clamped
	if u := e.Usage(t0, "t"); u.Seconds != 0 {
		t.Fatalf("billed %v for a call ended 'before' its answer", u.Seconds)
	}
}

func TestUsageOfALaterMonthWithoutTick(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p", Rates: []admission.Rate{{Prefix: "", PerMinute: 60_000, Initial: 60, Subsequent: 60}}})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p", Roles: []admission.Role{{Name: "r", MaxMonthlyMinutes: lim(1000), Users: []string{"100"}}}})
	ans := time.Date(2026, 1, 31, 23, 59, 30, 0, time.UTC)
	e.Admit(ans, out("c", "t", "100", "4930"))
	e.Answer(ans, "c")
	feb := time.Date(2026, 2, 1, 0, 1, 0, 0, time.UTC)
	// Usage changes nothing and reports February's share.
	if u := e.Usage(feb, "t"); u.Seconds != time.Minute || u.Spend != 60_000 {
		t.Fatalf("February usage before the rollover = %+v", u)
	}
	if got := e.UserUsage(feb, "t", "100"); got != time.Minute {
		t.Fatalf("UserUsage = %v", got)
	}
	o := e.Tick(feb)
	if len(o.Events) != 1 || o.Events[0].Type != admission.EventRollover {
		t.Fatalf("Tick: %+v", o)
	}
	if u := e.Usage(feb, "t"); u.Seconds != time.Minute || u.Spend != 60_000 {
		t.Fatalf("February usage after the rollover = %+v", u)
	}
	if e.UserUsage(feb, "t", "nobody") != 0 || e.UserUsage(feb, "nobody", "100") != 0 || (e.Usage(feb, "nobody") != admission.Usage{}) {
		t.Fatal("usage of unknown tenant or user")
	}
}

// A user identity that is empty is no user: roles do not apply to it.
func TestEmptyIdentityHasNoRole(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p"})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p", Roles: []admission.Role{{Name: "all", MaxParallelCalls: lim(0), Patterns: []string{"*"}}}})
	if !e.Admit(t0, out("a", "t", "", "4930")).Admitted {
		t.Fatal("call without identity rejected by a role")
	}
	if e.Admit(t0, out("b", "t", "100", "4930")).Admitted {
		t.Fatal("role * did not apply to user 100")
	}
}

// A manual suspension of an automatically suspended tenant becomes manual:
// the rollover does not lift it.
func TestManualSuspensionSurvivesRollover(t *testing.T) {
	yes := true
	e := admission.NewEngine(admission.Settings{ResumeOnRollover: true})
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1), AutoSuspend: &yes}})
	mustTenant(t, e, admission.Tenant{Name: "auto", Plan: "p"})
	mustTenant(t, e, admission.Tenant{Name: "both", Plan: "p"})
	for _, tn := range []string{"auto", "both"} {
		e.Admit(t0, out(tn, tn, "100", "4930"))
		e.Answer(t0, tn)
	}
	e.Tick(t0.Add(time.Minute))
	for _, tn := range []string{"auto", "both"} {
		if s, reason := e.Suspended(tn); !s || reason != "max_monthly_minutes reached" {
			t.Fatalf("%s: suspended=%v %q", tn, s, reason)
		}
	}
	if _, err := e.Suspend(t0.Add(time.Hour), "both", "fraud"); err != nil {
		t.Fatal(err)
	}
	e.Tick(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
	if s, _ := e.Suspended("auto"); s {
		t.Error("auto suspension not lifted at the rollover")
	}
	if s, reason := e.Suspended("both"); !s || reason != "fraud" {
		t.Errorf("manual suspension lifted: %v %q", s, reason)
	}
}

// Deadline-driven effects carry their own instant, and every effect of an
// overdue deadline is applied before the late step's own operation.
func TestOverdueDeadlineBeforeOperation(t *testing.T) {
	yes := true
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1), AutoSuspend: &yes}})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p"})
	e.Admit(t0, out("a", "t", "100", "4930"))
	e.Answer(t0, "a")
	// No Tick: the next INVITE, 5 minutes later, first processes the cut
	// at +60 s, then finds the tenant suspended.
	d := e.Admit(t0.Add(5*time.Minute), out("b", "t", "100", "4930"))
	if d.Admitted || d.Rejection.Cause != admission.CauseSuspended {
		t.Fatalf("decision %+v", d)
	}
	if len(d.Cuts) != 1 || !d.Cuts[0].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("cuts %+v", d.Cuts)
	}
	if u := e.Usage(t0.Add(5*time.Minute), "t"); u.Seconds != time.Minute {
		t.Fatalf("billed %v", u.Seconds)
	}
}

func TestOutputEmpty(t *testing.T) {
	var o admission.Output
	if !o.Empty() {
		t.Fatal("zero Output not empty")
	}
	o.Events = append(o.Events, admission.Event{})
	if o.Empty() {
		t.Fatal("Output with an event is empty")
	}
}

// Only users a role caps are tracked (issue 8, 3e): a caller on no role, or
// on a role without caps, leaves no user record, whatever the number of
// distinct callers; a capped one does.
func TestOnlyCappedUsersAreTracked(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	j := &stepLog{}
	r := admission.NewRunner(e)
	r.SetJournal(j)
	mustPlan(t, e, admission.Plan{Name: "p"})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p", Roles: []admission.Role{
		{Name: "capped", MaxMonthlyMinutes: lim(100), Users: []string{"agent"}},
		{Name: "free", Patterns: []string{"9*"}},
	}})
	for i, caller := range []string{"100", "101", "102", "9000", "agent"} {
		id := "c" + caller
		at := t0.Add(time.Duration(i) * 2 * time.Minute)
		if !r.Admit(at, out(id, "t", caller, "4930")).Admitted {
			t.Fatalf("%s rejected", caller)
		}
		r.Answer(at, id)
		r.End(at.Add(time.Minute), id)
	}
	users := map[string]bool{}
	for _, u := range j.users {
		users[u] = true
	}
	if len(users) != 1 || !users["agent"] {
		t.Fatalf("user records written for %v, want only the capped user", users)
	}
	if got := e.UserUsage(t0.Add(time.Hour), "t", "agent"); got != time.Minute {
		t.Fatalf("capped user usage = %v, want 1m", got)
	}
	if got := e.UserUsage(t0.Add(time.Hour), "t", "100"); got != 0 {
		t.Fatalf("uncapped user tracked: %v", got)
	}
}

// stepLog is a Journal that keeps the users of every step.
type stepLog struct{ users []string }

func (l *stepLog) Record(s *admission.Step) {
	for _, u := range s.Users {
		l.users = append(l.users, u.User)
	}
}
