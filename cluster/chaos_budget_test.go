package cluster

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// TestChaosBudget runs a shared hard budget down through faults: three
// nodes on a three-server NATS with an R3 ledger, each node talking to its
// own server only, answer and end calls at random while servers stop and
// restart (stopping a server partitions its node; stopping two leaves no
// quorum). The budget must run out once over the cluster: the bill over
// the nodes never exceeds the cap by more than the cut-off precision
// (budgetSlack), and once NATS is whole every node's view of the cluster's
// usage is what the nodes billed, to the nanosecond and the micro-unit:
// nothing counted twice, nothing lost. CHAOS_SEED replays a run.
func TestChaosBudget(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"minutes", "spend"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			chaosBudget(t, kind)
		})
	}
}

// The cap is 60 call-seconds: max_monthly_minutes 1, or a spend limit of
// 60,000 at 1,000 a second per call.
const (
	chaosParallel = 9
	chaosRate     = 1_000 // micro-units a second per call
)

// budgetSlack is how far over the cap the bill may go: a node answering
// calls while it is cut off, or before the others' publication of theirs
// reaches it, is counted by the others at its last published rate until
// its heartbeat is overdue (lease_ttl + grace), then at its lease's use;
// each node's own view of the others lags by the same. Two nodes in that
// window with the parallel cap's calls between them, for TTL + grace + a
// publication period: 9 × 3 s.
const budgetSlack = chaosParallel * 3 * time.Second

// earlySlack is how much budget may be left when a node suspends the
// tenant: the others' usage it counted was extrapolated from a
// publication at most one period and the grace old (older, it would
// have been a bound, which does not suspend), by calls that may have
// ended since: the parallel cap's calls for 2 s.
const earlySlack = chaosParallel * 2 * time.Second

func chaosBudget(t *testing.T, kind string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("CHAOS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := bustest.StartCluster(t, 3)
	parallel, one, yes, spendCap := int64(chaosParallel), int64(1), true, int64(60*chaosRate)
	lim := admission.Limits{MaxParallelCalls: &parallel, AutoSuspend: &yes}
	var rates []admission.Rate
	if kind == "minutes" {
		lim.MaxMonthlyMinutes = &one
	} else {
		lim.MonthlySpendLimit = &spendCap
		rates = []admission.Rate{{PerMinute: 60 * chaosRate, Initial: 1, Subsequent: 1}}
	}
	cuts := newCuts()
	o := Options{TTL: time.Second, Timeout: 300 * time.Millisecond, Replicas: 3, Bucket: "BUDGET_" + kind, OnReady: cuts.collect}
	var nodes []*node
	for i := range 3 {
		n := startOnServer(t, c, i, fmt.Sprintf("gw%d", i+1), lim, o)
		if _, err := n.r.UpsertPlan(time.Now(), admission.Plan{Name: "p", Limits: lim, Rates: rates}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	tickAll(t, nodes, cuts)
	calls := make([][]string, len(nodes))
	up := []bool{true, true, true}
	var answered, outages int
	refused := map[admission.Cause]int{}
	// Until a node has suspended the tenant, and then 2 s more: the other
	// nodes trip the budget at their next call, or at its instant if they
	// bill calls of their own.
	var stop time.Time
	deadline := time.Now().Add(40 * time.Second)
	nextFault := time.Now().Add(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
	for (stop.IsZero() || time.Now().Before(stop)) && time.Now().Before(deadline) {
		if stop.IsZero() {
			for _, n := range nodes {
				if s, _ := n.r.Suspended("acme"); s {
					stop = time.Now().Add(2 * time.Second)
				}
			}
		}
		if time.Now().After(nextFault) {
			// A fault every 0.5-2 s: a server stops (its node is cut off;
			// a second one down takes the quorum), or one comes back.
			down := 0
			for _, u := range up {
				if !u {
					down++
				}
			}
			if j := rng.IntN(3); up[j] && (down == 0 || rng.IntN(4) == 0) {
				c.Stop(j)
				up[j] = false
				outages++
			} else {
				for j := range up {
					if !up[j] {
						c.Restart(j)
						up[j] = true
						break
					}
				}
			}
			nextFault = time.Now().Add(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		}
		i := rng.IntN(len(nodes))
		n := nodes[i]
		if r := rng.IntN(100); r < 60 {
			if d, id := n.admit(admission.Outbound); d.Admitted {
				cuts.collect(n.r.Answer(time.Now(), id))
				calls[i] = append(calls[i], id)
				answered++
			} else {
				refused[d.Rejection.Cause]++
			}
		} else if len(calls[i]) > 0 {
			k := rng.IntN(len(calls[i]))
			n.end(calls[i][k])
			calls[i] = append(calls[i][:k], calls[i][k+1:]...)
		}
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
	t.Logf("refused: %v", refused)
	if stop.IsZero() {
		t.Fatalf("the budget has not run out after 40 s (%d calls answered; CHAOS_SEED=%d)", answered, seed)
	}
	for j := range up {
		if !up[j] {
			c.Restart(j)
		}
	}
	for i, n := range nodes {
		for _, id := range calls[i] {
			n.end(id)
		}
	}
	// The bill over the nodes, each node's own figures.
	var billed time.Duration
	var spent int64
	for _, n := range nodes {
		u := n.r.Usage(time.Now(), "acme")
		billed, spent = billed+u.Seconds, spent+u.Spend
	}
	over := billed - 60*time.Second
	if kind == "spend" {
		over = time.Duration(spent-spendCap) * time.Second / chaosRate
	}
	t.Logf("%d calls answered, %d NATS server stops; billed %v, spent %d; over the cap by %v of calls (slack %v)",
		answered, outages, billed, spent, over, budgetSlack)
	if over > budgetSlack {
		t.Errorf("the bill is %v of calls over the cap (slack %v; CHAOS_SEED=%d)", over, budgetSlack, seed)
	}
	// NATS whole again: every node's view of the cluster's usage is the
	// nodes' own figures, exactly.
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s sees %+v", n.name, n.l.Usage("acme").Nodes)
			}
		}
	}()
	waitFor(t, 30*time.Second, func() bool {
		for _, n := range nodes {
			u := n.l.Usage("acme")
			var b, s int64
			for _, nu := range u.Nodes {
				b, s = b+nu.BilledNanos, s+nu.SpendMicros
			}
			// (A node that billed nothing this cycle has no entry.)
			if time.Duration(b) != billed || s != spent {
				return false
			}
		}
		return true
	}, "every node's cluster usage equal to what the nodes billed")
	// With the usage known again, a node refuses the tenant's calls only
	// if the budget has really run out: one that cut its calls while it
	// counted a silent node at its bound has not suspended the tenant on
	// that guess, and admits again while budget is left.
	left := 60*time.Second - billed
	if kind == "spend" {
		left = time.Duration(spendCap-spent) * time.Second / chaosRate
	}
	for _, n := range nodes {
		d, id := n.admit(admission.Outbound)
		switch {
		case d.Admitted && left <= 0:
			t.Errorf("%s admitted a call with the budget over the cluster out (%v left)", n.name, left)
		case !d.Admitted && left >= earlySlack:
			t.Errorf("%s refused a call with %v of the budget left: %v", n.name, left, d.Rejection)
		}
		if d.Admitted {
			n.end(id)
		}
	}
}
