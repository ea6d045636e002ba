package admission_test

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

// BenchmarkAdmitRelease measures one admit plus one release, spread over
// 10,000 tenants each with a cap of 50 and a few calls already running.
func BenchmarkAdmitRelease(b *testing.B) {
	const (
		tenants = 10_000
		running = 3 // background calls per tenant, so maps are realistically full
	)
	e := admission.NewEngine(nil)
	if err := e.UpsertPlan(admission.Plan{Name: "std", Limits: admission.Limits{MaxParallelCalls: lim(50)}}); err != nil {
		b.Fatal(err)
	}
	reqs := make([]admission.CallRequest, tenants)
	for i := range tenants {
		name := "tenant-" + strconv.Itoa(i)
		if err := e.UpsertTenant(admission.Tenant{Name: name, Plan: "std"}); err != nil {
			b.Fatal(err)
		}
		for j := range running {
			if !e.Admit(t0, admission.CallRequest{CallID: name + "-bg-" + strconv.Itoa(j), Tenant: name, Direction: admission.Inbound}).Admitted {
				b.Fatal("background call rejected")
			}
		}
		reqs[i] = admission.CallRequest{CallID: name + "-call", Tenant: name, Direction: admission.Outbound, Caller: "100", Callee: "4930123456"}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r := &reqs[i%tenants]
		if !e.Admit(t0, *r).Admitted {
			b.Fatal("rejected")
		}
		if !e.Release(t0, r.CallID) {
			b.Fatal("release failed")
		}
	}
}

// BenchmarkRunnerAdmitReleaseParallel is admit plus release through the
// Runner's lock from GOMAXPROCS goroutines over 10,000 tenants.
func BenchmarkRunnerAdmitReleaseParallel(b *testing.B) {
	const tenants = 10_000
	e := admission.NewEngine(nil)
	if err := e.UpsertPlan(admission.Plan{Name: "std", Limits: admission.Limits{MaxParallelCalls: lim(50)}}); err != nil {
		b.Fatal(err)
	}
	names := make([]string, tenants)
	for i := range tenants {
		names[i] = "tenant-" + strconv.Itoa(i)
		if err := e.UpsertTenant(admission.Tenant{Name: names[i], Plan: "std"}); err != nil {
			b.Fatal(err)
		}
	}
	// Each worker owns its CallIDs, built before the timer starts, so calls
	// never collide and the loop builds no strings.
	perWorker := make([][]admission.CallRequest, runtime.GOMAXPROCS(0))
	for w := range perWorker {
		perWorker[w] = make([]admission.CallRequest, tenants)
		for i := range tenants {
			perWorker[w][i] = admission.CallRequest{CallID: names[i] + "-w" + strconv.Itoa(w), Tenant: names[i], Direction: admission.Outbound}
		}
	}
	r := admission.NewRunner(e)
	var workers atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		reqs := perWorker[workers.Add(1)-1]
		for i := 0; pb.Next(); i++ {
			q := &reqs[i%tenants]
			if !r.Admit(t0, *q).Admitted {
				b.Error("rejected")
				return
			}
			r.Release(t0, q.CallID)
		}
	})
}
