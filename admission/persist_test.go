package admission_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// memJournal applies steps the way a store does: records overwrite,
// answered calls are kept until released, charges add up per tenant.
type memJournal struct {
	tenants map[string]admission.TenantRecord
	users   map[string]admission.UserRecord
	calls   map[string]admission.CallRecord
	charged map[string]time.Duration // tenant -> sum of charged seconds
	spent   map[string]int64
	finals  map[string]int // call id -> final charges
	events  []admission.Event
}

func newMemJournal() *memJournal {
	return &memJournal{
		tenants: map[string]admission.TenantRecord{}, users: map[string]admission.UserRecord{},
		calls: map[string]admission.CallRecord{}, charged: map[string]time.Duration{},
		spent: map[string]int64{}, finals: map[string]int{},
	}
}

func (j *memJournal) Record(s *admission.Step) {
	for _, t := range s.Tenants {
		j.tenants[t.Tenant] = t
	}
	for _, u := range s.Users {
		j.users[u.Tenant+"/"+u.User] = u
	}
	for _, c := range s.Answered {
		c.Payload = slices.Clone(c.Payload)
		j.calls[c.CallID] = c
	}
	for _, id := range s.Released {
		delete(j.calls, id)
	}
	for _, c := range s.Charges {
		j.charged[c.Tenant] += c.Seconds
		j.spent[c.Tenant] += c.Spend
		if c.Final {
			j.finals[c.CallID]++
		}
	}
	j.events = append(j.events, s.Events...)
}

func (j *memJournal) snapshot(at time.Time) admission.Snapshot {
	s := admission.Snapshot{At: at}
	for _, k := range slices.Sorted(maps.Keys(j.tenants)) {
		s.Tenants = append(s.Tenants, j.tenants[k])
	}
	for _, k := range slices.Sorted(maps.Keys(j.users)) {
		s.Users = append(s.Users, j.users[k])
	}
	for _, k := range slices.Sorted(maps.Keys(j.calls)) {
		s.Calls = append(s.Calls, j.calls[k])
	}
	return s
}

var persistPlan = admission.Plan{
	Name:   "p",
	Limits: admission.Limits{MaxParallelCalls: lim(50), MaxMonthlyMinutes: lim(100000), MonthlySpendLimit: lim(1_000_000_000)},
	Rates: []admission.Rate{
		{Prefix: "", PerMinute: 10_000, Initial: 60, Subsequent: 60},
		{Prefix: "00", PerMinute: 120_000, ConnectFee: 50_000, Initial: 6, Subsequent: 6},
	},
}

var persistTenants = []admission.Tenant{
	{Name: "a", Plan: "p", Roles: []admission.Role{{Name: "agents", MaxMonthlyMinutes: lim(1000), Patterns: []string{"1*"}}}},
	{Name: "b", Plan: "p"},
}

