package admission_test

import (
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// TestEndAtMatchesEndingThen: a call billed to its media end with EndAt
// (signalled later, at its BYE or the media timeout) leaves every budget
// exactly where it would be had the call ended then. Engine A gets EndAt
// at the signalled end; engine B, the reference, a plain End at the media
// end. Random concurrent calls of three rates (per-second, 6/6 with a
// connect fee, 60/60), with user role minutes.
func TestEndAtMatchesEndingThen(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		newEngine := func() *admission.Engine {
			e := admission.NewEngine(admission.Settings{})
			mustPlan(t, e, admission.Plan{
				Name: "p",
				Limits: admission.Limits{
					MaxMonthlyMinutes: lim(100_000_000),
					MonthlySpendLimit: lim(1_000_000_000 * admission.MicroUnits),
				},
				Rates: []admission.Rate{
					{Prefix: "44", PerMinute: 10_000, Initial: 60, Subsequent: 60},
					{Prefix: "49", PerMinute: 20_000, ConnectFee: 5_000, Initial: 6, Subsequent: 6},
					{Prefix: "", PerMinute: 50_000, Initial: 1, Subsequent: 1},
				},
			})
			mustTenant(t, e, admission.Tenant{Name: "acme", Plan: "p",
				Roles: []admission.Role{{Name: "agents", MaxMonthlyMinutes: lim(100_000_000), Patterns: []string{"1*"}}}})
			return e
		}
		a, b := newEngine(), newEngine()
		type ev struct {
			at   time.Time
			kind int // 0 admit, 1 answer, 2 end
			i    int
		}
		var evA, evB []ev
		type call struct {
			req              admission.CallRequest
			billedEnd        time.Time
			answered, mediaE bool
		}
		n := 1 + rng.IntN(300)
		calls := make([]call, n)
		callees := []string{"442071234567", "4930123456", "15551234567"}
		for i := range calls {
			start := t0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			ans := start.Add(time.Duration(rng.Int64N(int64(10 * time.Second))))
			end := ans.Add(time.Duration(rng.Int64N(int64(10 * time.Minute))))
			c := call{req: out("c"+strconv.Itoa(i), "acme", "1"+strconv.Itoa(i%7), callees[rng.IntN(3)]), answered: rng.IntN(10) > 0}
			c.mediaE = c.answered && rng.IntN(2) == 0
			billed := end
			if c.mediaE {
				// media stopped some time before the BYE (or the timeout)
				billed = end.Add(-time.Duration(rng.Int64N(int64(end.Sub(ans)) + 1)))
			}
			c.billedEnd = billed
			calls[i] = c
			for _, list := range []*[]ev{&evA, &evB} {
				*list = append(*list, ev{start, 0, i})
				if c.answered {
					*list = append(*list, ev{ans, 1, i})
				}
			}
			evA = append(evA, ev{end, 2, i})
			evB = append(evB, ev{billed, 2, i})
		}
		run := func(e *admission.Engine, evs []ev, endAt bool) {
			sort.SliceStable(evs, func(x, y int) bool {
				if !evs[x].at.Equal(evs[y].at) {
					return evs[x].at.Before(evs[y].at)
				}
				return evs[x].kind < evs[y].kind
			})
			for _, v := range evs {
				c := calls[v.i]
				switch v.kind {
				case 0:
					if d := e.Admit(v.at, c.req); !d.Admitted {
						t.Fatalf("seed %d: call %d refused: %+v", seed, v.i, d.Rejection)
					}
				case 1:
					e.Answer(v.at, c.req.CallID)
				case 2:
					if endAt && c.mediaE {
						e.EndAt(v.at, c.req.CallID, c.billedEnd)
					} else {
						e.End(v.at, c.req.CallID)
					}
				}
			}
		}
		run(a, evA, true)
		run(b, evB, false)
		at := t0.Add(2 * time.Hour)
		ua, ub := a.Usage(at, "acme"), b.Usage(at, "acme")
		if ua != ub {
			t.Fatalf("seed %d, %d calls: EndAt usage %+v, ending at the media end %+v", seed, n, ua, ub)
		}
		for u := 0; u < 7; u++ {
			user := "1" + strconv.Itoa(u)
			if x, y := a.UserUsage(at, "acme", user), b.UserUsage(at, "acme", user); x != y {
				t.Fatalf("seed %d: user %s minutes %v, want %v", seed, user, x, y)
			}
		}
	}
}
