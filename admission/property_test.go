package admission_test

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// The property test drives the engine with random operations and checks
// it against a small, independent model of the rules:
//
//   - no call is admitted above an effective count cap (tenant total, per
//     direction, role parallel), nor while its tenant is suspended;
//   - counters match the model and are never negative;
//   - End returns true exactly once per admitted call;
//   - billed seconds (and spend) of a tenant equal the sum of the answered
//     durations (charges) in the current month, clamped at the reported
//     cut instants; emergency calls are metered apart and never cut;
//   - no hard minutes/spend budget (tenant or role) ends up over its limit
//     when the limit was not lowered below usage in the cycle;
//   - after every step, no deadline is at or before now.

var (
	propTenants = []string{"t0", "t1", "t2", "t3"}
	propPlans   = []string{"p0", "p1"}
	propUsers   = []string{"u0", "u1", "u2", "u3"} // u0, u1 on role "r"
	propCallees = []string{"+4420", "+4930", "+81", "112"}
	propRates   = []admission.Rate{
		{Prefix: "+44", PerMinute: 60_000, Initial: 60, Subsequent: 60},
		{Prefix: "+49", PerMinute: 90_000, ConnectFee: 10_000, Initial: 6, Subsequent: 6},
	}
)

const (
	propRoleParallel = 2
	propRoleMinutes  = 3
)

type mCall struct {
	id        string
	tenant    string
	dir       admission.Direction
	user      string
	emergency bool
	rate      *admission.Rate
	answered  bool
	ans       time.Time
	ended     bool
	end       time.Time
	cut       bool
	cutAt     time.Time
	endsTrue  int
}

type mTenant struct {
	plan      string
	over      admission.Limits
	suspended bool
	tainted   bool // a minutes/spend limit was lowered below usage, or soft, this cycle
}

type model struct {
	t        *testing.T
	e        *admission.Engine
	now      time.Time
	month    time.Time
	plans    map[string]admission.Limits
	tenants  map[string]*mTenant
	calls    map[string]*mCall
	all      []*mCall // every admitted call
	live     []*mCall // calls that may still bill in the current month
	nextID   int
	admitted int
	stats    map[string]int
}

func TestPropertyRandomOperations(t *testing.T) {
	steps := 4000
	if testing.Short() {
		steps = 800
	}
	for seed := int64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModel(t, rand.New(rand.NewSource(seed)), steps)
		})
	}
}

func randCount(r *rand.Rand, small int) *int64 {
	switch n := r.Intn(10); {
	case n == 0:
		return nil
	case n == 1:
		return lim(-1)
	case n == 2:
		return lim(0)
	default:
		return lim(int64(r.Intn(small) + 1))
	}
}

func randLimits(r *rand.Rand, tenant bool) admission.Limits {
	l := admission.Limits{
		MaxParallelCalls:    randCount(r, 6),
		MaxParallelInbound:  randCount(r, 4),
		MaxParallelOutbound: randCount(r, 4),
		MaxMonthlyMinutes:   randCount(r, 30),
		MonthlySpendLimit:   randCount(r, 2_000_000),
	}
	if r.Intn(4) == 0 {
		l.MaxCallsPerSecond = lim(int64(r.Intn(5) + 1))
		if r.Intn(2) == 0 {
			l.CPSBurst = lim(int64(r.Intn(5) + 1))
		}
	}
	if r.Intn(3) > 0 || !tenant {
		b := r.Intn(3) > 0
		l.AutoSuspend = &b
	}
	if r.Intn(3) == 0 {
		l.AlertThresholdPct = lim(int64(r.Intn(100) + 1))
	}
	return l
}

func lim(v int64) *int64 { return &v }

