package admission

import (
	"container/heap"
	"time"
)

// monthStart returns the first instant of t's calendar month in UTC.
func monthStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// nextMonth returns the first instant of the month after the one starting
// at start.
func nextMonth(start time.Time) time.Time {
	return start.AddDate(0, 1, 0)
}

// step starts every engine method that takes a time: it clamps now so time
// never runs backwards (a caller's clock read before it got the lock may be
// slightly older than the last step), then rolls cycles and processes
// every deadline up to now, in time order.
func (e *Engine) step(now time.Time, out *Output) time.Time {
	now = now.Round(0) // strip the monotonic reading: wall time only
	if !e.started {
		e.started = true
		e.now = now
		e.cycleStart = monthStart(now)
		e.cycleEnd = nextMonth(e.cycleStart)
	}
	if now.Before(e.now) {
		now = e.now
	} else {
		e.now = now
	}
	e.processDue(now, out)
	return now
}

// settle ends every method that changed state at now: deadlines are
// recomputed and any that fall due at now are processed.
func (e *Engine) settle(now time.Time, out *Output) {
	e.flush(now)
	e.processDue(now, out)
}

// processDue processes, in time order, every deadline <= now, rolling the
// cycle when its end is reached. A deadline is processed at its own
// instant, so the effects are exact even when the caller is late.
func (e *Engine) processDue(now time.Time, out *Output) {
	for {
		if len(e.heap) > 0 {
			if b := e.heap[0]; b.due.Before(e.cycleEnd) && !b.due.After(now) {
				heap.Pop(&e.heap)
				e.fire(b, b.due, out)
				continue
			}
		}
		if !e.cycleEnd.After(now) {
			e.rollover(out)
			continue
		}
		return
	}
}

// rollover starts the next cycle at the current cycle's end B: the accrued
// time and cost of running calls up to B stay in the old month, counters
// and event flags restart, cycle.rollover is emitted and, with
// ResumeOnRollover, suspensions caused by a monthly cap are lifted. It
// visits every tenant: once a month, never per call.
func (e *Engine) rollover(out *Output) {
	b := e.cycleEnd
	out.Events = append(out.Events, Event{Type: EventRollover, At: b, Shared: true})
	last := b.Add(-time.Nanosecond)
	for _, t := range e.order {
		t.minutes.acc.advance(b)
		t.minutes.acc.used = 0
		t.minutes.thrSent, t.minutes.capSent, t.minutes.pending = false, false, false
		t.minutes.others, t.minutes.othersRate, t.spend.others = 0, 0, 0 // the other nodes' usage of the new cycle comes from the ledger
		for _, c := range t.calls {
			switch {
			case c.drawing:
				var spend int64
				if c.rate != nil {
					prior := cost(c.rate, b.Sub(c.ans))
					spend = prior - c.prior
					e.meterRollover(t, c, prior)
				}
				e.charge(c, e.cycleTime(c.ans, b), spend, last, false)
			case c.emergency && c.answered:
				e.charge(c, e.cycleTime(c.ans, b), 0, last, false)
			}
		}
		t.settled, t.settledEmerg = 0, 0
		e.markTenant(t)
		t.spend.settled = 0
		t.spend.thrSent, t.spend.capSent, t.spend.pending = false, false, false
		t.emerg.advance(b)
		t.emerg.used = 0
		for id, u := range t.users {
			if u.active == 0 && !u.minutes.dirty {
				u.settled = 0
				e.unschedule(&u.minutes)
				delete(t.users, id)
				continue
			}
			u.minutes.acc.advance(b)
			u.minutes.acc.used = 0
			u.settled = 0
			e.markUser(u)
			u.minutes.thrSent, u.minutes.capSent, u.minutes.pending = false, false, false
			u.minutes.others, u.minutes.othersRate = 0, 0
			e.markDirty(&u.minutes)
		}
		e.markDirty(&t.minutes)
		e.markDirty(&t.spend)
		if e.resumeOnRollover && t.suspended && (t.suspendCap == CapMinutes || t.suspendCap == CapSpend) {
			e.resume(t, b, "cycle rollover", out)
			out.Events[len(out.Events)-1].Shared = true
		}
	}
	e.cycleStart = b
	e.cycleEnd = nextMonth(b)
	e.flush(b)
}

// NextDeadline returns the earliest pending deadline: a budget running
// out, a threshold crossing, or the start of the next cycle. The caller
// calls Tick at that instant. It is false only before the engine has seen
// any time.
func (e *Engine) NextDeadline() (time.Time, bool) {
	if !e.started {
		return time.Time{}, false
	}
	if len(e.heap) > 0 && e.heap[0].due.Before(e.cycleEnd) {
		return e.heap[0].due, true
	}
	return e.cycleEnd, true
}

// Tick processes every deadline <= now (cuts, threshold and cap events,
// suspensions, cycle rollovers) and returns their effects.
func (e *Engine) Tick(now time.Time) Output {
	var out Output
	now = e.step(now, &out)
	e.settle(now, &out)
	return out
}
