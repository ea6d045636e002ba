package admission

import "time"

// Admit decides whether the call may start and, when admitted, counts it
// as active from now. It is idempotent by CallID: an active CallID is
// admitted again without being counted twice.
//
// Checks, in order: unknown tenant; emergency number (always admitted, not
// counted, never cut); suspended tenant; disabled destination class
// (outbound); tenant parallel caps (total, then the call's direction); the
// user's role parallel cap; the CPS token bucket (a token is consumed only
// when every check passes); the minutes and spend budgets; the user's role
// minutes. A limit of 0 always blocks. A minutes or spend budget found
// exhausted (usage >= limit) rejects only when it is hard (auto_suspend):
// it then also emits usage.cap_reached (once per cycle), cuts the calls
// drawing on it and suspends the tenant. A soft one only emits
// usage.cap_reached and admits.
func (e *Engine) Admit(now time.Time, req CallRequest) Decision {
	seq := e.seq
	d := e.admit(now, req)
	switch {
	case !d.Admitted && d.Rejection.Cause == CauseLease && !req.LeaseFull.Has(d.Rejection.Lease):
		// A lease miss: the edge leases more and asks again.
	case !d.Admitted:
		ci := rejected(&req, e.now, d.Rejection.Cause.String(), d.Rejection.Code, &d.Output)
		ci.Class, ci.Limit, ci.Usage = d.Rejection.Class, d.Rejection.Limit, d.Rejection.Usage
	case e.seq != seq: // a new call, not an active CallID admitted again
		e.callEvent(EventCallStarted, e.calls[req.CallID], e.now, &d.Output)
	}
	return d
}

