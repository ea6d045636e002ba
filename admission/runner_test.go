package admission_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// Many goroutines admitting at once through the Runner never exceed the
// cap, and every method is usable concurrently (run with -race).
func TestRunnerConcurrentCap(t *testing.T) {
	e := admission.NewEngine(admission.Settings{EmergencyNumbers: []string{"112"}})
	r := admission.NewRunner(e)
	if _, err := r.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(10), MaxMonthlyMinutes: lim(1000)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted []string
		start    = make(chan struct{})
	)
	for i := range 100 {
		id := "c" + strconv.Itoa(i)
		wg.Go(func() {
			<-start
			d := r.Admit(t0, out(id, "t", "u"+strconv.Itoa(i%7), "4930"))
			if d.Admitted {
				r.Answer(t0.Add(time.Second), id)
				mu.Lock()
				admitted = append(admitted, id)
				mu.Unlock()
			}
			r.Active("t")
			r.ActiveCalls()
			r.Usage(t0, "t")
			r.UserUsage(t0, "t", "u1")
			r.NextDeadline()
			r.Tick(t0)
			r.Suspended("t")
			r.EffectiveLimits("t")
		})
	}
	close(start)
	wg.Wait()
	if len(admitted) != 10 || r.Active("t") != 10 {
		t.Fatalf("admitted %d, Active %d; want 10", len(admitted), r.Active("t"))
	}
	for _, id := range admitted {
		if _, ok := r.End(t0.Add(time.Minute), id); !ok {
			t.Fatalf("End(%s) = false", id)
		}
	}
	if r.Active("t") != 0 || r.ActiveCalls() != 0 {
		t.Fatal("counters not back to 0")
	}
	if u := r.Usage(t0.Add(time.Minute), "t"); u.Seconds != 10*59*time.Second {
		t.Fatalf("billed %v", u.Seconds)
	}
	if _, err := r.SetOverrides(t0, "t", admission.Limits{MaxParallelCalls: lim(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ResetTenant(t0, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateTenant(t0, "u", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Suspend(t0, "u", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resume(t0, "u", "y"); err != nil {
		t.Fatal(err)
	}
}
