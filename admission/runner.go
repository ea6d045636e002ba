package admission

import (
	"sync"
	"time"
)

// Runner owns an Engine and serialises access to it with one mutex, so it
// may be shared by many goroutines. Its methods mirror the Engine's, each
// taking the lock. After NewRunner the Engine must not be used directly.
// The caller runs its own timer: after every call that returns effects it
// re-arms the timer at NextDeadline and calls Tick when it fires.
type Runner struct {
	mu      sync.Mutex
	e       *Engine
	journal Journal
	step    Step // reused for every Journal.Record
}

// NewRunner returns a Runner owning e.
func NewRunner(e *Engine) *Runner {
	return &Runner{e: e}
}

// UpsertPlan is Engine.UpsertPlan under the lock.
func (r *Runner) UpsertPlan(now time.Time, p Plan) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.UpsertPlan(now, p)
	r.record(&out)
	return out, err
}

// UpsertTenant is Engine.UpsertTenant under the lock.
func (r *Runner) UpsertTenant(now time.Time, t Tenant) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.UpsertTenant(now, t)
	r.record(&out)
	return out, err
}

// CreateTenant is Engine.CreateTenant under the lock.
func (r *Runner) CreateTenant(now time.Time, name, plan string) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.CreateTenant(now, name, plan)
	r.record(&out)
	return out, err
}

// SetOverrides is Engine.SetOverrides under the lock.
func (r *Runner) SetOverrides(now time.Time, tenant string, l Limits) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.SetOverrides(now, tenant, l)
	r.record(&out)
	return out, err
}

// ResetTenant is Engine.ResetTenant under the lock.
func (r *Runner) ResetTenant(now time.Time, tenant string) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.ResetTenant(now, tenant)
	r.record(&out)
	return out, err
}

// EffectiveLimits is Engine.EffectiveLimits under the lock.
func (r *Runner) EffectiveLimits(tenant string) (Limits, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.EffectiveLimits(tenant)
}

// Suspend is Engine.Suspend under the lock.
func (r *Runner) Suspend(now time.Time, tenant, reason string) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.Suspend(now, tenant, reason)
	r.record(&out)
	return out, err
}

// Resume is Engine.Resume under the lock.
func (r *Runner) Resume(now time.Time, tenant, reason string) (Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.e.Resume(now, tenant, reason)
	r.record(&out)
	return out, err
}

// Suspended is Engine.Suspended under the lock.
func (r *Runner) Suspended(tenant string) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Suspended(tenant)
}

// Admit is Engine.Admit under the lock.
func (r *Runner) Admit(now time.Time, req CallRequest) Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.e.Admit(now, req)
	r.record(&d.Output)
	return d
}

// Answer is Engine.Answer under the lock.
func (r *Runner) Answer(now time.Time, callID string) Output {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.e.Answer(now, callID)
	r.record(&out)
	return out
}

// End is Engine.End under the lock.
func (r *Runner) End(now time.Time, callID string) (Output, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, ok := r.e.End(now, callID)
	r.record(&out)
	return out, ok
}

// Tick is Engine.Tick under the lock.
func (r *Runner) Tick(now time.Time) Output {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.e.Tick(now)
	r.record(&out)
	return out
}

// NextDeadline is Engine.NextDeadline under the lock.
func (r *Runner) NextDeadline() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.NextDeadline()
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
