package admission

import (
	"fmt"
	"sort"
	"time"
)

// durable collects, while a Runner has a Journal, the durable effects of
// the current step (see Step).
type durable struct {
	tenants  []*tenantState
	users    []*userState
	answered []CallRecord
	released []string
	charges  []Charge
}

func (e *Engine) markTenant(t *tenantState) {
	if e.journaling && !t.durMark {
		t.durMark = true
		e.dur.tenants = append(e.dur.tenants, t)
	}
}

func (e *Engine) markUser(u *userState) {
	if e.journaling && !u.durMark {
		u.durMark = true
		e.dur.users = append(e.dur.users, u)
	}
}

// markBudget marks the owner of b: its once-per-cycle flags changed.
func (e *Engine) markBudget(b *budget) {
	if b.kind == kindUserMinutes {
		e.markUser(b.u)
	} else {
		e.markTenant(b.t)
	}
}

// cycleTime is the billed time from ans to x that falls in the current
// cycle.
func (e *Engine) cycleTime(ans, x time.Time) time.Duration {
	if ans.Before(e.cycleStart) {
		ans = e.cycleStart
	}
	if x.Before(ans) {
		return 0
	}
	return x.Sub(ans)
}

func (e *Engine) charge(c *call, sec time.Duration, spend int64, at time.Time, final bool) {
	c.billedSum += sec
	c.costSum += spend
	if !e.journaling {
		return
	}
	e.dur.charges = append(e.dur.charges, Charge{
		Tenant: c.t.name, User: c.user(), CallID: c.id, Direction: c.dir, Emergency: c.emergency,
		Seconds: sec, Spend: spend, At: at, Final: final,
	})
}

// persistCall journals an answered call.
func (e *Engine) persistCall(c *call, payload []byte) {
	if !e.journaling {
		return
	}
	c.persisted = true
	e.dur.answered = append(e.dur.answered, CallRecord{
		CallID: c.id, Tenant: c.t.name, Direction: c.dir, Caller: c.caller, Callee: c.callee,
		Emergency: c.emergency, AnsweredAt: c.ans, Payload: payload,
	})
}

// releaseRecord journals the release of a persisted call, once.
func (e *Engine) releaseRecord(c *call) {
	if c.persisted {
		c.persisted = false
		e.dur.released = append(e.dur.released, c.id)
	}
}

// settleEmergency settles an answered emergency call ending at x.
func (e *Engine) settleEmergency(c *call, x time.Time) {
	sec := e.cycleTime(c.ans, x)
	c.t.settledEmerg += sec
	e.markTenant(c.t)
	e.charge(c, sec, 0, x, true)
	e.releaseRecord(c)
}

func (t *tenantState) record(cycle time.Time) TenantRecord {
	r := TenantRecord{
		Tenant: t.name, Cycle: cycle, Seconds: t.settled, Spend: t.spend.settled,
		EmergencySeconds: t.settledEmerg,
		Suspended:        t.suspended, SuspendReason: t.suspendReason, SuspendCap: t.suspendCap,
		SuspendedAt: t.suspendedAt,
	}
	if t.minutes.thrSent {
		r.Flags |= FlagMinutesThreshold
	}
	if t.minutes.capSent {
		r.Flags |= FlagMinutesCap
	}
	if t.spend.thrSent {
		r.Flags |= FlagSpendThreshold
	}
	if t.spend.capSent {
		r.Flags |= FlagSpendCap
	}
	return r
}

func (u *userState) record(cycle time.Time) UserRecord {
	r := UserRecord{Tenant: u.t.name, User: u.id, Cycle: cycle, Seconds: u.settled}
	if u.minutes.thrSent {
		r.Flags |= FlagMinutesThreshold
	}
	if u.minutes.capSent {
		r.Flags |= FlagMinutesCap
	}
	return r
}

// collect moves the durable effects of the step into st (reusing its
// slices) and reports whether there were any besides events.
func (e *Engine) collect(st *Step, at time.Time) {
	st.At = at
	st.Tenants, st.Users = st.Tenants[:0], st.Users[:0]
	for i, t := range e.dur.tenants {
		t.durMark = false
		if e.tenants[t.name] == t { // not deleted meanwhile
			st.Tenants = append(st.Tenants, t.record(e.cycleStart))
		}
		e.dur.tenants[i] = nil
	}
	for i, u := range e.dur.users {
		u.durMark = false
		st.Users = append(st.Users, u.record(e.cycleStart))
		e.dur.users[i] = nil
	}
	e.dur.tenants, e.dur.users = e.dur.tenants[:0], e.dur.users[:0]
	st.Answered = append(st.Answered[:0], e.dur.answered...)
	st.Released = append(st.Released[:0], e.dur.released...)
	st.Charges = append(st.Charges[:0], e.dur.charges...)
	clear(e.dur.answered)
	e.dur.answered, e.dur.released, e.dur.charges = e.dur.answered[:0], e.dur.released[:0], e.dur.charges[:0]
}

