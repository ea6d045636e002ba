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
			r.Tick(t0)
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

// An operator step that deletes something still processes every deadline
// that fell due, of any tenant, and returns its effects (issue 8, 3b): the
// cut and the suspension of another tenant are not lost.
func TestDeleteReturnsOtherTenantsEffects(t *testing.T) {
	for _, del := range []string{"plan", "tenant"} {
		t.Run(del, func(t *testing.T) {
			r := admission.NewRunner(admission.NewEngine(admission.Settings{}))
			yes := true
			if _, err := r.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxMonthlyMinutes: lim(1), AutoSuspend: &yes}}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.UpsertPlan(t0, admission.Plan{Name: "unused"}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "idle"} {
				if _, err := r.UpsertTenant(t0, admission.Tenant{Name: n, Plan: "p"}); err != nil {
					t.Fatal(err)
				}
			}
			if !r.Admit(t0, out("c", "a", "100", "4930")).Admitted {
				t.Fatal("rejected")
			}
			if rd := r.Answer(t0, "c"); !rd.Deadline.Equal(t0.Add(48 * time.Second)) {
				t.Fatalf("deadline after answer = %v, want the 80 %% threshold instant %v", rd.Deadline, t0.Add(48*time.Second))
			}
			var (
				rd  admission.Ready
				err error
			)
			if del == "plan" {
				rd, err = r.DeletePlan(t0.Add(2*time.Minute), "unused")
			} else {
				rd, err = r.DeleteTenant(t0.Add(2*time.Minute), "idle")
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rd.Cuts) != 1 || rd.Cuts[0].CallID != "c" || !rd.Cuts[0].At.Equal(t0.Add(time.Minute)) {
				t.Fatalf("cuts = %+v, want call c cut at its exhaustion instant", rd.Cuts)
			}
			var suspended bool
			for _, ev := range rd.Events {
				suspended = suspended || (ev.Type == admission.EventSuspended && ev.Tenant == "a")
			}
			if !suspended {
				t.Fatalf("events %+v: no tenant.suspended for a", rd.Events)
			}
		})
	}
}

// Every Ready carries a newer generation and the engine's next deadline,
// also when the call fails.
func TestReadyGenerations(t *testing.T) {
	r := admission.NewRunner(admission.NewEngine(admission.Settings{}))
	var last uint64
	check := func(rd admission.Ready) {
		t.Helper()
		if rd.Gen <= last {
			t.Fatalf("generation %d after %d", rd.Gen, last)
		}
		last = rd.Gen
		if rd.Deadline.IsZero() {
			t.Fatal("no deadline")
		}
	}
	rd, err := r.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "missing"})
	if err == nil {
		t.Fatal("unknown plan accepted")
	}
	check(rd)
	rd, _ = r.UpsertPlan(t0, admission.Plan{Name: "p"})
	check(rd)
	rd, _ = r.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p"})
	check(rd)
	check(r.Admit(t0, out("c", "t", "1", "2")))
	check(r.Answer(t0, "c"))
	check(r.Tick(t0))
	rd, _ = r.End(t0, "c")
	check(rd)
	if want := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !rd.Deadline.Equal(want) {
		t.Fatalf("deadline %v, want the next cycle start %v", rd.Deadline, want)
	}
}