func runModel(t *testing.T, r *rand.Rand, steps int) {
	start := time.Date(2026, 1, 31, 22, 0, 0, 0, time.UTC)
	m := &model{
		t: t, now: start, month: monthOf(start),
		e:       admission.NewEngine(admission.Settings{EmergencyNumbers: []string{"112"}}),
		plans:   map[string]admission.Limits{},
		tenants: map[string]*mTenant{},
		calls:   map[string]*mCall{},
		stats:   map[string]int{},
	}
	for _, p := range propPlans {
		l := randLimits(r, false)
		m.apply(m.e.UpsertPlan(m.now, admission.Plan{Name: p, Limits: l, Rates: propRates}))
		m.plans[p] = l
	}
	for _, name := range propTenants {
		tn := &mTenant{plan: propPlans[r.Intn(len(propPlans))], over: randLimits(r, true)}
		m.tenants[name] = tn
		m.apply(m.e.UpsertTenant(m.now, admission.Tenant{
			Name: name, Plan: tn.plan, Overrides: tn.over,
			Roles: []admission.Role{{Name: "r", MaxParallelCalls: lim(propRoleParallel), MaxMonthlyMinutes: lim(propRoleMinutes), Users: []string{"u0", "u1"}}},
		}))
	}
	for _, name := range propTenants {
		m.retaint(name)
	}

	for i := 0; i < steps; i++ {
		switch n := r.Intn(100); {
		case n < 30:
			m.invite(r)
		case n < 50:
			if c := m.pick(r, func(c *mCall) bool { return !c.answered && !c.cut }); c != nil {
				// Billing starts now; the answer itself may cut the call at
				// once (a budget already exhausted), billing nothing.
				c.answered, c.ans = true, m.now
				m.apply(m.e.Answer(m.now, c.id), nil)
			}
		case n < 68:
			if c := m.pick(r, func(*mCall) bool { return true }); c != nil {
				m.end(c)
			}
		case n < 70:
			if !m.end(&mCall{id: "unknown-" + strconv.Itoa(r.Intn(3))}) {
				break
			}
			t.Fatal("End of an unknown call returned true")
		case n < 85:
			m.advance(r)
			m.apply(m.e.Tick(m.now), nil)
		case n < 90:
			m.apply(m.e.Tick(m.now), nil) // overdue deadlines run under the old limits
			name := propTenants[r.Intn(len(propTenants))]
			tn := m.tenants[name]
			tn.over = randLimits(r, true)
			m.apply(m.e.SetOverrides(m.now, name, tn.over))
			m.retaint(name)
		case n < 92:
			m.apply(m.e.Tick(m.now), nil)
			p := propPlans[r.Intn(len(propPlans))]
			l := randLimits(r, false)
			m.plans[p] = l
			m.apply(m.e.UpsertPlan(m.now, admission.Plan{Name: p, Limits: l, Rates: propRates}))
			for _, name := range propTenants {
				m.retaint(name)
			}
		case n < 95:
			m.apply(m.e.Suspend(m.now, propTenants[r.Intn(len(propTenants))], "manual"))
		case n < 99:
			m.apply(m.e.Resume(m.now, propTenants[r.Intn(len(propTenants))], "manual"))
		default:
			// Jump into a later month.
			m.now = monthOf(m.now).AddDate(0, 1+r.Intn(2), 0).Add(time.Duration(r.Intn(3600)) * time.Second)
			m.apply(m.e.Tick(m.now), nil)
		}
		m.check()
	}
	// Release everything: every admitted call ends (true) exactly once.
	for _, c := range m.all {
		if !c.ended {
			m.end(c)
		}
	}
	for _, c := range m.all {
		if c.endsTrue != 1 {
			t.Fatalf("call %s: End returned true %d times", c.id, c.endsTrue)
		}
	}
	if m.e.ActiveCalls() != 0 {
		t.Fatalf("ActiveCalls = %d after releasing everything", m.e.ActiveCalls())
	}
	if len(m.all) != m.admitted || m.admitted == 0 {
		t.Fatalf("admitted %d, tracked %d", m.admitted, len(m.all))
	}
	t.Logf("stats: %v", m.stats)
}

func monthOf(t time.Time) time.Time {
	y, mo, _ := t.UTC().Date()
	return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
}

func (m *model) advance(r *rand.Rand) {
	switch n := r.Intn(10); {
	case n < 6:
		m.now = m.now.Add(time.Duration(r.Intn(20_000)) * time.Millisecond)
	case n < 9:
		m.now = m.now.Add(time.Duration(r.Intn(300)) * time.Second)
	default:
		m.now = m.now.Add(time.Duration(r.Intn(6)) * time.Hour)
	}
}

