package admission

import (
	"fmt"
	"time"
)

// planState is the engine's copy of a Plan. Tenants point at it, so
// updating a plan in place takes effect for all its tenants at once.
type planState struct {
	name   string
	limits limitSet
}

// tenantState is the engine's copy of a Tenant plus its counters. It is
// never removed once created, so call records may point at it.
type tenantState struct {
	name      string
	plan      *planState
	overrides limitSet
	active    int64 // active (admitted, not released) calls
}

// maxParallelCalls returns the effective max_parallel_calls.
func (t *tenantState) maxParallelCalls() limit {
	return resolve(t.overrides.maxParallelCalls, t.plan.limits.maxParallelCalls)
}

// Engine is the admission state machine: plans, tenants, limit resolution
// and the active-call counters. It does no I/O, never reads the clock and
// is not safe for concurrent use; wrap it in a Runner to share it.
type Engine struct {
	rejects [numCauses]Reject
	plans   map[string]*planState
	tenants map[string]*tenantState
	calls   map[string]call
}

// NewEngine returns an empty engine. rejects overrides DefaultRejects per
// cause; causes missing from it (or a nil map) keep their defaults.
func NewEngine(rejects map[Cause]Reject) *Engine {
	e := &Engine{
		plans:   make(map[string]*planState),
		tenants: make(map[string]*tenantState),
		calls:   make(map[string]call),
	}
	for c, r := range DefaultRejects() {
		e.rejects[c] = r
	}
	for c, r := range rejects {
		if c > CauseNone && c < numCauses {
			e.rejects[c] = r
		}
	}
	return e
}

// UpsertPlan creates or replaces the plan named p.Name. A replaced plan's
// new limits apply at once to every tenant on it that does not override
// them; running calls are never released. It returns an error wrapping
// ErrInvalidLimit, naming the field, for a limit below -1.
func (e *Engine) UpsertPlan(p Plan) error {
	if p.Name == "" {
		return fmt.Errorf("%w: plan", ErrEmptyName)
	}
	if err := p.Limits.validate(fmt.Sprintf("plan %q", p.Name)); err != nil {
		return err
	}
	if ps, ok := e.plans[p.Name]; ok {
		ps.limits = limitSetOf(p.Limits)
		return nil
	}
	e.plans[p.Name] = &planState{name: p.Name, limits: limitSetOf(p.Limits)}
	return nil
}

// UpsertTenant creates or replaces the tenant named t.Name: its plan and
// all its overrides are set to t's (nil overrides inherit). The plan must
// exist (ErrUnknownPlan) and overrides must be valid (ErrInvalidLimit). A
// replaced tenant keeps its active calls.
func (e *Engine) UpsertTenant(t Tenant) error {
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
	if ts, ok := e.tenants[t.Name]; ok {
		ts.plan = ps
		ts.overrides = limitSetOf(t.Overrides)
		return nil
	}
	e.tenants[t.Name] = &tenantState{name: t.Name, plan: ps, overrides: limitSetOf(t.Overrides)}
	return nil
}

// ResetTenant clears every override of the tenant, so all its limits come
// from its plan again. It returns an error wrapping ErrUnknownTenant for an
// unknown tenant.
func (e *Engine) ResetTenant(name string) error {
	ts, ok := e.tenants[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownTenant, name)
	}
	ts.overrides = limitSet{}
	return nil
}

// EffectiveLimits resolves the tenant's limits: the override where set,
// else the plan's value. A limit unset in both stays nil (= unlimited). The
// returned pointers are fresh copies. It returns an error wrapping
// ErrUnknownTenant for an unknown tenant.
func (e *Engine) EffectiveLimits(tenant string) (Limits, error) {
	ts, ok := e.tenants[tenant]
	if !ok {
		return Limits{}, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	return limitSet{maxParallelCalls: ts.maxParallelCalls()}.limits(), nil
}

// Admit decides whether the call may start and, when admitted, counts it
// as active from now. It is idempotent by CallID: a CallID that is already
// active is admitted again without being counted twice (even if the
// tenant's cap has since been lowered). A refused call is not recorded.
//
// The effective max_parallel_calls decides: unset or -1 admits, 0 rejects
// every call, N rejects when the tenant already has N (or more) active
// calls, with CauseParallelCalls, Limit=N and Usage=active.
func (e *Engine) Admit(now time.Time, req CallRequest) Decision {
	if _, ok := e.calls[req.CallID]; ok {
		return Decision{Admitted: true}
	}
	ts, ok := e.tenants[req.Tenant]
	if !ok {
		return Decision{Rejection: e.reject(CauseUnknownTenant, 0, 0)}
	}
	if l := ts.maxParallelCalls(); l.set && l.v >= 0 && ts.active >= l.v {
		return Decision{Rejection: e.reject(CauseParallelCalls, l.v, ts.active)}
	}
	ts.active++
	e.calls[req.CallID] = call{tenant: ts, admittedAt: now, direction: req.Direction}
	return Decision{Admitted: true}
}

func (e *Engine) reject(c Cause, limit, usage int64) Rejection {
	r := e.rejects[c]
	return Rejection{Cause: c, Code: r.Code, Reason: r.Reason, Limit: limit, Usage: usage}
}

// Release frees the slot of the call. It returns true only the first time
// for an active CallID, and false for an unknown or already released one,
// so it is safe to call from every path that ends a call. Counters never go
// negative. now is the release time (reserved for metering).
func (e *Engine) Release(now time.Time, callID string) bool {
	c, ok := e.calls[callID]
	if !ok {
		return false
	}
	delete(e.calls, callID)
	if c.tenant.active > 0 {
		c.tenant.active--
	}
	return true
}

// Active returns the number of active calls of the tenant (0 for an
// unknown tenant).
func (e *Engine) Active(tenant string) int64 {
	if ts, ok := e.tenants[tenant]; ok {
		return ts.active
	}
	return 0
}

// ActiveCalls returns the number of active calls across all tenants.
func (e *Engine) ActiveCalls() int {
	return len(e.calls)
}
