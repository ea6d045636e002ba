package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// BenchmarkAdmitEnd admits and ends calls on nodes sharing a parallel
// cap of 1,000 over an embedded NATS, with the tenant's calls in progress
// held at a fraction of the cap (the scaling dimension: utilisation of
// the cap). "single" is the same engine alone, not in cluster mode: the
// baseline of the ratio in BENCHMARKS.md.
//
// Per op every node admits one call and ends its oldest. ns/call is per
// admitted call; p50/p99/max-ns are the latency of one admission (the
// lease-then-admit loop, ledger round trips included), sampled one in
// 16; ledger-ops/call counts the ledger round trips (reads and
// compare-and-sets, maintenance rounds included).
func BenchmarkAdmitEnd(b *testing.B) {
	const capv = 1000
	b.Run("single", func(b *testing.B) {
		r := admission.NewRunner(admission.NewEngine(admission.Settings{}))
		now := time.Now()
		r.UpsertPlan(now, admission.Plan{Name: "p", Limits: limits(capv, -1)})
		r.CreateTenant(now, "acme", "p")
		benchAdmitEnd(b, []*node{{name: "solo", r: r}}, capv/2)
	})
	for _, pct := range []int{50, 90, 99} {
		{
			b.Run(fmt.Sprintf("cluster-2-nodes/util-%d%%", pct), func(b *testing.B) {
				_, url := bustest.Start(b, b.TempDir())
				nodes := startNodes(b, url, 2, limits(capv, -1), Options{TTL: 10 * time.Second})
				before := nodes[0].l.Stats().RTTCount + nodes[1].l.Stats().RTTCount
				calls := benchAdmitEnd(b, nodes, capv*pct/100/2)
				after := nodes[0].l.Stats().RTTCount + nodes[1].l.Stats().RTTCount
				b.ReportMetric(float64(after-before)/float64(max(calls, 1)), "ledger-ops/call")
			})
		}
	}
}

// benchAdmitEnd fills each node to hold calls, then runs b.N ops (see
// BenchmarkAdmitEnd); it returns the calls admitted during them.
func benchAdmitEnd(b *testing.B, nodes []*node, hold int) int {
	b.Helper()
	for _, n := range nodes {
		for len(n.ids) < hold {
			n.admit(admission.Outbound)
		}
	}
	calls := 0
	// One admission in 16 is timed on its own, for the latency quantiles.
	lat := make([]time.Duration, 0, b.N*len(nodes)/16+1)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		for _, n := range nodes {
			var t0 time.Time
			if i%16 == 0 {
				t0 = time.Now()
			}
			d, _ := n.admit(admission.Outbound)
			if i%16 == 0 {
				lat = append(lat, time.Since(t0))
			}
			if d.Admitted {
				calls++
			}
			n.r.End(time.Now(), n.ids[0])
			n.ids = n.ids[1:]
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(max(calls, 1)), "ns/call")
	b.ReportMetric(100*float64(calls)/float64(b.N*len(nodes)), "admitted-%")
	return calls
}

// BenchmarkIdleReturn measures how long capacity freed on one node takes
// to be usable on another at the cap (cap 100, both nodes full): per op
// gw1 ends k calls and gw2 offers calls until k more are admitted.
// ms/return is that time; ledger-ops/slot the round trips it took.
func BenchmarkIdleReturn(b *testing.B) {
	for _, k := range []int{1, 10} {
		b.Run(fmt.Sprintf("slots-%d", k), func(b *testing.B) {
			_, url := bustest.Start(b, b.TempDir())
			nodes := startNodes(b, url, 2, limits(100, -1), Options{TTL: 10 * time.Second})
			gw1, gw2 := nodes[0], nodes[1]
			for gw1.active()+gw2.active() < 100 {
				gw1.admit(admission.Outbound)
				gw2.admit(admission.Outbound)
			}
			var total time.Duration
			ops0 := gw1.l.Stats().RTTCount + gw2.l.Stats().RTTCount
			b.ResetTimer()
			for range b.N {
				if len(gw1.ids) < k { // refill gw1 from gw2 first, untimed
					b.StopTimer()
					gw1, gw2 = gw2, gw1
					b.StartTimer()
				}
				start := time.Now()
				for range k {
					gw1.r.End(time.Now(), gw1.ids[0])
					gw1.ids = gw1.ids[1:]
				}
				for got := 0; got < k; {
					if d, _ := gw2.admit(admission.Outbound); d.Admitted {
						got++
					} else {
						time.Sleep(time.Millisecond)
					}
				}
				total += time.Since(start)
			}
			b.StopTimer()
			ops := gw1.l.Stats().RTTCount + gw2.l.Stats().RTTCount - ops0
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/return")
			b.ReportMetric(float64(ops)/float64(b.N*k), "ledger-ops/slot")
		})
	}
}
