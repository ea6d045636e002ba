package admission

import (
	"math/rand"
	"strconv"
	"testing"
	"time"
)

// TestSpendMeterMatchesBruteForce drives one tenant through random answers,
// ends, cuts and month boundaries with up to 10,000 calls drawing at once,
// on mixed rates (connect fees, 60/60, 6/6, 1/1, 60/6, 30/6, 1/60, free
// rows), and after every step compares the incremental spend meter with a
// brute-force sum over every call, and every reach result (threshold or
// exhaustion instant, exact or a re-evaluation instant) with the spend the
// brute force finds around it:
//   - exact t: spend(t) >= x and spend(t-1ns) < x (t is the first instant);
//   - re-evaluation t: spend(t-1ns) < x (nothing is missed before t);
//   - not reached: spend(cycle end - 1ns) < x.
//
// Spend is non-decreasing between steps, so these pin the result down.
func TestSpendMeterMatchesBruteForce(t *testing.T) {
	incs := [][2]int64{{60, 60}, {6, 6}, {1, 1}, {60, 6}, {30, 6}, {1, 60}}
	sizes := []int{1, 3, 10, 50, 300, 2_000, 10_000}
	for seed := int64(1); seed <= int64(len(sizes))*3; seed++ {
		n := sizes[int(seed-1)%len(sizes)]
		if testing.Short() && n > 300 {
			continue
		}
		t.Run("seed="+strconv.FormatInt(seed, 10)+"/calls="+strconv.Itoa(n), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			var rates []Rate
			for i, p := range []string{"1", "2", "3", "4", "5", "6"} {
				in := incs[r.Intn(len(incs))]
				pm := int64(r.Intn(190_000) + 10)
				if i == 5 {
					pm = 0 // connect fee only
				}
				rates = append(rates, Rate{Prefix: p, PerMinute: pm, ConnectFee: int64(r.Intn(2)) * int64(r.Intn(50_000)), Initial: in[0], Subsequent: in[1]})
			}
			// Start a few hours before a month end so some runs cross it.
			now := time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC).Add(time.Duration(r.Int63n(int64(4 * time.Hour))))
			e := NewEngine(Settings{})
			if _, err := e.UpsertPlan(now, Plan{Name: "p", Rates: rates}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.UpsertTenant(now, Tenant{Name: "t", Plan: "p"}); err != nil {
				t.Fatal(err)
			}
			ts := e.tenants["t"]
			var live []string
			seq := 0
			check := func(what string) {
				t.Helper()
				for _, incl := range []bool{true, false} {
					if got, want := e.spendAt(ts, e.now, incl), e.spendScan(ts, e.now, incl); got != want {
						t.Fatalf("%s: spend at %v (inclusive %v) = %d, brute force %d (%d calls)", what, e.now, incl, got, want, len(live))
					}
				}
				base := e.spendScan(ts, e.now, true)
				needs := []int64{1, int64(r.Intn(1_000)) + 1, int64(r.Intn(100_000)) + 1, int64(r.Int63n(50_000_000)) + 1}
				if len(ts.meter.heap) > 0 {
					// Exactly what the next boundaries charge: the instant is
					// that boundary, not a later one.
					tb := time.Unix(0, ts.meter.heap[0].next).UTC()
					if tb.Before(e.cycleEnd) {
						if need := e.spendScan(ts, tb, true) - base; need > 0 {
							needs = append(needs, need)
							at, exact, ok := e.spendReach(ts, e.now, base+need)
							if ok && exact && !at.Equal(tb) {
								t.Fatalf("%s: reach of the next boundary's charge = %v, want %v", what, at, tb)
							}
						}
					}
				}
				for _, need := range needs {
					x := base + need
					at, exact, ok := e.spendReach(ts, e.now, x)
					switch {
					case !ok:
						if s := e.spendScan(ts, e.cycleEnd.Add(-1), true); s >= x {
							t.Fatalf("%s: reach %d: not reached this cycle, but brute force spend at cycle end is %d", what, x, s)
						}
					case at.Before(e.now):
						t.Fatalf("%s: reach %d returned %v before now %v", what, x, at, e.now)
					default:
						if s := e.spendScan(ts, at.Add(-1), true); s >= x && at.After(e.now) {
							t.Fatalf("%s: reach %d returned %v (exact %v), but brute force spend 1 ns earlier is %d", what, x, at, exact, s)
						}
						if exact {
							if s := e.spendScan(ts, at, true); s < x {
								t.Fatalf("%s: reach %d exact at %v, but brute force spend then is %d", what, x, at, s)
							}
						}
					}
					// The replay leaves the meter as it was.
					if got, want := e.spendAt(ts, e.now, true), e.spendScan(ts, e.now, true); got != want {
						t.Fatalf("%s: after reach, spend %d, brute force %d", what, got, want)
					}
				}
			}
			answer := func() {
				seq++
				id := "c" + strconv.Itoa(seq)
				callee := strconv.Itoa(r.Intn(7)) + "555" // "0..." matches no rate: free
				if d := e.Admit(now, CallRequest{CallID: id, Tenant: "t", Direction: Outbound, Caller: "u", Callee: callee}); !d.Admitted {
					t.Fatalf("rejected: %+v", d.Rejection)
				}
				e.Answer(now, id)
				live = append(live, id)
			}
			end := func() {
				i := r.Intn(len(live))
				e.End(now, live[i])
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			}
			// Ramp up to n calls, answered over a spread of instants.
			spread := time.Duration(n) * 20 * time.Millisecond
			for len(live) < n {
				now = now.Add(time.Duration(r.Int63n(int64(2*spread/time.Duration(n)) + 1)))
				answer()
			}
			check("ramp")
			for step := 0; step < 60; step++ {
				switch now = now.Add(time.Duration(r.Int63n(int64(90 * time.Second)))); r.Intn(4) {
				case 0:
					for k := r.Intn(max(1, n/10)) + 1; k > 0 && len(live) > 0; k-- {
						end()
					}
				case 1:
					for k := r.Intn(max(1, n/10)) + 1; k > 0; k-- {
						answer()
					}
				case 2:
					// Ends and answers at one instant, the same as a boundary of
					// some call: exact ties between charges and changes.
					if len(live) > 0 {
						i := r.Intn(len(live))
						c := e.calls[live[i]]
						if c.rate != nil && c.rate.PerMinute > 0 && c.next > now.UnixNano() {
							now = time.Unix(0, c.next).UTC()
						}
						e.Tick(now)
						e.spendAt(ts, now, true) // charged at now, then ended at now
						e.End(now, live[i])
						live[i] = live[len(live)-1]
						live = live[:len(live)-1]
					}
					answer()
				default:
					e.Tick(now)
				}
				check("step " + strconv.Itoa(step))
			}
		})
	}
}

