package admission_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

// admitBurst starts n goroutines that admit at once (released by a shared
// start signal) and returns the CallIDs that were admitted.
func admitBurst(r *admission.Runner, prefix string, n int) (admitted []string, rejections []admission.Rejection) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		start = make(chan struct{})
	)
	for i := range n {
		id := prefix + strconv.Itoa(i)
		wg.Go(func() {
			<-start
			d := r.Admit(t0, admission.CallRequest{CallID: id, Tenant: "t", Direction: admission.Inbound})
			mu.Lock()
			defer mu.Unlock()
			if d.Admitted {
				admitted = append(admitted, id)
			} else {
				rejections = append(rejections, d.Rejection)
			}
		})
	}
	close(start)
	wg.Wait()
	return admitted, rejections
}

func TestRunnerConcurrentCap(t *testing.T) {
	const (
		goroutines = 500
		capN       = 50
	)
	r := admission.NewRunner(admission.NewEngine(nil))
	must(t, r.UpsertPlan(admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(1000)}}))
	must(t, r.UpsertTenant(admission.Tenant{Name: "t", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: lim(capN)}}))
	if l, err := r.EffectiveLimits("t"); err != nil || *l.MaxParallelCalls != capN {
		t.Fatalf("EffectiveLimits = %v, %v", l, err)
	}

	for round := range 2 {
		admitted, rejections := admitBurst(r, "r"+strconv.Itoa(round)+"-", goroutines)
		if len(admitted) != capN {
			t.Fatalf("round %d: %d admitted, want %d", round, len(admitted), capN)
		}
		for _, rej := range rejections {
			if rej.Cause != admission.CauseParallelCalls || rej.Limit != capN || rej.Usage != capN || rej.Code != 486 {
				t.Fatalf("round %d: rejection %+v", round, rej)
			}
		}
		if got := r.Active("t"); got != capN {
			t.Fatalf("round %d: Active = %d, want %d", round, got, capN)
		}
		// Release all concurrently, each twice: exactly one true per call.
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			trues = map[string]int{}
		)
		for _, id := range admitted {
			for range 2 {
				wg.Go(func() {
					if r.Release(t0, id) {
						mu.Lock()
						trues[id]++
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		for _, id := range admitted {
			if trues[id] != 1 {
				t.Fatalf("round %d: %s released true %d times", round, id, trues[id])
			}
		}
		if r.Active("t") != 0 || r.ActiveCalls() != 0 {
			t.Fatalf("round %d: after release Active=%d ActiveCalls=%d", round, r.Active("t"), r.ActiveCalls())
		}
	}

	must(t, r.ResetTenant("t"))
	if l, _ := r.EffectiveLimits("t"); *l.MaxParallelCalls != 1000 {
		t.Fatalf("after reset: %d", *l.MaxParallelCalls)
	}
}
