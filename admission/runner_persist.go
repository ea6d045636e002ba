package admission

import "time"

// SetJournal makes the runner hand the durable effect of every step to j
// (nil: none). Call it before the runner is shared.
func (r *Runner) SetJournal(j Journal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	panic("TODO")
}

// AnswerWith is Answer; payload is stored with the call's CallRecord.
func (r *Runner) AnswerWith(now time.Time, callID string, payload []byte) Output {
	panic("TODO")
}

// Restore rebuilds counters and suspensions from a snapshot and settles
// the snapshot's calls (billed up to s.At, released). Plans and tenants
// must be upserted first. The caller tears the calls down.
func (r *Runner) Restore(s Snapshot) (Output, error) {
	panic("TODO")
}

// DeletePlan removes a plan no tenant is on (ErrPlanInUse otherwise).
func (r *Runner) DeletePlan(now time.Time, name string) error { panic("TODO") }

// DeleteTenant removes a tenant without active calls (ErrTenantBusy
// otherwise); its counters are forgotten.
func (r *Runner) DeleteTenant(now time.Time, name string) error { panic("TODO") }

// Overrides returns the tenant's overrides as set (nil = inherit).
func (r *Runner) Overrides(tenant string) (Limits, error) { panic("TODO") }

// Cycle returns the current billing cycle [start, end).
func (r *Runner) Cycle() (start, end time.Time) { panic("TODO") }

// RoleUsages returns the users of the tenant that are on a role with a
// minutes cap and have usage this cycle, sorted by user.
func (r *Runner) RoleUsages(now time.Time, tenant string) []RoleUsage { panic("TODO") }

// Tenants returns the names of all tenants, sorted.
func (r *Runner) Tenants() []string { panic("TODO") }

// SuspendState reports the tenant's suspension: reason and the cap of an
// automatic one ("" manual).
func (r *Runner) SuspendState(tenant string) (suspended bool, reason, capName string) {
	panic("TODO")
}
