package admission_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// collect gathers the events of every Output, by type.
type collect map[string][]admission.Event

func (c collect) add(o admission.Output) {
	for _, ev := range o.Events {
		c[ev.Type] = append(c[ev.Type], ev)
	}
}

// TestCDRsAddUpToCounters: random calls of three rates, some never
// answered, some ending at a media-verified instant, some cut when the
// spend cap runs out (hard). Every admitted call has exactly one
// call.started and one call.ended, answered ones one call.answered, and
// the billed time and cost over call.ended equal the tenant's usage.
func TestCDRsAddUpToCounters(t *testing.T) {
	cuts := 0
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		e := admission.NewEngine(admission.Settings{})
		auto := true
		mustPlan(t, e, admission.Plan{
			Name: "p",
			Limits: admission.Limits{
				MonthlySpendLimit: lim(int64(200_000 + rng.IntN(2_000_000))), // micro-units: runs out in some seeds
				AutoSuspend:       &auto,
			},
			Rates: []admission.Rate{
				{Prefix: "44", PerMinute: 10_000, Initial: 60, Subsequent: 60},
				{Prefix: "49", PerMinute: 20_000, ConnectFee: 5_000, Initial: 6, Subsequent: 6},
				{Prefix: "", PerMinute: 50_000, Initial: 1, Subsequent: 1},
			},
		})
		mustTenant(t, e, admission.Tenant{Name: "acme", Plan: "p"})
		got := collect{}
		now := t0
		n := 50 + rng.IntN(200)
		callees := []string{"442071234567", "4930123456", "15551234567"}
		type live struct {
			id       string
			answered bool
		}
		var up []live
		admitted := 0
		for i := 0; i < n || len(up) > 0; i++ {
			now = now.Add(time.Duration(rng.Int64N(int64(20 * time.Second))))
			got.add(e.Tick(now))
			switch {
			case i < n && rng.IntN(3) > 0:
				id := "c" + strconv.Itoa(i)
				d := e.Admit(now, out(id, "acme", "100", callees[rng.IntN(3)]))
				got.add(d.Output)
				if d.Admitted {
					admitted++
					up = append(up, live{id: id})
				}
			case len(up) > 0:
				k := rng.IntN(len(up))
				c := &up[k]
				if !c.answered && rng.IntN(4) > 0 {
					c.answered = true
					got.add(e.Answer(now, c.id))
					continue
				}
				end := admission.End{Cause: "bye_caller", HungUp: "caller"}
				if rng.IntN(2) == 0 {
					end.BilledEnd = now.Add(-time.Duration(rng.Int64N(int64(5 * time.Second))))
				}
				o, ok := e.EndWith(now, c.id, end)
				if !ok {
					t.Fatalf("seed %d: End of %s not ok", seed, c.id)
				}
				got.add(o)
				up = append(up[:k], up[k+1:]...)
			}
		}
		byCall := func(typ string) map[string]int {
			m := map[string]int{}
			for _, ev := range got[typ] {
				if ev.Call == nil {
					t.Fatalf("seed %d: %s without Call", seed, typ)
				}
				m[ev.CallID]++
			}
			return m
		}
		started, ended := byCall(admission.EventCallStarted), byCall(admission.EventCallEnded)
		if len(started) != admitted || len(ended) != admitted {
			t.Fatalf("seed %d: %d admitted, %d call.started, %d call.ended", seed, admitted, len(started), len(ended))
		}
		for id, k := range ended {
			if k != 1 || started[id] != 1 {
				t.Fatalf("seed %d: call %s: %d call.started, %d call.ended", seed, id, started[id], k)
			}
		}
		var billed time.Duration
		var cost int64
		for _, ev := range got[admission.EventCallEnded] {
			billed += ev.Call.Billed
			cost += ev.Call.Cost
			if ev.Call.End == nil || ev.Call.Cause != "bye_caller" || ev.Call.End.HungUp != "caller" {
				t.Fatalf("seed %d: call.ended without the edge's End: %+v", seed, ev.Call)
			}
			if (ev.Call.Billed > 0) != !ev.Call.AnsweredAt.IsZero() && ev.Call.Billed > 0 {
				t.Fatalf("seed %d: unanswered call billed: %+v", seed, ev.Call)
			}
		}
		u := e.Usage(now, "acme")
		if billed != u.Seconds || cost != u.Spend {
			t.Fatalf("seed %d: call.ended sums %v / %d, usage %v / %d", seed, billed, cost, u.Seconds, u.Spend)
		}
		for _, ev := range got[admission.EventCallCut] {
			if ev.Cap == admission.CapSuspended && ev.Call.Cause == "suspended" {
				continue // an early call of the tenant the spend cap suspended
			}
			if ev.Cap != admission.CapSpend || ev.Limit <= 0 || ev.Value <= 0 || ev.Value > ev.Limit || ev.Call == nil || ev.Call.Cause != "spend" {
				t.Fatalf("seed %d: call.cut %+v %+v", seed, ev, ev.Call)
			}
		}
		cuts += len(got[admission.EventCallCut])
	}
	if cuts == 0 {
		t.Error("no seed ran the spend cap out: the cut path is untested")
	}
}