func persistRunner(t *testing.T, at time.Time, j admission.Journal) *admission.Runner {
	t.Helper()
	r := admission.NewRunner(admission.NewEngine(admission.Settings{EmergencyNumbers: []string{"112"}}))
	r.SetJournal(j)
	if _, err := r.UpsertPlan(at, persistPlan); err != nil {
		t.Fatal(err)
	}
	for _, tn := range persistTenants {
		if _, err := r.UpsertTenant(at, tn); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// A call's life in the journal: the answer stores its record with the
// payload, the end releases it with one final charge, and the tenant and
// user records carry the settled usage.
func TestJournalCallLifecycle(t *testing.T) {
	j := newMemJournal()
	r := persistRunner(t, t0, j)
	if d := r.Admit(t0, out("c1", "a", "100", "4930")); !d.Admitted {
		t.Fatal(d.Rejection)
	}
	if len(j.calls) != 0 {
		t.Fatalf("unanswered call persisted: %v", j.calls)
	}
	r.AnswerWith(t0.Add(time.Second), "c1", []byte("dialog"))
	if c, ok := j.calls["c1"]; !ok || string(c.Payload) != "dialog" || !c.AnsweredAt.Equal(t0.Add(time.Second)) || c.Caller != "100" {
		t.Fatalf("call record = %+v, %v", c, ok)
	}
	r.End(t0.Add(91*time.Second), "c1")
	if _, ok := j.calls["c1"]; ok {
		t.Fatal("call still persisted after End")
	}
	if got := j.tenants["a"].Seconds; got != 90*time.Second {
		t.Fatalf("tenant seconds = %v, want 90s", got)
	}
	if got := j.tenants["a"].Spend; got != 20_000 { // 2 minutes at 0.01
		t.Fatalf("tenant spend = %d, want 20000", got)
	}
	if got := j.users["a/100"].Seconds; got != 90*time.Second {
		t.Fatalf("user seconds = %v, want 90s", got)
	}
	if j.finals["c1"] != 1 || j.charged["a"] != 90*time.Second {
		t.Fatalf("finals %v charged %v", j.finals, j.charged)
	}
	if _, ok := r.End(t0.Add(100*time.Second), "c1"); ok {
		t.Fatal("second End released again")
	}
	if j.finals["c1"] != 1 {
		t.Fatal("charged twice")
	}
}

// A snapshot taken at T and restored into a fresh engine gives exactly
// the usage the original engine had at T: settled usage from the
// records, running calls billed up to T. Restoring the same snapshot
// twice gives the same records (nothing is counted twice).
func TestRestoreMatchesUsageAtCrash(t *testing.T) {
	j := newMemJournal()
	r := persistRunner(t, t0, j)
	ms := time.Millisecond
	type call struct {
		id, tenant, caller, callee string
		admit, answer, end         time.Duration // end 0: still running at the crash
	}
	calls := []call{
		{"c1", "a", "100", "4930", 0, 1 * time.Second, 95*time.Second + 3*ms},
		{"c2", "a", "200", "0049301", 2 * time.Second, 3 * time.Second, 0},
		{"c3", "a", "150", "4930", 4 * time.Second, 7*time.Second + 250*ms, 0},
		{"c4", "b", "300", "4930", 5 * time.Second, 6 * time.Second, 44*time.Second + 7*ms},
		{"c5", "b", "301", "0044", 8 * time.Second, 9*time.Second + 500*ms, 0},
		{"c6", "b", "302", "112", 9 * time.Second, 10 * time.Second, 0}, // emergency
		{"c7", "a", "101", "4930", 10 * time.Second, 0, 0},              // never answered
	}
	for _, c := range calls {
		if d := r.Admit(t0.Add(c.admit), out(c.id, c.tenant, c.caller, c.callee)); !d.Admitted {
			t.Fatalf("%s: %v", c.id, d.Rejection)
		}
	}
	for _, c := range calls {
		if c.answer > 0 {
			r.AnswerWith(t0.Add(c.answer), c.id, []byte(c.id))
		}
	}
	for _, c := range calls {
		if c.end > 0 {
			r.End(t0.Add(c.end), c.id)
		}
	}
	crash := t0.Add(123*time.Second + 456*ms)
	want := map[string]admission.Usage{"a": r.Usage(crash, "a"), "b": r.Usage(crash, "b")}
	wantUser := r.UserUsage(crash, "a", "150")

	snap := j.snapshot(crash)
	if len(snap.Calls) != 4 {
		t.Fatalf("persisted calls = %d, want 4 (answered, running)", len(snap.Calls))
	}
	var records [2]map[string]admission.TenantRecord
	for i := range 2 {
		j2 := newMemJournal()
		r2 := persistRunner(t, crash, j2)
		if _, err := r2.Restore(snap); err != nil {
			t.Fatal(err)
		}
		for tn, w := range want {
			if got := r2.Usage(crash, tn); got != w {
				t.Fatalf("restore %d: usage(%s) = %+v, want %+v", i, tn, got, w)
			}
		}
		if got := r2.UserUsage(crash, "a", "150"); got != wantUser {
			t.Fatalf("user usage = %v, want %v", got, wantUser)
		}
		if r2.ActiveCalls() != 0 || len(j2.calls) != 0 {
			t.Fatalf("restored calls still active: %d, records %v", r2.ActiveCalls(), j2.calls)
		}
		for _, c := range snap.Calls {
			if j2.finals[c.CallID] != 1 {
				t.Fatalf("restored call %s charged %d times", c.CallID, j2.finals[c.CallID])
			}
		}
		for tn, rec := range j2.tenants {
			if rec.Seconds < 0 || rec.Spend < 0 || rec.Seconds != want[tn].Seconds || rec.Spend != want[tn].Spend {
				t.Fatalf("restored record %s = %+v, want usage %+v", tn, rec, want[tn])
			}
		}
		records[i] = j2.tenants
	}
	if fmt.Sprint(records[0]) != fmt.Sprint(records[1]) {
		t.Fatalf("restore is not idempotent:\n%v\n%v", records[0], records[1])
	}
}

// A cut call is billed and released at the cut: a crash before its BYE
// completes does not bill it again.
func TestCutCallReleasedAtCut(t *testing.T) {
	j := newMemJournal()
	r := persistRunner(t, t0, j)
	if _, err := r.Suspend(t0, "b", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resume(t0, "b", "y"); err != nil {
		t.Fatal(err)
	}
	r.Admit(t0, out("c1", "b", "300", "4930"))
	r.AnswerWith(t0, "c1", nil)
	o, err := r.Suspend(t0.Add(30*time.Second), "b", "fraud")
	if err != nil || len(o.Cuts) != 1 {
		t.Fatalf("suspend: %v %+v", err, o)
	}
	if len(j.calls) != 0 || j.finals["c1"] != 1 || j.charged["b"] != 30*time.Second {
		t.Fatalf("after cut: calls %v finals %v charged %v", j.calls, j.finals, j.charged)
	}
	if rec := j.tenants["b"]; !rec.Suspended || rec.SuspendReason != "fraud" || rec.Seconds != 30*time.Second {
		t.Fatalf("tenant record = %+v", rec)
	}
	r.End(t0.Add(40*time.Second), "c1")
	if j.finals["c1"] != 1 || j.charged["b"] != 30*time.Second {
		t.Fatalf("End after cut charged again: %v %v", j.finals, j.charged)
	}
	r2 := persistRunner(t, t0.Add(time.Minute), newMemJournal())
	if _, err := r2.Restore(j.snapshot(t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if ok, reason, _ := r2.SuspendState("b"); !ok || reason != "fraud" {
		t.Fatalf("suspension not restored: %v %q", ok, reason)
	}
}

// A call running across the month boundary is charged in two parts that
// add up to its length; the new month's record starts from zero.
func TestRolloverChargesSplit(t *testing.T) {
	j := newMemJournal()
	start := time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)
	r := persistRunner(t, start, j)
	r.Admit(start, out("c1", "b", "300", "4930"))
	r.AnswerWith(start, "c1", nil)
	r.End(start.Add(3*time.Minute), "c1")
	if j.charged["b"] != 3*time.Minute || j.finals["c1"] != 1 {
		t.Fatalf("charged %v finals %v", j.charged, j.finals)
	}
	rec := j.tenants["b"]
	if !rec.Cycle.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) || rec.Seconds != 2*time.Minute {
		t.Fatalf("new cycle record = %+v, want 2m in February", rec)
	}
}

// Automatic suspension events carry the usage and the limit that
// triggered them, and the record keeps the cap.
func TestAutoSuspensionRecord(t *testing.T) {
	yes := true
	j := newMemJournal()
	r := admission.NewRunner(admission.NewEngine(admission.Settings{}))
	r.SetJournal(j)
	r.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1), AutoSuspend: &yes}})
	r.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p"})
	r.Admit(t0, out("c1", "t", "1", "2"))
	r.AnswerWith(t0, "c1", nil)
	o := r.Tick(t0.Add(time.Minute))
	var ev *admission.Event
	for i := range o.Events {
		if o.Events[i].Type == admission.EventSuspended {
			ev = &o.Events[i]
		}
	}
	if ev == nil || ev.Cap != admission.CapMinutes || ev.Value != 60 || ev.Limit != 60 {
		t.Fatalf("suspension event = %+v", ev)
	}
	if rec := j.tenants["t"]; !rec.Suspended || rec.SuspendCap != admission.CapMinutes || rec.Flags&admission.FlagMinutesCap == 0 {
		t.Fatalf("record = %+v", rec)
	}
}