func (e *Engine) admit(now time.Time, req CallRequest) Decision {
	var d Decision
	now = e.step(now, &d.Output)
	if c, ok := e.calls[req.CallID]; ok {
		d.Admitted, d.Emergency = true, c.emergency
		return d
	}
	t, ok := e.tenants[req.Tenant]
	if !ok {
		return e.rejectWith(&d, CauseUnknownTenant, 0, 0)
	}
	if _, ok := e.emergency[req.Callee]; ok {
		e.admitEmergency(now, t, &req)
		d.Admitted, d.Emergency = true, true
		return d
	}
	dir := Outbound
	if req.Direction == Inbound {
		dir = Inbound
	}
	if t.suspended {
		if dir == Inbound {
			return e.rejectWith(&d, CauseSuspendedInbound, 0, 0)
		}
		return e.rejectWith(&d, CauseSuspended, 0, 0)
	}
	if dir == Outbound {
		if class, ok := e.classes.lookup(req.Callee); ok && !t.destinationEnabled(class) {
			e.rejectWith(&d, CauseDestination, 0, 0)
			d.Rejection.Class = class
			return d
		}
	}
	ef := &t.eff
	if ef.parallel >= 0 && t.active >= ef.parallel {
		return e.rejectWith(&d, CauseParallelCalls, ef.parallel, t.active)
	}
	if dir == Inbound && ef.parallelIn >= 0 && t.activeIn >= ef.parallelIn {
		return e.rejectWith(&d, CauseParallelInbound, ef.parallelIn, t.activeIn)
	}
	if dir == Outbound && ef.parallelOut >= 0 && t.activeOut >= ef.parallelOut {
		return e.rejectWith(&d, CauseParallelOutbound, ef.parallelOut, t.activeOut)
	}
	if e.leaseMiss(&d, t, &req, LeaseParallel, ef.parallelLease(), t.active) ||
		dir == Inbound && e.leaseMiss(&d, t, &req, LeaseInbound, ef.parallelIn, t.activeIn) ||
		dir == Outbound && e.leaseMiss(&d, t, &req, LeaseOutbound, ef.parallelOut, t.activeOut) {
		return d
	}
	uid := req.user()
	var (
		u    *userState
		role *roleState
	)
	if uid != "" {
		if u = t.users[uid]; u != nil {
			role = u.roleFor()
		} else {
			role = t.roleOf(uid)
		}
	}
	if role != nil && role.parallelLease() >= 0 {
		var active int64
		if u != nil {
			active = u.active
		}
		if role.parallel >= 0 && active >= role.parallel {
			return e.rejectWith(&d, CauseRoleParallel, role.parallel, active)
		}
		if e.userLeaseMiss(&d, t, &req, uid, role.parallelLease(), active) {
			return d
		}
	}
	var interval time.Duration
	if ef.cps >= 0 {
		if ef.cps == 0 {
			e.rejectWith(&d, CauseCPS, 0, 0)
			d.Rejection.RetryAfter = time.Second
			return d
		}
		interval = time.Duration((int64(time.Second) + ef.cps - 1) / ef.cps)
		// GCRA: the bucket holds a token unless the theoretical arrival
		// time is more than (burst-1) intervals ahead.
		if allowAt := t.tat.Add(-time.Duration(ef.burst-1) * interval); now.Before(allowAt) {
			e.rejectWith(&d, CauseCPS, ef.cps, 0)
			d.Rejection.RetryAfter = allowAt.Sub(now)
			return d
		}
		if e.cpsLeaseMiss(&d, t, &req, now) {
			return d
		}
	}
	if e.budgetRejects(now, &t.minutes, &d) || e.budgetRejects(now, &t.spend, &d) {
		return d
	}
	if role != nil && role.minutes >= 0 {
		if u != nil {
			if e.budgetRejects(now, &u.minutes, &d) {
				return d
			}
		} else if role.minutes == 0 {
			return e.rejectWith(&d, CauseRoleMinutes, 0, 0)
		}
	}
	if interval > 0 {
		if t.tat.Before(now) {
			t.tat = now
		}
		t.tat = t.tat.Add(interval)
		e.takeCPSLease(t)
	}
	if u == nil && role.caps() {
		u = e.newUser(now, t, uid) // only users a role caps are tracked
	}
	c := e.newCall(&req, t, dir)
	if u != nil {
		c.u = u
		c.uidx = len(u.calls)
		u.calls = append(u.calls, c)
	}
	c.rate, _ = t.plan.rates.lookup(req.Callee)
	t.active++
	if dir == Inbound {
		t.activeIn++
	} else {
		t.activeOut++
	}
	if u != nil {
		u.active++
	}
	d.Admitted = true
	e.settle(now, &d.Output)
	return d
}

// budgetRejects applies the INVITE-time check of a minutes or spend budget
// and reports whether the call is rejected (d then holds the rejection and
// the effects of the trip).
func (e *Engine) budgetRejects(now time.Time, b *budget, d *Decision) bool {
	l := b.limit()
	if l < 0 || !e.exhausted(b, now) {
		return false
	}
	used := b.eventUnits(e.usage(b, now))
	if b.kind != kindSpend {
		used /= 60 // whole minutes, as the limit
	}
	if l == 0 {
		// 0 blocks new calls, like a parallel cap of 0: no event, no
		// suspension.
		e.rejectWith(d, b.cause(), 0, used)
		return true
	}
	if b.hard() || !b.capSent {
		e.trip(b, now, &d.Output)
	}
	if !b.hard() {
		e.settle(now, &d.Output)
		return false
	}
	e.rejectWith(d, b.cause(), l, used)
	e.settle(now, &d.Output)
	return true
}

func (e *Engine) rejectWith(d *Decision, c Cause, limit, usage int64) Decision {
	r := e.rejects[c]
	d.Rejection = Rejection{Cause: c, Code: r.Code, Reason: r.Reason, Limit: limit, Usage: usage}
	return *d
}

func (e *Engine) admitEmergency(now time.Time, t *tenantState, req *CallRequest) {
	dir := Outbound
	if req.Direction == Inbound {
		dir = Inbound
	}
	c := e.newCall(req, t, dir)
	c.emergency = true
	t.emergencyActive++
}

