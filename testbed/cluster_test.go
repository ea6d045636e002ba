package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/events/eventstest"
)

// TestSIPpClusterCap: three gateway processes share tenant demo's cap of
// 50 parallel calls through the ledger in NATS JetStream (gateway A's
// embedded server, R1; B and C connect to it). SIPp offers 100 calls to
// each within 2 s, each answered call held 8 s, so no slot frees while
// calls are offered: exactly 50 are admitted over the gateways and the
// other 250 get the cap's own 486. GET /v1/cluster shows both nodes and their
// leases; /metrics counts the lease acquisitions. A suspension made on
// B's API applies on A within 1 s.
func TestSIPpClusterCap(t *testing.T) {
	requireSIPp(t)
	const capacity, perGateway = 50, 100
	gws, natsURL := startCluster(t, capacity, 3)
	a, b := gws[0], gws[1]
	uacs := offerHeldCalls(t, gws, perGateway)
	// While the calls are up: the ledger as each node sees it.
	client := api.NewClient(a.apiURL, adminToken, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	time.Sleep(3 * time.Second)
	st, err := client.Cluster(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Node != "gw-a" || len(st.Nodes) != 3 || !st.Nodes[0].Alive || !st.Nodes[1].Alive || !st.Nodes[2].Alive {
		t.Errorf("GET /v1/cluster: %+v, want gw-a, gw-b and gw-c alive", st)
	}
	var leased int64
	for _, e := range st.Entries {
		if e.Dimension == "max_parallel_calls" {
			leased = e.Leased
			if e.Cap != capacity || e.Busy > capacity || e.Leased > capacity {
				t.Errorf("ledger entry %+v: cap %d", e, capacity)
			}
		}
	}
	if leased == 0 {
		t.Errorf("no max_parallel_calls entry with leases: %+v", st.Entries)
	}
	for _, u := range uacs {
		if code := u.wait(50 * time.Second); code != 0 {
			t.Errorf("sipp uac exit code %d, want 0", code)
		}
	}
	admitted, busy := 0, 0
	for _, g := range gws {
		g.waitLog(15*time.Second, "calls ended", func() bool { return g.count(message("call ended")) >= g.count(decision("admit", "")) })
		admitted += g.count(decision("admit", ""))
		busy += g.count(func(l logLine) bool { return decision("reject", "parallel_calls")(l) && l.num("code") == 486 })
	}
	if admitted != capacity || busy != 3*perGateway-capacity {
		t.Errorf("over the gateways: %d admitted, %d rejected 486 parallel_calls; want %d and %d",
			admitted, busy, capacity, 3*perGateway-capacity)
	}
	// A suspension made through B's API applies on A within 1 s: A refuses
	// the tenant's next call with 403.
	clientB := api.NewClient(b.apiURL, adminToken, nil)
	if _, err := clientB.Suspend(ctx, "demo", "cluster test"); err != nil {
		t.Fatal(err)
	}
	if !poll(time.Second, func() bool { v, err := client.Tenant(ctx, "demo"); return err == nil && v.Status.Suspended }) {
		t.Fatal("the suspension made on B is not on A after 1 s")
	}
	if code := inviteProbe(t, pbxIP, a.addr); code != 403 {
		t.Errorf("A answered the suspended tenant's call %d, want 403", code)
	}
	oneEventPerFact(t, gws, natsURL)
	if m := httpGet(t, a.apiURL+"/metrics"); !strings.Contains(m, "tollgate_cluster_leases_valid 1") ||
		strings.Contains(m, "tollgate_cluster_lease_acquisitions_total 0\n") {
		t.Errorf("/metrics: %v", strings.Join(grepLines(m, "tollgate_cluster_"), "\n"))
	}
	for _, g := range gws {
		g.noErrors()
	}
}

// offerHeldCalls waits for every gateway's ledger, starts a SIPp UAS
// behind each and a UAC offering each perGateway calls within 2 s, every
// answered call held 8 s (uac_cap.xml: the cap's 486 is expected).
func offerHeldCalls(t *testing.T, gws []*gateway, perGateway int) []*sipp {
	t.Helper()
	for _, g := range gws {
		g.waitLog(20*time.Second, "cluster ledger started", func() bool { return g.count(message("cluster ledger started")) > 0 })
		startUAS(t, g)
	}
	scenario, err := filepath.Abs("scenarios/uac_cap.xml")
	if err != nil {
		t.Fatal(err)
	}
	var uacs []*sipp
	for _, g := range gws {
		uacs = append(uacs, startUAC(t, g, 40*time.Second, "-sf", scenario,
			"-r", "50", "-rp", "1000", "-m", strconv.Itoa(perGateway), "-l", strconv.Itoa(perGateway), "-d", "8000"))
	}
	return uacs
}

// startClusterPair starts gateways gw-a and gw-b in one cluster (see
// startCluster).
func startClusterPair(t *testing.T, capacity int64) (a, b *gateway) {
	t.Helper()
	gws, _ := startCluster(t, capacity, 2)
	return gws[0], gws[1]
}

// startCluster starts n gateways gw-a, gw-b, ... in one cluster (R1
// ledger, lease_ttl 2 s) with tenant demo's max_parallel_calls at
// capacity: the first runs the embedded NATS on a free port, the others
// connect to it. It returns the gateways and the NATS URL.
func startCluster(t *testing.T, capacity int64, n int) ([]*gateway, string) {
	t.Helper()
	natsPort := freeTCPPort(t, gatewayIP)
	cluster := func(node string) string {
		return fmt.Sprintf("node: %s\ncluster:\n  enabled: true\n  replicas: 1\n  lease_ttl: 2s\n", node)
	}
	var gws []*gateway
	for i := range n {
		nats := fmt.Sprintf("  url: nats://%s:%d\n", gatewayIP, natsPort)
		if i == 0 {
			nats = fmt.Sprintf("  listen: %s:%d\n", gatewayIP, natsPort)
		}
		gws = append(gws, startGateway(t, gatewayConfig{MaxParallelCalls: capacity, ShutdownGrace: 2 * time.Second,
			NATS: nats, Extra: cluster("gw-" + string(rune('a'+i)))}))
	}
	return gws, fmt.Sprintf("nats://%s:%d", gatewayIP, natsPort)
}

// oneEventPerFact: what an operator changes through one gateway is
// reported once, by that gateway, and a cap every gateway reaches over
// the shared usage is reported once for the cluster. The tenant demo is
// suspended through B (as the caller has done); then B resumes it and
// lowers its minutes cap below what the calls used, so every gateway
// trips it. The stream then holds one tenant.suspended and one
// tenant.resumed of the operator's, one limits.changed, one
// usage.threshold, one usage.cap_reached and one automatic
// tenant.suspended, each with its fact.
func oneEventPerFact(t *testing.T, gws []*gateway, natsURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := api.NewClient(gws[1].apiURL, adminToken, nil)
	if _, err := b.Resume(ctx, "demo", "cluster test over"); err != nil {
		t.Fatal(err)
	}
	suspended := func(g *gateway) bool {
		v, err := api.NewClient(g.apiURL, adminToken, nil).Tenant(ctx, "demo")
		return err == nil && v.Status.Suspended
	}
	for _, g := range gws {
		if !poll(time.Second, func() bool { return !suspended(g) }) {
			t.Fatalf("%s: the resumption made on B is not applied after 1 s", g.apiURL)
		}
	}
	if _, err := b.PatchLimits(ctx, "demo", map[string]any{"max_monthly_minutes": 1, "auto_suspend": true}); err != nil {
		t.Fatal(err)
	}
	// A lowered cap is not retroactive: each gateway trips it at the
	// tenant's next call there.
	for _, g := range gws {
		if !poll(time.Second, func() bool {
			lv, err := api.NewClient(g.apiURL, adminToken, nil).Limits(ctx, "demo")
			return err == nil && lv.Effective.MaxMonthlyMinutes != nil && *lv.Effective.MaxMonthlyMinutes == 1
		}) {
			t.Fatalf("%s: the limit change made on B is not applied after 1 s", g.apiURL)
		}
		if code := inviteProbe(t, pbxIP, g.addr); code != 403 {
			t.Errorf("%s answered a call past the tenant's minutes cap %d, want 403", g.apiURL, code)
		}
		if !suspended(g) {
			t.Fatalf("%s: demo not suspended by its minutes cap", g.apiURL)
		}
	}
	for _, g := range gws {
		waitOutboxEmpty(t, g, 10*time.Second)
	}
	type key struct{ typ, reason string }
	got := map[key]int{}
	for _, m := range readStream(t, natsURL) {
		ev := m.ev
		if ev.Tenant != "demo" || strings.HasPrefix(ev.Type, "call.") {
			continue
		}
		if err := eventstest.Validate(m.data); err != nil {
			t.Errorf("%v: %s", err, m.data)
		}
		k := key{ev.Type, ev.Reason}
		got[k]++
		wantFact := ev.Type != "limits.changed" && ev.Reason != "cluster test" && ev.Reason != "cluster test over"
		if (ev.Fact != "") != wantFact || wantFact && m.msgID != ev.Fact || !wantFact && m.msgID != ev.ID {
			t.Errorf("%s (%s) from %s: fact %q, Nats-Msg-Id %q", ev.Type, ev.Reason, ev.Node, ev.Fact, m.msgID)
		}
	}
	want := map[key]int{
		{"tenant.suspended", "cluster test"}:                1,
		{"tenant.resumed", "cluster test over"}:             1,
		{"limits.changed", ""}:                              1,
		{"usage.threshold", ""}:                             1,
		{"usage.cap_reached", ""}:                           1,
		{"tenant.suspended", "max_monthly_minutes reached"}: 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d %s (%q) events in the stream, want %d", got[k], k.typ, k.reason, n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%d unexpected %s (%q) events", n, k.typ, k.reason)
		}
	}
}

