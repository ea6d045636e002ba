package admission

import (
	"sync"
	"time"
)

// Runner owns an Engine and serialises access to it with a mutex, so it may
// be shared by many goroutines. Its methods mirror the Engine's, each
// taking the lock. After NewRunner the Engine must not be used directly.
type Runner struct {
	mu sync.Mutex
	e  *Engine
}

// NewRunner returns a Runner owning e.
func NewRunner(e *Engine) *Runner {
	return &Runner{e: e}
}

// Admit is Engine.Admit under the lock.
func (r *Runner) Admit(now time.Time, req CallRequest) Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Admit(now, req)
}

// Release is Engine.Release under the lock.
func (r *Runner) Release(now time.Time, callID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Release(now, callID)
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

// UpsertPlan is Engine.UpsertPlan under the lock.
func (r *Runner) UpsertPlan(p Plan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.UpsertPlan(p)
}

// UpsertTenant is Engine.UpsertTenant under the lock.
func (r *Runner) UpsertTenant(t Tenant) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.UpsertTenant(t)
}

// ResetTenant is Engine.ResetTenant under the lock.
func (r *Runner) ResetTenant(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.ResetTenant(name)
}

// EffectiveLimits is Engine.EffectiveLimits under the lock.
func (r *Runner) EffectiveLimits(tenant string) (Limits, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.EffectiveLimits(tenant)
}