// BenchmarkSpendReplay is the exact search near a spend cap: one tenant
// with N drawing calls on 1/1 and 6/6 rates and a limit inside one
// increment per call, so every reach replays the next boundaries.
func BenchmarkSpendReplay(b *testing.B) {
	for _, n := range []int{10, 1_000, 10_000, 100_000} {
		b.Run("active="+strconv.Itoa(n), func(b *testing.B) {
			now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
			e := NewEngine(Settings{})
			rates := []Rate{{Prefix: "1", PerMinute: 50_000, Initial: 1, Subsequent: 1}, {Prefix: "2", PerMinute: 20_000, ConnectFee: 5_000, Initial: 6, Subsequent: 6}}
			if _, err := e.UpsertPlan(now, Plan{Name: "p", Rates: rates}); err != nil {
				b.Fatal(err)
			}
			if _, err := e.UpsertTenant(now, Tenant{Name: "t", Plan: "p"}); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				now = now.Add(10 * time.Second / time.Duration(n))
				id := strconv.Itoa(i)
				e.Admit(now, CallRequest{CallID: id, Tenant: "t", Direction: Outbound, Callee: strconv.Itoa(1+i%2) + "555"})
				e.Answer(now, id)
			}
			ts := e.tenants["t"]
			x := e.spendAt(ts, now, true) + ts.meter.csum/2
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, _, ok := e.spendReach(ts, now, x); !ok {
					b.Fatal("not reached")
				}
			}
		})
	}
}
