package admission

import (
	"fmt"
	"path"
	"sort"
	"time"
)

// planState is the engine's copy of a Plan. Tenants point at it, so
// updating a plan in place takes effect for all its tenants at once.
type planState struct {
	name   string
	limits Limits             // deep copy
	rates  prefixTable[*Rate] // rows are immutable once stored
}

// roleState is the engine's copy of a Role. Count limits use -1 for
// unlimited.
type roleState struct {
	name     string
	parallel int64
	minutes  int64
	capName  string
}

type rolePattern struct {
	pat  string
	role int
}

// tenantState is the engine's copy of a Tenant plus its counters, budgets
// and suspension state. It is never removed once created, so calls, users
// and budgets may point at it.
type tenantState struct {
	name      string
	plan      *planState
	overrides Limits // deep copy
	eff       effective

	roles     []roleState
	roleUsers map[string]int // explicit user -> index in roles
	rolePats  []rolePattern
	rolesGen  uint64 // changes whenever roles change; user caches compare it

	active, activeIn, activeOut int64   // non-emergency calls admitted, not ended
	emergencyActive             int64   // emergency calls admitted, not ended
	calls                       []*call // every active call (emergency ones too)
	users                       map[string]*userState

	tat   time.Time  // CPS: GCRA theoretical arrival time
	lease leaseState // cluster mode: the capacity this node holds

	minutes budget     // max_monthly_minutes
	spend   budget     // monthly_spend_limit
	meter   spendMeter // the running spend of the drawing calls
	// bounded: cluster mode, the others' usage given to minutes and
	// spend is an upper bound for a node that went silent, not what it
	// published (SetClusterUsage). A budget that runs out then cuts its
	// calls and refuses new ones, but reports nothing and does not
	// suspend: it may not really have run out.
	bounded bool
	emerg   accrual // billed time of emergency calls this cycle

	suspended     bool
	suspendReason string
	suspendCap    string    // cap that suspended the tenant automatically; "" = manual
	suspendedAt   time.Time // when the suspension began (durable; zero in records of older versions)

	settled      time.Duration // billed time of settled calls this cycle (durable)
	settledEmerg time.Duration // billed time of settled emergency calls this cycle
	durMark      bool          // queued in Engine.durTenants
}

// userState is a user identity inside a tenant that a role caps (parallel
// calls or minutes): its active calls and its minutes this cycle. Users no
// role caps are not tracked, so memory and store rows do not grow with the
// number of distinct callers; a role assigned mid-cycle counts from then.
type userState struct {
	id      string
	t       *tenantState
	active  int64   // non-emergency calls admitted, not ended
	calls   []*call // its active calls (call.uidx indexes them)
	role    *roleState
	roleGen uint64 // t.rolesGen that role was resolved for
	minutes budget // the role's max_monthly_minutes, per user

	settled time.Duration // billed time of settled calls this cycle (durable)
	durMark bool          // queued in Engine.durUsers
	bounded bool          // as tenantState.bounded, for the role's minutes
}

// roleFor returns the user's role (nil: none), cached until the tenant's
// roles change.
func (u *userState) roleFor() *roleState {
	if u.roleGen != u.t.rolesGen {
		u.role = u.t.roleOf(u.id)
		u.roleGen = u.t.rolesGen
	}
	return u.role
}

// caps reports whether the role caps anything (a nil role caps nothing).
func (r *roleState) caps() bool {
	return r != nil && (r.parallel >= 0 || r.minutes >= 0)
}

// roleOf resolves the role of a user identity: explicit lists first, then
// patterns in order.
func (t *tenantState) roleOf(user string) *roleState {
	if i, ok := t.roleUsers[user]; ok {
		return &t.roles[i]
	}
	for _, p := range t.rolePats {
		if ok, _ := path.Match(p.pat, user); ok {
			return &t.roles[p.role]
		}
	}
	return nil
}

// destinationEnabled reports whether class is enabled for the tenant: the
// tenant's entry wins, then the plan's, else enabled.
func (t *tenantState) destinationEnabled(class string) bool {
	if v, ok := t.overrides.Destinations[class]; ok {
		return v
	}
	if v, ok := t.plan.limits.Destinations[class]; ok {
		return v
	}
	return true
}

