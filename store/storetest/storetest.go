// Package storetest is the conformance suite of store.Store: every
// implementation must pass Run.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// Run runs the suite. open returns a new, empty store for one subtest and
// arranges its Close (t.Cleanup); a store may be closed twice.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Empty", testEmpty},
		{"ApplyAtomic", testApplyAtomic},
		{"Plans", testPlans},
		{"Tenants", testTenants},
		{"Tokens", testTokens},
		{"Counters", testCounters},
		{"Users", testUsers},
		{"Calls", testCalls},
		{"DeleteTenantsCascade", testDeleteTenantsCascade},
		{"DeleteBeforePut", testDeleteBeforePut},
		{"Days", testDays},
		{"DaysRange", testDaysRange},
		{"Outbox", testOutbox},
		{"OutboxPaging", testOutboxPaging},
		{"Audit", testAudit},
		{"AuditQuery", testAuditQuery},
		{"AuditLimit", testAuditLimit},
		{"SeededAndClock", testSeededAndClock},
		{"Unreplicated", testUnreplicated},
		{"LoadSorted", testLoadSorted},
		{"DeepCopy", testDeepCopy},
		{"RoundTrip", testRoundTrip},
		{"TimesUTC", testTimesUTC},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// --- helpers ---

// T0 is the base instant of the suite's data.
var T0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func apply(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Apply(b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func load(t *testing.T, s store.Store) *store.State {
	t.Helper()
	st, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func ptr[T any](v T) *T { return &v }

func names[T any](items []T, name func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, name(it))
	}
	return out
}

func planNames(st *store.State) []string {
	return names(st.Plans, func(p configs.Plan) string { return p.Name })
}

func tenantNames(st *store.State) []string {
	return names(st.Tenants, func(x configs.Tenant) string { return x.Name })
}

func tokenNames(st *store.State) []string {
	return names(st.Tokens, func(x store.Token) string { return x.Name })
}

func counterNames(st *store.State) []string {
	return names(st.Counters, func(x admission.TenantRecord) string { return x.Tenant })
}

func userNames(st *store.State) []string {
	return names(st.Users, func(x admission.UserRecord) string { return x.Tenant + "/" + x.User })
}

func callIDs(st *store.State) []string {
	return names(st.Calls, func(x admission.CallRecord) string { return x.CallID })
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %#v\nwant %#v", what, got, want)
	}
}

// FullPlan is a plan with every field set, money and increments included.
func FullPlan(name string) configs.Plan {
	return configs.Plan{
		Name: name,
		Limits: configs.Limits{
			MaxParallelCalls:    ptr[int64](10),
			MaxParallelInbound:  ptr[int64](-1),
			MaxParallelOutbound: ptr[int64](0),
			MaxCallsPerSecond:   ptr[int64](5),
			CPSBurst:            ptr[int64](3),
			MaxMonthlyMinutes:   ptr[int64](1000),
			MonthlySpendLimit:   ptr(configs.MustMoney("123.456789")),
			AlertThresholdPct:   ptr[int64](80),
			AutoSuspend:         ptr(true),
			Destinations:        map[string]bool{"premium": false, "international": true},
		},
		Rates: []configs.Rate{
			{Prefix: "", PerMinute: ptr(configs.MustMoney("0.01")), Increments: configs.Increments{Initial: 60, Subsequent: 60}},
			{Prefix: "+44", PerMinute: ptr(configs.MustMoney("0.000001")), ConnectFee: configs.MustMoney("0.5"), Increments: configs.Increments{Initial: 30, Subsequent: 6}},
		},
	}
}

// FullTenant is a tenant with every field set.
func FullTenant(name, plan string) configs.Tenant {
	return configs.Tenant{
		Name:    name,
		Plan:    plan,
		Carrier: "carrier1",
		Sources: []string{"10.0.0.0/24", "2001:db8::/64"},
		DIDs:    []string{"+15550100", "+1555011"},
		PBX:     configs.Hop{Address: "10.0.0.5:5060", Transport: "tcp"},
		Limits: configs.Limits{
			MaxParallelCalls:  ptr[int64](-1),
			MonthlySpendLimit: ptr(configs.MoneyUnlimited),
			Destinations:      map[string]bool{},
		},
		Roles: []configs.Role{
			{Name: "agents", MaxParallelCalls: ptr[int64](1), MaxMonthlyMinutes: ptr[int64](600), Users: []string{"1001", "1002"}, Patterns: []string{"20*"}},
			{Name: "empty", Users: []string{}},
		},
	}
}

// Call is an answered call record.
func Call(id, tenant string, at time.Time) admission.CallRecord {
	return admission.CallRecord{
		CallID: id, Tenant: tenant, Direction: admission.Outbound, Caller: "1001", Callee: "+442071838750",
		AnsweredAt: at, Payload: []byte("dialog:" + id),
	}
}

// Counter is a tenant record.
func Counter(tenant string, seconds time.Duration) admission.TenantRecord {
	return admission.TenantRecord{
		Tenant: tenant, Cycle: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Seconds: seconds,
		Spend: int64(seconds / time.Millisecond), EmergencySeconds: seconds / 10, Flags: admission.FlagMinutesThreshold,
	}
}

// User is a user record.
func User(tenant, user string, seconds time.Duration) admission.UserRecord {
	return admission.UserRecord{Tenant: tenant, User: user, Cycle: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Seconds: seconds, Flags: admission.FlagMinutesCap}
}