// Restore rebuilds counters, once-per-cycle flags and suspensions from a
// snapshot, then settles the snapshot's calls: each is billed from its
// answer (or the cycle start) up to s.At, charged and released, as if it
// had ended at s.At. Records of an earlier cycle keep only their
// suspension (lifted when ResumeOnRollover applies to it); records of
// unknown tenants are ignored. Call it once, before any call is admitted,
// after the plans and tenants are upserted. Restoring the same snapshot
// again gives the same state: nothing is counted twice.
func (e *Engine) Restore(s Snapshot) (Output, error) {
	var out Output
	if len(e.calls) > 0 {
		return out, fmt.Errorf("admission: restore with %d active calls", len(e.calls))
	}
	now := e.step(s.At, &out)
	cs := e.cycleStart
	for _, r := range s.Tenants {
		t, ok := e.tenants[r.Tenant]
		if !ok {
			continue
		}
		current := r.Cycle.Equal(cs)
		if r.Suspended {
			monthly := r.SuspendCap == CapMinutes || r.SuspendCap == CapSpend
			if current || !monthly || !e.resumeOnRollover {
				t.suspended, t.suspendReason, t.suspendCap, t.suspendedAt = true, r.SuspendReason, r.SuspendCap, r.SuspendedAt
			} else {
				out.Events = append(out.Events, Event{Type: EventResumed, Tenant: t.name, Cap: r.SuspendCap, Reason: "cycle rollover", At: cs})
			}
		}
		if current {
			t.settled, t.settledEmerg = r.Seconds, r.EmergencySeconds
			t.minutes.acc = accrual{used: r.Seconds, at: now}
			t.emerg = accrual{used: r.EmergencySeconds, at: now}
			t.spend.settled = r.Spend
			t.minutes.thrSent, t.minutes.capSent = r.Flags&FlagMinutesThreshold != 0, r.Flags&FlagMinutesCap != 0
			t.spend.thrSent, t.spend.capSent = r.Flags&FlagSpendThreshold != 0, r.Flags&FlagSpendCap != 0
		}
		e.markTenant(t)
	}
	for _, r := range s.Users {
		t, ok := e.tenants[r.Tenant]
		if !ok || !r.Cycle.Equal(cs) {
			continue
		}
		u := e.userOf(now, t, r.User)
		u.settled = r.Seconds
		u.minutes.acc = accrual{used: r.Seconds, at: now}
		u.minutes.thrSent, u.minutes.capSent = r.Flags&FlagMinutesThreshold != 0, r.Flags&FlagMinutesCap != 0
		e.markUser(u)
	}
	for _, rc := range s.Calls {
		if e.journaling {
			e.dur.released = append(e.dur.released, rc.CallID)
		}
		t, ok := e.tenants[rc.Tenant]
		if !ok {
			continue
		}
		e.restoreCall(now, t, &rc, &out)
	}
	for _, t := range e.order {
		e.limitsChanged(t, true) // recompute every deadline from the restored usage
	}
	e.settle(now, &out)
	return out, nil
}

// RestoredCause is the End.Cause of the call.ended of a call that was
// running at a crash and settled by Restore.
const RestoredCause = "gateway_restart"

// restoreCall bills a call that was running at the crash up to now, and
// reports its call.ended.
func (e *Engine) restoreCall(now time.Time, t *tenantState, rc *CallRecord, out *Output) {
	c, end := e.settleRestored(now, t, rc)
	e.ended(c, now, &End{BilledEnd: end, Cause: RestoredCause, HungUp: "gateway"}, out)
}

func (e *Engine) settleRestored(now time.Time, t *tenantState, rc *CallRecord) (*call, time.Time) {
	req := CallRequest{CallID: rc.CallID, Tenant: rc.Tenant, Direction: rc.Direction, Caller: rc.Caller, Callee: rc.Callee}
	c := &call{id: rc.CallID, t: t, dir: rc.Direction, emergency: rc.Emergency, answered: true, ans: rc.AnsweredAt, caller: rc.Caller, callee: rc.Callee}
	sec := e.cycleTime(rc.AnsweredAt, now)
	if rc.Emergency {
		t.settledEmerg += sec
		t.emerg.used += sec
		e.charge(c, sec, 0, now, true)
		return c, now
	}
	if uid := req.user(); uid != "" && (t.users[uid] != nil || t.roleOf(uid).caps()) {
		c.u = e.userOf(now, t, uid)
		c.u.settled += sec
		c.u.minutes.acc.used += sec
		e.markUser(c.u)
	}
	t.settled += sec
	t.minutes.acc.used += sec
	var spend int64
	rate, ok := t.plan.rates.lookup(rc.Callee)
	if ok {
		c.rate = rate
	}
	if ok && now.After(rc.AnsweredAt) {
		spend = cost(rate, now.Sub(rc.AnsweredAt))
		if rc.AnsweredAt.Before(e.cycleStart) {
			spend -= cost(rate, e.cycleStart.Sub(rc.AnsweredAt))
		}
		t.spend.settled += spend
	}
	e.markTenant(t)
	e.charge(c, sec, spend, now, true)
	return c, now
}

