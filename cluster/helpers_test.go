package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// node is one gateway of a test cluster: an engine in cluster mode and
// its ledger, on a real NATS.
type node struct {
	name string
	r    *admission.Runner
	l    *Ledger
	mu   sync.Mutex
	n    int      // call ids
	ids  []string // admitted calls not ended
}

// limits is a plan's limits for tests: parallel calls and CPS (-1: none).
func limits(parallel, cps int64) admission.Limits {
	var l admission.Limits
	if parallel >= 0 {
		l.MaxParallelCalls = &parallel
	}
	if cps >= 0 {
		l.MaxCallsPerSecond = &cps
	}
	return l
}

func startNode(t testing.TB, js jetstream.JetStream, name string, lim admission.Limits, o Options) *node {
	t.Helper()
	r := admission.NewRunner(admission.NewEngine(admission.Settings{Cluster: true}))
	now := time.Now()
	if _, err := r.UpsertPlan(now, admission.Plan{Name: "p", Limits: lim}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTenant(now, "acme", "p"); err != nil {
		t.Fatal(err)
	}
	o.Node, o.JS, o.Engine = name, js, r
	if o.TTL == 0 {
		o.TTL = 2 * time.Second
	}
	if o.MaxCallDuration == 0 {
		o.MaxCallDuration = time.Hour
	}
	if o.Bucket == "" {
		o.Bucket = "LEDGER_TEST"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	o.Log = zerolog.Nop()
	l, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	waitFor(t, 10*time.Second, func() bool { return l.valid() }, name+" ledger ready")
	return &node{name: name, r: r, l: l}
}

// startNodes starts k nodes gw1..gwk, each with its own connection to
// the NATS at url (see startNode).
func startNodes(t testing.TB, url string, k int, lim admission.Limits, o Options) []*node {
	t.Helper()
	var nodes []*node
	for i := range k {
		_, js := bustest.Connect(t, url)
		nodes = append(nodes, startNode(t, js, fmt.Sprintf("gw%d", i+1), lim, o))
	}
	return nodes
}

// admit is the edge's lease-then-admit loop (sip/lease.go) for tests.
func (n *node) admit(dir admission.Direction) (admission.Ready, string) {
	d, id, _, _ := n.admitAt(dir)
	return d, id
}

// admitAt is admit, with the instant of the last decision; err
// is the ledger's error when it could not be asked (the edge answers 503).
func (n *node) admitAt(dir admission.Direction) (d admission.Ready, id string, at time.Time, err error) {
	n.mu.Lock()
	n.n++
	id = fmt.Sprintf("%s-%d", n.name, n.n)
	n.mu.Unlock()
	req := admission.CallRequest{CallID: id, Tenant: "acme", Direction: dir, Caller: "100", Callee: "200"}
	now := time.Now()
	d = n.r.Admit(now, req)
	for try := 0; !d.Admitted && d.Rejection.Cause == admission.CauseLease && try < 4; try++ {
		full, err := n.l.Acquire("acme", d.Rejection.User, d.Rejection.Lease, now)
		if err != nil {
			return d, id, now, err
		}
		if full {
			req.LeaseFull = req.LeaseFull.With(d.Rejection.Lease)
		}
		now = time.Now()
		d = n.r.Admit(now, req)
	}
	if d.Admitted {
		n.mu.Lock()
		n.ids = append(n.ids, id)
		n.mu.Unlock()
	}
	return d, id, now, nil
}

// offer makes k outbound calls at once, spread over nodes, and counts
// them: admitted, rejected with the parallel cap's own 486, and any
// other outcome.
func offer(nodes []*node, k int) (admitted, busy, other int64) {
	var a, b, o atomic.Int64
	var wg sync.WaitGroup
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, _ := nodes[i%len(nodes)].admit(admission.Outbound)
			switch {
			case d.Admitted:
				a.Add(1)
			case d.Rejection.Cause == admission.CauseParallelCalls && d.Rejection.Code == 486:
				b.Add(1)
			default:
				o.Add(1)
			}
		}()
	}
	wg.Wait()
	return a.Load(), b.Load(), o.Load()
}

// answered admits k outbound calls and answers them at at, handing the
// answers' effects to out (nil: dropped); it fails the test if one is
// refused.
func (n *node) answered(t testing.TB, k int, at time.Time, out func(admission.Ready)) {
	t.Helper()
	for range k {
		d, id := n.admit(admission.Outbound)
		if !d.Admitted {
			t.Fatalf("%s: %v", n.name, d.Rejection)
		}
		if rd := n.r.Answer(at, id); out != nil {
			out(rd)
		}
	}
}

// fill admits outbound calls until one is refused; it returns how many
// were admitted and the ids.
func (n *node) fill() []string {
	var ids []string
	for {
		d, id := n.admit(admission.Outbound)
		if !d.Admitted {
			return ids
		}
		ids = append(ids, id)
	}
}

func (n *node) end(id string) {
	n.r.End(time.Now(), id)
}

// endAll ends every call the node admitted.
func (n *node) endAll() {
	n.mu.Lock()
	ids := n.ids
	n.ids = nil
	n.mu.Unlock()
	for _, id := range ids {
		n.end(id)
	}
}

func (n *node) active() int64 { return n.r.Active("acme") }

// leaseOf is node's lease in tenant acme's dimension dim, as l's copy of
// the ledger has it.
func leaseOf(l *Ledger, node string, dim admission.LeaseDim) lease {
	r, _ := l.snapshot(keyOf("acme", dim))
	return r.Leases[node]
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startOnCluster starts gw1..gw3 on the NATS cluster c, each connected to
// every server (it follows the cluster when one goes).
func startOnCluster(t testing.TB, c *bustest.Cluster, lim admission.Limits, o Options) []*node {
	t.Helper()
	var nodes []*node
	for i := range 3 {
		_, js := bustest.Connect(t, c.URLs(), reconnect...)
		nodes = append(nodes, startNode(t, js, fmt.Sprintf("gw%d", i+1), lim, o))
	}
	return nodes
}

// startOnServer starts node name connected to server i of c only (not to
// the servers the cluster tells of): stopping or isolating that server
// partitions the node.
func startOnServer(t testing.TB, c *bustest.Cluster, i int, name string, lim admission.Limits, o Options) *node {
	t.Helper()
	_, js := bustest.Connect(t, c.URL(i), append(reconnect, nats.IgnoreDiscoveredServers())...)
	return startNode(t, js, name, lim, o)
}
