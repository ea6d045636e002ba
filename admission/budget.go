package admission

import (
	"math"
	"math/bits"
	"sort"
	"time"
)

// budgetKind says what a budget meters and in which unit.
type budgetKind uint8

const (
	kindMinutes     budgetKind = iota // tenant max_monthly_minutes; amounts in ns
	kindSpend                         // tenant monthly_spend_limit; amounts in micro-units
	kindUserMinutes                   // role max_monthly_minutes of one user; amounts in ns
)

// accrual meters billed time exactly: used up to at, plus k calls accruing
// since at.
type accrual struct {
	used time.Duration
	at   time.Time
	k    int64
}

// value returns the billed time at t (t >= at).
func (a *accrual) value(t time.Time) time.Duration {
	if a.k == 0 || !t.After(a.at) {
		return a.used
	}
	return a.used + time.Duration(a.k)*t.Sub(a.at)
}

// advance folds the accrual up to t into used.
func (a *accrual) advance(t time.Time) {
	a.used = a.value(t)
	if t.After(a.at) {
		a.at = t
	}
}

// stopOne stops one of the k accruing calls at x. An x before at (a call
// billed to its last RTP packet, EndAt) takes back what that call accrued
// since x.
func (a *accrual) stopOne(x time.Time) {
	if x.Before(a.at) {
		a.used -= a.at.Sub(x)
	} else {
		a.advance(x)
	}
	a.k--
}

// budget is one monthly budget (tenant minutes, tenant spend, or a user's
// role minutes): its usage this cycle, its once-per-cycle event flags and
// its place in the deadline heap.
type budget struct {
	kind budgetKind
	t    *tenantState
	u    *userState // kindUserMinutes only
	seq  uint64     // tie-break in the heap: deterministic order
	hidx int        // index in the heap; -1 when not scheduled
	due  time.Time  // min(thrDue, exhDue) while scheduled
	key  int64      // due in Unix nanoseconds: cheap heap comparisons

	thrDue, exhDue     time.Time // next threshold crossing / exhaustion instant
	hasThr, hasExh     bool
	thrExact, exhExact bool // false: a re-evaluation instant before the crossing (spend only)
	dirty              bool // queued for recomputation
	limitChanged       bool // the limit changed since the last recomputation
	pending            bool // over its limit because the limit was lowered: trips at the next call or charge

	acc     accrual // minutes budgets: billed time this cycle
	settled int64   // spend: cost settled this cycle (ended and cut calls)
	// others is, in a cluster, what the other nodes used of this tenant
	// budget this cycle at othersAt, growing by othersRate per unit of
	// time after it (minutes: their calls billing; SetClusterUsage): this
	// node's usage counts against the limit minus it.
	others     int64
	othersRate int64
	othersAt   time.Time

	thrSent, capSent bool // usage.threshold / usage.cap_reached sent this cycle
}

func (e *Engine) initBudget(b *budget, kind budgetKind, t *tenantState, u *userState, now time.Time) {
	e.seq++
	*b = budget{kind: kind, t: t, u: u, seq: e.seq, hidx: -1}
	b.acc.at = now
}

// limit returns the budget's effective limit in the cap's own unit
// (minutes or micro-units); -1 = unlimited.
func (b *budget) limit() int64 {
	switch b.kind {
	case kindMinutes:
		return b.t.eff.minutes
	case kindSpend:
		return b.t.eff.spend
	default:
		if r := b.u.roleFor(); r != nil {
			return r.minutes
		}
		return unlimited
	}
}

// amount converts a limit in the cap's unit to the budget's amount unit.
func (b *budget) amount(limit int64) int64 {
	if b.kind == kindSpend {
		return limit
	}
	return limit * int64(time.Minute)
}

// eventUnits converts an amount to the unit of events: seconds for minutes
// caps, micro-units for spend.
func (b *budget) eventUnits(amount int64) int64 {
	if b.kind == kindSpend {
		return amount
	}
	return amount / int64(time.Second)
}

// hard reports whether reaching the budget rejects and cuts: role minutes
// always, tenant caps when auto_suspend is on.
func (b *budget) hard() bool {
	return b.kind == kindUserMinutes || b.t.eff.autoSuspend
}

// bounded reports a budget counting a silent node's usage at its bound
// (tenantState.bounded, userState.bounded): its exhaustion is not
// certain.
func (b *budget) bounded() bool {
	if b.kind == kindUserMinutes {
		return b.u.bounded
	}
	return b.t.bounded
}

func (b *budget) capName() string {
	switch b.kind {
	case kindMinutes:
		return CapMinutes
	case kindSpend:
		return CapSpend
	default:
		if r := b.u.roleFor(); r != nil {
			return r.capName
		}
		return RoleMinutesCap("")
	}
}

