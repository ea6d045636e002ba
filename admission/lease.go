package admission

import "time"

// LeaseDim is a dimension of a tenant's caps whose capacity, in a cluster,
// a node leases from the shared ledger (package cluster) before it may
// admit against it. Leases reach the engine as capacity, like any other
// limit: the engine never sees the ledger.
type LeaseDim uint8

// The leased dimensions.
const (
	// LeaseNone: no lease is missing.
	LeaseNone LeaseDim = iota
	// LeaseParallel: the tenant's max_parallel_calls.
	LeaseParallel
	// LeaseInbound: the tenant's max_parallel_inbound.
	LeaseInbound
	// LeaseOutbound: the tenant's max_parallel_outbound.
	LeaseOutbound
	// LeaseCPS: the tenant's max_calls_per_second, as tokens of one UTC
	// second.
	LeaseCPS
	// LeaseUser: one user's max_parallel_calls of its role (the user is
	// in Rejection.User).
	LeaseUser

	// NumLeaseDims is one past the last dimension.
	NumLeaseDims
)

var leaseNames = [NumLeaseDims]string{"none", fieldMaxParallelCalls, fieldMaxParallelInbound, fieldMaxParallelOutbound, fieldMaxCallsPerSecond, "role." + fieldMaxParallelCalls}

// String is the dimension's limit name, e.g. "max_parallel_calls".
func (d LeaseDim) String() string {
	if d < NumLeaseDims {
		return leaseNames[d]
	}
	return "lease(?)"
}

// Uncapped is the cap a tenant's parallel calls are leased under, in a
// cluster, when it has no max_parallel_calls but a minutes or spend budget:
// the ledger puts no cap on the sum of the leases, but each node admits
// only within its own, so the lease bounds the calls the node may run. The
// others count a silent node's share of the budget at that bound (package
// cluster); without it a node cut off from the ledger could take the
// budget over for as long as the partition lasts.
const Uncapped int64 = 1 << 62

// parallelLease is the cap the tenant's parallel calls are leased under in
// a cluster: max_parallel_calls, else Uncapped when a minutes or spend
// budget needs a bound on every node's calls, else -1 (no lease).
func (ef *effective) parallelLease() int64 {
	if ef.parallel < 0 && (ef.minutes >= 0 || ef.spend >= 0) {
		return Uncapped
	}
	return ef.parallel
}

// parallelLease is parallelLease for a role's users: its
// max_parallel_calls, else Uncapped when its max_monthly_minutes needs a
// bound, else -1.
func (r *roleState) parallelLease() int64 {
	if r.parallel < 0 && r.minutes >= 0 {
		return Uncapped
	}
	return r.parallel
}

// LeaseSet is a set of dimensions, one bit per LeaseDim.
type LeaseSet uint8

// Has reports whether d is in the set.
func (s LeaseSet) Has(d LeaseDim) bool { return s&(1<<d) != 0 }

// With returns the set with d added.
func (s LeaseSet) With(d LeaseDim) LeaseSet { return s | 1<<d }

// cause is the rejection cause of the cap behind a leased dimension.
func (d LeaseDim) cause() Cause {
	switch d {
	case LeaseInbound:
		return CauseParallelInbound
	case LeaseOutbound:
		return CauseParallelOutbound
	case LeaseCPS:
		return CauseCPS
	case LeaseUser:
		return CauseRoleParallel
	default:
		return CauseParallelCalls
	}
}

// leaseState is what a node holds of a tenant's leased caps.
type leaseState struct {
	parallel [LeaseCPS]int64  // by LeaseDim (0 unused): calls the node may have in progress
	cpsSec   int64            // the Unix second cpsTokens belong to
	cps      int64            // tokens left for that second
	users    map[string]int64 // by user: calls of a role-capped user the node may have in progress
	// tight marks a lease that gives no headroom: granted at exactly the
	// calls in progress (the cap reached, or exceeded after it was
	// lowered). A tight lease shrinks as its calls end, so a freed slot
	// goes back through the ledger instead of being reused here while the
	// cluster may be over the cap. By LeaseDim; tightUsers by user.
	tight      [LeaseCPS]bool
	tightUsers map[string]bool
}

