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
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("CHAOS_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := bustest.StartCluster(t, 1)
	capv := int64(15)
	maxCall := 2 * time.Second
	o := Options{TTL: time.Second, MaxCallDuration: maxCall, Timeout: 300 * time.Millisecond}
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
	start := func(name string) *node {
		_, js := bustest.Connect(t, c.URL(0), reconnect...)
		return startNode(t, js, name, limits(capv, -1), o)
	}
	var prevUp int64
	var trace []string
	ms := []*member{{n: start("gw1")}, {n: start("gw2")}, {n: start("gw3")}}
	natsUp := true
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
		case r < 95 && m.crashed && natsUp:
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
		case r < 97 && natsUp:
			c.Stop(0)
			natsUp = false
			outages++
		case r < 100 && !natsUp:
			c.Restart(0)
			natsUp = true
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
			for _, l := range trace[max(0, len(trace)-15):] {
				t.Log(l)
			}
			t.Fatalf("step %d: %d calls may be up over the nodes, cap %d, %d before the step (CHAOS_SEED=%d)", step, up, capv, prevUp, seed)
		}
		prevUp = up
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	if !natsUp {
		c.Restart(0)
	}
	t.Logf("%d admitted, %d crashes, %d NATS outages, %d cap changes", admitted, crashes, outages, changes)
	if admitted < int(capv) {
		t.Fatalf("only %d calls admitted in 8 s: the cluster did not recover from the faults", admitted)
	}
}