// grepLines is the lines of s that start with prefix.
func grepLines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestClusterFailStatic: gateway B loses NATS (gateway A, whose embedded
// server holds the ledger, is killed). B keeps admitting within the
// lease it holds and never beyond: then 503 with Retry-After and the
// cause cluster_lease. When A is back, B leases again and admits.
func TestClusterFailStatic(t *testing.T) {
	requireSIPp(t)
	const capacity = 10
	a, b := startClusterPair(t, capacity)
	b.waitLog(10*time.Second, "cluster ledger started", func() bool { return b.count(message("cluster ledger started")) > 0 })
	startUAS(t, b)
	// A probe's answered call stays up (the probe never ACKs a 2xx).
	if code := inviteProbe(t, pbxIP, b.addr); code != 200 {
		t.Fatalf("first call through B: %d", code)
	}
	client := api.NewClient(b.apiURL, adminToken, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a.cmd.Process.Kill()
	<-a.done
	st, err := client.Cluster(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	var use int64
	for _, e := range st.Entries {
		for _, l := range e.Leases {
			if e.Dimension == "max_parallel_calls" && l.Node == "gw-b" {
				use = l.Use
			}
		}
	}
	if use < 1 || use > capacity {
		t.Fatalf("gw-b's lease as it last saw it: use %d (%+v)", use, st)
	}
	// Within the lease, then 503 Retry-After: never beyond the lease.
	admitted := 1
	var code int
	var msg string
	for range capacity {
		if code, msg = inviteProbeMsg(t, pbxIP, b.addr); code != 200 {
			break
		}
		admitted++
	}
	t.Logf("NATS gone: B admitted %d calls within its lease of %d, then %d", admitted, use, code)
	if int64(admitted) > use {
		t.Errorf("with NATS gone B admitted %d calls, its lease was %d", admitted, use)
	}
	if code != 503 || headerValue(msg, "Retry-After") == "" {
		t.Errorf("past its lease with NATS gone: %d, Retry-After %q; want 503 with Retry-After\n%s", code, headerValue(msg, "Retry-After"), msg)
	}
	b.waitLog(5*time.Second, "a reject decision with cause cluster_lease", func() bool { return b.count(decision("reject", "cluster_lease")) > 0 })
	// A is back (same store, same ports): B renews and leases again.
	startGateway(t, a.conf)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code = inviteProbe(t, pbxIP, b.addr); code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("after NATS is back B answers %d, want 200 (below the cap: %d calls up)", code, admitted)
	}
}

// TestClusterCrashRestart: gateway B is killed (-9) with calls up. Until
// it is back, A admits only what B's lease leaves (B's calls may still be
// up); B's restart tears its orphaned calls down, settles them and
// releases its leases, and A can then fill the whole cap.
func TestClusterCrashRestart(t *testing.T) {
	requireSIPp(t)
	const capacity = 10
	a, b := startClusterPair(t, capacity)
	for _, g := range []*gateway{a, b} {
		g.waitLog(10*time.Second, "cluster ledger started", func() bool { return g.count(message("cluster ledger started")) > 0 })
		startUAS(t, g)
	}
	// Probes' answered calls stay up (a probe never ACKs a 2xx).
	const onB = 4
	for range onB {
		if code := inviteProbe(t, pbxIP, b.addr); code != 200 {
			t.Fatalf("call through B: %d", code)
		}
	}
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.done
	fill := func() int {
		n := 0
		for inviteProbe(t, pbxIP, a.addr) == 200 {
			n++
		}
		return n
	}
	first := fill()
	if first+onB > capacity || first < 1 {
		t.Fatalf("with B dead and %d calls up there, A admitted %d (cap %d)", onB, first, capacity)
	}
	// B comes back: its restart releases what its last life held.
	b2 := startGateway(t, b.conf)
	b2.waitLog(10*time.Second, "cluster ledger started", func() bool { return b2.count(message("cluster ledger started")) > 0 })
	var more int
	if !poll(10*time.Second, func() bool { more += fill(); return first+more == capacity }) {
		t.Fatalf("after B's restart A has %d calls, want the whole cap %d", first+more, capacity)
	}
	if code := inviteProbe(t, pbxIP, b2.addr); code != 486 {
		t.Errorf("B after the restart, the cap full on A: %d, want 486", code)
	}
}

// TestSIPpClusterCapR3: the same cap of 50 over three gateway processes,
// with the ledger replicated on a three-server NATS cluster (R3, the
// default replicas) that loses a server while SIPp offers calls: no more
// than the cap is ever admitted, the calls offered before the loss fill
// it exactly, and once they end the cluster admits again.
func TestSIPpClusterCapR3(t *testing.T) {
	requireSIPp(t)
	const capacity, perGateway = 50, 100
	c := bustest.StartCluster(t, 3)
	var gws []*gateway
	for i := range 3 {
		gws = append(gws, startGateway(t, gatewayConfig{MaxParallelCalls: capacity, ShutdownGrace: 2 * time.Second,
			NATS:  "  url: " + c.URLs() + "\n",
			Extra: fmt.Sprintf("node: gw-%c\ncluster:\n  enabled: true\n  replicas: 3\n  lease_ttl: 2s\n", 'a'+i)}))
	}
	uacs := offerHeldCalls(t, gws, perGateway)
	time.Sleep(time.Second)
	c.Stop(1) // a server of the ledger's three, with calls still offered
	for _, u := range uacs {
		if code := u.wait(50 * time.Second); code != 0 && code != 1 { // 1: some calls failed (the refused ones)
			t.Errorf("sipp uac exit code %d", code)
		}
	}
	admitted, refused := 0, 0
	for _, g := range gws {
		g.waitLog(15*time.Second, "calls ended", func() bool { return g.count(message("call ended")) >= g.count(decision("admit", "")) })
		admitted += g.count(decision("admit", ""))
		refused += g.count(decision("reject", ""))
	}
	t.Logf("over the gateways: %d admitted, %d refused, a NATS server lost 1 s in", admitted, refused)
	if admitted != capacity || admitted+refused != 3*perGateway {
		t.Errorf("over the gateways: %d admitted and %d refused of %d offered; want exactly %d admitted", admitted, refused, 3*perGateway, capacity)
	}
	// The ledger on two servers of three: the slots came back and a
	// new call is admitted.
	c.Restart(1)
	for _, g := range gws {
		if !poll(10*time.Second, func() bool { return inviteProbe(t, pbxIP, g.addr) == 200 }) {
			t.Errorf("%s admits no call after the calls ended", g.apiURL)
		}
	}
	for _, g := range gws {
		g.noErrors()
	}
}
