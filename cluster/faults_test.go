package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// reconnect: a client that keeps trying while a test's NATS is away.
var reconnect = []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}

// pair starts gw1 and gw2 on one NATS at url with the cap and options.
func pair(t *testing.T, url string, capv int64, o Options) (*node, *node) {
	t.Helper()
	_, js1 := bustest.Connect(t, url, reconnect...)
	_, js2 := bustest.Connect(t, url, reconnect...)
	return startNode(t, js1, "gw1", limits(capv, -1), o), startNode(t, js2, "gw2", limits(capv, -1), o)
}

// crashWith6 has gw2 admit 6 calls, waits until the ledger shows them,
// and stops its ledger without returning anything (a crash: its calls
// may still be up). It returns gw2's lease as the others see it.
func crashWith6(t *testing.T, gw1, gw2 *node) lease {
	t.Helper()
	for range 6 {
		if d, _ := gw2.admit(admission.Outbound); !d.Admitted {
			t.Fatalf("gw2: %v", d.Rejection)
		}
	}
	waitFor(t, 5*time.Second, func() bool { return leaseOf(gw1.l, "gw2", admission.LeaseParallel).Busy == 6 }, "gw2's busy count in the ledger")
	gw2.l.halt()
	return leaseOf(gw1.l, "gw2", admission.LeaseParallel)
}