// Event is an outbox event numbered n.
func Event(n int) admission.Event {
	return admission.Event{
		Type: "usage.threshold", Tenant: fmt.Sprintf("t%d", n%3), User: "1001", CallID: fmt.Sprintf("call-%d", n),
		Cap: "max_monthly_minutes", Value: int64(n), Limit: 6000, Reason: "r", At: T0.Add(time.Duration(n) * time.Second),
	}
}

// --- tests ---

func testEmpty(t *testing.T, s store.Store) {
	st := load(t, s)
	if st.Seeded || !st.Clock.IsZero() || len(st.Plans)+len(st.Tenants)+len(st.Tokens)+len(st.Counters)+len(st.Users)+len(st.Calls) != 0 {
		t.Errorf("empty store loads %+v", st)
	}
	days, err := s.Days("t1", time.Time{}, time.Time{})
	if err != nil || len(days) != 0 {
		t.Errorf("Days = %v, %v", days, err)
	}
	a, err := s.Audit(store.AuditQuery{})
	if err != nil || len(a) != 0 {
		t.Errorf("Audit = %v, %v", a, err)
	}
	o, err := s.Outbox(0, 10)
	if err != nil || len(o) != 0 {
		t.Errorf("Outbox = %v, %v", o, err)
	}
	if n, err := s.OutboxDepth(); err != nil || n != 0 {
		t.Errorf("OutboxDepth = %d, %v", n, err)
	}
	if err := s.AckOutbox(5); err != nil {
		t.Errorf("AckOutbox on empty: %v", err)
	}
	if sz := s.Size(); sz < 0 {
		t.Errorf("Size = %d", sz)
	}
}

func testApplyAtomic(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{
		At:         T0,
		PutPlans:   []configs.Plan{FullPlan("basic")},
		PutTenants: []configs.Tenant{FullTenant("t1", "basic")},
		Counters:   []admission.TenantRecord{Counter("t1", time.Minute)},
		PutCalls:   []admission.CallRecord{Call("c1", "t1", T0)},
		Days:       []store.DayDelta{{Tenant: "t1", Day: T0, Calls: 1, Seconds: time.Minute}},
		Events:     []admission.Event{Event(1)},
	})
	before := load(t, s)
	eq(t, "plans", planNames(before), []string{"basic"})
	eq(t, "tenants", tenantNames(before), []string{"t1"})
	eq(t, "counters", before.Counters, []admission.TenantRecord{Counter("t1", time.Minute)})
	eq(t, "calls", callIDs(before), []string{"c1"})
	eq(t, "clock", before.Clock, T0)

	// A batch that fails half way (the bad plan is stored after the
	// deletes and before the counters, days, events and clock) leaves no
	// trace.
	bad := FullPlan("bad")
	bad.Rates[0].PerMinute = ptr(configs.Money(-5)) // "-0.000005" cannot be loaded back
	err := s.Apply(&store.Batch{
		At:            T0.Add(time.Hour),
		DeletePlans:   []string{"basic"},
		DeleteTenants: []string{"t1"},
		DeleteCalls:   []string{"c1"},
		PutPlans:      []configs.Plan{FullPlan("good"), bad},
		Counters:      []admission.TenantRecord{Counter("t2", time.Hour)},
		Days:          []store.DayDelta{{Tenant: "t1", Day: T0, Calls: 5}},
		Events:        []admission.Event{Event(2)},
		Audit:         []store.AuditEntry{{Actor: "x", Action: "plan.create"}},
		Seeded:        true,
	})
	if err == nil {
		t.Fatal("Apply of an unstorable plan succeeded")
	}
	if !strings.HasPrefix(err.Error(), "store: ") {
		t.Errorf("error %q lacks the store: prefix", err)
	}
	eq(t, "state after failed Apply", load(t, s), before)
	days, _ := s.Days("t1", time.Time{}, time.Time{})
	if len(days) != 1 || days[0].Calls != 1 {
		t.Errorf("days after failed Apply: %+v", days)
	}
	if n, _ := s.OutboxDepth(); n != 1 {
		t.Errorf("outbox depth after failed Apply = %d, want 1", n)
	}
	if a, _ := s.Audit(store.AuditQuery{}); len(a) != 0 {
		t.Errorf("audit after failed Apply: %+v", a)
	}
	// The next event still gets seq 2.
	apply(t, s, &store.Batch{Events: []admission.Event{Event(3)}})
	o, err := s.Outbox(0, 10)
	if err != nil || len(o) != 2 || o[1].Seq != 2 {
		t.Errorf("outbox after failed Apply: %+v, %v", o, err)
	}
}

func testPlans(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{PutPlans: []configs.Plan{FullPlan("b"), FullPlan("a")}})
	eq(t, "plans", load(t, s).Plans, []configs.Plan{FullPlan("a"), FullPlan("b")})
	changed := FullPlan("a")
	changed.Limits.MaxParallelCalls = ptr[int64](99)
	changed.Rates = nil
	apply(t, s, &store.Batch{PutPlans: []configs.Plan{changed}})
	eq(t, "overwritten plans", load(t, s).Plans, []configs.Plan{changed, FullPlan("b")})
	apply(t, s, &store.Batch{DeletePlans: []string{"a", "absent"}})
	eq(t, "plans after delete", load(t, s).Plans, []configs.Plan{FullPlan("b")})
}

