package admission_test

import (
	"fmt"
	"math/rand"
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

// model is a trivially correct reference for the engine's cap semantics.
type model struct {
	plans     map[string]*int64           // plan -> max_parallel_calls
	tenants   map[string]admission.Tenant // tenant -> config
	active    map[string]string           // active callID -> tenant
	count     map[string]int64            // tenant -> active calls
	admitted  []string                    // every callID ever admitted, in order
	releasesT map[string]int              // callID -> Release calls that returned true
}

func (m *model) cap(tenant string) *int64 {
	t := m.tenants[tenant]
	if t.Overrides.MaxParallelCalls != nil {
		return t.Overrides.MaxParallelCalls
	}
	return m.plans[t.Plan]
}

var (
	propPlans   = []string{"p0", "p1", "p2"}
	propTenants = []string{"t0", "t1", "t2", "t3", "t4"}
)

// randLimit returns nil, -1, 0 or a small cap, so caps are hit often.
func randLimit(r *rand.Rand) *int64 {
	switch n := r.Intn(10); {
	case n == 0:
		return nil
	case n == 1:
		return lim(-1)
	case n == 2:
		return lim(0)
	default:
		return lim(int64(r.Intn(6) + 1))
	}
}

func TestPropertyAdmitRelease(t *testing.T) {
	const steps = 3000
	for seed := int64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runProperty(t, rand.New(rand.NewSource(seed)), steps)
		})
	}
}