// LeaseUsage is what a node uses and holds of one tenant's leased caps: the
// input of the ledger's sizing.
type LeaseUsage struct {
	// Active is the tenant's calls in progress on this node by LeaseDim
	// (LeaseParallel: all, LeaseInbound, LeaseOutbound); emergency calls
	// are not counted.
	Active [LeaseCPS]int64
	// Held is the capacity the engine admits against, by LeaseDim.
	Held [LeaseCPS]int64
	// Cap is the tenant's effective cap by LeaseDim (LeaseCPS: calls per
	// second); -1 = unlimited, which needs no lease; Uncapped: no parallel
	// cap, but leased for a budget's sake.
	Cap [NumLeaseDims]int64
	// Spend: the tenant has a monthly spend budget.
	Spend bool
}

// leaseMiss checks one leased parallel dimension at admission: a miss is
// a rejection with CauseLease (no event, nothing changes) unless the
// caller found the ledger full for it, which makes it the cap's own
// rejection.
func (e *Engine) leaseMiss(d *Decision, t *tenantState, req *CallRequest, dim LeaseDim, capv, active int64) bool {
	if !e.cluster || capv < 0 || active < t.lease.parallel[dim] {
		return false
	}
	e.missed(d, req, dim, capv, active)
	return true
}

// missed fills d with a lease miss on dim, or with the cap's rejection
// when the request says the ledger has nothing left for it.
func (e *Engine) missed(d *Decision, req *CallRequest, dim LeaseDim, capv, active int64) {
	if req.LeaseFull.Has(dim) {
		e.rejectWith(d, dim.cause(), capv, active)
		return
	}
	if capv == Uncapped {
		capv = unlimited
	}
	r := e.rejects[CauseLease]
	d.Rejection = Rejection{Cause: CauseLease, Code: r.Code, Reason: r.Reason, Lease: dim, Limit: capv, Usage: active}
}

// userLeaseMiss checks the lease of a role-capped user.
func (e *Engine) userLeaseMiss(d *Decision, t *tenantState, req *CallRequest, uid string, capv, active int64) bool {
	if !e.cluster || capv < 0 || active < t.lease.users[uid] {
		return false
	}
	e.missed(d, req, LeaseUser, capv, active)
	d.Rejection.User = uid
	return true
}

// leaseLimitsChanged drops, in cluster mode, what the node holds of a
// leased cap that changed, down to its calls in progress: leases granted
// under the old cap could add up to more than the new one. The node
// leases again under the new cap at its next miss. Roles changed: every
// user lease goes.
func (e *Engine) leaseLimitsChanged(ts *tenantState, old *effective, roles bool) {
	if !e.cluster {
		return
	}
	l := &ts.lease
	if ts.eff.parallelLease() != old.parallelLease() {
		l.parallel[LeaseParallel], l.tight[LeaseParallel] = ts.active, true
	}
	if ts.eff.parallelIn != old.parallelIn {
		l.parallel[LeaseInbound], l.tight[LeaseInbound] = ts.activeIn, true
	}
	if ts.eff.parallelOut != old.parallelOut {
		l.parallel[LeaseOutbound], l.tight[LeaseOutbound] = ts.activeOut, true
	}
	if ts.eff.cps != old.cps {
		l.cps = 0
	}
	if roles {
		for uid := range l.users {
			var active int64
			if u := ts.users[uid]; u != nil {
				active = u.active
			}
			l.users[uid] = active
			if l.tightUsers != nil {
				l.tightUsers[uid] = true
			}
		}
	}
}

// cpsLeaseMiss checks the cluster's CPS tokens of the current second.
func (e *Engine) cpsLeaseMiss(d *Decision, t *tenantState, req *CallRequest, now time.Time) bool {
	if !e.cluster || t.eff.cps < 0 {
		return false
	}
	sec := now.Unix()
	if t.lease.cpsSec == sec && t.lease.cps > 0 {
		return false
	}
	e.missed(d, req, LeaseCPS, t.eff.cps, 0)
	d.Rejection.RetryAfter = time.Unix(sec+1, 0).Sub(now)
	return true
}

// takeCPSLease consumes the token of an admitted call.
func (e *Engine) takeCPSLease(t *tenantState) {
	if e.cluster && t.eff.cps >= 0 {
		t.lease.cps--
	}
}

