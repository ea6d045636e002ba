package admission_test

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// TestSpendCutExact checks, over random rate tables and answer times, that
// a hard spend budget cuts its calls exactly at the instant a brute-force
// walk over every charge finds (the first increment that cannot be paid),
// whatever re-evaluation instants NextDeadline returns on the way.
func TestSpendCutExact(t *testing.T) {
	incs := [][2]int64{{60, 60}, {6, 6}, {1, 1}, {60, 6}, {30, 6}, {1, 60}}
	maxTicks, cases := 0, 0
	defer func() { t.Logf("%d cases, at most %d re-evaluations before the cut", cases, maxTicks) }()
	for seed := int64(1); seed <= 300; seed++ {
		r := rand.New(rand.NewSource(seed))
		var rates []admission.Rate
		for i, p := range []string{"+1", "+2", "+3", "+4"} {
			in := incs[r.Intn(len(incs))]
			rates = append(rates, admission.Rate{
				Prefix: p, PerMinute: int64(r.Intn(190_000) + 10_000), ConnectFee: int64(r.Intn(3)) * int64(r.Intn(50_000)),
				Initial: in[0], Subsequent: in[1],
			})
			_ = i
		}
		t0 := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		k := r.Intn(8) + 1
		type mc struct {
			id   string
			rate *admission.Rate
			ans  time.Time
		}
		calls := make([]mc, k)
		at := t0
		for i := range calls {
			at = at.Add(time.Duration(r.Int63n(int64(20 * time.Second))))
			calls[i] = mc{id: "c" + strconv.Itoa(i), rate: &rates[r.Intn(len(rates))], ans: at}
		}
		last := at
		spendAt := func(x time.Time) int64 {
			var s int64
			for _, c := range calls {
				s += cumCost(c.rate, c.ans, x, true)
			}
			return s
		}
		limit := spendAt(last) + r.Int63n(2_000_000)
		// Brute force: walk every charge instant after the last answer.
		var instants []time.Time
		for _, c := range calls {
			for j := int64(1); ; j++ {
				x := c.ans.Add(time.Duration(c.rate.Initial+(j-1)*c.rate.Subsequent) * time.Second)
				if x.After(last.Add(4 * time.Hour)) {
					break
				}
				if x.After(last) {
					instants = append(instants, x)
				}
			}
		}
		sort.Slice(instants, func(i, j int) bool { return instants[i].Before(instants[j]) })
		var want time.Time
		for _, x := range instants {
			if spendAt(x) > limit {
				want = x
				break
			}
		}
		if want.IsZero() {
			continue
		}
		cases++
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			e := admission.NewEngine(admission.Settings{})
			yes := true
			if _, err := e.UpsertPlan(t0, admission.Plan{Name: "p", Limits: admission.Limits{MonthlySpendLimit: &limit, AutoSuspend: &yes}, Rates: rates}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p"}); err != nil {
				t.Fatal(err)
			}
			for _, c := range calls {
				if d := e.Admit(c.ans, admission.CallRequest{CallID: c.id, Tenant: "t", Direction: admission.Outbound, Caller: "u", Callee: c.rate.Prefix + "555"}); !d.Admitted {
					t.Fatalf("rejected: %v", d.Rejection)
				}
				if o := e.Answer(c.ans, c.id); len(o.Cuts) > 0 {
					t.Fatalf("cut at answer: %+v", o.Cuts)
				}
			}
			// The projection (GET usage's exhausts_at) is the same instant.
			if _, _, sp, ok := e.Exhaustion(last, "t"); !ok || !sp.Equal(want) {
				t.Fatalf("Exhaustion: spend runs out at %v (ok %v), want %v", sp, ok, want)
			}
			for ticks := 0; ; ticks++ {
				d, _ := e.NextDeadline()
				if ticks > 100 || d.After(want) {
					t.Fatalf("no cut by %v (next deadline %v, %d ticks)", want, d, ticks)
				}
				o := e.Tick(d)
				if len(o.Cuts) == 0 {
					continue
				}
				maxTicks = max(maxTicks, ticks)
				if len(o.Cuts) != k {
					t.Fatalf("cut %d calls, want %d", len(o.Cuts), k)
				}
				for _, c := range o.Cuts {
					if !c.At.Equal(want) || c.Cause != admission.CauseSpend {
						t.Fatalf("cut %+v, want at %v", c, want)
					}
				}
				if u := e.Usage(want, "t"); u.Spend > limit {
					t.Fatalf("spend %d over limit %d", u.Spend, limit)
				}
				return
			}
		})
	}
}