func testTenants(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{PutTenants: []configs.Tenant{FullTenant("y", "p"), FullTenant("x", "p")}})
	eq(t, "tenants", load(t, s).Tenants, []configs.Tenant{FullTenant("x", "p"), FullTenant("y", "p")})
	changed := FullTenant("x", "other")
	changed.Roles = nil
	apply(t, s, &store.Batch{PutTenants: []configs.Tenant{changed}})
	eq(t, "overwritten tenants", load(t, s).Tenants, []configs.Tenant{changed, FullTenant("y", "p")})
	apply(t, s, &store.Batch{DeleteTenants: []string{"y", "absent"}})
	eq(t, "tenants after delete", load(t, s).Tenants, []configs.Tenant{changed})
}

func testTokens(t *testing.T, s store.Store) {
	ops := store.Token{Name: "ops", Scope: "admin", Hash: strings.Repeat("ab", 32), Created: T0}
	ci := store.Token{Name: "ci", Scope: "read", Hash: strings.Repeat("cd", 32), Created: T0.Add(time.Second)}
	apply(t, s, &store.Batch{PutTokens: []store.Token{ops, ci}})
	eq(t, "tokens", load(t, s).Tokens, []store.Token{ci, ops})
	ops.Scope = "billing"
	apply(t, s, &store.Batch{PutTokens: []store.Token{ops}})
	eq(t, "overwritten tokens", load(t, s).Tokens, []store.Token{ci, ops})
	apply(t, s, &store.Batch{DeleteTokens: []string{"ci", "absent"}})
	eq(t, "tokens after delete", load(t, s).Tokens, []store.Token{ops})
}

func testCounters(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{Counters: []admission.TenantRecord{Counter("t2", time.Second), Counter("t1", time.Minute)}})
	eq(t, "counters", load(t, s).Counters, []admission.TenantRecord{Counter("t1", time.Minute), Counter("t2", time.Second)})
	susp := Counter("t1", time.Hour)
	susp.Suspended, susp.SuspendReason, susp.SuspendCap = true, "cap reached", "max_monthly_minutes"
	susp.Flags = admission.FlagMinutesCap | admission.FlagSpendCap
	apply(t, s, &store.Batch{Counters: []admission.TenantRecord{susp}})
	eq(t, "overwritten counters", load(t, s).Counters, []admission.TenantRecord{susp, Counter("t2", time.Second)})
	// Overwrite with fewer fields set: nothing of the old record stays.
	plain := admission.TenantRecord{Tenant: "t1"}
	apply(t, s, &store.Batch{Counters: []admission.TenantRecord{plain}})
	eq(t, "reset counters", load(t, s).Counters, []admission.TenantRecord{plain, Counter("t2", time.Second)})
}

func testUsers(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{Users: []admission.UserRecord{
		User("t2", "a", time.Second), User("t1", "b", 2*time.Second), User("t1", "a", 3*time.Second), User("t10", "a", 0),
	}})
	eq(t, "users", userNames(load(t, s)), []string{"t1/a", "t1/b", "t10/a", "t2/a"})
	apply(t, s, &store.Batch{Users: []admission.UserRecord{User("t1", "b", time.Hour)}})
	st := load(t, s)
	eq(t, "user t1/b", st.Users[1], User("t1", "b", time.Hour))
	eq(t, "user t1/a", st.Users[0], User("t1", "a", 3*time.Second))
}

func testCalls(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{PutCalls: []admission.CallRecord{Call("c2", "t1", T0), Call("c1", "t2", T0)}})
	eq(t, "calls", load(t, s).Calls, []admission.CallRecord{Call("c1", "t2", T0), Call("c2", "t1", T0)})
	moved := Call("c1", "t2", T0.Add(time.Second))
	moved.Payload = []byte("re-invited")
	apply(t, s, &store.Batch{PutCalls: []admission.CallRecord{moved}})
	eq(t, "overwritten call", load(t, s).Calls[0], moved)
	// Deleting an absent call is not an error.
	apply(t, s, &store.Batch{DeleteCalls: []string{"c2", "never"}})
	eq(t, "calls after delete", callIDs(load(t, s)), []string{"c1"})
	apply(t, s, &store.Batch{DeleteCalls: []string{"c2"}})
	eq(t, "calls after second delete", callIDs(load(t, s)), []string{"c1"})
}

func testDeleteTenantsCascade(t *testing.T, s store.Store) {
	// "t" is a prefix of the other names: only its own rows go.
	var b store.Batch
	for _, name := range []string{"t", "t1", "tt"} {
		b.PutTenants = append(b.PutTenants, FullTenant(name, "p"))
		b.Counters = append(b.Counters, Counter(name, time.Minute))
		b.Users = append(b.Users, User(name, "u1", time.Second), User(name, "u2", time.Second))
		b.PutCalls = append(b.PutCalls, Call("call-"+name, name, T0))
		b.Days = append(b.Days, store.DayDelta{Tenant: name, Day: T0, Calls: 1})
		b.Audit = append(b.Audit, store.AuditEntry{At: T0, Actor: "a", Action: "tenant.create", Tenant: name})
	}
	b.PutCalls = append(b.PutCalls, Call("call-t-2", "t", T0))
	apply(t, s, &b)
	apply(t, s, &store.Batch{DeleteTenants: []string{"t"}})
	st := load(t, s)
	eq(t, "tenants", tenantNames(st), []string{"t1", "tt"})
	eq(t, "counters", counterNames(st), []string{"t1", "tt"})
	eq(t, "users", userNames(st), []string{"t1/u1", "t1/u2", "tt/u1", "tt/u2"})
	eq(t, "calls", callIDs(st), []string{"call-t1", "call-tt"})
	// Usage history and the audit log stay.
	days, err := s.Days("t", time.Time{}, time.Time{})
	if err != nil || len(days) != 1 {
		t.Errorf("days of the deleted tenant: %+v, %v", days, err)
	}
	a, err := s.Audit(store.AuditQuery{Tenant: "t"})
	if err != nil || len(a) != 1 {
		t.Errorf("audit of the deleted tenant: %+v, %v", a, err)
	}
}