func (e *Engine) userOf(now time.Time, t *tenantState, id string) *userState {
	if u, ok := t.users[id]; ok {
		return u
	}
	return e.newUser(now, t, id)
}

// DeletePlan removes a plan no tenant is on. It returns an error wrapping
// ErrPlanInUse or ErrUnknownPlan, and in every case the effects of the
// deadlines that fell due before now (of any tenant).
func (e *Engine) DeletePlan(now time.Time, name string) (Output, error) {
	var out Output
	e.step(now, &out)
	if _, ok := e.plans[name]; !ok {
		return out, fmt.Errorf("%w %q", ErrUnknownPlan, name)
	}
	for _, t := range e.order {
		if t.plan.name == name {
			return out, fmt.Errorf("%w: %q is the plan of tenant %q", ErrPlanInUse, name, t.name)
		}
	}
	delete(e.plans, name)
	return out, nil
}

// DeleteTenant removes a tenant without active calls, with its counters
// and users. It returns an error wrapping ErrTenantBusy or
// ErrUnknownTenant, and in every case the effects of the deadlines that
// fell due before now (of any tenant).
func (e *Engine) DeleteTenant(now time.Time, name string) (Output, error) {
	var out Output
	now = e.step(now, &out)
	t, ok := e.tenants[name]
	if !ok {
		return out, fmt.Errorf("%w %q", ErrUnknownTenant, name)
	}
	if n := len(t.calls); n > 0 {
		return out, fmt.Errorf("%w: %q has %d", ErrTenantBusy, name, n)
	}
	e.settle(now, &out) // nothing of the tenant may stay queued for recomputation
	e.unschedule(&t.minutes)
	e.unschedule(&t.spend)
	for _, u := range t.users {
		e.unschedule(&u.minutes)
	}
	delete(e.tenants, name)
	for i, o := range e.order {
		if o == t {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	return out, nil
}

// Overrides returns the tenant's overrides as set (nil fields inherit).
func (e *Engine) Overrides(tenant string) (Limits, error) {
	t, ok := e.tenants[tenant]
	if !ok {
		return Limits{}, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	return t.overrides.clone(), nil
}

// Cycle returns the current billing cycle [start, end); zero before the
// engine has seen any time.
func (e *Engine) Cycle() (start, end time.Time) { return e.cycleStart, e.cycleEnd }

// RoleUsages returns the tenant's users that are on a role with a minutes
// cap and have usage this cycle (running calls included), sorted by user.
func (e *Engine) RoleUsages(now time.Time, tenant string) []RoleUsage {
	t, ok := e.tenants[tenant]
	if !ok {
		return nil
	}
	var out []RoleUsage
	for id, u := range t.users {
		r := u.roleFor()
		if r == nil || r.minutes < 0 {
			continue
		}
		if used := e.UserUsage(now, tenant, id); used > 0 {
			ru := RoleUsage{User: id, Role: r.name, Seconds: used, Limit: r.minutes}
			ru.ExhaustsAt, ru.Exhausts = e.userExhaustion(u, now)
			out = append(out, ru)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// Tenants returns the names of all tenants, sorted.
func (e *Engine) Tenants() []string {
	out := make([]string, 0, len(e.order))
	for _, t := range e.order {
		out = append(out, t.name)
	}
	sort.Strings(out)
	return out
}

// NearCap lists the tenants, in cluster mode, with a minutes or spend
// budget past its alert threshold this cycle (usage.threshold or
// usage.cap_reached sent), or counted at a silent node's bound: the
// cluster shares their usage more often, so that the nodes' views of one
// another lag less where a lag can take the budget over.
func (e *Engine) NearCap() []string {
	var out []string
	if !e.cluster {
		return out
	}
	for _, t := range e.order {
		if t.bounded || t.minutes.thrSent || t.minutes.capSent || t.spend.thrSent || t.spend.capSent {
			out = append(out, t.name)
		}
	}
	return out
}

// SuspendState reports the tenant's suspension: its reason and the cap
// of an automatic one ("" for a manual one).
func (e *Engine) SuspendState(tenant string) (suspended bool, reason, capName string) {
	t, ok := e.tenants[tenant]
	if !ok || !t.suspended {
		return false, "", ""
	}
	return true, t.suspendReason, t.suspendCap
}

// SuspendedSince is when the tenant's suspension began; zero when it is
// not suspended, or when the suspension was restored from a record of a
// version that did not keep the instant.
func (e *Engine) SuspendedSince(tenant string) time.Time {
	if t, ok := e.tenants[tenant]; ok && t.suspended {
		return t.suspendedAt
	}
	return time.Time{}
}
