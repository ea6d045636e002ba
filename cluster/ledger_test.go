package cluster

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// 300 concurrent calls over 3 nodes against a cap of 50 admit exactly 50,
// and the rest get the cap's own rejection.
func TestExactParallelCapOverThreeNodes(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	nodes := startNodes(t, url, 3, limits(50, -1), Options{})
	admitted, busy, other := offer(nodes, 300)
	if admitted != 50 || busy != 250 {
		t.Fatalf("admitted %d, busy %d, other %d; want 50, 250, 0", admitted, busy, other)
	}
	var sum int64
	for _, n := range nodes {
		sum += n.active()
	}
	if sum != 50 {
		t.Fatalf("active over the nodes = %d, want 50", sum)
	}
}

// Calls offered to three nodes at once end up using every slot of the cap:
// idle capacity moves to where the calls are.
func TestEverySlotEndsUpInUse(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	nodes := startNodes(t, url, 3, limits(30, -1), Options{})
	// gw1 grabs a lot first, alone.
	for range 12 {
		if d, _ := nodes[0].admit(admission.Outbound); !d.Admitted {
			t.Fatalf("gw1 alone: %v", d.Rejection)
		}
	}
	// Then all three keep offering calls for up to 3 s: every slot ends up used.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes[1:] {
			n.admit(admission.Outbound)
		}
		if sum := nodes[0].active() + nodes[1].active() + nodes[2].active(); sum == 30 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sum := nodes[0].active() + nodes[1].active() + nodes[2].active()
	if sum != 30 {
		t.Fatalf("active over the nodes = %d (%d/%d/%d), want 30", sum, nodes[0].active(), nodes[1].active(), nodes[2].active())
	}
	if nodes[1].active() == 0 || nodes[2].active() == 0 {
		t.Fatalf("gw2/gw3 got nothing: %d/%d", nodes[1].active(), nodes[2].active())
	}
}

// Usage reads are cluster-wide: a node's usage of a tenant includes what
// every other node billed, published within a second or so.
func TestClusterWideUsage(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	nodes := startNodes(t, url, 2, limits(10, -1), Options{})
	nodes[0].answered(t, 2, time.Now(), nil)
	nodes[1].answered(t, 1, time.Now(), nil)
	time.Sleep(1200 * time.Millisecond)
	nodes[1].endAll()
	var u TenantUsage
	waitFor(t, 5*time.Second, func() bool {
		u = nodes[0].l.Usage("acme")
		return len(u.Nodes) == 2 && u.Nodes[1].ActiveCalls == 0 && u.Nodes[1].BilledSeconds > 0
	}, "gw2's usage, its call ended, on gw1")
	own := nodes[1].r.Usage(time.Now(), "acme")
	if u.Nodes[0].Node != "gw1" || !u.Nodes[0].Self || u.Nodes[0].ActiveCalls != 2 {
		t.Fatalf("gw1's own entry: %+v", u.Nodes[0])
	}
	if u.Nodes[1].BilledSeconds != own.Seconds.Seconds() {
		t.Fatalf("gw2 published %v s, its engine has %v", u.Nodes[1].BilledSeconds, own.Seconds)
	}
	if u.ActiveCalls != 2 || u.BilledSeconds != u.Nodes[0].BilledSeconds+u.Nodes[1].BilledSeconds {
		t.Fatalf("sums: %+v", u)
	}
}

