package cluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// A minutes budget shared by calls on three nodes runs out once, over the
// cluster: every node cuts its calls at about the instant the sum of
// their billed time reaches the cap (not when each node's own time would,
// three times later), and the bill over the nodes is about the cap.
func TestSharedMinutesBudget(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	one, yes := int64(1), true // max_monthly_minutes 1 (60 s), hard
	lim := admission.Limits{MaxMonthlyMinutes: &one, AutoSuspend: &yes}
	cuts := newCuts()
	collect := cuts.collect
	nodes := startNodes(t, url, 3, lim, Options{OnReady: collect})
	tickAll(t, nodes, cuts) // the edges' timers
	// Two calls answered on each node: 6 s of billing per second, so the
	// 60 s run out 10 s after the answers (30 s if each node counted alone).
	t0 := time.Now()
	for _, n := range nodes {
		n.answered(t, 2, t0, collect)
	}
	exact := t0.Add(10 * time.Second)
	waitFor(t, 25*time.Second, func() bool { return cuts.len() == 6 }, "the six calls cut")
	cutAt := cuts.snapshot()
	for id, at := range cutAt {
		if d := at.Sub(exact); d < -500*time.Millisecond || d > time.Second {
			t.Errorf("call %s cut %v from the exact instant", id, d)
		}
	}
	var billed time.Duration
	for _, n := range nodes {
		billed += n.r.Usage(time.Now(), "acme").Seconds
	}
	// Each node cuts against the others' usage as last published (every
	// second), extrapolated by the calls they were billing: with those
	// steady the instant is exact and the bill the cap, up to the
	// nanoseconds each node rounds its instant up by (the clock is shared
	// here; across machines add their skew times the others' calls).
	if billed > 60*time.Second+time.Microsecond || billed < 59*time.Second {
		t.Fatalf("billed %v over the nodes, cap 60 s", billed)
	}
	t.Logf("billed %v over the nodes (cap 60 s); cuts %v after t0", billed, func() []time.Duration {
		var ds []time.Duration
		for _, at := range cutAt {
			ds = append(ds, at.Sub(t0).Round(time.Millisecond))
		}
		return ds
	}())
	for _, n := range nodes {
		if ok, _, _ := n.r.SuspendState("acme"); !ok {
			t.Errorf("%s: tenant not suspended after its hard minutes cap ran out", n.name)
		}
	}
}