func testDeleteBeforePut(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{
		PutPlans:   []configs.Plan{FullPlan("p")},
		PutTenants: []configs.Tenant{FullTenant("t1", "p")},
		Counters:   []admission.TenantRecord{Counter("t1", time.Hour)},
		Users:      []admission.UserRecord{User("t1", "old", time.Hour)},
		PutCalls:   []admission.CallRecord{Call("old", "t1", T0)},
	})
	// In one batch deletes come first: the tenant is deleted (cascade) and
	// created again with fresh rows; a plan deleted and put is put.
	recreated := FullTenant("t1", "q")
	apply(t, s, &store.Batch{
		DeletePlans:   []string{"p"},
		PutPlans:      []configs.Plan{FullPlan("p")},
		DeleteTenants: []string{"t1"},
		PutTenants:    []configs.Tenant{recreated},
		Counters:      []admission.TenantRecord{Counter("t1", time.Second)},
		Users:         []admission.UserRecord{User("t1", "new", time.Second)},
		DeleteCalls:   []string{"new"},
		PutCalls:      []admission.CallRecord{Call("new", "t1", T0)},
	})
	st := load(t, s)
	eq(t, "plans", planNames(st), []string{"p"})
	eq(t, "tenants", st.Tenants, []configs.Tenant{recreated})
	eq(t, "counters", st.Counters, []admission.TenantRecord{Counter("t1", time.Second)})
	eq(t, "users", userNames(st), []string{"t1/new"})
	eq(t, "calls", callIDs(st), []string{"new"})
}

func testDays(t *testing.T, s store.Store) {
	d1 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	d2 := d1.AddDate(0, 0, 1)
	apply(t, s, &store.Batch{Days: []store.DayDelta{
		{Tenant: "t1", Day: d1, Calls: 1, Seconds: 60 * time.Second, Spend: 100},
		{Tenant: "t1", Day: d1, Calls: 1, Seconds: 30 * time.Second, Spend: 50, EmergencySeconds: 5 * time.Second},
		{Tenant: "t2", Day: d1, Calls: 7},
	}})
	apply(t, s, &store.Batch{Days: []store.DayDelta{
		{Tenant: "t1", Day: d1, Calls: 2, Seconds: 10 * time.Second, Spend: 1, EmergencySeconds: time.Second},
		{Tenant: "t1", Day: d2, Calls: 1, Seconds: time.Second},
		// A time within the day counts on that UTC day.
		{Tenant: "t1", Day: d2.Add(23*time.Hour + 59*time.Minute), Spend: 3},
	}})
	days, err := s.Days("t1", d1, d2.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "t1 days", days, []store.Day{
		{Tenant: "t1", Day: d1, Calls: 4, Seconds: 100 * time.Second, Spend: 151, EmergencySeconds: 6 * time.Second},
		{Tenant: "t1", Day: d2, Calls: 1, Seconds: time.Second, Spend: 3},
	})
	days, err = s.Days("t2", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "t2 days", days, []store.Day{{Tenant: "t2", Day: d1, Calls: 7}})
	if days, _ := s.Days("t", time.Time{}, time.Time{}); len(days) != 0 {
		t.Errorf("days of tenant t (a prefix of t1, t2): %+v", days)
	}
}

func testDaysRange(t *testing.T, s store.Store) {
	d := func(day int) time.Time { return time.Date(2025, 2, 26, 0, 0, 0, 0, time.UTC).AddDate(0, 0, day) }
	var b store.Batch
	for i := 0; i < 10; i++ { // Feb 26 .. Mar 7, across the month end
		b.Days = append(b.Days, store.DayDelta{Tenant: "t1", Day: d(i), Calls: int64(i + 1)})
	}
	apply(t, s, &b)
	got := func(from, to time.Time) []int64 {
		t.Helper()
		days, err := s.Days("t1", from, to)
		if err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for i, day := range days {
			if i > 0 && !days[i-1].Day.Before(day.Day) {
				t.Errorf("days out of order: %v", days)
			}
			if day.Tenant != "t1" || day.Day.Location() != time.UTC {
				t.Errorf("day %+v", day)
			}
			out = append(out, day.Calls)
		}
		return out
	}
	eq(t, "[d2, d5)", got(d(2), d(5)), []int64{3, 4, 5})
	eq(t, "[d0, d10)", got(d(0), d(10)), []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	eq(t, "[d5, d5)", got(d(5), d(5)), []int64{})
	eq(t, "open from", got(time.Time{}, d(2)), []int64{1, 2})
	eq(t, "open to", got(d(8), time.Time{}), []int64{9, 10})
	// A day counts when its midnight is in [from, to).
	eq(t, "mid-day bounds", got(d(2).Add(time.Hour), d(5).Add(time.Hour)), []int64{4, 5, 6})
	eq(t, "March", got(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)), []int64{4, 5, 6, 7, 8, 9, 10})
}

