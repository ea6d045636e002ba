package admission

import "time"

// Exhaustion is when the tenant's monthly budgets run out if the calls
// drawing on them now go on (and no other starts or ends): the minutes
// budget (max_monthly_minutes) and the spend budget (monthly_spend_limit),
// each with ok false when it is unlimited, nothing draws on it, or it does
// not run out before the cycle ends. A budget already exhausted reports
// now. It is a query: the engine's state, its deadlines included, is left
// as it was. In a cluster the other nodes' usage counts as the cut-off
// timer counts it.
func (e *Engine) Exhaustion(now time.Time, tenant string) (minutes time.Time, minutesOK bool, spend time.Time, spendOK bool) {
	t, ok := e.tenants[tenant]
	if !ok || !e.started {
		return
	}
	now = now.Round(0)
	if now.Before(e.now) {
		now = e.now
	}
	if !now.Before(e.cycleEnd) {
		return
	}
	if l := t.minutes.limit(); l >= 0 {
		b := &t.minutes
		// reach for a minutes budget is closed-form and reads no state it
		// changes.
		minutes, _, minutesOK = e.reach(b, now, b.exhaustAmount(b.amount(l))-b.othersNow(now))
	}
	if l := t.spend.limit(); l >= 0 {
		spend, spendOK = e.spendExhaustion(t, now, t.spend.exhaustAmount(t.spend.amount(l)))
	}
	return
}

// userExhaustion is Exhaustion for a user's role minutes budget.
func (e *Engine) userExhaustion(u *userState, now time.Time) (time.Time, bool) {
	b := &u.minutes
	l := b.limit()
	if l < 0 || !e.started {
		return time.Time{}, false
	}
	now = now.Round(0)
	if now.Before(e.now) {
		now = e.now
	}
	if !now.Before(e.cycleEnd) {
		return time.Time{}, false
	}
	at, _, ok := e.reach(b, now, b.exhaustAmount(b.amount(l))-b.othersNow(now))
	return at, ok
}

// spendExhaustion finds the first instant in [now, cycle end) at which the
// tenant's spend (plus the other nodes') reaches x, by bisection over the
// step function spendScan, which visits the calls and changes nothing.
func (e *Engine) spendExhaustion(t *tenantState, now time.Time, x int64) (time.Time, bool) {
	b := &t.spend
	reached := func(at time.Time) bool { return e.spendScan(t, at, true)+b.othersNow(at) >= x }
	if reached(now) {
		return now, true
	}
	hi := e.cycleEnd.Add(-time.Nanosecond)
	if !hi.After(now) || !reached(hi) {
		return time.Time{}, false
	}
	lo := now // !reached(lo), reached(hi)
	for hi.Sub(lo) > time.Nanosecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		if reached(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, true
}

// Exhaustion is Engine.Exhaustion under the lock.
func (r *Runner) Exhaustion(now time.Time, tenant string) (minutes time.Time, minutesOK bool, spend time.Time, spendOK bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.e.Exhaustion(now, tenant)
}