// The calls of a node that goes silent keep billing, as far as the
// others know, until they must have ended (its max_call_duration after its
// last heartbeat), then no more: a crashed node does not drain the shared
// budget for ever, and a cut-off one cannot take it over the cap. An
// operator's release counts it as it last published.
func TestSilentNodeUsage(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	one, yes := int64(1), true
	lim := admission.Limits{MaxMonthlyMinutes: &one, AutoSuspend: &yes}
	nodes := startNodes(t, url, 2, lim, Options{TTL: time.Second, MaxCallDuration: 3 * time.Second})
	gw1, gw2 := nodes[0], nodes[1]
	answered := time.Now()
	gw2.answered(t, 2, answered, nil)
	waitFor(t, 5*time.Second, func() bool {
		u := gw1.l.Usage("acme")
		return len(u.Nodes) == 2 && u.Nodes[1].BillingCalls == 2
	}, "gw2's billing calls on gw1")
	// A tenant with a budget and no parallel cap leases its calls all the
	// same (admission.Uncapped): gw2 may run up to use calls, and that is
	// what gw1 counts it at while it is silent.
	use := leaseOf(gw1.l, "gw2", admission.LeaseParallel).Use
	if use < 2 || use > 4 {
		t.Fatalf("gw2's lease for 2 calls: use %d, want 2 plus a headroom of at most 2", use)
	}
	gw2.l.halt() // crashed with two calls billing
	crashed := time.Now()
	time.Sleep(8 * time.Second)
	d, id := gw1.admit(admission.Outbound)
	if !d.Admitted {
		t.Fatalf("gw1 refused a call %v after gw2 crashed: %v", time.Since(crashed), d.Rejection)
	}
	gw1.r.Answer(time.Now(), id)
	// The next deadline is the alert threshold (80 %: 48 s over the
	// cluster). gw2 counts as its two calls until its last publication
	// (about the crash), then as use calls until its last heartbeat + 3 s
	// + the 1 s grace (4-6 s more): with use 4, about 22 s, so the
	// threshold is about 26 s away. (Counted at its 2 billing calls, ~36 s;
	// frozen at its heartbeat's expiry, ~41 s; counted on for ever, under
	// 16 s.)
	a := crashed.Sub(answered).Seconds()
	left := time.Until(gw1.r.Tick(time.Now()).Deadline)
	lo := time.Duration((48 - 2*a - 6*float64(use) - 1) * 1e9)
	hi := time.Duration((48 - 2*a - 4*float64(use) + 1) * 1e9)
	if left < lo || left > hi {
		t.Fatalf("gw1's next deadline in %v (gw2 crashed %v after its calls were answered), want %v..%v",
			left, crashed.Sub(answered), lo, hi)
	}
	// Released by an operator: gw2 counts as it last published.
	if _, err := gw1.l.Release(context.Background(), "gw2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return time.Until(gw1.r.Tick(time.Now()).Deadline) > 44*time.Second }, "gw2's usage as last published after its release")
}

// A spend budget runs out over the cluster too. The others' spend is
// extrapolated from their last publication by a bound on their spend per
// second (re-applied every maintenance round), so a node may cut a little
// early, never late: within a second of the exact instant, and the bill
// never over the cap.
func TestSharedSpendBudget(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	spendCap, yes := int64(30_000), true // micro-units
	lim := admission.Limits{MonthlySpendLimit: &spendCap, AutoSuspend: &yes}
	rate := admission.Rate{PerMinute: 60_000, Initial: 1, Subsequent: 1} // 1,000 a second, per-second increments
	cuts := newCuts()
	collect := cuts.collect
	nodes := startNodes(t, url, 3, lim, Options{OnReady: collect})
	for _, n := range nodes {
		if _, err := n.r.UpsertPlan(time.Now(), admission.Plan{Name: "p", Limits: lim, Rates: []admission.Rate{rate}}); err != nil {
			t.Fatal(err)
		}
	}
	tickAll(t, nodes, cuts)
	// One call answered on each node: 3,000 a second; 30,000 run out 10 s
	// after the answers (30 s if each node counted alone).
	t0 := time.Now()
	for _, n := range nodes {
		n.answered(t, 1, t0, collect)
	}
	exact := t0.Add(10 * time.Second)
	waitFor(t, 25*time.Second, func() bool { return cuts.len() == 3 }, "the three calls cut")
	for id, at := range cuts.snapshot() {
		if d := at.Sub(exact); d < -time.Second || d > 1500*time.Millisecond {
			t.Errorf("call %s cut %v from the exact instant", id, d)
		}
	}
	var spent int64
	for _, n := range nodes {
		spent += n.r.Usage(time.Now(), "acme").Spend
	}
	if spent > spendCap || spent < spendCap-3_000 {
		t.Fatalf("spent %d over the nodes, cap %d", spent, spendCap)
	}
	t.Logf("spent %d over the nodes (cap %d)", spent, spendCap)
}

// A role's per-user minutes run out over the cluster: the user's calls on
// every node are cut at the instant the sum of its billed time reaches
// the role's cap; another user of the tenant is not touched.
func TestSharedRoleMinutes(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	one := int64(1)
	cuts := newCuts()
	collect := cuts.collect
	nodes := startNodes(t, url, 2, admission.Limits{}, Options{OnReady: collect})
	for _, n := range nodes {
		if _, err := n.r.UpsertTenant(time.Now(), admission.Tenant{Name: "acme", Plan: "p",
			Roles: []admission.Role{{Name: "desk", MaxMonthlyMinutes: &one, Users: []string{"100"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	tickAll(t, nodes, cuts)
	// User 100: three calls on each node, 6 s a second: its 60 s run out
	// 10 s after the answers. User 200 (no role) has one call on gw1.
	t0 := time.Now()
	call := func(n *node, caller string) string {
		n.mu.Lock()
		n.n++
		id := n.name + "-u" + caller + "-" + string(rune('a'+n.n))
		n.mu.Unlock()
		req := admission.CallRequest{CallID: id, Tenant: "acme", Direction: admission.Outbound, Caller: caller, Callee: "300"}
		d := n.r.Admit(t0, req)
		for try := 0; !d.Admitted && d.Rejection.Cause == admission.CauseLease && try < 4; try++ {
			// The role's minutes lease the user's calls (Uncapped).
			if _, err := n.l.Acquire("acme", d.Rejection.User, d.Rejection.Lease, t0); err != nil {
				t.Fatal(err)
			}
			d = n.r.Admit(t0, req)
		}
		if !d.Admitted {
			t.Fatalf("%s %s: %v", n.name, caller, d.Rejection)
		}
		collect(n.r.Answer(t0, id))
		return id
	}
	for _, n := range nodes {
		for range 3 {
			call(n, "100")
		}
	}
	other := call(nodes[0], "200")
	exact := t0.Add(10 * time.Second)
	waitFor(t, 25*time.Second, func() bool { return cuts.len() >= 6 }, "user 100's six calls cut")
	time.Sleep(100 * time.Millisecond)
	cutAt := cuts.snapshot()
	if _, cut := cutAt[other]; cut || len(cutAt) != 6 {
		t.Fatalf("cuts %v: want user 100's six calls only", cutAt)
	}
	for id, at := range cutAt {
		if d := at.Sub(exact); d < -500*time.Millisecond || d > time.Second {
			t.Errorf("call %s cut %v from the exact instant", id, d)
		}
	}
	var billed time.Duration
	for _, n := range nodes {
		for _, um := range n.r.UsersMinutes(time.Now(), "acme") {
			if um.User == "100" {
				billed += um.Billed
			}
		}
	}
	if billed > 60*time.Second+time.Microsecond || billed < 59*time.Second {
		t.Fatalf("user 100 billed %v over the nodes, role cap 60 s", billed)
	}
	t.Logf("user 100 billed %v over the nodes (role cap 60 s)", billed)
}

// cuts records when each call was first cut, from the engines' outputs.
type cuts struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newCuts() *cuts { return &cuts{at: map[string]time.Time{}} }

func (c *cuts) collect(rd admission.Ready) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cut := range rd.Cuts {
		if _, ok := c.at[cut.CallID]; !ok {
			c.at[cut.CallID] = time.Now()
		}
	}
}

func (c *cuts) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.at)
}

func (c *cuts) snapshot() map[string]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]time.Time, len(c.at))
	for k, v := range c.at {
		out[k] = v
	}
	return out
}

// tickAll runs every node's timer, as the edge does (Tick every 10 ms),
// feeding c, until the test ends.
func tickAll(t *testing.T, nodes []*node, c *cuts) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
					c.collect(n.r.Tick(time.Now()))
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// A node cut off from the ledger (its NATS server gone, the other two
// servers and nodes still up) with a tenant that has a minutes budget and
// no parallel cap: it runs only the calls its lease allows (Uncapped), so
// it never has more calls than the others count it at, and none past
// lease_ttl. Before Uncapped leases the node admitted every call offered
// to it, and nothing bounded its share. Past lease_ttl, with
// cluster.budget_failure terminate (the default), it cuts the tenant's
// calls (the others' may have grown without bound) without suspending it;
// with continue it keeps them up. Either way the budget then runs out
// over the cluster within the cap.
func TestPartitionedBudgetWithoutParallelCap(t *testing.T) {
	t.Parallel()
	for _, failure := range []string{"terminate", "continue"} {
		t.Run(failure, func(t *testing.T) {
			t.Parallel()
			partitionedBudget(t, failure == "continue")
		})
	}
}

func partitionedBudget(t *testing.T, continueUnbounded bool) {
	c := bustest.StartCluster(t, 3)
	two, yes := int64(2), true // 120 s, hard
	lim := admission.Limits{MaxMonthlyMinutes: &two, AutoSuspend: &yes}
	ttl := 2 * time.Second
	cuts := newCuts()
	o := Options{Replicas: 3, Bucket: "PBUDGET", TTL: ttl, Timeout: 500 * time.Millisecond, MaxCallDuration: time.Hour,
		OnReady: cuts.collect, ContinueUnbounded: continueUnbounded}
	var nodes []*node
	for i, name := range []string{"gw1", "gw2", "gw3"} {
		nodes = append(nodes, startOnServer(t, c, i, name, lim, o))
	}
	gw1, gw3 := nodes[0], nodes[2]
	tickAll(t, nodes, cuts)
	t0 := time.Now()
	for _, n := range nodes {
		n.answered(t, 2, t0, cuts.collect) // 6 calls billing: 6 s a second
	}
	waitFor(t, 5*time.Second, func() bool {
		u := gw1.l.Usage("acme")
		return len(u.Nodes) == 3 && u.Nodes[2].BillingCalls == 2 && leaseOf(gw1.l, "gw3", admission.LeaseParallel).Busy == 2
	}, "gw3's calls and usage seen by gw1")
	c.Stop(2)
	cut := time.Now()
	// gw3 is offered a call every 20 ms for 3 lease_ttl.
	var admitted, afterExpiry int
	for time.Since(cut) < 3*ttl {
		d, id, _, err := gw3.admitAt(admission.Outbound)
		if err == nil && d.Admitted {
			admitted++
			if !gw3.l.valid() {
				afterExpiry++
			}
			gw3.r.Answer(time.Now(), id)
		}
		if bound := leaseOf(gw1.l, "gw3", admission.LeaseParallel).Use; gw3.active() > max(bound, 2) {
			t.Fatalf("%v into the partition gw3 runs %d calls, gw1 counts it at %d", time.Since(cut), gw3.active(), max(bound, 2))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if gw3.l.valid() || afterExpiry > 0 || admitted > 2 {
		t.Fatalf("gw3 cut off: admitted %d (%d after its leases expired; valid now %v), want at most its headroom of 2 and none after lease_ttl",
			admitted, afterExpiry, gw3.l.valid())
	}
	gw3cut := 0
	for id := range cuts.snapshot() {
		if strings.HasPrefix(id, "gw3-") {
			gw3cut++
		}
	}
	if want := 2 + admitted; continueUnbounded && gw3cut != 0 || !continueUnbounded && gw3cut != want {
		t.Fatalf("budget_failure continue=%v: %d of gw3's %d calls cut 2 lease_ttl after its leases expired", continueUnbounded, gw3cut, want)
	}
	if s, _ := gw3.r.Suspended("acme"); s {
		t.Fatal("gw3 suspended the tenant on a budget it could not check")
	}
	// Every call ends up cut when the 120 s run out, and the bill over the
	// three nodes stays within the cap: gw1 and gw2 count gw3 at its
	// lease, gw3 counts them at theirs.
	waitFor(t, 40*time.Second, func() bool { return cuts.len() == 6+admitted }, "every call cut")
	var billed time.Duration
	for _, n := range nodes {
		billed += n.r.Usage(time.Now(), "acme").Seconds
	}
	t.Logf("gw3 admitted %d while cut off; %d calls cut %v after t0; billed %v over the nodes (cap 120 s)",
		admitted, cuts.len(), time.Since(t0).Round(time.Millisecond), billed)
	if billed > 120*time.Second+time.Millisecond {
		t.Fatalf("billed %v over the nodes, cap 120 s", billed)
	}
}

// With NATS gone (every node cut off past lease_ttl), each node keeps
// counting the others' usage at their bound, spend included: the others'
// spend is a fixed figure the ledger re-applies every round, and a round
// skipped while the leases are expired froze it, so every node went on
// spending the whole budget left as if the others had stopped.
func TestBudgetWhileNATSDown(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"minutes", "spend"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s, url := bustest.Start(t, t.TempDir())
			parallel, yes := int64(4), true
			lim := admission.Limits{MaxParallelCalls: &parallel, AutoSuspend: &yes}
			spendCap, minutes := int64(30_000), int64(1) // 30 s or 60 s of calls
			var rates []admission.Rate
			if kind == "spend" {
				lim.MonthlySpendLimit = &spendCap
				rates = []admission.Rate{{PerMinute: 60_000, Initial: 1, Subsequent: 1}} // 1,000 a second
			} else {
				lim.MaxMonthlyMinutes = &minutes
			}
			cuts := newCuts()
			nodes := startNodes(t, url, 2, lim, Options{TTL: time.Second, OnReady: cuts.collect})
			for _, n := range nodes {
				if _, err := n.r.UpsertPlan(time.Now(), admission.Plan{Name: "p", Limits: lim, Rates: rates}); err != nil {
					t.Fatal(err)
				}
			}
			tickAll(t, nodes, cuts)
			t0 := time.Now()
			for _, n := range nodes {
				n.answered(t, 2, t0, cuts.collect) // 4 calls: 4 s a second
			}
			waitFor(t, 5*time.Second, func() bool {
				for i, n := range nodes {
					u := n.l.Usage("acme")
					if len(u.Nodes) != 2 || u.Nodes[1-i].BillingCalls != 2 {
						return false
					}
				}
				return true
			}, "each node's calls seen by the other")
			bustest.Stop(s)
			stopped := time.Since(t0)
			waitFor(t, 30*time.Second, func() bool { return cuts.len() == 4 }, "the four calls cut")
			var billed time.Duration
			var spent int64
			for _, n := range nodes {
				u := n.r.Usage(time.Now(), "acme")
				billed, spent = billed+u.Seconds, spent+u.Spend
				t.Logf("%s: billed %v, spent %d", n.name, u.Seconds, u.Spend)
			}
			t.Logf("NATS stopped %v after the answers, calls cut by %v; billed %v, spent %d", stopped.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), billed, spent)
			if kind == "spend" && spent > spendCap || kind == "minutes" && billed > 60*time.Second+time.Millisecond {
				t.Fatalf("with NATS down the nodes billed %v and spent %d, over the cap", billed, spent)
			}
		})
	}
}

