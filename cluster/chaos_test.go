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

// TestChaos runs random admissions, ends, node crashes and restarts, NATS
// outages and changes of the cap over three nodes, and checks after every
// step that the calls that may be up never exceed the cap (after a cap is
// lowered below the calls up, that nothing is admitted until they are
// under it: a lower cap is not retroactive). A crashed node's calls count
// as up until max_call_duration after they started (the process may be
// gone, or cut off and still relaying them); a live node cuts its calls
// at max_call_duration, as the edge does. CHAOS_SEED picks the seed
// (default: the time, logged).
func TestChaos(t *testing.T) {
	t.Parallel()
	chaos(t, 1, stopServer)
}

// TestChaosPartitions is TestChaos on a three-server NATS cluster with an
// R3 ledger, each node talking only to its own server: stopping a server
// partitions its node from the ledger (the others keep the quorum), and
// stopping two leaves no quorum at all.
func TestChaosPartitions(t *testing.T) {
	t.Parallel()
	chaos(t, 3, stopServer)
}

// A partition: how chaos cuts server j off and heals it.
type partition struct {
	cut, heal func(c *bustest.Cluster, j int)
}

// stopServer partitions a server by stopping it.
var stopServer = partition{cut: (*bustest.Cluster).Stop, heal: (*bustest.Cluster).Restart}

// chaos runs the random faults over three nodes on a NATS of servers
// servers (1 or 3), partitioning servers with p.
func chaos(t *testing.T, servers int, p partition) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("CHAOS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := bustest.StartCluster(t, servers)
	capv := int64(15)
	maxCall := 2 * time.Second
	o := Options{TTL: time.Second, MaxCallDuration: maxCall, Timeout: 300 * time.Millisecond, Replicas: servers, Bucket: fmt.Sprintf("CHAOS%d", servers)}
	type call struct {
		id    string
		start time.Time
	}
	type member struct {
		n       *node
		calls   []call
		crashed bool
		orphans []call // calls of a crashed life: up until start + maxCall
	}
	// Node i talks to server i (mod servers) only.
	serverOf := func(name string) int { return int(name[len(name)-1]-'1') % servers }
	up := make([]bool, servers)
	for i := range up {
		up[i] = true
	}
	quorum := func() bool {
		n := 0
		for _, u := range up {
			if u {
				n++
			}
		}
		return n > servers/2
	}
	start := func(name string) *node {
		return startOnServer(t, c, serverOf(name), name, limits(capv, -1), o)
	}
	var prevUp int64
	var trace []string
	ms := []*member{{n: start("gw1")}, {n: start("gw2")}, {n: start("gw3")}}
	var admitted, crashes, outages, changes int
	deadline := time.Now().Add(8 * time.Second)
	for step := 0; time.Now().Before(deadline); step++ {
		now := time.Now()
		m := ms[rng.IntN(len(ms))]
		r := rng.IntN(100)
		trace = append(trace, fmt.Sprintf("step %d r=%d node=%s cap=%d", step, r, m.n.name, capv))
		switch {
		case r < 60 && !m.crashed:
			if d, id := m.n.admit(admission.Outbound); d.Admitted {
				m.calls = append(m.calls, call{id, time.Now()})
				admitted++
			}
		case r < 85 && !m.crashed && len(m.calls) > 0:
			i := rng.IntN(len(m.calls))
			m.n.end(m.calls[i].id)
			m.calls = append(m.calls[:i], m.calls[i+1:]...)
		case r < 90 && !m.crashed:
			m.n.l.halt()
			m.crashed, m.orphans, m.calls = true, append(m.orphans, m.calls...), nil
			crashes++
		case r < 95 && m.crashed && up[serverOf(m.n.name)] && quorum():
			// The restart's store restore ends the calls of the earlier life.
			m.n, m.crashed, m.orphans = start(m.n.name), false, nil
		case r < 93:
			// The cap changes on every node (as replication applies it).
			capv = 8 + rng.Int64N(13)
			for _, m := range ms {
				if !m.crashed {
					if _, err := m.n.r.UpsertPlan(time.Now(), admission.Plan{Name: "p", Limits: limits(capv, -1)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			changes++
		case r < 97:
			if j := rng.IntN(servers); up[j] {
				p.cut(c, j)
				up[j] = false
				outages++
			}
		case r < 100:
			for j := range up {
				if !up[j] {
					p.heal(c, j)
					up[j] = true
					break
				}
			}
		}
		var up int64
		for _, m := range ms {
			keep := m.orphans[:0]
			for _, cl := range m.orphans {
				if now.Sub(cl.start) < maxCall {
					keep = append(keep, cl)
				}
			}
			m.orphans = keep
			if !m.crashed { // the edge's max_call_duration cut
				live := m.calls[:0]
				for _, cl := range m.calls {
					if now.Sub(cl.start) >= maxCall {
						m.n.end(cl.id)
						continue
					}
					live = append(live, cl)
				}
				m.calls = live
				up += m.n.active()
			}
			up += int64(len(m.orphans))
		}
		if up > max(capv, prevUp) { // the nodes and the last steps, then the failure
			for _, m := range ms {
				u, _ := m.n.r.LeaseUsage("acme")
				r, _ := m.n.l.snapshot(keyOf("acme", admission.LeaseParallel))
				t.Logf("%s crashed=%v orphans=%d usage=%+v ledger=%+v", m.n.name, m.crashed, len(m.orphans), u, r)
			}
			for _, l := range trace[max(0, len(trace)-40):] {
				t.Log(l)
			}
			t.Fatalf("step %d: %d calls may be up over the nodes, cap %d, %d before the step (CHAOS_SEED=%d)", step, up, capv, prevUp, seed)
		}
		prevUp = up
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	for j := range up {
		if !up[j] {
			p.heal(c, j)
		}
	}
	t.Logf("%d admitted, %d crashes, %d NATS outages, %d cap changes", admitted, crashes, outages, changes)
	// Every server back: the live nodes end their calls, renew, and admit
	// again.
	for _, m := range ms {
		if !m.crashed {
			for _, cl := range m.calls {
				m.n.end(cl.id)
			}
			m.calls = nil
		}
	}
	waitFor(t, 30*time.Second, func() bool {
		live := false
		for _, m := range ms {
			if !m.crashed {
				live = true
				if d, _ := m.n.admit(admission.Outbound); d.Admitted {
					return true
				}
			}
		}
		return !live // every node crashed: nothing to recover here
	}, "a live node admitting again once NATS is whole")
}