// A crashed node that never comes back: its unused reserve is taken by a
// node that finds the cap full at once (it was never admitted against);
// the capacity of its calls in progress returns only after
// max_call_duration, never before, so the cap holds if its calls are
// still up.
func TestCrashedNodeKeepsWhatItMayUse(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	const capv = 20
	gw1, gw2 := pair(t, url, capv, Options{TTL: time.Second, MaxCallDuration: 3 * time.Second})
	l2 := crashWith6(t, gw1, gw2)
	crashed := time.Now()
	if l2.Use < 6 || l2.N < l2.Use {
		t.Fatalf("gw2's lease %+v: want use >= 6, held >= use", l2)
	}
	gw1.fill()
	if a := gw1.active(); a != capv-l2.Use {
		t.Fatalf("right after gw2 crashed holding %+v gw1 admitted %d, want %d: all but what gw2 may use", l2, a, capv-l2.Use)
	}
	for time.Since(crashed) < 2500*time.Millisecond { // well inside max_call_duration
		gw1.fill()
		if a := gw1.active(); a > capv-l2.Use {
			t.Fatalf("gw1 has %d calls while crashed gw2 may still have %d up (cap %d)", a, l2.Use, capv)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After max_call_duration every call of gw2 has ended: all of it is back.
	waitFor(t, 10*time.Second, func() bool { gw1.fill(); return gw1.active() == capv }, "all of gw2's capacity back")
	if since := time.Since(crashed); since < 3*time.Second {
		t.Fatalf("gw2's calls' capacity returned %v after its crash, before max_call_duration", since)
	}
}

// A crashed node that restarts (its store's restore ended its calls)
// gives back everything its previous life held at once, long before
// lease_ttl; a clean stop returns its idle leases too.
func TestRestartAndStopReturnLeases(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	const capv = 20
	o := Options{TTL: 30 * time.Second}
	gw1, gw2 := pair(t, url, capv, o)
	crashWith6(t, gw1, gw2)
	_, js := bustest.Connect(t, url)
	restarted := time.Now()
	gw2 = startNode(t, js, "gw2", limits(capv, -1), o)
	waitFor(t, 5*time.Second, func() bool { gw1.fill(); return gw1.active() == capv }, "gw2's previous leases released at its restart")
	if d := time.Since(restarted); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	if d, _ := gw2.admit(admission.Outbound); d.Admitted {
		t.Fatal("gw2 admitted a call past the cap")
	}
	// gw1 stops cleanly after its calls end: its leases go back at once.
	gw1.endAll()
	if gw1.active() != 0 {
		t.Fatalf("gw1 still has %d calls", gw1.active())
	}
	gw1.l.Close()
	stopped := time.Now()
	waitFor(t, 5*time.Second, func() bool { gw2.fill(); return gw2.active() == capv }, "gw1's leases back after its clean stop")
	if d := time.Since(stopped); d > 2*time.Second { // lease_ttl is 30 s
		t.Fatalf("gw1's leases came back %v after its clean stop", d)
	}
}

// An operator releases a node that will not come back: refused while its
// heartbeat is fresh and for the node itself; then everything it held is
// back at once, without waiting for max_call_duration.
func TestOperatorRelease(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	const capv = 20
	gw1, gw2 := pair(t, url, capv, Options{TTL: time.Second, MaxCallDuration: time.Hour})
	ctx := context.Background()
	if _, err := gw1.l.Release(ctx, "gw1"); !errors.Is(err, ErrAlive) {
		t.Fatalf("release of itself: %v, want ErrAlive", err)
	}
	if _, err := gw1.l.Release(ctx, "gw9"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("release of an unknown node: %v, want ErrUnknownNode", err)
	}
	l2 := crashWith6(t, gw1, gw2)
	if _, err := gw1.l.Release(ctx, "gw2"); !errors.Is(err, ErrAlive) {
		t.Fatalf("release of gw2 right after its last heartbeat: %v, want ErrAlive", err)
	}
	var out Released
	waitFor(t, 5*time.Second, func() bool {
		var err error
		out, err = gw1.l.Release(ctx, "gw2")
		return err == nil
	}, "gw2 releasable")
	if out.Entries != 1 || out.Calls < l2.Use {
		t.Fatalf("released %+v, want 1 entry and at least gw2's %d calls", out, l2.Use)
	}
	gw1.fill()
	if gw1.active() != capv {
		t.Fatalf("after the release gw1 admitted %d, want %d", gw1.active(), capv)
	}
	st := gw1.l.Status("acme")
	for _, n := range st.Nodes {
		if n.Name == "gw2" {
			t.Fatalf("gw2 still listed after its release: %+v", n)
		}
	}
}

// NATS unreachable: a node keeps admitting within the leases it holds and
// never beyond; past lease_ttl it admits nothing new (503); calls end
// normally; when NATS is back it leases again and the cap holds exactly.
func TestFailStatic(t *testing.T) {
	t.Parallel()
	c := bustest.StartCluster(t, 1)
	const capv = 20
	gw1, gw2 := pair(t, c.URL(0), capv, Options{TTL: 2 * time.Second, MaxCallDuration: time.Hour})
	var ids []string
	for range 3 {
		d, id := gw1.admit(admission.Outbound)
		if !d.Admitted {
			t.Fatalf("gw1: %v", d.Rejection)
		}
		ids = append(ids, id)
	}
	c.Stop(0)
	stopped := time.Now()
	// What gw1 holds now, NATS down, is what the ledger granted it last.
	u, _ := gw1.r.LeaseUsage("acme")
	if granted := leaseOf(gw1.l, "gw1", admission.LeaseParallel).Use; u.Held[admission.LeaseParallel] > granted {
		t.Fatalf("gw1's engine holds %d, the ledger granted %d", u.Held[admission.LeaseParallel], granted)
	}
	// Within lease_ttl: within the lease, not beyond it.
	var unavailable int
	for range capv {
		d, id, _, err := gw1.admitAt(admission.Outbound)
		switch {
		case d.Admitted:
			ids = append(ids, id)
		case err != nil:
			unavailable++
		}
	}
	if a := gw1.active(); a != u.Held[admission.LeaseParallel] || a > capv {
		t.Fatalf("NATS down: gw1 has %d calls, its lease was %d", a, u.Held[admission.LeaseParallel])
	}
	if unavailable == 0 {
		t.Fatal("past its lease with NATS down gw1 was never told the ledger is unavailable")
	}
	if time.Since(stopped) > 2*time.Second {
		t.Skip("machine too slow: the lease expired during the check")
	}
	// A call ends; past lease_ttl the freed slot is not reused.
	gw1.end(ids[0])
	ids = ids[1:]
	waitFor(t, 5*time.Second, func() bool { return !gw1.l.valid() }, "gw1's leases to expire")
	if d, _ := gw1.admit(admission.Outbound); d.Admitted {
		t.Fatal("admitted past lease_ttl with NATS down")
	}
	if gw1.active()+gw2.active() > capv {
		t.Fatalf("%d + %d calls over the cap %d", gw1.active(), gw2.active(), capv)
	}
	// NATS is back: both lease again, and the cap holds exactly.
	c.Restart(0)
	waitFor(t, 20*time.Second, func() bool { return gw1.l.valid() && gw2.l.valid() }, "leases renewed after NATS is back")
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for _, n := range []*node{gw1, gw2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range capv {
				if d, _ := n.admit(admission.Outbound); d.Admitted {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if sum := gw1.active() + gw2.active(); sum != capv {
		t.Fatalf("after NATS is back: %d + %d = %d calls, want the cap %d (admitted %d more)", gw1.active(), gw2.active(), sum, capv, admitted.Load())
	}
}

// The calls admitted in any UTC second over three nodes never exceed the
// CPS cap, and under load a second uses all of it.
func TestCPSPerSecondOverThreeNodes(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	const rate = 10
	nodes := startNodes(t, url, 3, limits(-1, rate), Options{})
	var mu sync.Mutex
	perSec := map[int64]int{}
	stop := time.Now().Add(2500 * time.Millisecond)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				d, _, at, _ := n.admitAt(admission.Outbound)
				if d.Admitted {
					mu.Lock()
					perSec[at.Unix()]++
					mu.Unlock()
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	full := 0
	for sec, k := range perSec {
		if k > rate {
			t.Errorf("second %d: %d calls admitted over three nodes, cap %d/s", sec, k, rate)
		}
		if k == rate {
			full++
		}
	}
	if full == 0 {
		t.Fatalf("no second used the whole CPS cap: %v", perSec)
	}
}

// Inbound and outbound caps are ledgers of their own, inside the total.
func TestDirectionCaps(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	in, out := int64(5), int64(7)
	lim := limits(10, -1)
	lim.MaxParallelInbound, lim.MaxParallelOutbound = &in, &out
	nodes := startNodes(t, url, 2, lim, Options{})
	// Both directions offered to both nodes for up to 3 s: the caps hold
	// at every moment, and in the end every slot of the total is used.
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, n := range nodes {
			n.admit(admission.Inbound)
			n.admit(admission.Outbound)
		}
		u1, _ := nodes[0].r.LeaseUsage("acme")
		u2, _ := nodes[1].r.LeaseUsage("acme")
		gotIn := u1.Active[admission.LeaseInbound] + u2.Active[admission.LeaseInbound]
		gotOut := u1.Active[admission.LeaseOutbound] + u2.Active[admission.LeaseOutbound]
		if gotIn > in || gotOut > out || gotIn+gotOut > 10 {
			t.Fatalf("inbound %d (cap %d), outbound %d (cap %d), total %d (cap 10)", gotIn, in, gotOut, out, gotIn+gotOut)
		}
		if gotIn+gotOut == 10 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 3 s: inbound %d, outbound %d: total %d of 10 in use", gotIn, gotOut, gotIn+gotOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A role's per-user cap is a ledger of its own per user: over three
// nodes a user capped at 3 has exactly 3 calls up, and other users of the
// tenant are not held back by it.
func TestRoleCapPerUserOverThreeNodes(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	three := int64(3)
	nodes := startNodes(t, url, 3, limits(100, -1), Options{})
	for _, n := range nodes {
		if _, err := n.r.UpsertTenant(time.Now(), admission.Tenant{Name: "acme", Plan: "p",
			Roles: []admission.Role{{Name: "desk", MaxParallelCalls: &three, Users: []string{"100"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := "100"
			if i%2 == 1 {
				caller = "200" // no role caps it
			}
			n := nodes[i%3]
			n.mu.Lock()
			n.n++
			id := fmt.Sprintf("%s-r%d", n.name, n.n)
			n.mu.Unlock()
			req := admission.CallRequest{CallID: id, Tenant: "acme", Direction: admission.Outbound, Caller: caller, Callee: "300"}
			d := n.r.Admit(time.Now(), req)
			for try := 0; !d.Admitted && d.Rejection.Cause == admission.CauseLease && try < 8; try++ {
				full, err := n.l.Acquire("acme", d.Rejection.User, d.Rejection.Lease, time.Now())
				if err != nil {
					t.Errorf("acquire: %v", err)
					return
				}
				if full {
					req.LeaseFull = req.LeaseFull.With(d.Rejection.Lease)
				}
				d = n.r.Admit(time.Now(), req)
			}
			if d.Admitted {
				mu.Lock()
				got[caller]++
				mu.Unlock()
			} else if caller == "100" && d.Rejection.Cause != admission.CauseRoleParallel {
				t.Errorf("user 100 rejected with %v, want role_parallel_calls", d.Rejection)
			}
		}()
	}
	wg.Wait()
	if got["100"] != 3 || got["200"] != 30 {
		t.Fatalf("admitted: user 100 %d (cap 3), user 200 %d (no cap, 30 offered)", got["100"], got["200"])
	}
	st := nodes[0].l.Status("acme")
	found := false
	for _, e := range st.Entries {
		found = found || e.User == "100" && e.Dimension == "role.max_parallel_calls" && e.Cap == 3 && e.Leased <= 3
	}
	if !found {
		t.Fatalf("no ledger entry for user 100: %+v", st.Entries)
	}
}