func TestCallEventFields(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(1)},
		Rates: []admission.Rate{{Prefix: "49", PerMinute: 60_000, ConnectFee: 1_000, Initial: 1, Subsequent: 1}}})
	mustTenant(t, e, admission.Tenant{Name: "acme", Plan: "p"})
	d := e.Admit(t0, out("a", "acme", "100", "4930123"))
	if len(d.Events) != 1 || d.Events[0].Type != admission.EventCallStarted {
		t.Fatalf("admit events: %+v", d.Events)
	}
	if c := d.Events[0].Call; c.Direction != admission.Outbound || c.Caller != "100" || c.Callee != "4930123" || !c.Rated || c.RatePrefix != "49" {
		t.Errorf("call.started: %+v", c)
	}
	if again := e.Admit(t0, out("a", "acme", "100", "4930123")); len(again.Events) != 0 {
		t.Errorf("re-admitting an active call emitted %+v", again.Events)
	}
	rej := e.Admit(t0, out("b", "acme", "101", "4930"))
	if len(rej.Events) != 1 || rej.Events[0].Type != admission.EventCallRejected {
		t.Fatalf("rejection events: %+v", rej.Events)
	}
	if c := rej.Events[0].Call; c.Cause != "parallel_calls" || c.Code != 503 && c.Code != 403 && c.Code != 486 || c.Limit != 1 || c.Usage != 1 {
		t.Errorf("call.rejected: %+v", c)
	}
	o := e.Answer(t0.Add(time.Second), "a")
	if len(o.Events) != 1 || o.Events[0].Type != admission.EventCallAnswered || !o.Events[0].Call.AnsweredAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("answer events: %+v", o.Events)
	}
	o, _ = e.EndWith(t0.Add(31*time.Second), "a", admission.End{Cause: "bye_callee", HungUp: "callee",
		Media: &admission.Media{Caller: admission.MediaLeg{Packets: 1500}}})
	if len(o.Events) != 1 || o.Events[0].Type != admission.EventCallEnded {
		t.Fatalf("end events: %+v", o.Events)
	}
	c := o.Events[0].Call
	if c.Billed != 30*time.Second || c.Cost != 1_000+30_000 || c.Cause != "bye_callee" || c.End.Media.Caller.Packets != 1500 {
		t.Errorf("call.ended: %+v %+v", c, c.End)
	}
	r := e.Reject(t0.Add(time.Minute), out("x", "acme", "100", "49"), "sdp", 488)
	if len(r.Events) != 1 || r.Events[0].Call.Cause != "sdp" || r.Events[0].Call.Code != 488 || r.Events[0].Tenant != "acme" {
		t.Errorf("Reject: %+v", r.Events)
	}
}

func TestLimitsChangedEvent(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	o, _ := e.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(10)}})
	if len(o.Events) != 0 {
		t.Errorf("new plan: %+v", o.Events)
	}
	o, _ = e.UpsertTenant(t0, admission.Tenant{Name: "acme", Plan: "p"})
	if len(o.Events) != 0 {
		t.Errorf("a new tenant's limits are not a change: %+v", o.Events)
	}
	o, _ = e.SetOverrides(t0, "acme", admission.Limits{MaxParallelCalls: lim(5)})
	if len(o.Events) != 1 || o.Events[0].Type != admission.EventLimits || *o.Events[0].Limits.MaxParallelCalls != 5 {
		t.Fatalf("override: %+v", o.Events)
	}
	o, _ = e.SetOverrides(t0, "acme", admission.Limits{MaxParallelCalls: lim(5)})
	if len(o.Events) != 0 {
		t.Errorf("the same override again: %+v", o.Events)
	}
	o, _ = e.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(20), MaxMonthlyMinutes: lim(100)}})
	if len(o.Events) != 1 || o.Events[0].Limits.MaxMonthlyMinutes == nil || *o.Events[0].Limits.MaxParallelCalls != 5 {
		t.Errorf("plan change seen through the override: %+v", o.Events)
	}
	o, _ = e.ResetTenant(t0, "acme")
	if len(o.Events) != 1 || *o.Events[0].Limits.MaxParallelCalls != 20 {
		t.Errorf("reset: %+v", o.Events)
	}
}

func TestRestoreEndsItsCalls(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	mustPlan(t, e, admission.Plan{Name: "p"})
	mustTenant(t, e, admission.Tenant{Name: "acme", Plan: "p"})
	o, err := e.Restore(admission.Snapshot{At: t0.Add(time.Minute), Calls: []admission.CallRecord{
		{CallID: "a", Tenant: "acme", Direction: admission.Outbound, Caller: "100", Callee: "49", AnsweredAt: t0},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ended []admission.Event
	for _, ev := range o.Events {
		if ev.Type == admission.EventCallEnded {
			ended = append(ended, ev)
		}
	}
	if len(ended) != 1 || ended[0].Call.Billed != time.Minute || ended[0].Call.Cause != admission.RestoredCause {
		t.Fatalf("restore events: %+v", o.Events)
	}
}