// A node cut off from the ledger cannot see the others' calls grow, so
// past lease_ttl it counts them at the most the parallel cap leaves them
// (the cap minus its own lease): the others may have taken everything
// else. Without that it went on billing its calls after the others had
// run the budget out, by calls it did not know they had (129-133 s billed
// in 3 runs of 3). And the others count the cut-off node's calls although
// it was cut off before its first publication of them reached them: it
// had not been counted at all (141 s billed in 3 runs of 4).
func TestPartitionedNodeCountsOthersAtTheCap(t *testing.T) {
	t.Parallel()
	c := bustest.StartCluster(t, 3)
	parallel, two, yes := int64(12), int64(2), true // 120 s, hard
	lim := admission.Limits{MaxParallelCalls: &parallel, MaxMonthlyMinutes: &two, AutoSuspend: &yes}
	cuts := newCuts()
	o := Options{Replicas: 3, Bucket: "PCAP", TTL: time.Second, Timeout: 300 * time.Millisecond, MaxCallDuration: time.Hour, OnReady: cuts.collect}
	var nodes []*node
	for i, name := range []string{"gw1", "gw2", "gw3"} {
		nodes = append(nodes, startOnServer(t, c, i, name, lim, o))
	}
	gw1, gw2, gw3 := nodes[0], nodes[1], nodes[2]
	tickAll(t, nodes, cuts)
	t0 := time.Now()
	for _, n := range nodes {
		n.answered(t, 2, t0, cuts.collect)
	}
	waitFor(t, 5*time.Second, func() bool {
		u := gw3.l.Usage("acme")
		return len(u.Nodes) == 3 && u.Nodes[0].BillingCalls == 2 && u.Nodes[1].BillingCalls == 2
	}, "the others' calls seen by gw3")
	c.Stop(2)
	// The majority fills the cap with calls gw3 never hears of.
	var more int
	for _, n := range []*node{gw1, gw2} {
		for {
			d, id := n.admit(admission.Outbound)
			if !d.Admitted {
				break
			}
			cuts.collect(n.r.Answer(time.Now(), id))
			more++
		}
	}
	waitFor(t, 60*time.Second, func() bool { return cuts.len() == 6+more }, "every call cut")
	var billed time.Duration
	for _, n := range nodes {
		u := n.r.Usage(time.Now(), "acme")
		billed += u.Seconds
		t.Logf("%s billed %v", n.name, u.Seconds)
	}
	t.Logf("%d more calls on the majority side; billed %v over the nodes (cap 120 s)", more, billed)
	if billed > 120*time.Second+time.Millisecond {
		t.Fatalf("billed %v over the nodes, cap 120 s", billed)
	}
}

