package admission

import "time"

// Replica is the runner as it applies a change another node made and
// replicated (cluster configuration): the same steps, except that the
// events that only report the change itself are left out of the Ready
// and the journal, because the node that made the change reported them.
// They are limits.changed, and the tenant.suspended or tenant.resumed of
// an operator's suspension or resumption. What the change does on this
// node is kept: the cuts of its calls, the budgets it trips and their
// events.
type Replica struct{ r *Runner }

// Replica returns the runner's view for replicated changes.
func (r *Runner) Replica() Replica { return Replica{r} }

func limitsChanged(ev Event) bool { return ev.Type == EventLimits }

// UpsertPlan is Runner.UpsertPlan without limits.changed.
func (p Replica) UpsertPlan(now time.Time, pl Plan) (Ready, error) {
	return p.r.doWithout(func() (Output, error) { return p.r.e.UpsertPlan(now, pl) }, limitsChanged)
}

// UpsertTenant is Runner.UpsertTenant without limits.changed.
func (p Replica) UpsertTenant(now time.Time, t Tenant) (Ready, error) {
	return p.r.doWithout(func() (Output, error) { return p.r.e.UpsertTenant(now, t) }, limitsChanged)
}

// Suspend is Runner.Suspend without the tenant.suspended it reports.
func (p Replica) Suspend(now time.Time, tenant, reason string) (Ready, error) {
	return p.r.doWithout(func() (Output, error) { return p.r.e.Suspend(now, tenant, reason) }, func(ev Event) bool {
		return ev.Type == EventSuspended && ev.Tenant == tenant && !ev.Shared
	})
}

// Resume is Runner.Resume without the tenant.resumed it reports.
func (p Replica) Resume(now time.Time, tenant, reason string) (Ready, error) {
	return p.r.doWithout(func() (Output, error) { return p.r.e.Resume(now, tenant, reason) }, func(ev Event) bool {
		return ev.Type == EventResumed && ev.Tenant == tenant && !ev.Shared
	})
}