func (b *budget) cause() Cause {
	switch b.kind {
	case kindMinutes:
		return CauseMinutes
	case kindSpend:
		return CauseSpend
	default:
		return CauseRoleMinutes
	}
}

func (b *budget) user() string {
	if b.u != nil {
		return b.u.id
	}
	return ""
}

// usage returns the amount used this cycle at instant at, with every
// increment that starts at that instant charged.
func (e *Engine) usage(b *budget, at time.Time) int64 {
	if b.kind == kindSpend {
		return e.spendAt(b.t, at, true)
	}
	return int64(b.acc.value(at))
}

// atLeast reports usage(b, at) >= x; for spend without bringing the
// meter up to date when a bound rules it out.
func (e *Engine) atLeast(b *budget, at time.Time, x int64) bool {
	if b.kind == kindSpend {
		return e.spendAtLeast(b.t, at, x)
	}
	return int64(b.acc.value(at)) >= x
}

// usageBefore is usage without the increments starting exactly at at: what
// is billed when calls stop at that instant.
func (e *Engine) usageBefore(b *budget, at time.Time) int64 {
	if b.kind == kindSpend {
		return e.spendAt(b.t, at, false)
	}
	return int64(b.acc.value(at))
}

// thresholdAmount is alert_threshold_pct of the limit amount a, rounded up
// (exact for minutes, whose amounts are multiples of 60 s).
func (b *budget) thresholdAmount(a int64) int64 {
	pct := b.t.eff.threshold
	if b.kind == kindSpend {
		return (pct*a + 99) / 100
	}
	return a / 100 * pct
}

// exhaustAmount is the usage at which the budget runs out mid-call: the
// limit for minutes (continuous), one micro-unit over it for spend (an
// increment that cannot be paid is not started; usage may reach the limit
// exactly).
func (b *budget) exhaustAmount(a int64) int64 {
	if b.kind == kindSpend {
		return a + 1
	}
	return a
}

// drawing reports whether any call draws on b.
func (e *Engine) drawing(b *budget) bool {
	switch b.kind {
	case kindSpend:
		return b.t.meter.rated > 0
	default:
		return b.acc.k > 0
	}
}

// exhausted reports the INVITE-time check: a limit is set and usage >= it.
func (e *Engine) exhausted(b *budget, now time.Time) bool {
	l := b.limit()
	return l >= 0 && e.atLeast(b, now, b.amount(l)-b.othersNow(now))
}

// othersNow is the other nodes' usage of b at t (0 outside a cluster).
func (b *budget) othersNow(t time.Time) int64 {
	if b.othersRate == 0 || !t.After(b.othersAt) {
		return b.others
	}
	return b.others + b.othersRate*int64(t.Sub(b.othersAt))
}

// over reports a budget that is already past its exhaustion point (a cap
// lowered below usage, or a soft cap exceeded).
func (e *Engine) over(b *budget, now time.Time) bool {
	l := b.limit()
	return l >= 0 && e.atLeast(b, now, b.exhaustAmount(b.amount(l))-b.othersNow(now))
}

// reach returns the smallest instant t in [now, cycle end) at which the
// budget's usage is >= x, given the calls drawing on it now (exact), or,
// for a spend budget far from x, an earlier instant at which to evaluate
// again (not exact: usage provably stays below x until then). ok is false
// when x is not reached in this cycle.
func (e *Engine) reach(b *budget, now time.Time, x int64) (t time.Time, exact, ok bool) {
	if b.kind != kindSpend {
		u := int64(b.acc.value(now))
		if u >= x {
			return now, true, true
		}
		if b.acc.k+b.othersRate == 0 {
			return time.Time{}, false, false
		}
		k := b.acc.k + b.othersRate // the target moves as the other nodes bill
		t := now.Add(time.Duration((x - u + k - 1) / k))
		return t, true, t.Before(e.cycleEnd)
	}
	return e.spendReach(b.t, now, x)
}

// incrementBound is ceil(PerMinute*Subsequent/60)+1, the largest amount one
// subsequent increment of r can charge (rounding included), saturated.
func incrementBound(r *Rate) int64 {
	hi, lo := bits.Mul64(uint64(r.PerMinute), uint64(r.Subsequent))
	lo, carry := bits.Add64(lo, 59, 0)
	hi += carry
	if hi >= 60 {
		return math.MaxInt64 / 4
	}
	q, _ := bits.Div64(hi, lo, 60)
	return int64(min(q, math.MaxInt64/4)) + 1
}

// markDirty queues b for recomputation of its deadline.
func (e *Engine) markDirty(b *budget) {
	if !b.dirty {
		b.dirty = true
		e.dirty = append(e.dirty, b)
	}
}