// A budget-only tenant's lease (admission.Uncapped) costs the ledger
// O(log n) writes to reach n calls, none while the calls churn at a
// steady level, and it shrinks back when they fall, so the bound the
// others count a silent node at follows what it runs.
func TestUncappedLeaseWrites(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	minutes := int64(100_000)
	nodes := startNodes(t, url, 2, admission.Limits{MaxMonthlyMinutes: &minutes}, Options{TTL: 10 * time.Second})
	n := nodes[0]
	var ids []string
	for range 1000 {
		d, id := n.admit(admission.Outbound)
		if !d.Admitted {
			t.Fatal(d.Rejection)
		}
		ids = append(ids, id)
	}
	ramp := n.l.stats.acquired.Load()
	l := leaseOf(n.l, "gw1", admission.LeaseParallel)
	t.Logf("0 to 1,000 calls: %d lease writes, lease %+v", ramp, l)
	if ramp > 40 || l.Use < 1000 || l.Use > 1250 {
		t.Fatalf("0 to 1,000 calls: %d lease writes, use %d; want O(log n) writes and use within 25 %% of the calls", ramp, l.Use)
	}
	writes := func() uint64 { return n.l.stats.acquired.Load() + n.l.stats.returned.Load() }
	w0 := writes()
	for i := range 2000 {
		n.end(ids[i%len(ids)])
		d, id := n.admit(admission.Outbound)
		if !d.Admitted {
			t.Fatal(d.Rejection)
		}
		ids[i%len(ids)] = id
	}
	if w := writes() - w0; w > 2 {
		t.Fatalf("2,000 ends and admissions at 1,000 calls: %d lease writes, want none", w)
	}
	for _, id := range ids[:900] {
		n.end(id)
	}
	waitFor(t, 5*time.Second, func() bool { return leaseOf(n.l, "gw1", admission.LeaseParallel).Use <= 100+2*25 }, "the lease shrunk to the 100 calls left and twice their headroom")
}

// A node that goes silent holding a lease with calls and no usage entry
// is given one (its calls count at its lease from its last heartbeat),
// and the entry goes when the node is back: a node with nothing to
// publish would otherwise be counted as billing for ever.
func TestUnpublishedEntryGoesWhenTheNodeIsBack(t *testing.T) {
	r := admission.NewRunner(admission.NewEngine(admission.Settings{Cluster: true}))
	now := time.Now()
	l := &Ledger{o: Options{Node: "gw1", Engine: r, Now: func() time.Time { return now }, TTL: time.Second}, grace: time.Second,
		cache: map[string]cached{}, nodes: map[string]nodeRec{}, usage: map[string]NodeUsage{}, usageDirty: map[subject]bool{},
		silentSeen: map[string]bool{}, synthetic: map[string]bool{}, bound: map[string]int64{}}
	l.nodes["gw2"] = nodeRec{At: now.Add(-5 * time.Second).UnixMilli(), RenewBy: now.Add(-4 * time.Second).UnixMilli()}
	l.cache[keyOf("acme", admission.LeaseParallel)] = cached{rec: record{Cap: admission.Uncapped, Leases: map[string]lease{"gw2": {N: 4, Use: 4, Busy: 2}}}}
	l.unpublished()
	key := usageKey("acme", "gw2")
	if u, ok := l.usage[key]; !ok || u.BillingCalls != 2 || !u.Published.Before(now.Add(-5*time.Second)) {
		t.Fatalf("silent gw2 with 2 calls and no usage: entry %+v (%v), want 2 billing calls from before its last heartbeat", u, ok)
	}
	l.nodes["gw2"] = nodeRec{At: now.UnixMilli(), RenewBy: now.Add(time.Second).UnixMilli()} // back
	l.unpublished()
	if u, ok := l.usage[key]; ok {
		t.Fatalf("gw2 back with nothing published: its stand-in entry %+v is still counted", u)
	}
	// Its own publication replaces a stand-in, which then stays.
	l.nodes["gw2"] = nodeRec{At: now.Add(-5 * time.Second).UnixMilli(), RenewBy: now.Add(-4 * time.Second).UnixMilli()}
	l.unpublished()
	b, _ := json.Marshal(NodeUsage{Node: "gw2", BilledNanos: 7})
	l.applyUsage(putEntry{key: key, value: b})
	l.nodes["gw2"] = nodeRec{At: now.UnixMilli(), RenewBy: now.Add(time.Second).UnixMilli()}
	l.unpublished()
	if u := l.usage[key]; u.BilledNanos != 7 {
		t.Fatalf("gw2's own publication dropped on its return: %+v", u)
	}
}

// putEntry is a KV put as the watcher delivers it.
type putEntry struct {
	key   string
	value []byte
}

func (e putEntry) Bucket() string                  { return "LEDGER_TEST" }
func (e putEntry) Key() string                     { return e.key }
func (e putEntry) Value() []byte                   { return e.value }
func (e putEntry) Revision() uint64                { return 1 }
func (e putEntry) Created() time.Time              { return time.Time{} }
func (e putEntry) Delta() uint64                   { return 0 }
func (e putEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
