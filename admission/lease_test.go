package admission

import (
	"testing"
	"time"
)

func leaseEngine(t *testing.T, lim Limits) *Engine {
	t.Helper()
	e := NewEngine(Settings{Cluster: true})
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	if _, err := e.UpsertPlan(now, Plan{Name: "p", Limits: lim}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTenant(now, "acme", "p"); err != nil {
		t.Fatal(err)
	}
	return e
}

func i64(v int64) *int64 { return &v }

// In cluster mode a node admits only within the capacity it leased; a
// miss is CauseLease with the dimension, no event and no change; with the
// ledger found full it is the cap's own rejection, with its event.
func TestLeaseParallel(t *testing.T) {
	e := leaseEngine(t, Limits{MaxParallelCalls: i64(10), MaxParallelInbound: i64(4)})
	now := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	req := func(id string, dir Direction) CallRequest {
		return CallRequest{CallID: id, Tenant: "acme", Direction: dir, Caller: "100", Callee: "200"}
	}
	d := e.Admit(now, req("c1", Outbound))
	if d.Admitted || d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseParallel || d.Rejection.Code != 503 {
		t.Fatalf("no lease: %+v, want a CauseLease miss on max_parallel_calls, 503", d.Rejection)
	}
	if len(d.Events) != 0 || e.Active("acme") != 0 {
		t.Fatalf("a lease miss emitted %d events, active %d", len(d.Events), e.Active("acme"))
	}
	if got, ok := e.SetLease("acme", LeaseParallel, 2, 10); !ok || got != 2 {
		t.Fatalf("SetLease = %d, %v", got, ok)
	}
	for _, id := range []string{"c1", "c2"} {
		if d := e.Admit(now, req(id, Outbound)); !d.Admitted {
			t.Fatalf("%s within the lease: %+v", id, d.Rejection)
		}
	}
	if d := e.Admit(now, req("c3", Outbound)); d.Rejection.Cause != CauseLease {
		t.Fatalf("past the lease: %+v", d.Rejection)
	}
	// Lowering below the calls in progress clamps: nothing is cut.
	if got, _ := e.SetLease("acme", LeaseParallel, 0, 10); got != 2 {
		t.Fatalf("SetLease(0) with 2 active = %d, want 2", got)
	}
	// The ledger is full: the cap's own rejection (486), with its event.
	r := req("c3", Outbound)
	r.LeaseFull = r.LeaseFull.With(LeaseParallel)
	d = e.Admit(now, r)
	if d.Rejection.Cause != CauseParallelCalls || d.Rejection.Code != 486 || len(d.Events) == 0 {
		t.Fatalf("ledger full: %+v, %d events; want parallel_calls 486 with an event", d.Rejection, len(d.Events))
	}
	// Inbound has its own lease.
	e.SetLease("acme", LeaseParallel, 10, 10)
	if d := e.Admit(now, req("i1", Inbound)); d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseInbound {
		t.Fatalf("inbound without its lease: %+v", d.Rejection)
	}
	e.SetLease("acme", LeaseInbound, 1, 4)
	if d := e.Admit(now, req("i1", Inbound)); !d.Admitted {
		t.Fatalf("inbound within its lease: %+v", d.Rejection)
	}
	u, _ := e.LeaseUsage("acme")
	if u.Active != [LeaseCPS]int64{0, 3, 1, 2} || u.Held[LeaseInbound] != 1 || u.Cap[LeaseParallel] != 10 || u.Cap[LeaseOutbound] != -1 {
		t.Fatalf("LeaseUsage = %+v", u)
	}
	if _, ok := e.SetLease("acme", LeaseCPS, 1, 100); ok {
		t.Fatal("SetLease on the CPS dimension accepted")
	}
}

// CPS tokens belong to one UTC second: a token of an earlier second is
// gone, and a miss says when the next second starts.
func TestLeaseCPS(t *testing.T) {
	e := leaseEngine(t, Limits{MaxCallsPerSecond: i64(100), CPSBurst: i64(100)})
	e.SetLease("acme", LeaseParallel, 100, -1)
	sec := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	now := sec.Add(300 * time.Millisecond)
	req := CallRequest{CallID: "c0", Tenant: "acme", Direction: Outbound, Caller: "100", Callee: "200"}
	d := e.Admit(now, req)
	if d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseCPS || d.Rejection.RetryAfter != 700*time.Millisecond {
		t.Fatalf("no tokens: %+v, want a CPS lease miss with Retry-After 700ms", d.Rejection)
	}
	e.AddCPSTokens("acme", sec.Unix(), 2, 100)
	for i := range 2 {
		req.CallID = string(rune('a' + i))
		if d := e.Admit(now, req); !d.Admitted {
			t.Fatalf("token %d: %+v", i, d.Rejection)
		}
	}
	req.CallID = "c"
	if d := e.Admit(now, req); d.Rejection.Lease != LeaseCPS {
		t.Fatalf("tokens used up: %+v", d.Rejection)
	}
	e.AddCPSTokens("acme", sec.Unix()-1, 5, 100) // a late grant for a second gone
	if d := e.Admit(now, req); d.Rejection.Lease != LeaseCPS {
		t.Fatalf("a late grant was used: %+v", d.Rejection)
	}
	e.AddCPSTokens("acme", sec.Unix(), 1, 100)
	if d := e.Admit(sec.Add(time.Second), req); d.Rejection.Lease != LeaseCPS {
		t.Fatalf("a token of the previous second was used: %+v", d.Rejection)
	}
	e.AddCPSTokens("acme", sec.Unix()+1, 1, 100)
	if d := e.Admit(sec.Add(time.Second), req); !d.Admitted {
		t.Fatalf("the token of this second: %+v", d.Rejection)
	}
	req.CallID = "d"
	req.LeaseFull = req.LeaseFull.With(LeaseCPS)
	if d := e.Admit(sec.Add(time.Second), req); d.Rejection.Cause != CauseCPS || len(d.Events) == 0 {
		t.Fatalf("CPS ledger full: %+v, want the CPS cap's rejection with an event", d.Rejection)
	}
}

// A role-capped user needs a lease of its own; other users do not.
func TestLeaseUser(t *testing.T) {
	e := leaseEngine(t, Limits{})
	now := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	if _, err := e.UpsertTenant(now, Tenant{Name: "acme", Plan: "p", Roles: []Role{{Name: "desk", MaxParallelCalls: i64(2), Users: []string{"100"}}}}); err != nil {
		t.Fatal(err)
	}
	req := CallRequest{CallID: "c1", Tenant: "acme", Direction: Outbound, Caller: "100", Callee: "200"}
	d := e.Admit(now, req)
	if d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseUser || d.Rejection.User != "100" {
		t.Fatalf("user 100 without a lease: %+v", d.Rejection)
	}
	if d := e.Admit(now, CallRequest{CallID: "x", Tenant: "acme", Direction: Outbound, Caller: "999", Callee: "200"}); !d.Admitted {
		t.Fatalf("an uncapped user: %+v", d.Rejection)
	}
	if n, ok := e.SetUserLease("acme", "100", 1, 2); !ok || n != 1 {
		t.Fatalf("SetUserLease = %d, %v", n, ok)
	}
	if d := e.Admit(now, req); !d.Admitted {
		t.Fatalf("within the user's lease: %+v", d.Rejection)
	}
	req.CallID = "c2"
	req.LeaseFull = req.LeaseFull.With(LeaseUser)
	if d := e.Admit(now, req); d.Rejection.Cause != CauseRoleParallel || d.Rejection.Code != 486 {
		t.Fatalf("user ledger full: %+v, want role_parallel_calls 486", d.Rejection)
	}
	if active, held, capv, _ := e.UserLeaseUsage("acme", "100"); active != 1 || held != 1 || capv != 2 {
		t.Fatalf("UserLeaseUsage = %d, %d, %d", active, held, capv)
	}
	if n, _ := e.SetUserLease("acme", "100", 0, 2); n != 1 {
		t.Fatalf("SetUserLease(0) with a call up = %d, want 1", n)
	}
}

// A changed cap drops the node's lease to its calls in progress: leases
// granted under the old cap may add up to more than the new one.
func TestLeaseDroppedOnLimitChange(t *testing.T) {
	e := leaseEngine(t, Limits{MaxParallelCalls: i64(20)})
	now := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	e.SetLease("acme", LeaseParallel, 8, 20)
	for _, id := range []string{"a", "b"} {
		if d := e.Admit(now, CallRequest{CallID: id, Tenant: "acme", Direction: Outbound, Caller: "1", Callee: "2"}); !d.Admitted {
			t.Fatal(d.Rejection)
		}
	}
	if _, err := e.UpsertPlan(now, Plan{Name: "p", Limits: Limits{MaxParallelCalls: i64(10)}}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.LeaseUsage("acme"); u.Held[LeaseParallel] != 2 || u.Cap[LeaseParallel] != 10 {
		t.Fatalf("after the cap went 20 -> 10: held %d, cap %d; want 2 (the calls up), 10", u.Held[LeaseParallel], u.Cap[LeaseParallel])
	}
	if d := e.Admit(now, CallRequest{CallID: "c", Tenant: "acme", Direction: Outbound, Caller: "1", Callee: "2"}); d.Rejection.Cause != CauseLease {
		t.Fatalf("after the change: %+v, want a lease miss", d.Rejection)
	}
	// A grant sized for the old cap, arriving after the change, is not
	// applied; one for the new cap is.
	if n, _ := e.SetLease("acme", LeaseParallel, 8, 20); n != 2 {
		t.Fatalf("a grant under the old cap raised the lease to %d", n)
	}
	if n, _ := e.SetLease("acme", LeaseParallel, 4, 10); n != 4 {
		t.Fatalf("a grant under the new cap: %d, want 4", n)
	}
	// An unchanged cap keeps the lease.
	e.SetLease("acme", LeaseParallel, 6, 10)
	if _, err := e.UpsertPlan(now, Plan{Name: "p", Limits: Limits{MaxParallelCalls: i64(10)}}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.LeaseUsage("acme"); u.Held[LeaseParallel] != 6 {
		t.Fatalf("an unchanged cap dropped the lease to %d", u.Held[LeaseParallel])
	}
}

// A tenant with a minutes or spend budget and no parallel cap has its
// calls leased under Uncapped: a node runs only what its lease allows, so
// the others can bound a silent node's share of the budget. A tenant with
// neither needs no lease. Adding or removing the budget drops the lease to
// the calls in progress.
func TestLeaseUncappedBudget(t *testing.T) {
	now := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	req := func(id string) CallRequest {
		return CallRequest{CallID: id, Tenant: "acme", Direction: Outbound, Caller: "100", Callee: "200"}
	}
	if d := leaseEngine(t, Limits{}).Admit(now, req("free")); !d.Admitted {
		t.Fatalf("no cap and no budget: %+v, want admitted without a lease", d.Rejection)
	}
	for name, lim := range map[string]Limits{"minutes": {MaxMonthlyMinutes: i64(100)}, "spend": {MonthlySpendLimit: i64(1_000_000)}} {
		e := leaseEngine(t, lim)
		d := e.Admit(now, req("c1"))
		if d.Admitted || d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseParallel || d.Rejection.Limit != -1 {
			t.Fatalf("%s budget, no lease: %+v, want a CauseLease miss on max_parallel_calls, limit -1", name, d.Rejection)
		}
		if u, _ := e.LeaseUsage("acme"); u.Cap[LeaseParallel] != Uncapped {
			t.Fatalf("%s budget: lease cap %d, want Uncapped", name, u.Cap[LeaseParallel])
		}
		if got, _ := e.SetLease("acme", LeaseParallel, 1, Uncapped); got != 1 {
			t.Fatalf("SetLease = %d", got)
		}
		if d := e.Admit(now, req("c1")); !d.Admitted {
			t.Fatalf("%s: within the lease: %+v", name, d.Rejection)
		}
		if d := e.Admit(now, req("c2")); d.Rejection.Cause != CauseLease {
			t.Fatalf("%s: past the lease: %+v", name, d.Rejection)
		}
	}
	// The budget removed: no lease needed; added back: leased again from
	// the calls in progress.
	e := leaseEngine(t, Limits{MaxMonthlyMinutes: i64(100)})
	e.SetLease("acme", LeaseParallel, 5, Uncapped)
	for _, id := range []string{"a", "b"} {
		if !e.Admit(now, req(id)).Admitted {
			t.Fatal(id)
		}
	}
	if _, err := e.UpsertPlan(now, Plan{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	if d := e.Admit(now, req("c")); !d.Admitted {
		t.Fatalf("budget removed: %+v", d.Rejection)
	}
	if _, err := e.UpsertPlan(now, Plan{Name: "p", Limits: Limits{MaxMonthlyMinutes: i64(100)}}); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.LeaseUsage("acme"); u.Held[LeaseParallel] != 3 {
		t.Fatalf("budget back: held %d, want the 3 calls in progress", u.Held[LeaseParallel])
	}
	if d := e.Admit(now, req("d")); d.Rejection.Cause != CauseLease {
		t.Fatalf("budget back, lease at the calls in progress: %+v", d.Rejection)
	}
}

// A role with a minutes budget and no parallel cap leases its users'
// calls under Uncapped too.
func TestLeaseUserUncappedMinutes(t *testing.T) {
	e := leaseEngine(t, Limits{})
	now := time.Date(2026, 11, 15, 12, 0, 1, 0, time.UTC)
	if _, err := e.UpsertTenant(now, Tenant{Name: "acme", Plan: "p", Roles: []Role{{Name: "desk", MaxMonthlyMinutes: i64(10), Users: []string{"100"}}}}); err != nil {
		t.Fatal(err)
	}
	req := CallRequest{CallID: "c1", Tenant: "acme", Direction: Outbound, Caller: "100", Callee: "200"}
	if d := e.Admit(now, req); d.Rejection.Cause != CauseLease || d.Rejection.Lease != LeaseUser || d.Rejection.Limit != -1 {
		t.Fatalf("user 100 without a lease: %+v, want a CauseLease miss on the user, limit -1", d.Rejection)
	}
	if _, _, capv, _ := e.UserLeaseUsage("acme", "100"); capv != Uncapped {
		t.Fatalf("user lease cap %d, want Uncapped", capv)
	}
	if n, _ := e.SetUserLease("acme", "100", 1, Uncapped); n != 1 {
		t.Fatalf("SetUserLease = %d", n)
	}
	if d := e.Admit(now, req); !d.Admitted {
		t.Fatalf("within the user's lease: %+v", d.Rejection)
	}
	req.CallID = "c2"
	if d := e.Admit(now, req); d.Rejection.Cause != CauseLease {
		t.Fatalf("past the user's lease: %+v", d.Rejection)
	}
}