// eventIDs checks that every entry's ID is the store's instance prefix
// (16 hex digits), "-" and its Seq, clears the IDs (so the entries compare
// with the events written) and returns the prefix.
func eventIDs(t *testing.T, o []store.OutboxEntry) string {
	t.Helper()
	var prefix string
	for i := range o {
		p, seq, ok := strings.Cut(o[i].ID, "-")
		if !ok || len(p) != 16 || strings.Trim(p, "0123456789abcdef") != "" || seq != strconv.FormatUint(o[i].Seq, 10) {
			t.Errorf("entry %d: id %q is not <16 hex>-<seq %d>", i, o[i].ID, o[i].Seq)
		}
		if i > 0 && p != prefix {
			t.Errorf("entry %d: id prefix %q, earlier %q", i, p, prefix)
		}
		prefix = p
		o[i].ID = ""
	}
	return prefix
}

func testOutbox(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{Events: []admission.Event{Event(1), Event(2)}})
	apply(t, s, &store.Batch{Counters: []admission.TenantRecord{Counter("t1", 0)}}) // no events
	apply(t, s, &store.Batch{Events: []admission.Event{Event(3)}})
	o, err := s.Outbox(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	prefix := eventIDs(t, o)
	eq(t, "outbox", o, []store.OutboxEntry{{Seq: 1, Event: Event(1)}, {Seq: 2, Event: Event(2)}, {Seq: 3, Event: Event(3)}})
	if n, err := s.OutboxDepth(); err != nil || n != 3 {
		t.Errorf("depth = %d, %v; want 3", n, err)
	}
	if err := s.AckOutbox(2); err != nil {
		t.Fatal(err)
	}
	if n, err := s.OutboxDepth(); err != nil || n != 1 {
		t.Errorf("depth after ack 2 = %d, %v; want 1", n, err)
	}
	o, _ = s.Outbox(0, 10)
	if p := eventIDs(t, o); p != prefix {
		t.Errorf("event id prefix changed from %q to %q", prefix, p)
	}
	eq(t, "outbox after ack", o, []store.OutboxEntry{{Seq: 3, Event: Event(3)}})
	// Acking everything and more; seqs are never reused.
	if err := s.AckOutbox(100); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboxDepth(); n != 0 {
		t.Errorf("depth after ack all = %d", n)
	}
	apply(t, s, &store.Batch{Events: []admission.Event{Event(4)}})
	o, _ = s.Outbox(0, 10)
	eventIDs(t, o)
	eq(t, "outbox after ack all", o, []store.OutboxEntry{{Seq: 4, Event: Event(4)}})
	if n, _ := s.OutboxDepth(); n != 1 {
		t.Errorf("depth = %d, want 1", n)
	}
	// Acking an older seq again changes nothing.
	if err := s.AckOutbox(3); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboxDepth(); n != 1 {
		t.Errorf("depth after stale ack = %d, want 1", n)
	}
}