func (m *model) pick(r *rand.Rand, ok func(*mCall) bool) *mCall {
	var cs []*mCall
	for _, c := range m.live {
		if !c.ended && ok(c) {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return cs[r.Intn(len(cs))]
}

// eff resolves a count limit the model's way: override, else plan, else -1.
func (m *model) eff(tenant string, f func(*admission.Limits) *int64) int64 {
	tn := m.tenants[tenant]
	if p := f(&tn.over); p != nil {
		return *p
	}
	pl := m.plans[tn.plan]
	if p := f(&pl); p != nil {
		return *p
	}
	return -1
}

func (m *model) hard(tenant string) bool {
	tn := m.tenants[tenant]
	if tn.over.AutoSuspend != nil {
		return *tn.over.AutoSuspend
	}
	if p := m.plans[tn.plan].AutoSuspend; p != nil {
		return *p
	}
	return false
}

// retaint records a limit change: a soft budget, or one whose usage is
// already at or over the new limit, may legitimately end the cycle over it.
func (m *model) retaint(tenant string) {
	tn := m.tenants[tenant]
	secs, spend := m.billed(tenant)
	mins := m.eff(tenant, func(l *admission.Limits) *int64 { return l.MaxMonthlyMinutes })
	money := m.eff(tenant, func(l *admission.Limits) *int64 { return l.MonthlySpendLimit })
	if !m.hard(tenant) || (mins >= 0 && secs >= time.Duration(mins)*time.Minute) || (money >= 0 && spend >= money) {
		tn.tainted = true
	}
}

func (m *model) count(tenant string, f func(*mCall) bool) int64 {
	var n int64
	for _, c := range m.live {
		if !c.ended && !c.emergency && c.tenant == tenant && f(c) {
			n++
		}
	}
	return n
}

func (m *model) invite(r *rand.Rand) {
	tenant := propTenants[r.Intn(len(propTenants))]
	dir := admission.Outbound
	if r.Intn(3) == 0 {
		dir = admission.Inbound
	}
	user := propUsers[r.Intn(len(propUsers))]
	callee := propCallees[r.Intn(len(propCallees))]
	if callee == "112" && r.Intn(4) > 0 {
		callee = "+4420"
	}
	req := admission.CallRequest{CallID: "c" + strconv.Itoa(m.nextID), Tenant: tenant, Direction: dir, Caller: user, Callee: callee}
	if dir == admission.Inbound {
		req.Caller, req.Callee = callee, user // the user is the dialled DID
		if callee == "112" {
			req.Callee = "112"
			user = "112"
		}
	}
	m.nextID++
	before := struct{ total, in, out, user int64 }{
		m.count(tenant, func(*mCall) bool { return true }),
		m.count(tenant, func(c *mCall) bool { return c.dir == admission.Inbound }),
		m.count(tenant, func(c *mCall) bool { return c.dir == admission.Outbound }),
		m.count(tenant, func(c *mCall) bool { return c.user == user }),
	}
	d := m.e.Admit(m.now, req)
	m.apply(d.Output, nil)
	m.stats["reject:"+d.Rejection.Cause.String()]++
	if !d.Admitted {
		if d.Rejection.Cause == admission.CauseNone || d.Rejection.Code == 0 {
			m.t.Fatalf("rejection without cause/code: %+v", d.Rejection)
		}
		if d.Rejection.Cause == admission.CauseCPS && d.Rejection.RetryAfter <= 0 {
			m.t.Fatalf("CPS rejection without Retry-After: %+v", d.Rejection)
		}
		return
	}
	emergency := req.Callee == "112"
	if d.Emergency != emergency {
		m.t.Fatalf("%s: Emergency = %v, want %v", req.CallID, d.Emergency, emergency)
	}
	if !emergency {
		if m.tenants[tenant].suspended {
			m.t.Fatalf("%s admitted while %s is suspended", req.CallID, tenant)
		}
		caps := []struct {
			name string
			cap  int64
			used int64
		}{
			{"max_parallel_calls", m.eff(tenant, func(l *admission.Limits) *int64 { return l.MaxParallelCalls }), before.total},
			{"max_parallel_inbound", m.eff(tenant, func(l *admission.Limits) *int64 { return l.MaxParallelInbound }), before.in},
			{"max_parallel_outbound", m.eff(tenant, func(l *admission.Limits) *int64 { return l.MaxParallelOutbound }), before.out},
		}
		if user == "u0" || user == "u1" {
			caps = append(caps, struct {
				name string
				cap  int64
				used int64
			}{"role parallel", propRoleParallel, before.user})
		}
		for _, c := range caps {
			if c.name == "max_parallel_inbound" && dir != admission.Inbound || c.name == "max_parallel_outbound" && dir != admission.Outbound {
				continue
			}
			if c.cap >= 0 && c.used >= c.cap {
				m.t.Fatalf("%s admitted over %s %d (active %d)", req.CallID, c.name, c.cap, c.used)
			}
		}
	}
	c := &mCall{id: req.CallID, tenant: tenant, dir: dir, user: user, emergency: emergency}
	if !emergency {
		c.rate = rateOf(req.Callee)
	}
	m.calls[c.id] = c
	m.all = append(m.all, c)
	m.live = append(m.live, c)
	m.admitted++
}

func rateOf(callee string) *admission.Rate {
	var best *admission.Rate
	for i := range propRates {
		if strings.HasPrefix(callee, propRates[i].Prefix) && (best == nil || len(propRates[i].Prefix) > len(best.Prefix)) {
			best = &propRates[i]
		}
	}
	return best
}

func (m *model) end(c *mCall) bool {
	o, ok := m.e.End(m.now, c.id)
	m.apply(o, nil)
	mc, known := m.calls[c.id]
	if ok != (known && !mc.ended) {
		m.t.Fatalf("End(%s) = %v, model active = %v", c.id, ok, known && !mc.ended)
	}
	if ok {
		mc.ended, mc.end = true, m.now
		mc.endsTrue++
	}
	return ok
}

// apply folds an engine output into the model.
func (m *model) apply(o admission.Output, err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("unexpected error: %v", err)
	}
	for _, ev := range o.Events {
		m.stats[ev.Type]++
		switch ev.Type {
		case admission.EventSuspended:
			m.tenants[ev.Tenant].suspended = true
		case admission.EventResumed:
			m.tenants[ev.Tenant].suspended = false
		case admission.EventRollover:
			for name, tn := range m.tenants {
				tn.tainted = !m.hard(name)
			}
		}
		if ev.At.After(m.now) {
			m.t.Fatalf("event in the future: %+v (now %v)", ev, m.now)
		}
	}
	// Cuts come in time order; those sharing an instant are checked against
	// the state just before it, then applied.
	for i := 0; i < len(o.Cuts); {
		j := i
		for j < len(o.Cuts) && o.Cuts[j].At.Equal(o.Cuts[i].At) {
			j++
		}
		for _, cut := range o.Cuts[i:j] {
			c, ok := m.calls[cut.CallID]
			switch {
			case !ok || c.ended:
				m.t.Fatalf("cut of an inactive call %s", cut.CallID)
			case c.emergency:
				m.t.Fatalf("emergency call %s cut", cut.CallID)
			case c.cut:
				m.t.Fatalf("call %s cut twice", cut.CallID)
			case cut.At.After(m.now) || (c.answered && cut.At.Before(c.ans)):
				m.t.Fatalf("cut %s at %v (now %v, answered %v)", cut.CallID, cut.At, m.now, c.ans)
			}
			m.checkCutNotEarly(c, cut)
		}
		for _, cut := range o.Cuts[i:j] {
			c := m.calls[cut.CallID]
			c.cut, c.cutAt = true, cut.At
			m.stats["cut:"+cut.Cause.String()]++
		}
		i = j
	}
}

// checkCutNotEarly verifies that a budget cut happens when the budget has
// really run out: usage at the cut instant >= limit (minutes), > limit
// (spend: the increment starting then cannot be paid).
func (m *model) checkCutNotEarly(c *mCall, cut admission.Cut) {
	switch cut.Cause {
	case admission.CauseMinutes:
		l := m.eff(c.tenant, func(l *admission.Limits) *int64 { return l.MaxMonthlyMinutes })
		if secs, _ := m.billedAt(c.tenant, "", cut.At); l < 0 || secs < time.Duration(l)*time.Minute {
			m.t.Fatalf("cut %s at %v: minutes %v under the limit %d", c.id, cut.At, secs, l)
		}
	case admission.CauseSpend:
		l := m.eff(c.tenant, func(l *admission.Limits) *int64 { return l.MonthlySpendLimit })
		if _, spend := m.billedAt(c.tenant, "", cut.At); l < 0 || spend <= l {
			m.t.Fatalf("cut %s at %v: spend %d not over the limit %d", c.id, cut.At, spend, l)
		}
	case admission.CauseRoleMinutes:
		if secs, _ := m.billedAt(c.tenant, c.user, cut.At); secs < propRoleMinutes*time.Minute {
			m.t.Fatalf("cut %s at %v: user %s minutes %v under the role limit", c.id, cut.At, c.user, secs)
		}
	}
}

// billed computes the tenant's seconds and spend in the current month from
// the model's calls: every answered call from its answer (or the month
// start) to its end, its cut instant, or now.
func (m *model) billed(tenant string) (time.Duration, int64) {
	return m.billedAt(tenant, "", m.now)
}

// billedAt is billed as of instant at (<= now), for one user if user != "".
func (m *model) billedAt(tenant, user string, at time.Time) (time.Duration, int64) {
	ms := monthOf(at)
	var secs time.Duration
	var spend int64
	for _, c := range m.live {
		if c.tenant != tenant || c.emergency || !c.answered || c.ans.After(at) || (user != "" && c.user != user) {
			continue
		}
		stop, running := at, true
		if c.ended && !c.end.After(stop) {
			stop, running = c.end, false
		}
		if c.cut && !c.cutAt.After(stop) {
			stop, running = c.cutAt, false
		}
		if stop.After(ms) {
			secs += stop.Sub(later(c.ans, ms))
		}
		if c.rate != nil && stop.After(ms) {
			spend += cumCost(c.rate, c.ans, stop, running) - cumCost(c.rate, c.ans, ms, false)
		}
	}
	return secs, spend
}

func (m *model) emergencyBilled(tenant string) time.Duration {
	ms := monthOf(m.now)
	var d time.Duration
	for _, c := range m.live {
		if c.tenant != tenant || !c.emergency || !c.answered {
			continue
		}
		stop := m.now
		if c.ended {
			stop = c.end
		}
		if stop.After(ms) {
			d += stop.Sub(later(c.ans, ms))
		}
	}
	return d
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// cumCost counts the increments of a call answered at ans that start
// before x (or at x too, when inclusive) and prices them: increment 0
// starts at answer and lasts Initial seconds, the others Subsequent; the
// price is rounded half up (2*p+60)/120 == round(p/60).
func cumCost(r *admission.Rate, ans, x time.Time, inclusive bool) int64 {
	// starts(d) counts the instants ans+I+j*S (j >= 0) before (or at) x.
	var n int64
	switch {
	case x.Before(ans) || (!inclusive && x.Equal(ans)):
		return 0
	default:
		n = 1
		d := x.Sub(ans.Add(time.Duration(r.Initial) * time.Second))
		step := time.Duration(r.Subsequent) * time.Second
		if inclusive && d >= 0 {
			n += int64(d/step) + 1
		} else if !inclusive && d > 0 {
			n += int64((d-1)/step) + 1
		}
	}
	secs := r.Initial + (n-1)*r.Subsequent
	return r.ConnectFee + (r.PerMinute*secs*2+60)/120
}

func (m *model) check() {
	m.t.Helper()
	if mo := monthOf(m.now); !mo.Equal(m.month) {
		m.month = mo
		live := m.live[:0]
		for _, c := range m.live {
			if !c.ended || c.end.After(mo) {
				live = append(live, c)
			}
		}
		m.live = live
	}
	total := 0
	for _, c := range m.live {
		if !c.ended {
			total++
		}
	}
	if got := m.e.ActiveCalls(); got != total {
		m.t.Fatalf("ActiveCalls = %d, model %d", got, total)
	}
	for _, name := range propTenants {
		tn := m.tenants[name]
		want := m.count(name, func(*mCall) bool { return true })
		if got := m.e.Active(name); got != want || got < 0 {
			m.t.Fatalf("%s: Active = %d, model %d", name, got, want)
		}
		if s, _ := m.e.Suspended(name); s != tn.suspended {
			m.t.Fatalf("%s: Suspended = %v, model %v", name, s, tn.suspended)
		}
		u := m.e.Usage(m.now, name)
		secs, spend := m.billed(name)
		if u.Seconds != secs || u.Spend != spend {
			m.t.Fatalf("%s at %v: usage %v / %d, model %v / %d", name, m.now, u.Seconds, u.Spend, secs, spend)
		}
		if em := m.emergencyBilled(name); u.EmergencySeconds != em {
			m.t.Fatalf("%s: emergency seconds %v, model %v", name, u.EmergencySeconds, em)
		}
		if !tn.tainted && m.hard(name) {
			// The exhaustion instant is the first nanosecond at which usage
			// >= limit: k calls sharing the rest overshoot by < k ns.
			if l := m.eff(name, func(l *admission.Limits) *int64 { return l.MaxMonthlyMinutes }); l >= 0 && secs > time.Duration(l)*time.Minute+time.Duration(len(m.all)) {
				m.t.Fatalf("%s: hard minutes budget %d exceeded: %v", name, l, secs)
			}
			if l := m.eff(name, func(l *admission.Limits) *int64 { return l.MonthlySpendLimit }); l >= 0 && spend > l {
				m.t.Fatalf("%s: hard spend budget %d exceeded: %d", name, l, spend)
			}
		}
		for _, user := range []string{"u0", "u1"} {
			if d := m.e.UserUsage(m.now, name, user); d > propRoleMinutes*time.Minute+propRoleParallel {
				m.t.Fatalf("%s/%s: role minutes exceeded: %v", name, user, d)
			}
		}
	}
	if d, ok := m.e.NextDeadline(); !ok || !d.After(m.now) {
		m.t.Fatalf("NextDeadline %v (ok %v) not after now %v", d, ok, m.now)
	}
}