// flush recomputes the deadline of every queued budget as of now.
func (e *Engine) flush(now time.Time) {
	for i := 0; i < len(e.dirty); i++ {
		if b := e.dirty[i]; b.dirty {
			e.recompute(b, now)
		}
		e.dirty[i] = nil
	}
	e.dirty = e.dirty[:0]
}

// recompute sets the budget's next deadline: the instant usage crosses the
// alert threshold (if not yet reported this cycle; none for a limit of 0)
// and the instant it runs out, given the calls drawing on it now. A budget
// that a limit change left past its exhaustion point is pending: it gets
// no exhaustion deadline and trips at the next call or charge instead
// (lowering a cap is never retroactive). Any other budget found past it
// with calls drawing on it (a cycle starting with a limit of 0) runs out
// now.
func (e *Engine) recompute(b *budget, now time.Time) {
	b.dirty = false
	b.hasThr, b.hasExh = false, false
	changed := b.limitChanged
	b.limitChanged = false
	if l := b.limit(); l >= 0 {
		a := b.amount(l)
		o := b.othersNow(now)
		// A bounded budget reports nothing (trip), so it has no threshold
		// deadline and, soft, no exhaustion deadline either: they come
		// when the others' usage is known again (SetClusterUsage marks it
		// dirty).
		report := !b.bounded()
		if !b.thrSent && l > 0 && report {
			b.thrDue, b.thrExact, b.hasThr = e.reach(b, now, b.thresholdAmount(a)-o)
		}
		x := b.exhaustAmount(a) - o
		switch over := e.atLeast(b, now, x); {
		case !over:
			b.pending = false
			if b.hard() || !b.capSent && report {
				b.exhDue, b.exhExact, b.hasExh = e.reach(b, now, x)
			}
		case changed || b.pending:
			b.pending = true
		case (b.hard() || !b.capSent && report) && e.drawing(b):
			b.exhDue, b.exhExact, b.hasExh = now, true, true
		}
	} else {
		b.pending = false
	}
	switch {
	case b.hasThr && b.hasExh:
		e.schedule(b, minTime(b.thrDue, b.exhDue))
	case b.hasThr:
		e.schedule(b, b.thrDue)
	case b.hasExh:
		e.schedule(b, b.exhDue)
	default:
		e.unschedule(b)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// fire processes the budget's deadline at instant x (already popped). A
// re-evaluation instant (not exact) only recomputes.
func (e *Engine) fire(b *budget, x time.Time, out *Output) {
	exh := b.hasExh && b.exhExact && !x.Before(b.exhDue)
	if b.hasThr && b.thrExact && !x.Before(b.thrDue) && !b.thrSent && !exh {
		e.emitThreshold(b, x, e.usage(b, x), out)
	}
	if exh {
		e.trip(b, x, out)
	}
	e.markDirty(b)
	e.flush(x)
}

func (e *Engine) emitThreshold(b *budget, x time.Time, used int64, out *Output) {
	b.thrSent = true
	e.markBudget(b)
	out.Events = append(out.Events, Event{
		Type: EventThreshold, Tenant: b.t.name, User: b.user(), Cap: b.capName(),
		Value: b.eventUnits(used + b.othersNow(x)), Limit: b.eventUnits(b.amount(b.limit())), At: x, Shared: true,
	})
}

// trip handles a budget that ran out at x: the threshold event if it was
// skipped, usage.cap_reached once per cycle, and for a hard budget the cut
// of every call drawing on it and (tenant caps) the suspension of the
// tenant. Soft budgets only report.
func (e *Engine) trip(b *budget, x time.Time, out *Output) {
	hard := b.hard()
	if b.bounded() {
		// It may not have run out (a silent node counted at its bound):
		// the calls are cut, as they cannot be shown to be paid for, and
		// new ones refused, but nothing is reported and the tenant is not
		// suspended. Once the others' usage is known again, a budget still
		// out trips in full at its next call.
		if hard {
			used := e.usageBefore(b, x) + b.othersNow(x)
			e.cutDrawing(b, x, b.eventUnits(used), b.eventUnits(b.amount(b.limit())), out)
		}
		e.markDirty(b)
		return
	}
	used := e.usage(b, x)
	if hard {
		used = e.usageBefore(b, x)
	}
	used += b.othersNow(x) // the cluster's usage, in the events
	if !b.thrSent && b.limit() > 0 {
		e.emitThreshold(b, x, used, out)
	}
	first := !b.capSent // the cycle's first trip: its suspension is a shared fact too
	if first {
		b.capSent = true
		e.markBudget(b)
		out.Events = append(out.Events, Event{
			Type: EventCapReached, Tenant: b.t.name, User: b.user(), Cap: b.capName(),
			Value: b.eventUnits(used), Limit: b.eventUnits(b.amount(b.limit())), At: x, Shared: true,
		})
	}
	if hard {
		e.cutDrawing(b, x, b.eventUnits(used), b.eventUnits(b.amount(b.limit())), out)
		if b.kind != kindUserMinutes {
			n := len(out.Events)
			e.suspend(b.t, x, b.capName()+" reached", b.capName(), out)
			// The tenant.suspended, if it was emitted now, is the first
			// event after n (the cuts of its early calls follow it).
			if len(out.Events) > n {
				if ev := &out.Events[n]; ev.Type == EventSuspended && ev.Cap == b.capName() {
					ev.Value, ev.Limit = b.eventUnits(used), b.eventUnits(b.amount(b.limit()))
					ev.Shared = first
				}
			}
		}
	}
	e.markDirty(b)
}

// tripIfOver trips b when it is past its exhaustion point (the "next
// charge" of a cap lowered below usage).
func (e *Engine) tripIfOver(b *budget, now time.Time, out *Output) {
	if e.over(b, now) && (b.hard() || !b.capSent) {
		e.trip(b, now, out)
	}
}

// drawsOn reports whether call c draws on budget b.
func drawsOn(c *call, b *budget) bool {
	if !c.drawing {
		return false
	}
	switch b.kind {
	case kindMinutes:
		return true
	case kindSpend:
		return c.rate != nil
	default:
		return c.u == b.u
	}
}

// cutDrawing cuts, in admission order, every call drawing on b: the
// tenant's calls for its budgets, the user's own calls for a role budget.
// value and limit, in the event's units, go into each call.cut.
func (e *Engine) cutDrawing(b *budget, x time.Time, value, limit int64, out *Output) {
	cs := e.scratch[:0]
	calls := b.t.calls
	if b.u != nil {
		calls = b.u.calls
	}
	for _, c := range calls {
		if drawsOn(c, b) {
			cs = append(cs, c)
		}
	}
	e.cutCalls(cs, x, b.cause(), b.capName(), value, limit, out)
}

// cutAll cuts, in admission order, every uncut non-emergency call of t.
func (e *Engine) cutAll(t *tenantState, x time.Time, out *Output) {
	cs := e.scratch[:0]
	for _, c := range t.calls {
		if !c.cut && !c.emergency {
			cs = append(cs, c)
		}
	}
	e.cutCalls(cs, x, CauseSuspended, CapSuspended, 0, 0, out)
}

func (e *Engine) cutCalls(cs []*call, x time.Time, cause Cause, capName string, value, limit int64, out *Output) {
	if len(cs) > 1 {
		sort.Slice(cs, func(i, j int) bool { return cs[i].seq < cs[j].seq })
	}
	for i, c := range cs {
		e.cut(c, x, cause, capName, value, limit, out)
		cs[i] = nil
	}
	e.scratch = cs[:0]
}

// cut stops billing of c at x and orders its teardown. The call stays
// active (counted) until End.
func (e *Engine) cut(c *call, x time.Time, cause Cause, capName string, value, limit int64, out *Output) {
	if c.cut || c.emergency {
		return
	}
	if c.drawing {
		e.stopDrawing(c, x)
	}
	c.cut = true
	out.Cuts = append(out.Cuts, Cut{CallID: c.id, Cause: cause, Cap: capName, At: x})
	ev := e.callEvent(EventCallCut, c, x, out)
	ev.Cap, ev.Value, ev.Limit = capName, value, limit
	ev.Call.Cause = cause.String()
}

// startDrawing makes an answered call draw on its budgets from now.
func (e *Engine) startDrawing(c *call, now time.Time) {
	t := c.t
	c.drawing = true
	t.minutes.acc.advance(now)
	t.minutes.acc.k++
	e.markDirty(&t.minutes)
	if c.u != nil {
		c.u.minutes.acc.advance(now)
		c.u.minutes.acc.k++
		e.markDirty(&c.u.minutes)
	}
	if c.rate != nil {
		e.meterStart(c, now)
		e.markDirty(&t.spend)
	}
}

// stopDrawing settles c's usage up to x (end or cut instant).
func (e *Engine) stopDrawing(c *call, x time.Time) {
	t := c.t
	c.drawing = false
	t.minutes.acc.stopOne(x)
	e.markDirty(&t.minutes)
	if c.u != nil {
		c.u.minutes.acc.stopOne(x)
		e.markDirty(&c.u.minutes)
	}
	var spend int64
	if c.rate != nil {
		spend = e.meterStop(c, x)
		t.spend.settled = min(t.spend.settled+spend, math.MaxInt64/4)
		e.markDirty(&t.spend)
	}
	sec := e.cycleTime(c.ans, x)
	t.settled += sec
	e.markTenant(t)
	if c.u != nil {
		c.u.settled += sec
		e.markUser(c.u)
	}
	e.charge(c, sec, spend, x, true)
	e.releaseRecord(c) // billing is final: a restart must not bill it again
}