// newCall records an admitted call, reusing a freed record when possible.
func (e *Engine) newCall(req *CallRequest, t *tenantState, dir Direction) *call {
	var c *call
	if n := len(e.free); n > 0 {
		c = e.free[n-1]
		e.free[n-1] = nil
		e.free = e.free[:n-1]
	} else {
		c = new(call)
	}
	e.seq++
	*c = call{id: req.CallID, seq: e.seq, t: t, dir: dir, tidx: len(t.calls), sidx: -1, caller: req.Caller, callee: req.Callee}
	t.calls = append(t.calls, c)
	e.calls[req.CallID] = c
	return c
}

func (e *Engine) newUser(now time.Time, t *tenantState, id string) *userState {
	u := &userState{id: id, t: t}
	e.initBudget(&u.minutes, kindUserMinutes, t, u, now)
	t.users[id] = u
	return u
}

// Answer starts billing of an admitted call (the 200 OK). The call starts
// drawing on the tenant's minutes and spend budgets and its user's role
// budget; deadlines are recomputed. Answering a budget that is already past
// its exhaustion point (a cap lowered below usage) trips it at once.
// Unknown, ended, cut or already answered calls are ignored (the edge has
// the call in its dialog table before it asks Admit, so a cut of an early
// call always reaches it).
func (e *Engine) Answer(now time.Time, callID string) Output {
	return e.answer(now, callID, nil)
}

func (e *Engine) answer(now time.Time, callID string, payload []byte) Output {
	var out Output
	now = e.step(now, &out)
	c, ok := e.calls[callID]
	if !ok || c.answered || c.cut {
		return out
	}
	c.answered = true
	c.ans = now
	t := c.t
	e.persistCall(c, payload)
	e.callEvent(EventCallAnswered, c, now, &out)
	if c.emergency {
		t.emerg.advance(now)
		t.emerg.k++
		return out
	}
	e.startDrawing(c, now)
	e.tripDrawn(c, now, &out)
	e.settle(now, &out)
	return out
}

// tripDrawn trips the budgets c draws (or drew) on that are past their
// exhaustion point: the "next charge" rule for lowered caps.
func (e *Engine) tripDrawn(c *call, now time.Time, out *Output) {
	u := c.u
	e.tripIfOver(&c.t.minutes, now, out)
	if c.rate != nil {
		e.tripIfOver(&c.t.spend, now, out)
	}
	if u != nil {
		e.tripIfOver(&u.minutes, now, out)
	}
}

// End settles the call: billing stops at now (or at its cut instant) and
// its slot is released. It returns true only the first time for an active
// CallID, and false for an unknown or already ended one, so it is safe to
// call from every path that ends a call; counters never go negative. A
// call that ends while drawing on a budget already past its exhaustion
// point (a lowered cap) trips that budget.
func (e *Engine) End(now time.Time, callID string) (Output, bool) {
	return e.EndAt(now, callID, time.Time{})
}

// EndAt is End with billing stopped at billedEnd instead of now: the
// instant the edge measured the call's media to have ended (its last RTP
// packet plus one packetisation interval, media.bill_from media). It is
// clamped to [answer, now] and to the current cycle; zero means now. What
// the call accrued after billedEnd, its minutes and the increments that
// started after it, is taken back from the budgets; thresholds, caps and
// cuts already decided on that usage stand (they were decided on what was
// known then).
func (e *Engine) EndAt(now time.Time, callID string, billedEnd time.Time) (Output, bool) {
	return e.EndWith(now, callID, End{BilledEnd: billedEnd})
}