// SetLease sets the capacity of parallel dimension dim (LeaseParallel,
// LeaseInbound or LeaseOutbound) the node holds for tenant: the most calls
// of that kind it admits before it asks the ledger again. It never goes
// below the calls of that kind in progress, so a lower value cuts nothing
// and the caller learns what it may give back. capv is the cap the ledger
// granted n under: a raise is applied only while the cap is still capv
// (a limit change drops the lease, leaseLimitsChanged, and a grant sized
// for the old cap must not undo that). It returns the value set; ok is
// false for an unknown tenant or a dimension that is not a parallel one.
func (e *Engine) SetLease(tenant string, dim LeaseDim, n, capv int64) (set int64, ok bool) {
	t, ok := e.tenants[tenant]
	if !ok || dim == LeaseNone || dim >= LeaseCPS {
		return 0, false
	}
	active := [LeaseCPS]int64{0, t.active, t.activeIn, t.activeOut}[dim]
	cur := t.lease.parallel[dim]
	if n > cur && capv != [LeaseCPS]int64{0, t.eff.parallelLease(), t.eff.parallelIn, t.eff.parallelOut}[dim] {
		n = cur
	}
	n = max(n, active)
	t.lease.parallel[dim] = n
	t.lease.tight[dim] = n == active
	return n, true
}

// leaseEnded shrinks the tight leases of an ending call's dimensions to
// the calls left.
func (e *Engine) leaseEnded(t *tenantState, c *call) {
	if !e.cluster {
		return
	}
	l := &t.lease
	shrink := func(dim LeaseDim, active int64) {
		if l.tight[dim] && l.parallel[dim] > active {
			l.parallel[dim] = active
		}
	}
	shrink(LeaseParallel, t.active)
	if c.dir == Inbound {
		shrink(LeaseInbound, t.activeIn)
	} else {
		shrink(LeaseOutbound, t.activeOut)
	}
	if u := c.u; u != nil && l.tightUsers[u.id] {
		if n, ok := l.users[u.id]; ok && n > u.active {
			l.users[u.id] = u.active
		}
	}
}

// SetUserLease is SetLease for one role-capped user of tenant: the most
// calls of that user the node admits before it asks the ledger again,
// never below the user's calls in progress, raised only while the role's
// cap is still capv; 0 with none forgets it.
func (e *Engine) SetUserLease(tenant, user string, n, capv int64) (set int64, ok bool) {
	t, ok := e.tenants[tenant]
	if !ok {
		return 0, false
	}
	active, cur, curCap, _ := e.UserLeaseUsage(tenant, user)
	if n > cur && capv != curCap {
		n = cur
	}
	n = max(n, active)
	if n == 0 {
		delete(t.lease.users, user)
		delete(t.lease.tightUsers, user)
		return 0, true
	}
	if t.lease.users == nil {
		t.lease.users, t.lease.tightUsers = map[string]int64{}, map[string]bool{}
	}
	t.lease.users[user] = n
	if n == active {
		t.lease.tightUsers[user] = true
	} else {
		delete(t.lease.tightUsers, user)
	}
	return n, true
}

// UserLeaseUsage is LeaseUsage for one user of tenant: the user's calls in
// progress, the capacity held for it and its role's max_parallel_calls
// (-1: no role caps it; Uncapped: a role minutes budget and no parallel
// cap).
func (e *Engine) UserLeaseUsage(tenant, user string) (active, held, capv int64, ok bool) {
	t, ok := e.tenants[tenant]
	if !ok {
		return 0, 0, 0, false
	}
	role := t.roleOf(user)
	if u := t.users[user]; u != nil {
		active, role = u.active, u.roleFor()
	}
	capv = -1
	if role != nil {
		capv = role.parallelLease()
	}
	return active, t.lease.users[user], capv, true
}