// Engine is the admission state machine: plans, tenants, roles, limit
// resolution, counters, budgets, deadlines, thresholds and the suspension
// state machine. It does no I/O, never reads the clock and is not safe for
// concurrent use; wrap it in a Runner to share it.
type Engine struct {
	rejects          [numCauses]Reject
	classes          prefixTable[string]
	emergency        map[string]struct{}
	resumeOnRollover bool
	cluster          bool
	defaults         Limits

	plans   map[string]*planState
	tenants map[string]*tenantState
	order   []*tenantState // creation order: deterministic iteration
	calls   map[string]*call
	free    []*call // recycled call records

	heap     deadlineHeap
	dirty    []*budget // budgets whose deadline must be recomputed
	scratch  []*call
	simGen   uint64    // spend replay generation
	simSaved []simSave // reused by spendReplay
	seq      uint64    // budget and call sequence numbers
	gen      uint64    // role generations

	started    bool
	now        time.Time // high-water mark of the times passed in
	cycleStart time.Time
	cycleEnd   time.Time

	journaling bool // collect the durable effects below (a Runner has a Journal)
	dur        durable
}

// NewEngine returns an empty engine with the given settings. Rejects
// override DefaultRejects per cause; causes missing from it keep their
// defaults.
func NewEngine(s Settings) *Engine {
	e := &Engine{
		emergency:        make(map[string]struct{}, len(s.EmergencyNumbers)),
		resumeOnRollover: s.ResumeOnRollover,
		cluster:          s.Cluster,
		defaults:         s.TenantDefaults.clone(),
		plans:            make(map[string]*planState),
		tenants:          make(map[string]*tenantState),
		calls:            make(map[string]*call),
	}
	for c, r := range DefaultRejects() {
		e.rejects[c] = r
	}
	for c, r := range s.Rejects {
		if c > CauseNone && c < numCauses {
			e.rejects[c] = r
		}
	}
	// A prefix in several classes goes to the class that sorts first:
	// visit classes in reverse order so the first one is stored last.
	names := make([]string, 0, len(s.DestinationClasses))
	for c := range s.DestinationClasses {
		names = append(names, c)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, c := range names {
		for _, p := range s.DestinationClasses[c] {
			e.classes.add(p, c)
		}
	}
	for _, n := range s.EmergencyNumbers {
		e.emergency[n] = struct{}{}
	}
	return e
}

// UpsertPlan creates or replaces the plan named p.Name. A replaced plan's
// limits apply at once to every tenant on it that does not override them
// (deadlines are recomputed; running calls are never released); its rate
// table applies to calls admitted from now on. It returns an error wrapping
// ErrEmptyName, ErrInvalidLimit or ErrInvalidRate.
func (e *Engine) UpsertPlan(now time.Time, p Plan) (Output, error) {
	var out Output
	now = e.step(now, &out)
	if p.Name == "" {
		return out, fmt.Errorf("%w: plan", ErrEmptyName)
	}
	if err := p.Limits.validate(fmt.Sprintf("plan %q", p.Name)); err != nil {
		return out, err
	}
	if err := ValidateRates("rates", p.Rates); err != nil {
		return out, fmt.Errorf("plan %q: %w", p.Name, err)
	}
	ps, ok := e.plans[p.Name]
	if !ok {
		ps = &planState{name: p.Name}
		e.plans[p.Name] = ps
	}
	ps.limits = p.Limits.clone()
	ps.rates = prefixTable[*Rate]{}
	rows := make([]Rate, len(p.Rates))
	copy(rows, p.Rates)
	for i := range rows {
		ps.rates.add(rows[i].Prefix, &rows[i])
	}
	for _, t := range e.order {
		if t.plan == ps && e.limitsChanged(t, false) {
			e.limitsEvent(t, now, &out)
		}
	}
	e.settle(now, &out)
	return out, nil
}

// UpsertTenant creates or replaces the tenant named t.Name: its plan, all
// its overrides (nil fields inherit) and its roles. A replaced tenant keeps
// its counters, calls, usage and suspension; its deadlines are recomputed
// at once. It returns an error wrapping ErrEmptyName, ErrUnknownPlan,
// ErrInvalidLimit or ErrInvalidRole.
func (e *Engine) UpsertTenant(now time.Time, t Tenant) (Output, error) {
	var out Output
	now = e.step(now, &out)
	if err := e.upsertTenant(now, t, &out); err != nil {
		return out, err
	}
	e.settle(now, &out)
	return out, nil
}

// CreateTenant creates a tenant on plan with its overrides pre-filled from
// Settings.TenantDefaults and no roles. It returns an error wrapping
// ErrTenantExists for a name in use, or as UpsertTenant.
func (e *Engine) CreateTenant(now time.Time, name, plan string) (Output, error) {
	var out Output
	now = e.step(now, &out)
	if _, ok := e.tenants[name]; ok {
		return out, fmt.Errorf("%w %q", ErrTenantExists, name)
	}
	if err := e.upsertTenant(now, Tenant{Name: name, Plan: plan, Overrides: e.defaults}, &out); err != nil {
		return out, err
	}
	e.settle(now, &out)
	return out, nil
}

// upsertTenant reports a limits.changed for an existing tenant whose
// effective limits changed (a new tenant's limits are not a change).
func (e *Engine) upsertTenant(now time.Time, t Tenant, out *Output) error {
	if t.Name == "" {
		return fmt.Errorf("%w: tenant", ErrEmptyName)
	}
	ps, ok := e.plans[t.Plan]
	if !ok {
		return fmt.Errorf("%w %q (tenant %q)", ErrUnknownPlan, t.Plan, t.Name)
	}
	if err := t.Overrides.validate(fmt.Sprintf("tenant %q", t.Name)); err != nil {
		return err
	}
	if err := ValidateRoles("roles", t.Roles); err != nil {
		return fmt.Errorf("tenant %q: %w", t.Name, err)
	}
	ts, existed := e.tenants[t.Name]
	if !existed {
		ts = e.newTenant(now, t.Name)
	}
	ts.plan = ps
	ts.overrides = t.Overrides.clone()
	e.setRoles(ts, t.Roles)
	if e.limitsChanged(ts, true) && existed {
		e.limitsEvent(ts, now, out)
	}
	return nil
}

// limitsEvent reports the tenant's new effective limits.
func (e *Engine) limitsEvent(ts *tenantState, now time.Time, out *Output) {
	l := ts.eff.limits(nil)
	out.Events = append(out.Events, Event{Type: EventLimits, Tenant: ts.name, At: now, Limits: &l})
}

func (e *Engine) newTenant(now time.Time, name string) *tenantState {
	ts := &tenantState{name: name, users: make(map[string]*userState)}
	e.initBudget(&ts.minutes, kindMinutes, ts, nil, now)
	e.initBudget(&ts.spend, kindSpend, ts, nil, now)
	ts.emerg.at = now
	e.tenants[name] = ts
	e.order = append(e.order, ts)
	return ts
}

// setRoles replaces the tenant's roles; users re-resolve their role lazily.
func (e *Engine) setRoles(ts *tenantState, roles []Role) {
	e.gen++
	ts.rolesGen = e.gen
	ts.roles = make([]roleState, len(roles))
	ts.roleUsers = make(map[string]int)
	ts.rolePats = ts.rolePats[:0]
	for i, r := range roles {
		ts.roles[i] = roleState{
			name:     r.Name,
			parallel: countOrUnlimited(r.MaxParallelCalls),
			minutes:  countOrUnlimited(r.MaxMonthlyMinutes),
			capName:  RoleMinutesCap(r.Name),
		}
		for _, u := range r.Users {
			if _, dup := ts.roleUsers[u]; !dup {
				ts.roleUsers[u] = i
			}
		}
		for _, p := range r.Patterns {
			ts.rolePats = append(ts.rolePats, rolePattern{pat: p, role: i})
		}
	}
}

func countOrUnlimited(p *int64) int64 {
	if p == nil {
		return unlimited
	}
	return *p
}

// limitsChanged re-resolves the tenant's effective limits and schedules
// the recomputation of its deadlines: the tenant's budgets always, its
// users' role budgets only when roles changed (users) or the alert
// threshold they share with the tenant did, so a limit change costs
// O(log n) whatever the number of users. It reports whether the
// effective limits changed.
func (e *Engine) limitsChanged(ts *tenantState, users bool) (changed bool) {
	old := ts.eff
	threshold := ts.eff.threshold
	ts.eff = resolveLimits(&ts.overrides, &ts.plan.limits)
	changed = ts.eff != old
	e.leaseLimitsChanged(ts, &old, users)
	e.limitChanged(&ts.minutes)
	e.limitChanged(&ts.spend)
	if !users && ts.eff.threshold == threshold {
		return changed
	}
	// Recomputation emits nothing and the heap breaks ties by sequence
	// number, so map order does not matter here.
	for _, u := range ts.users {
		e.limitChanged(&u.minutes)
	}
	return changed
}

func (e *Engine) limitChanged(b *budget) {
	b.limitChanged = true
	e.markDirty(b)
}

// SetOverrides replaces the tenant's overrides with l (nil fields
// inherit). Deadlines are recomputed at once: a raised cap moves them
// later; a cap lowered below current usage cuts nothing and suspends
// nobody here — the tenant trips on its next call or charge.
func (e *Engine) SetOverrides(now time.Time, tenant string, l Limits) (Output, error) {
	return e.onTenant(now, tenant, func(ts *tenantState, now time.Time, out *Output) error {
		if err := l.validate(fmt.Sprintf("tenant %q", tenant)); err != nil {
			return err
		}
		ts.overrides = l.clone()
		if e.limitsChanged(ts, false) {
			e.limitsEvent(ts, now, out)
		}
		return nil
	})
}

// ResetTenant clears every override of the tenant ("reset to defaults"):
// its overrides become Settings.TenantDefaults again. Roles are kept.
func (e *Engine) ResetTenant(now time.Time, tenant string) (Output, error) {
	return e.onTenant(now, tenant, func(ts *tenantState, now time.Time, out *Output) error {
		ts.overrides = e.defaults.clone()
		if e.limitsChanged(ts, false) {
			e.limitsEvent(ts, now, out)
		}
		return nil
	})
}

// onTenant runs one engine step that changes a tenant: roll time forward
// to now, apply f to the tenant, then settle deadlines and effects. It
// returns an error wrapping ErrUnknownTenant for an unknown name.
func (e *Engine) onTenant(now time.Time, tenant string, f func(ts *tenantState, now time.Time, out *Output) error) (Output, error) {
	var out Output
	now = e.step(now, &out)
	ts, ok := e.tenants[tenant]
	if !ok {
		return out, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	if err := f(ts, now, &out); err != nil {
		return out, err
	}
	e.settle(now, &out)
	return out, nil
}

// EffectiveLimits returns the tenant's fully resolved limits: the override
// where set, else the plan's value; unlimited counts are nil; the alert
// threshold (default 80), auto_suspend (default false) are always set, and
// CPSBurst is set whenever MaxCallsPerSecond is. Destinations merges the
// plan's and the tenant's entries. The result shares no memory with the
// engine.
func (e *Engine) EffectiveLimits(tenant string) (Limits, error) {
	ts, ok := e.tenants[tenant]
	if !ok {
		return Limits{}, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	var dest map[string]bool
	if len(ts.plan.limits.Destinations)+len(ts.overrides.Destinations) > 0 {
		dest = make(map[string]bool)
		for k, v := range ts.plan.limits.Destinations {
			dest[k] = v
		}
		for k, v := range ts.overrides.Destinations {
			dest[k] = v
		}
	}
	return ts.eff.limits(dest), nil
}

// Active returns the number of active non-emergency calls of the tenant
// (the count the parallel caps apply to); 0 for an unknown tenant.
func (e *Engine) Active(tenant string) int64 {
	if ts, ok := e.tenants[tenant]; ok {
		return ts.active
	}
	return 0
}

// ActiveCalls returns the number of admitted, not yet ended calls across
// all tenants, emergency calls included.
func (e *Engine) ActiveCalls() int {
	return len(e.calls)
}

// Suspended reports whether the tenant is suspended, and why: the manual
// reason, or "<cap> reached" for an automatic suspension.
func (e *Engine) Suspended(tenant string) (bool, string) {
	ts, ok := e.tenants[tenant]
	if !ok || !ts.suspended {
		return false, ""
	}
	return true, ts.suspendReason
}
