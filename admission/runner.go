package admission

import (
	"slices"
	"sync"
	"time"
)

// Runner owns an Engine and serialises access to it with one mutex, so it
// may be shared by many goroutines; it is the only way into the engine.
// After NewRunner the Engine must not be used directly.
//
// Every call that changes state returns, computed under the lock, one
// Ready value (as etcd-io/raft's Ready): the decision, the events, the
// cuts and the next deadline with a generation number. The durable step
// of the call goes to the Journal under the same lock, so the store sees
// steps in engine order. The caller applies every field of the Ready —
// even when the call also returns an error, since the step still ran and
// deadlines that fell due are in it — and runs one timer: it re-arms it at
// Ready.Deadline only when Ready.Gen is newer than the one it armed, and
// calls Tick when it fires. No effect is reachable any other way.
type Runner struct {
	mu      sync.Mutex
	e       *Engine
	journal Journal
	step    Step   // reused for every Journal.Record
	gen     uint64 // generation of the last Ready
}

// Ready is everything one runner call produced.
type Ready struct {
	// Decision is Admit's answer (Admitted is false for every other call);
	// its Output holds the events and cuts of the step, in order.
	Decision
	// Deadline is the engine's next deadline after the step: a budget
	// running out, a threshold crossing, a re-evaluation or the next cycle
	// start. The caller calls Tick then.
	Deadline time.Time
	// Gen increases with every Ready of the runner. A Ready applied after
	// a newer one (goroutines race after the lock) must not move the
	// timer: its Deadline may be stale.
	Gen uint64
}

// ready journals the step and wraps d with the next deadline. Called with
// the lock held, once per call.
func (r *Runner) ready(d Decision) Ready {
	r.record(&d.Output)
	r.gen++
	at, _ := r.e.NextDeadline()
	return Ready{Decision: d, Deadline: at, Gen: r.gen}
}

// do runs one engine step that returns an Output under the lock.
func (r *Runner) do(f func() (Output, error)) (Ready, error) { return r.doWithout(f, nil) }

// doWithout is do, with the events drop reports left out of the step
// (nil: none): Replica's steps.
func (r *Runner) doWithout(f func() (Output, error), drop func(Event) bool) (Ready, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := f()
	if drop != nil {
		out.Events = slices.DeleteFunc(out.Events, drop)
	}
	return r.ready(Decision{Output: out}), err
}

// UpsertPlan is Engine.UpsertPlan.
func (r *Runner) UpsertPlan(now time.Time, p Plan) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.UpsertPlan(now, p) })
}

// UpsertTenant is Engine.UpsertTenant.
func (r *Runner) UpsertTenant(now time.Time, t Tenant) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.UpsertTenant(now, t) })
}

// CreateTenant is Engine.CreateTenant.
func (r *Runner) CreateTenant(now time.Time, name, plan string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.CreateTenant(now, name, plan) })
}

// SetOverrides is Engine.SetOverrides.
func (r *Runner) SetOverrides(now time.Time, tenant string, l Limits) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.SetOverrides(now, tenant, l) })
}

// ResetTenant is Engine.ResetTenant.
func (r *Runner) ResetTenant(now time.Time, tenant string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.ResetTenant(now, tenant) })
}

// Suspend is Engine.Suspend.
func (r *Runner) Suspend(now time.Time, tenant, reason string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.Suspend(now, tenant, reason) })
}

// Resume is Engine.Resume.
func (r *Runner) Resume(now time.Time, tenant, reason string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.Resume(now, tenant, reason) })
}

// Admit is Engine.Admit.
func (r *Runner) Admit(now time.Time, req CallRequest) Ready {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready(r.e.Admit(now, req))
}

// Answer is Engine.Answer.
func (r *Runner) Answer(now time.Time, callID string) Ready {
	return r.AnswerWith(now, callID, nil)
}

// End is Engine.End; ok is true only the first time for an active call.
func (r *Runner) End(now time.Time, callID string) (rd Ready, ok bool) {
	return r.EndAt(now, callID, time.Time{})
}

// EndAt is Engine.EndAt: End with billing stopped at billedEnd.
func (r *Runner) EndAt(now time.Time, callID string, billedEnd time.Time) (rd Ready, ok bool) {
	return r.EndWith(now, callID, End{BilledEnd: billedEnd})
}

// Tick is Engine.Tick.
func (r *Runner) Tick(now time.Time) Ready {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready(Decision{Output: r.e.Tick(now)})
}

// NewRunner returns a Runner owning e.
func NewRunner(e *Engine) *Runner {
	return &Runner{e: e}
}

// EffectiveLimits is Engine.EffectiveLimits under the lock.
func (r *Runner) EffectiveLimits(tenant string) (Limits, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.EffectiveLimits(tenant)
}

// Suspended is Engine.Suspended under the lock.
func (r *Runner) Suspended(tenant string) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Suspended(tenant)
}

// Active is Engine.Active under the lock.
func (r *Runner) Active(tenant string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Active(tenant)
}

// ActiveCalls is Engine.ActiveCalls under the lock.
func (r *Runner) ActiveCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.ActiveCalls()
}

// Usage is Engine.Usage under the lock.
func (r *Runner) Usage(now time.Time, tenant string) Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Usage(now, tenant)
}

// UserUsage is Engine.UserUsage under the lock.
func (r *Runner) UserUsage(now time.Time, tenant, user string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.UserUsage(now, tenant, user)
}

// EndWith is Engine.EndWith.
func (r *Runner) EndWith(now time.Time, callID string, end End) (rd Ready, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, ok := r.e.EndWith(now, callID, end)
	return r.ready(Decision{Output: out}), ok
}

// Reject is Engine.Reject.
func (r *Runner) Reject(now time.Time, req CallRequest, cause string, code int) Ready {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready(Decision{Output: r.e.Reject(now, req, cause, code)})
}