// SetClusterUsage sets, in a cluster, what the other nodes used of
// tenant's minutes and spend budgets in the current cycle at now, and how
// many of their calls bill minutes now (billing: the minutes used grow
// by that many seconds per second after now): this node's
// usage then counts against each limit minus it, so the budgets run out
// over the cluster, not per node. A rise moves this node's threshold and
// exhaustion instants earlier (calls drawing on a budget it exhausts are
// cut at once, the output says so); it is not a limit change (nothing is
// left pending). bounded says the figures count a silent node at its
// bound (what it may have used, not what it published): a budget that
// runs out then cuts and refuses but neither reports nor suspends
// (tenantState.bounded). Outside cluster mode it does nothing.
func (e *Engine) SetClusterUsage(now time.Time, tenant string, minutes time.Duration, billing, spend int64, bounded bool) (Output, error) {
	given := now.Round(0)
	return e.onTenant(now, tenant, func(ts *tenantState, now time.Time, out *Output) error {
		if !e.cluster {
			return nil
		}
		if ts.bounded != bounded {
			ts.bounded = bounded
			e.markDirty(&ts.minutes)
			e.markDirty(&ts.spend)
		}
		minutes := othersAt(minutes, billing, given, now)
		if m := &ts.minutes; m.othersNow(now) != int64(minutes) || m.othersRate != billing {
			m.others, m.othersRate, m.othersAt = int64(minutes), billing, now
			e.markDirty(m)
		}
		if ts.spend.others != spend {
			ts.spend.others = spend
			e.markDirty(&ts.spend)
		}
		return nil
	})
}

// AddCPSTokens adds k admissions for Unix second sec to what the node
// holds for tenant, granted under a CPS cap of capv (ignored once the cap
// is another); tokens of an earlier second are dropped (they cannot be
// used any more). It reports false for an unknown tenant.
func (e *Engine) AddCPSTokens(tenant string, sec, k, capv int64) bool {
	t, ok := e.tenants[tenant]
	if !ok {
		return false
	}
	if capv != t.eff.cps {
		return true
	}
	if t.lease.cpsSec != sec {
		if t.lease.cpsSec > sec {
			return true // a late grant for a second already gone
		}
		t.lease.cpsSec, t.lease.cps = sec, 0
	}
	t.lease.cps += k
	return true
}

// LeaseUsage returns what the node uses and holds of tenant's leased caps;
// ok is false for an unknown tenant.
func (e *Engine) LeaseUsage(tenant string) (u LeaseUsage, ok bool) {
	t, ok := e.tenants[tenant]
	if !ok {
		return u, false
	}
	u.Active = [LeaseCPS]int64{0, t.active, t.activeIn, t.activeOut}
	u.Held = t.lease.parallel
	u.Cap = [NumLeaseDims]int64{0, t.eff.parallelLease(), t.eff.parallelIn, t.eff.parallelOut, t.eff.cps, -1}
	u.Spend = t.eff.spend >= 0
	return u, true
}

// SetLease is Engine.SetLease under the lock. A lease changes no counter,
// deadline or event and is not durable (a restarted node holds nothing),
// so it has no Ready.
func (r *Runner) SetLease(tenant string, dim LeaseDim, n, capv int64) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.SetLease(tenant, dim, n, capv)
}

// SetUserLease is Engine.SetUserLease under the lock (no Ready, as
// SetLease).
func (r *Runner) SetUserLease(tenant, user string, n, capv int64) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.SetUserLease(tenant, user, n, capv)
}

// UserLeaseUsage is Engine.UserLeaseUsage under the lock.
func (r *Runner) UserLeaseUsage(tenant, user string) (active, held, capv int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.UserLeaseUsage(tenant, user)
}

// othersAt moves the other nodes' minutes, given for instant given, to
// the engine's instant now (later when the engine's clock is ahead).
func othersAt(minutes time.Duration, billing int64, given, now time.Time) time.Duration {
	if now.After(given) {
		minutes += time.Duration(billing) * now.Sub(given)
	}
	return minutes
}

// UserMinutes is one role-capped user's minutes on this node this cycle.
type UserMinutes struct {
	User    string
	Billed  time.Duration
	Billing int64 // its calls billing now
}

// UsersMinutes lists the tenant's users whose role caps their minutes,
// with what they billed here this cycle (for the cluster's usage).
func (e *Engine) UsersMinutes(now time.Time, tenant string) []UserMinutes {
	t, ok := e.tenants[tenant]
	if !ok || !e.started {
		return nil
	}
	now = now.Round(0)
	if now.Before(e.now) {
		now = e.now
	}
	var out []UserMinutes
	for id, u := range t.users {
		if r := u.roleFor(); r == nil || r.minutes < 0 {
			continue
		}
		out = append(out, UserMinutes{User: id, Billed: u.minutes.acc.value(now), Billing: u.minutes.acc.k})
	}
	return out
}