// EndWith is EndAt with billing stopped at end.BilledEnd, and the rest of
// end (cause, who hung up, final status, media meters) carried into the
// call's call.ended event.
func (e *Engine) EndWith(now time.Time, callID string, end End) (Output, bool) {
	billedEnd := end.BilledEnd
	var out Output
	now = e.step(now, &out)
	c, ok := e.calls[callID]
	if !ok {
		return out, false
	}
	x := now
	if !billedEnd.IsZero() && c.answered {
		x = billedEnd.Round(0)
		if x.Before(c.ans) {
			x = c.ans
		}
		if x.Before(e.cycleStart) {
			x = e.cycleStart
		}
		if x.After(now) {
			x = now
		}
	}
	delete(e.calls, callID)
	t := c.t
	t.calls = removeCall(t.calls, c.tidx, func(c *call) *int { return &c.tidx })
	if c.emergency {
		if c.answered {
			t.emerg.stopOne(x)
			e.settleEmergency(c, x)
		}
		e.ended(c, now, &end, &out)
		t.emergencyActive = max(0, t.emergencyActive-1)
		e.release(c)
		return out, true
	}
	wasDrawing := c.drawing
	if wasDrawing {
		e.stopDrawing(c, x)
	}
	e.ended(c, now, &end, &out)
	t.active = max(0, t.active-1)
	if c.dir == Inbound {
		t.activeIn = max(0, t.activeIn-1)
	} else {
		t.activeOut = max(0, t.activeOut-1)
	}
	if u := c.u; u != nil {
		u.active = max(0, u.active-1)
		u.calls = removeCall(u.calls, c.uidx, func(c *call) *int { return &c.uidx })
	}
	e.leaseEnded(t, c)
	if wasDrawing {
		e.tripDrawn(c, now, &out)
	}
	e.releaseRecord(c)
	e.release(c)
	e.settle(now, &out)
	return out, true
}

// removeCall removes element i of a call list by swapping the last one
// into its place; index gives a call's index field for that list.
func removeCall(calls []*call, i int, index func(*call) *int) []*call {
	last := len(calls) - 1
	moved := calls[last]
	calls[i] = moved
	*index(moved) = i
	calls[last] = nil
	return calls[:last]
}

func (e *Engine) release(c *call) {
	*c = call{}
	e.free = append(e.free, c)
}

// Usage returns the tenant's usage in the current cycle at now: settled
// plus accrued. It changes nothing: deadlines due before now that were not
// yet processed (no Tick) are not applied. For a now in a later month than
// the engine's cycle it returns what that month has accrued so far.
func (e *Engine) Usage(now time.Time, tenant string) Usage {
	t, ok := e.tenants[tenant]
	if !ok || !e.started {
		return Usage{}
	}
	now = now.Round(0)
	if now.Before(e.now) {
		now = e.now
	}
	if now.Before(e.cycleEnd) {
		return Usage{
			Seconds:          t.minutes.acc.value(now),
			Spend:            e.spendScan(t, now, true),
			EmergencySeconds: t.emerg.value(now),
		}
	}
	ms := monthStart(now)
	var u Usage
	for _, c := range t.calls {
		switch {
		case c.emergency && c.answered:
			u.EmergencySeconds += now.Sub(ms)
		case c.drawing:
			u.Seconds += now.Sub(ms)
			if c.rate != nil {
				u.Spend += costAt(c.rate, now.Sub(c.ans)) - cost(c.rate, ms.Sub(c.ans))
			}
		}
	}
	return u
}

// UserUsage returns the billed time of one user of the tenant in the
// current cycle at now (as Usage: nothing is changed).
func (e *Engine) UserUsage(now time.Time, tenant, user string) time.Duration {
	t, ok := e.tenants[tenant]
	if !ok || !e.started {
		return 0
	}
	u, ok := t.users[user]
	if !ok {
		return 0
	}
	now = now.Round(0)
	if now.Before(e.now) {
		now = e.now
	}
	if now.Before(e.cycleEnd) {
		return u.minutes.acc.value(now)
	}
	ms := monthStart(now)
	var d time.Duration
	for _, c := range t.calls {
		if c.drawing && c.u == u {
			d += now.Sub(ms)
		}
	}
	return d
}