func testOutboxPaging(t *testing.T, s store.Store) {
	for batch := 0; batch < 5; batch++ {
		var b store.Batch
		for i := 0; i < 50; i++ {
			b.Events = append(b.Events, Event(batch*50+i+1))
		}
		apply(t, s, &b)
	}
	var all []store.OutboxEntry
	after := uint64(0)
	for pages := 0; ; pages++ {
		page, err := s.Outbox(after, 30)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if pages != 9 {
				t.Errorf("%d pages of 30 for 250 entries", pages)
			}
			break
		}
		if len(page) > 30 {
			t.Fatalf("page of %d > limit 30", len(page))
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != 250 {
		t.Fatalf("%d entries, want 250", len(all))
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) || !reflect.DeepEqual(e.Event, Event(i+1)) {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if page, _ := s.Outbox(240, 0); len(page) != 10 || page[0].Seq != 241 {
		t.Errorf("Outbox(240, default) = %d entries", len(page))
	}
	if page, _ := s.Outbox(^uint64(0), 10); len(page) != 0 {
		t.Errorf("Outbox(max) = %+v", page)
	}
	if n, _ := s.OutboxDepth(); n != 250 {
		t.Errorf("depth = %d", n)
	}
	if err := s.AckOutbox(249); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.OutboxDepth(); n != 1 {
		t.Errorf("depth after ack 249 = %d", n)
	}
}

func testAudit(t *testing.T, s store.Store) {
	before, _ := json.Marshal(FullPlan("p"))
	e1 := store.AuditEntry{At: T0, Actor: "ops", Action: "plan.update", Resource: "plans/p", Before: before, After: json.RawMessage(`{"name":"p"}`), Reason: "why"}
	e2 := store.AuditEntry{At: T0, Actor: "system", Action: "tenant.suspend", Resource: "tenants/t1", Tenant: "t1", Cap: "monthly_spend_limit", Usage: 5000, Limit: 4000}
	e3 := store.AuditEntry{ID: "given-id", At: T0.Add(-time.Hour), Actor: "config", Action: "seed"}
	apply(t, s, &store.Batch{Audit: []store.AuditEntry{e1, e2, e3}})
	e4 := store.AuditEntry{Actor: "ops", Action: "token.create", Resource: "tokens/ci"} // no At: the batch's
	at4 := T0.Add(time.Minute)
	apply(t, s, &store.Batch{At: at4, Audit: []store.AuditEntry{e4}})
	got, err := s.Audit(store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4: %+v", len(got), got)
	}
	// Newest first; entries at the same instant: the later one first.
	ids := map[string]bool{}
	for i, want := range []store.AuditEntry{e4, e2, e1, e3} {
		g := got[i]
		if g.ID == "" || ids[g.ID] {
			t.Errorf("entry %d: empty or duplicate id %q", i, g.ID)
		}
		ids[g.ID] = true
		if want.ID != "" && g.ID != want.ID {
			t.Errorf("entry %d: id %q, want the given %q", i, g.ID, want.ID)
		}
		want.ID = g.ID
		if want.At.IsZero() {
			want.At = at4
		}
		eq(t, fmt.Sprintf("entry %d", i), g, want)
	}
	// Assigned ids sort like the entries (time, then order).
	if !(got[0].ID > got[1].ID && got[1].ID > got[2].ID) {
		t.Errorf("assigned ids not increasing with time and order: %q %q %q", got[2].ID, got[1].ID, got[0].ID)
	}
}

func testAuditQuery(t *testing.T, s store.Store) {
	// 30 entries, one a minute, tenants a, b, "" in turn; "ab" shares a's prefix.
	var b store.Batch
	tenants := []string{"a", "b", "", "ab"}
	for i := 0; i < 30; i++ {
		b.Audit = append(b.Audit, store.AuditEntry{At: T0.Add(time.Duration(i) * time.Minute), Actor: "ops", Action: "limits.update", Tenant: tenants[i%4], Reason: fmt.Sprint(i)})
	}
	apply(t, s, &b)
	q := func(q store.AuditQuery) []string {
		t.Helper()
		got, err := s.Audit(q)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, e := range got {
			if q.Tenant != "" && e.Tenant != q.Tenant {
				t.Errorf("tenant filter %q returned %+v", q.Tenant, e)
			}
			out = append(out, e.Reason)
		}
		return out
	}
	at := func(i int) time.Time { return T0.Add(time.Duration(i) * time.Minute) }
	eq(t, "tenant a", q(store.AuditQuery{Tenant: "a"}), []string{"28", "24", "20", "16", "12", "8", "4", "0"})
	eq(t, "tenant ab", q(store.AuditQuery{Tenant: "ab"}), []string{"27", "23", "19", "15", "11", "7", "3"})
	eq(t, "unknown tenant", q(store.AuditQuery{Tenant: "zz"}), []string{})
	eq(t, "[10, 14)", q(store.AuditQuery{From: at(10), To: at(14)}), []string{"13", "12", "11", "10"})
	eq(t, "a in [4, 20)", q(store.AuditQuery{Tenant: "a", From: at(4), To: at(20)}), []string{"16", "12", "8", "4"})
	eq(t, "a in [5, 20]", q(store.AuditQuery{Tenant: "a", From: at(5), To: at(20).Add(time.Nanosecond)}), []string{"20", "16", "12", "8"})
	eq(t, "limit 3", q(store.AuditQuery{Limit: 3}), []string{"29", "28", "27"})
	eq(t, "b limit 2 to 20", q(store.AuditQuery{Tenant: "b", To: at(20), Limit: 2}), []string{"17", "13"})
	eq(t, "from 27", q(store.AuditQuery{From: at(27)}), []string{"29", "28", "27"})
	eq(t, "to first", q(store.AuditQuery{To: at(0)}), []string{})
}

func testAuditLimit(t *testing.T, s store.Store) {
	var b store.Batch
	for i := 0; i < 1100; i++ {
		b.Audit = append(b.Audit, store.AuditEntry{At: T0.Add(time.Duration(i) * time.Second), Actor: "a", Action: "x", Tenant: "t"})
	}
	apply(t, s, &b)
	for _, c := range []struct{ limit, want int }{{0, 100}, {-1, 100}, {5, 5}, {1000, 1000}, {5000, 1000}} {
		for _, tenant := range []string{"", "t"} {
			got, err := s.Audit(store.AuditQuery{Tenant: tenant, Limit: c.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.want {
				t.Errorf("limit %d tenant %q: %d entries, want %d", c.limit, tenant, len(got), c.want)
			} else if !got[0].At.Equal(T0.Add(1099 * time.Second)) {
				t.Errorf("limit %d: newest is %v", c.limit, got[0].At)
			}
		}
	}
}

func testSeededAndClock(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{At: T0})
	st := load(t, s)
	if st.Seeded || !st.Clock.Equal(T0) {
		t.Errorf("after empty batch: seeded %v clock %v", st.Seeded, st.Clock)
	}
	apply(t, s, &store.Batch{At: T0.Add(time.Second), Seeded: true})
	apply(t, s, &store.Batch{At: T0.Add(2 * time.Second)}) // Seeded false does not unseed
	st = load(t, s)
	eq(t, "clock", st.Clock, T0.Add(2*time.Second))
	if !st.Seeded {
		t.Error("not seeded")
	}
	// A zero At leaves the clock.
	apply(t, s, &store.Batch{Counters: []admission.TenantRecord{Counter("t", 0)}})
	eq(t, "clock after zero At", load(t, s).Clock, T0.Add(2*time.Second))
	// The clock is the last At, even when earlier.
	apply(t, s, &store.Batch{At: T0})
	eq(t, "clock set back", load(t, s).Clock, T0)
}

// testUnreplicated: replication marks are kept by kind and name (the
// last one wins), deleted by Done, survive the deletion of their object,
// and load sorted.
func testUnreplicated(t *testing.T, s store.Store) {
	mark := func(kind, name, actor string, at time.Time) store.Unreplicated {
		return store.Unreplicated{Kind: kind, Name: name, Actor: actor, At: at}
	}
	apply(t, s, &store.Batch{
		PutTenants:   []configs.Tenant{FullTenant("acme", "gold")},
		Unreplicated: []store.Unreplicated{mark("tenant", "acme", "ops", T0), mark("plan", "gold", "ops", T0)},
	})
	apply(t, s, &store.Batch{Unreplicated: []store.Unreplicated{
		mark("tenant", "acme", "root", T0.Add(time.Second)), mark("status", "acme", "root", T0),
	}})
	apply(t, s, &store.Batch{DeleteTenants: []string{"acme"}})
	got := load(t, s).Unreplicated
	want := []store.Unreplicated{
		mark("plan", "gold", "ops", T0), mark("status", "acme", "root", T0), mark("tenant", "acme", "root", T0.Add(time.Second)),
	}
	eq(t, "marks", got, want)
	done := mark("plan", "gold", "", time.Time{})
	done.Done = true
	apply(t, s, &store.Batch{Unreplicated: []store.Unreplicated{done}})
	eq(t, "marks after done", load(t, s).Unreplicated, want[1:])
}

func testLoadSorted(t *testing.T, s store.Store) {
	order := []string{"m", "b", "z", "a", "ba", "B", "a-1"}
	sorted := []string{"B", "a", "a-1", "b", "ba", "m", "z"}
	for _, n := range order { // one batch per name
		apply(t, s, &store.Batch{
			PutPlans:   []configs.Plan{FullPlan(n)},
			PutTenants: []configs.Tenant{FullTenant(n, "p")},
			PutTokens:  []store.Token{{Name: n, Scope: "read", Created: T0}},
			Counters:   []admission.TenantRecord{Counter(n, 0)},
			Users:      []admission.UserRecord{User(n, "2", 0), User(n, "10", 0)},
			PutCalls:   []admission.CallRecord{Call(n, "t", T0)},
		})
	}
	st := load(t, s)
	eq(t, "plans", planNames(st), sorted)
	eq(t, "tenants", tenantNames(st), sorted)
	eq(t, "tokens", tokenNames(st), sorted)
	eq(t, "counters", counterNames(st), sorted)
	eq(t, "calls", callIDs(st), sorted)
	var users []string
	for _, n := range sorted {
		users = append(users, n+"/10", n+"/2")
	}
	eq(t, "users", userNames(st), users)
}

func testDeepCopy(t *testing.T, s store.Store) {
	p := FullPlan("p")
	tn := FullTenant("t", "p")
	c := Call("c", "t", T0)
	a := store.AuditEntry{At: T0, Actor: "x", Action: "y", After: json.RawMessage(`{"a":1}`)}
	b := &store.Batch{PutPlans: []configs.Plan{p}, PutTenants: []configs.Tenant{tn}, PutCalls: []admission.CallRecord{c}, Audit: []store.AuditEntry{a}}
	apply(t, s, b)
	// Mutate everything the caller gave.
	*b.PutPlans[0].Limits.MaxParallelCalls = 777
	b.PutPlans[0].Limits.Destinations["premium"] = true
	b.PutPlans[0].Rates[0].Prefix = "+1"
	*b.PutPlans[0].Rates[0].PerMinute = 42
	b.PutTenants[0].Sources[0] = "0.0.0.0/0"
	b.PutTenants[0].Roles[0].Users[0] = "mallory"
	b.PutCalls[0].Payload[0] = 'X'
	b.Audit[0].After[2] = 'b'
	want := &store.State{Plans: []configs.Plan{FullPlan("p")}, Tenants: []configs.Tenant{FullTenant("t", "p")}, Calls: []admission.CallRecord{Call("c", "t", T0)}}
	st := load(t, s)
	eq(t, "state after mutating inputs", st, want)
	// Mutate what Load returned.
	*st.Plans[0].Limits.MonthlySpendLimit = 1
	st.Plans[0].Rates[1].Increments.Initial = 1
	st.Tenants[0].DIDs[0] = "+0"
	st.Tenants[0].Limits.Destinations["x"] = true
	st.Calls[0].Payload[0] = 'Y'
	eq(t, "state after mutating a Load", load(t, s), want)
	got, _ := s.Audit(store.AuditQuery{})
	got[0].After[2] = 'c'
	got, _ = s.Audit(store.AuditQuery{})
	eq(t, "audit after mutations", string(got[0].After), `{"a":1}`)
}

func testRoundTrip(t *testing.T, s store.Store) {
	minimal := configs.Plan{Name: "minimal", Rates: []configs.Rate{{PerMinute: ptr(configs.Money(0))}}} // unset increments
	tnil := configs.Tenant{Name: "nil"}
	empty := configs.Tenant{Name: "empty", Sources: []string{}, DIDs: []string{}, Roles: []configs.Role{}, Limits: configs.Limits{Destinations: map[string]bool{}}}
	noPayload := Call("np", "t", T0)
	noPayload.Payload = nil
	// A CDR with every field, media meters included, and a limits change:
	// the engine's types round-trip whole.
	cdr := admission.Event{Type: admission.EventCallEnded, Tenant: "t", User: "100", CallID: "c;1", At: T0.Add(time.Minute),
		Call: &admission.CallInfo{Direction: admission.Inbound, Caller: "100", Callee: "4930", Rated: true, RatePrefix: "49",
			AnsweredAt: T0, Billed: 59*time.Second + 7, Cost: 12345, Cause: "bye_caller", Code: 0,
			End: &admission.End{BilledEnd: T0.Add(59 * time.Second), Cause: "bye_caller", HungUp: "caller",
				Media: &admission.Media{Caller: admission.MediaLeg{Packets: 3, Bytes: 480, Lost: -1, JitterMs: 0.25, SSRCChanges: 1,
					Dropped: 2, Malformed: 1, RTCPPackets: 4, FirstPacket: T0, LastPacket: T0.Add(time.Second)}}}}}
	limitsEv := admission.Event{Type: admission.EventLimits, Tenant: "t", At: T0,
		Limits: &admission.Limits{MaxParallelCalls: ptr[int64](5), AlertThresholdPct: ptr[int64](80)}}
	emptyPayload := Call("ep", "t", T0)
	emptyPayload.Payload = []byte{}
	binPayload := Call("bp", "t", T0)
	binPayload.Payload = []byte{0, 1, 2, 0xff, '"', '\\', '\n'}
	inbound := Call("in", "t", T0)
	inbound.Direction, inbound.Emergency = admission.Inbound, true
	counter := admission.TenantRecord{Tenant: "t", Cycle: T0, Seconds: 123456789 * time.Nanosecond, Spend: -5, EmergencySeconds: 1,
		Flags: 0xff, Suspended: true, SuspendReason: "manual \"quoted\"", SuspendCap: ""}
	tok := store.Token{Name: "tok", Scope: "settings", Hash: "00ff", Created: T0}
	apply(t, s, &store.Batch{
		At:         T0,
		PutPlans:   []configs.Plan{FullPlan("full"), minimal},
		PutTenants: []configs.Tenant{FullTenant("full", "full"), tnil, empty},
		PutTokens:  []store.Token{tok},
		Counters:   []admission.TenantRecord{counter},
		Users:      []admission.UserRecord{{Tenant: "t", User: "ü ser", Cycle: T0, Seconds: 1, Flags: 3}},
		PutCalls:   []admission.CallRecord{noPayload, emptyPayload, binPayload, inbound},
		Events:     []admission.Event{{Type: "cycle.rollover", At: T0}, cdr, limitsEv},
	})
	st := load(t, s)
	eq(t, "plans", st.Plans, []configs.Plan{FullPlan("full"), minimal})
	eq(t, "tenants", st.Tenants, []configs.Tenant{empty, FullTenant("full", "full"), tnil})
	eq(t, "tokens", st.Tokens, []store.Token{tok})
	eq(t, "counters", st.Counters, []admission.TenantRecord{counter})
	eq(t, "users", st.Users, []admission.UserRecord{{Tenant: "t", User: "ü ser", Cycle: T0, Seconds: 1, Flags: 3}})
	eq(t, "calls", st.Calls, []admission.CallRecord{binPayload, emptyPayload, inbound, noPayload})
	if st.Calls[3].Payload != nil || st.Calls[1].Payload == nil {
		t.Error("nil and empty payloads not kept apart")
	}
	o, _ := s.Outbox(0, 3)
	eventIDs(t, o)
	eq(t, "events", o, []store.OutboxEntry{{Seq: 1, Event: admission.Event{Type: "cycle.rollover", At: T0}}, {Seq: 2, Event: cdr}, {Seq: 3, Event: limitsEv}})
	lim := st.Plans[0].Limits
	if *lim.MonthlySpendLimit != configs.MustMoney("123.456789") || st.Plans[0].Rates[1].Increments != (configs.Increments{Initial: 30, Subsequent: 6}) {
		t.Errorf("money or increments changed: %v %v", *lim.MonthlySpendLimit, st.Plans[0].Rates[1].Increments)
	}
}

func testTimesUTC(t *testing.T, s store.Store) {
	zone := time.FixedZone("X", 5*3600+1800)
	local := T0.In(zone)
	apply(t, s, &store.Batch{
		At:       local,
		Counters: []admission.TenantRecord{{Tenant: "t", Cycle: local}},
		PutCalls: []admission.CallRecord{Call("c", "t", local)},
		Audit:    []store.AuditEntry{{At: local, Actor: "a", Action: "b"}},
		// 23:00 in zone X on Mar 13 is Mar 13 17:30 UTC.
		Days: []store.DayDelta{{Tenant: "t", Day: time.Date(2025, 3, 13, 23, 0, 0, 0, zone), Calls: 1}},
	})
	st := load(t, s)
	for what, got := range map[string]time.Time{"clock": st.Clock, "cycle": st.Counters[0].Cycle, "answered": st.Calls[0].AnsweredAt} {
		if got != T0 { // same instant, UTC, no monotonic reading
			t.Errorf("%s = %v, want %v", what, got, T0)
		}
	}
	a, _ := s.Audit(store.AuditQuery{})
	if len(a) != 1 || a[0].At != T0 {
		t.Errorf("audit at %+v", a)
	}
	days, _ := s.Days("t", time.Time{}, time.Time{})
	if len(days) != 1 || days[0].Day != time.Date(2025, 3, 13, 0, 0, 0, 0, time.UTC) {
		t.Errorf("days %+v", days)
	}
}

func testClosed(t *testing.T, s store.Store) {
	apply(t, s, &store.Batch{At: T0})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	check("Apply", s.Apply(&store.Batch{At: T0}))
	_, err := s.Load()
	check("Load", err)
	_, err = s.Days("t", time.Time{}, time.Time{})
	check("Days", err)
	_, err = s.Audit(store.AuditQuery{})
	check("Audit", err)
	_, err = s.Outbox(0, 1)
	check("Outbox", err)
	check("AckOutbox", s.AckOutbox(1))
	_, err = s.OutboxDepth()
	check("OutboxDepth", err)
	if n := s.Size(); n != 0 {
		t.Errorf("Size after Close = %d", n)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