// SetClusterUserUsage is SetClusterUsage for one user's role minutes: what
// the other nodes billed of them this cycle at now, and how many of the
// user's calls bill there now (bounded: as for SetClusterUsage). A
// user its role does not cap is ignored.
func (e *Engine) SetClusterUserUsage(now time.Time, tenant, user string, minutes time.Duration, billing int64, bounded bool) (Output, error) {
	given := now.Round(0)
	return e.onTenant(now, tenant, func(ts *tenantState, now time.Time, out *Output) error {
		if !e.cluster {
			return nil
		}
		minutes := othersAt(minutes, billing, given, now)
		u := ts.users[user]
		if u == nil {
			if r := ts.roleOf(user); r == nil || r.minutes < 0 {
				return nil
			}
			u = e.newUser(now, ts, user) // tracked: its budget counts the others
		}
		if u.bounded != bounded {
			u.bounded = bounded
			e.markDirty(&u.minutes)
		}
		if m := &u.minutes; m.othersNow(now) != int64(minutes) || m.othersRate != billing {
			m.others, m.othersRate, m.othersAt = int64(minutes), billing, now
			e.markDirty(m)
		}
		return nil
	})
}

// Billing is how fast the tenant's usage grows now: its calls billing
// minutes (answered, not cut, not emergency calls), and a bound on its
// spend per second (Σ over the rated calls of one increment's charge per
// increment length, rounded up).
func (e *Engine) Billing(tenant string) (calls, spendPerSecond int64) {
	if t, ok := e.tenants[tenant]; ok {
		return t.minutes.acc.k, t.meter.rate
	}
	return 0, 0
}

// SpendBound bounds what one call of the tenant can spend, at the
// dearest row of its plan's rates: start is charged when it is answered
// (connect fee and initial increment), perSecond after that (one
// increment's charge per increment length, rounded up, as the spend
// meter's own bound). The cluster counts a silent node's calls at it:
// what a node cut off from the others may spend. 0, 0 for an unknown
// tenant or a plan without rates.
func (e *Engine) SpendBound(tenant string) (perSecond, start int64) {
	t, ok := e.tenants[tenant]
	if !ok {
		return 0, 0
	}
	for _, r := range t.plan.rates.m {
		start = max(start, chargeOf(r, r.Initial))
		if r.PerMinute > 0 {
			perSecond = max(perSecond, (incrementBound(r)+r.Subsequent-1)/r.Subsequent)
		}
	}
	return perSecond, start
}

// SpendBound is Engine.SpendBound under the lock.
func (r *Runner) SpendBound(tenant string) (perSecond, start int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.SpendBound(tenant)
}

// Billing is Engine.Billing under the lock.
func (r *Runner) Billing(tenant string) (calls, spendPerSecond int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Billing(tenant)
}

// UsersMinutes is Engine.UsersMinutes under the lock.
func (r *Runner) UsersMinutes(now time.Time, tenant string) []UserMinutes {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.UsersMinutes(now, tenant)
}

// SetClusterUserUsage is Engine.SetClusterUserUsage.
func (r *Runner) SetClusterUserUsage(now time.Time, tenant, user string, minutes time.Duration, billing int64, bounded bool) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.SetClusterUserUsage(now, tenant, user, minutes, billing, bounded) })
}

// SetClusterUsage is Engine.SetClusterUsage.
func (r *Runner) SetClusterUsage(now time.Time, tenant string, minutes time.Duration, billing, spend int64, bounded bool) (Ready, error) {
	return r.do(func() (Output, error) { return r.e.SetClusterUsage(now, tenant, minutes, billing, spend, bounded) })
}

// AddCPSTokens is Engine.AddCPSTokens under the lock (no Ready, as
// SetLease).
func (r *Runner) AddCPSTokens(tenant string, sec, k, capv int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.AddCPSTokens(tenant, sec, k, capv)
}

// LeaseUsage is Engine.LeaseUsage under the lock.
func (r *Runner) LeaseUsage(tenant string) (LeaseUsage, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.LeaseUsage(tenant)
}
