package admission

import "time"

// SetJournal makes the runner hand the durable effect of every step to j
// (nil: none). Call it before the runner is shared.
func (r *Runner) SetJournal(j Journal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.journal = j
	r.e.journaling = j != nil
}

// record hands the step's durable effects and out's events to the
// journal. Called with the lock held, after every engine step.
func (r *Runner) record(out *Output) {
	if r.journal == nil {
		return
	}
	r.e.collect(&r.step, r.e.now)
	r.step.Events = append(r.step.Events[:0], out.Events...)
	if !r.step.Empty() {
		r.journal.Record(&r.step)
	}
	clear(r.step.Answered) // drop payload references
}

// AnswerWith is Answer; payload is stored with the call's CallRecord
// (the SIP layer's dialog data, used to tear the call down after a crash).
func (r *Runner) AnswerWith(now time.Time, callID string, payload []byte) Ready {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready(Decision{Output: r.e.answer(now, callID, payload)})
}

// Restore is Engine.Restore.
func (r *Runner) Restore(s Snapshot) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.Restore(s) })
}

// DeletePlan is Engine.DeletePlan.
func (r *Runner) DeletePlan(now time.Time, name string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.DeletePlan(now, name) })
}

// DeleteTenant is Engine.DeleteTenant.
func (r *Runner) DeleteTenant(now time.Time, name string) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.DeleteTenant(now, name) })
}

// Overrides is Engine.Overrides under the lock.
func (r *Runner) Overrides(tenant string) (Limits, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Overrides(tenant)
}

// Cycle is Engine.Cycle under the lock.
func (r *Runner) Cycle() (start, end time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Cycle()
}

// RoleUsages is Engine.RoleUsages under the lock.
func (r *Runner) RoleUsages(now time.Time, tenant string) []RoleUsage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.RoleUsages(now, tenant)
}

// Tenants is Engine.Tenants under the lock.
func (r *Runner) Tenants() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Tenants()
}

// NearCap is Engine.NearCap under the lock.
func (r *Runner) NearCap() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.NearCap()
}

// SuspendState is Engine.SuspendState under the lock.
func (r *Runner) SuspendState(tenant string) (suspended bool, reason, capName string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.SuspendState(tenant)
}

// SuspendedSince is Engine.SuspendedSince under the lock.
func (r *Runner) SuspendedSince(tenant string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.SuspendedSince(tenant)
}
