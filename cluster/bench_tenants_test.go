package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
)

// BenchmarkUsageRound measures the background work the shared budgets
// cost per round as the number of tenants with calls grows (the scaling
// dimension: tenants billing on a node; none of it is on the INVITE
// path). Two nodes over an embedded NATS; gw1 has one answered call in
// each of n tenants with a minutes cap, so every tenant's usage changes
// every second.
//
//   - publish: one round of gw1's usage publication (publishUsage, every
//     second; gw1's own loop is halted and the benchmark runs the rounds):
//     an engine read and a KV put per tenant. ns/tenant is its
//     cost per tenant; a round must stay well under the 1 s period.
//   - apply: one round of gw2 applying what gw1 published
//     (applyClusterUsage, every maintenance round while the tenants'
//     calls bill), all n tenants dirty: SetClusterUsage per tenant.
func BenchmarkUsageRound(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("tenants-%d", n), func(b *testing.B) {
			_, url := bustest.Start(b, b.TempDir())
			one := int64(1000)
			lim := admission.Limits{MaxMonthlyMinutes: &one}
			nodes := startNodes(b, url, 2, lim, Options{TTL: 10 * time.Second, MaxCallDuration: time.Hour})
			gw1, gw2 := nodes[0], nodes[1]
			now := time.Now()
			for i := range n {
				name := fmt.Sprintf("t%05d", i)
				for _, nd := range nodes {
					if _, err := nd.r.CreateTenant(now, name, "p"); err != nil {
						b.Fatal(err)
					}
				}
				id := name + "-call"
				if d := gw1.r.Admit(now, admission.CallRequest{CallID: id, Tenant: name, Direction: admission.Outbound, Caller: "100", Callee: "200"}); !d.Admitted {
					b.Fatalf("%s: %v", name, d.Rejection)
				}
				gw1.r.Answer(now, id)
			}
			gw1.l.halt() // its own rounds stop: the benchmark runs them
			b.Run("publish", func(b *testing.B) {
				for b.Loop() {
					gw1.l.publishUsage()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tenant")
			})
			waitFor(b, 60*time.Second, func() bool {
				gw2.l.mu.Lock()
				defer gw2.l.mu.Unlock()
				return len(gw2.l.usage) >= n
			}, "gw1's usage of every tenant on gw2")
			b.Run("apply", func(b *testing.B) {
				for b.Loop() {
					gw2.l.mu.Lock()
					for i := range n {
						gw2.l.usageDirty[subject{tenant: fmt.Sprintf("t%05d", i)}] = true
					}
					gw2.l.mu.Unlock()
					gw2.l.applyClusterUsage()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/tenant")
			})
		})
	}
}
