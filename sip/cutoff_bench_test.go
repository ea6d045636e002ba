package sip

import (
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// TestCutOffError measures the cut-off error: the instant the callee
// receives the gateway's BYE minus the instant the budget ran out, over 100
// cut calls (10 waves of 10 concurrent calls sharing a spend budget that
// runs out about 2 s after answer). It is a benchmark, run by `make bench`
// with TOLLGATE_CUTOFF_BENCH=1, not by CI; it reports p50/p99/max.
func TestCutOffError(t *testing.T) {
	if os.Getenv("TOLLGATE_CUTOFF_BENCH") == "" {
		t.Skip("benchmark: set TOLLGATE_CUTOFF_BENCH=1 (make bench)")
	}
	// 1.00 per second in 1 s increments, no connect fee.
	e := budgetEnv(t, "{monthly_spend_limit: 0, auto_suspend: false}",
		`[{prefix: "", per_minute: 60, increments: 1/1}]`, "")
	const waves, perWave = 10, 10
	var errs []time.Duration
	for w := 0; w < waves; w++ {
		// Each wave may spend 20.00 more: ten calls at 1.00/s run out ~2 s in.
		used := e.adm.Usage(time.Now(), "acme").Spend
		limit := used + perWave*2_000_000
		autoSuspend := true
		e.operate(t, func(now time.Time) (admission.Ready, error) {
			return e.adm.SetOverrides(now, "acme", admission.Limits{MonthlySpendLimit: &limit, AutoSuspend: &autoSuspend})
		})
		e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Resume(now, "acme", "next wave") })
		ids := make([]string, perWave)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
				if code == 200 {
					ids[i] = callIDOf(sess.InviteRequest)
				}
			}(i)
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" {
				t.Fatal("a call of the wave was not answered")
			}
			bye := e.carrier.waitFor(sip.BYE, id, 10*time.Second)
			cut := e.cutOf(t, id)
			errs = append(errs, bye.at.Sub(cut.At))
		}
		e.idle(t)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i] < errs[j] })
	p := func(q float64) time.Duration { return errs[int(q*float64(len(errs)-1))] }
	t.Logf("cut-off error over %d cut calls: min %v p50 %v p99 %v max %v", len(errs), errs[0], p(0.5), p(0.99), errs[len(errs)-1])
	if p(0.99) > 100*time.Millisecond {
		t.Errorf("p99 cut-off error %v, target ≤ 100 ms", p(0.99))
	}
}

// cutOf returns the call.cut event of a call.
func (e *env) cutOf(t *testing.T, callID string) admission.Event {
	t.Helper()
	var ev admission.Event
	eventually(t, time.Second, func() bool {
		for _, c := range e.eventsOf("call.cut") {
			if strings.HasPrefix(c.CallID, callID+";") { // events carry the dialog key
				ev = c
				return true
			}
		}
		return false
	}, "no call.cut event for %s", callID)
	return ev
}