func runProperty(t *testing.T, r *rand.Rand, steps int) {
	t.Helper()
	e := admission.NewEngine(nil)
	m := &model{
		plans:     map[string]*int64{},
		tenants:   map[string]admission.Tenant{},
		active:    map[string]string{},
		count:     map[string]int64{},
		releasesT: map[string]int{},
	}
	for _, p := range propPlans {
		l := randLimit(r)
		must(t, e.UpsertPlan(admission.Plan{Name: p, Limits: admission.Limits{MaxParallelCalls: l}}))
		m.plans[p] = l
	}
	for _, name := range propTenants {
		tn := admission.Tenant{Name: name, Plan: propPlans[r.Intn(len(propPlans))]}
		must(t, e.UpsertTenant(tn))
		m.tenants[name] = tn
	}

	nextID := 0
	randActive := func() (string, bool) {
		if len(m.active) == 0 {
			return "", false
		}
		// Deterministic pick: walk m.admitted from a random start.
		start := r.Intn(len(m.admitted))
		for i := range m.admitted {
			id := m.admitted[(start+i)%len(m.admitted)]
			if _, ok := m.active[id]; ok {
				return id, true
			}
		}
		return "", false
	}

	for step := range steps {
		switch op := r.Intn(100); {
		case op < 45: // admit a new call
			tenant := propTenants[r.Intn(len(propTenants))]
			if r.Intn(50) == 0 {
				tenant = "unknown"
			}
			id := "call-" + strconv.Itoa(nextID)
			nextID++
			d := e.Admit(t0, admission.CallRequest{CallID: id, Tenant: tenant, Direction: admission.Direction(r.Intn(2) + 1)})
			if tenant == "unknown" {
				if d.Admitted || d.Rejection.Cause != admission.CauseUnknownTenant {
					t.Fatalf("step %d: unknown tenant: %+v", step, d)
				}
				continue
			}
			c, used := m.cap(tenant), m.count[tenant]
			want := c == nil || *c < 0 || used < *c
			if d.Admitted != want {
				t.Fatalf("step %d: admit %s on %s (cap %v, active %d) = %+v, want admitted=%v",
					step, id, tenant, limStr(c), used, d, want)
			}
			if d.Admitted {
				// Invariant: at admission time, active was below the effective cap.
				if c != nil && *c >= 0 && used >= *c {
					t.Fatalf("step %d: admitted with active %d >= cap %d", step, used, *c)
				}
				m.active[id] = tenant
				m.count[tenant]++
				m.admitted = append(m.admitted, id)
			} else {
				rej := d.Rejection
				if rej.Cause != admission.CauseParallelCalls || rej.Code != 486 || rej.Reason != "Busy Here" ||
					rej.Limit != *c || rej.Usage != used {
					t.Fatalf("step %d: rejection %+v, want cap %d usage %d", step, rej, *c, used)
				}
			}
		case op < 52: // re-admit an active call: idempotent
			id, ok := randActive()
			if !ok {
				continue
			}
			if d := e.Admit(t0, admission.CallRequest{CallID: id, Tenant: m.active[id]}); !d.Admitted {
				t.Fatalf("step %d: re-admit of active %s rejected: %+v", step, id, d)
			}
		case op < 82: // release an active call
			id, ok := randActive()
			if !ok {
				continue
			}
			if !e.Release(t0, id) {
				t.Fatalf("step %d: release of active %s returned false", step, id)
			}
			m.releasesT[id]++
			m.count[m.active[id]]--
			delete(m.active, id)
		case op < 87: // release a released or never-seen call
			id := "never-" + strconv.Itoa(r.Intn(10))
			if len(m.admitted) > 0 && r.Intn(2) == 0 {
				id = m.admitted[r.Intn(len(m.admitted))]
				if _, ok := m.active[id]; ok {
					continue
				}
			}
			if e.Release(t0, id) {
				t.Fatalf("step %d: release of inactive %s returned true", step, id)
			}
		case op < 91: // change a plan's limit
			p, l := propPlans[r.Intn(len(propPlans))], randLimit(r)
			must(t, e.UpsertPlan(admission.Plan{Name: p, Limits: admission.Limits{MaxParallelCalls: l}}))
			m.plans[p] = l
		case op < 95: // change a tenant's plan and override
			name := propTenants[r.Intn(len(propTenants))]
			tn := admission.Tenant{Name: name, Plan: propPlans[r.Intn(len(propPlans))]}
			if r.Intn(2) == 0 {
				tn.Overrides.MaxParallelCalls = randLimit(r)
			}
			must(t, e.UpsertTenant(tn))
			m.tenants[name] = tn
		case op < 97: // reset a tenant
			name := propTenants[r.Intn(len(propTenants))]
			must(t, e.ResetTenant(name))
			tn := m.tenants[name]
			tn.Overrides = admission.Limits{}
			m.tenants[name] = tn
		default: // invalid change: rejected, state unchanged
			name := propTenants[r.Intn(len(propTenants))]
			bad := lim(-2 - int64(r.Intn(5)))
			if e.UpsertTenant(admission.Tenant{Name: name, Plan: m.tenants[name].Plan, Overrides: admission.Limits{MaxParallelCalls: bad}}) == nil {
				t.Fatalf("step %d: invalid override accepted", step)
			}
			if e.UpsertPlan(admission.Plan{Name: propPlans[0], Limits: admission.Limits{MaxParallelCalls: bad}}) == nil {
				t.Fatalf("step %d: invalid plan limit accepted", step)
			}
		}
		checkCounters(t, step, e, m)
	}

	// Drain: every admitted call is released exactly once.
	for _, id := range m.admitted {
		if _, ok := m.active[id]; ok {
			if !e.Release(t0, id) {
				t.Fatalf("drain: release of active %s returned false", id)
			}
			m.releasesT[id]++
			m.count[m.active[id]]--
			delete(m.active, id)
		}
		if e.Release(t0, id) {
			t.Fatalf("drain: second release of %s returned true", id)
		}
	}
	for _, id := range m.admitted {
		if n := m.releasesT[id]; n != 1 {
			t.Fatalf("call %s released %d times, want exactly 1", id, n)
		}
	}
	checkCounters(t, steps, e, m)
	if e.ActiveCalls() != 0 {
		t.Fatalf("after drain ActiveCalls = %d", e.ActiveCalls())
	}
}

func checkCounters(t *testing.T, step int, e *admission.Engine, m *model) {
	t.Helper()
	for _, name := range propTenants {
		got := e.Active(name)
		if got < 0 {
			t.Fatalf("step %d: %s Active negative: %d", step, name, got)
		}
		if got != m.count[name] {
			t.Fatalf("step %d: %s Active = %d, model %d", step, name, got, m.count[name])
		}
		eff, err := e.EffectiveLimits(name)
		must(t, err)
		want := m.cap(name)
		if (eff.MaxParallelCalls == nil) != (want == nil) || (want != nil && *eff.MaxParallelCalls != *want) {
			t.Fatalf("step %d: %s effective %v, model %v", step, name, limStr(eff.MaxParallelCalls), limStr(want))
		}
	}
	if e.ActiveCalls() != len(m.active) {
		t.Fatalf("step %d: ActiveCalls = %d, model %d", step, e.ActiveCalls(), len(m.active))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