// A node whose usage has gone unpublished for a round and a half (NATS
// gone) stops reusing the slots its calls free for tenants with a spend
// budget: each new call would charge a connect fee and an initial
// increment the others do not count (they count one per call its lease
// allows). A tenant without one keeps admitting within its lease until
// lease_ttl, as fail-static says.
func TestNoChurnWhileUnpublished(t *testing.T) {
	t.Parallel()
	for _, spend := range []bool{true, false} {
		t.Run(map[bool]string{true: "spend", false: "minutes"}[spend], func(t *testing.T) {
			t.Parallel()
			s, url := bustest.Start(t, t.TempDir())
			parallel, budget := int64(10), int64(1_000_000)
			lim := admission.Limits{MaxParallelCalls: &parallel}
			var rates []admission.Rate
			if spend {
				lim.MonthlySpendLimit = &budget
				rates = []admission.Rate{{PerMinute: 60_000, ConnectFee: 5_000, Initial: 60, Subsequent: 1}}
			} else {
				lim.MaxMonthlyMinutes = &budget
			}
			nodes := startNodes(t, url, 1, lim, Options{TTL: 10 * time.Second})
			n := nodes[0]
			if _, err := n.r.UpsertPlan(time.Now(), admission.Plan{Name: "p", Limits: lim, Rates: rates}); err != nil {
				t.Fatal(err)
			}
			n.answered(t, 2, time.Now(), nil)
			if u, _ := n.r.LeaseUsage("acme"); u.Held[admission.LeaseParallel] <= 2 {
				t.Fatalf("lease %d for 2 calls: no headroom to test with", u.Held[admission.LeaseParallel])
			}
			bustest.Stop(s)
			time.Sleep(unpublishedAfter + usageEvery)
			if !n.l.valid() {
				t.Fatal("leases expired before lease_ttl")
			}
			n.endAll()
			d, _, _, err := n.admitAt(admission.Outbound)
			if spend && (d.Admitted || err == nil) {
				t.Fatalf("spend budget, usage unpublished: a freed slot reused (%+v, %v)", d.Rejection, err)
			}
			if !spend && !d.Admitted {
				t.Fatalf("minutes budget: refused within the lease before lease_ttl: %+v, %v", d.Rejection, err)
			}
		})
	}
}
