package admission

import (
	"math"
	"math/bits"
	"time"
)

// A tenant's spend is a step function of time: every drawing rated call
// charges its connect fee and first increment when it is answered and one
// more increment at each of its billing boundaries (answer + Initial,
// + Initial + Subsequent, ...). The spend meter keeps that function
// incrementally instead of summing over the calls:
//
//   - run is the cost charged by the drawing calls, exact at pos: every
//     boundary <= pos has been charged;
//   - the drawing calls with a per-minute price sit in a min-heap keyed by
//     their next boundary. Bringing run to an instant t pops each call
//     with a boundary in (pos, t] once and charges all its increments up
//     to t in O(1), so a call costs O(log n) per exact evaluation it
//     crossed a boundary before, never per increment; a call that ends
//     first costs nothing for them (its own cost is O(1));
//   - csum and rate bound the growth of the spend over any interval from
//     above (each call charges at most one increment of at most
//     incrementBound per Subsequent seconds, plus one at any moment), in
//     O(1). Far from a limit the spend is not brought up to date at all:
//     the bound says the limit is not reached, and the budget is
//     re-evaluated at the earliest instant it could be;
//   - near the limit, the exhaustion instant is found by replaying the next
//     boundaries from the heap (at most simPops of them, O(log n) each) and
//     undoing the replay, so the result is exact and the state unchanged.
//
// No operation visits every call of the tenant.

// simPops bounds the boundaries one exact replay visits. When the limit is
// further away than that, the budget is re-evaluated at the last boundary
// replayed.
const simPops = 64

// hugeBound is the largest increment bound the O(1) horizon sums; a call
// with a larger one (absurd prices) disables the horizon for its tenant, so
// the sums never overflow.
const hugeBound = 1 << 40

// spendMeter is a tenant's running spend (see above).
type spendMeter struct {
	heap   []*call // drawing calls with PerMinute > 0, by next boundary
	pos    int64   // Unix ns: every boundary <= pos is charged in run
	atTime int64   // Unix ns of the latest charge instant seen
	atAmt  int64   // the part of run charged exactly at atTime
	run    wide    // Σ (chg - prior) over drawing rated calls
	rated  int64   // drawing calls with a rate
	csum   int64   // Σ incrementBound over heap calls (bounded by hugeBound)
	rate   int64   // Σ ceil(incrementBound / Subsequent) per second over heap calls
	huge   int64   // heap calls whose increment bound exceeds hugeBound
}

// wide is a signed 128-bit accumulator: sums of saturated costs never wrap.
type wide struct {
	hi int64
	lo uint64
}

func (w *wide) add(v int64) {
	var carry uint64
	w.lo, carry = bits.Add64(w.lo, uint64(v), 0)
	ext := int64(0)
	if v < 0 {
		ext = -1
	}
	w.hi += ext + int64(carry)
}

// plus returns w + base, clamped to [math.MinInt64/4, math.MaxInt64/4].
func (w wide) plus(base int64) int64 {
	s := w
	s.add(base)
	const top = math.MaxInt64 / 4
	switch {
	case s.hi > 0 || (s.hi == 0 && s.lo > top):
		return top
	case s.hi < -1 || (s.hi == -1 && int64(s.lo) < -top):
		return -top
	}
	return int64(s.lo)
}

// chargeOf is the cost of billed seconds under r: the connect fee plus
// PerMinute*secs/60 rounded half up (saturated), as cost.
func chargeOf(r *Rate, secs int64) int64 {
	hi, lo := bits.Mul64(uint64(r.PerMinute), uint64(secs))
	lo, carry := bits.Add64(lo, 30, 0)
	hi += carry
	if hi >= 60 {
		return math.MaxInt64 / 4
	}
	q, _ := bits.Div64(hi, lo, 60)
	if q > math.MaxInt64/4 {
		return math.MaxInt64 / 4
	}
	return r.ConnectFee + int64(q)
}

// Heap of calls by (next boundary, seq); each call knows its index.

func (m *spendMeter) less(i, j int) bool {
	a, b := m.heap[i], m.heap[j]
	if a.next == b.next {
		return a.seq < b.seq
	}
	return a.next < b.next
}

func (m *spendMeter) swap(i, j int) {
	h := m.heap
	h[i], h[j] = h[j], h[i]
	h[i].sidx = i
	h[j].sidx = j
}

func (m *spendMeter) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !m.less(j, i) {
			return
		}
		m.swap(i, j)
		j = i
	}
}

func (m *spendMeter) down(i int) bool {
	i0, n := i, len(m.heap)
	for {
		l := 2*i + 1
		if l >= n || l < 0 {
			break
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			break
		}
		m.swap(i, j)
		i = j
	}
	return i > i0
}

func (m *spendMeter) fix(i int) {
	if !m.down(i) {
		m.up(i)
	}
}

func (m *spendMeter) push(c *call) {
	c.sidx = len(m.heap)
	m.heap = append(m.heap, c)
	m.up(c.sidx)
}

func (m *spendMeter) remove(c *call) {
	i, n := c.sidx, len(m.heap)-1
	if i != n {
		m.swap(i, n)
	}
	m.heap[n] = nil
	m.heap = m.heap[:n]
	if i != n {
		m.fix(i)
	}
	c.sidx = -1
}

// step charges c's next increment and moves its boundary on (replay
// only); it returns the increment. The caller restores the heap order.
func (c *call) step() int64 {
	c.billed += c.rate.Subsequent
	v := chargeOf(c.rate, c.billed)
	inc := v - c.chg
	c.chg = v
	c.next += c.rate.Subsequent * int64(time.Second)
	return inc
}

// chargedAt records amt as charged exactly at instant t (t never
// decreases).
func (m *spendMeter) chargedAt(t, amt int64) {
	if t != m.atTime {
		m.atTime, m.atAmt = t, 0
	}
	m.atAmt += amt
}

// advance charges every boundary <= t: each call with one is popped once
// and charged up to t.
func (m *spendMeter) advance(t int64) {
	m.pos = max(m.pos, t)
	for len(m.heap) > 0 && m.heap[0].next <= t {
		c := m.heap[0]
		r := c.rate
		ans := c.ans.UnixNano()
		b := billedSeconds(r, time.Duration(t-ans+1)) // > c.billed: a boundary was crossed
		v := chargeOf(r, b)
		m.run.add(v - c.chg)
		c.billed, c.chg = b, v
		c.next = ans + b*int64(time.Second)
		if last := ans + (b-r.Subsequent)*int64(time.Second); last == t {
			part := v - chargeOf(r, b-r.Subsequent)
			m.chargedAt(t, part)
			c.lastAt, c.lastInc = t, part
		}
		m.down(0)
	}
}

// bound is an upper bound of the spend at t without bringing the meter up
// to date: what is charged at pos plus the most the calls can charge in
// (pos, t].
func (m *spendMeter) bound(settled, t int64) int64 {
	v := m.run.plus(settled)
	if len(m.heap) == 0 {
		return v
	}
	if m.huge > 0 {
		return math.MaxInt64 / 4
	}
	secs := max(0, (t-m.pos+int64(time.Second)-1)/int64(time.Second))
	return min(v+m.csum+min(m.rate, math.MaxInt64/4/max(secs, 1))*secs, math.MaxInt64/4)
}

// spendAt is the tenant's spend this cycle at instant at: settled cost plus
// what the drawing calls charged by then. inclusive counts increments
// starting exactly at at. at must not be earlier than the engine's
// current time.
func (e *Engine) spendAt(t *tenantState, at time.Time, inclusive bool) int64 {
	m := &t.meter
	x := at.UnixNano()
	if x < m.pos {
		return e.spendScan(t, at, inclusive) // never on an event path: time does not run backwards
	}
	m.advance(x)
	v := m.run.plus(t.spend.settled)
	if !inclusive && m.atTime == x {
		v -= m.atAmt
	}
	return v
}

// spendAtLeast reports whether the tenant's spend at at (inclusive) is >=
// x, bringing the meter up to date only when the bound cannot rule it out.
func (e *Engine) spendAtLeast(t *tenantState, at time.Time, x int64) bool {
	if t.meter.bound(t.spend.settled, at.UnixNano()) < x {
		return false
	}
	return e.spendAt(t, at, true) >= x
}

// spendScan computes spendAt by visiting every call: for queries at any
// instant (Usage), never on an event path.
func (e *Engine) spendScan(t *tenantState, at time.Time, inclusive bool) int64 {
	var w wide
	for _, c := range t.calls {
		if !c.drawing || c.rate == nil {
			continue
		}
		v := cost(c.rate, at.Sub(c.ans))
		if inclusive {
			v = costAt(c.rate, at.Sub(c.ans))
		}
		w.add(v - c.prior)
	}
	return w.plus(t.spend.settled)
}

// meterStart makes a rated call draw on its tenant's spend from now: its
// connect fee and first increment are charged at now.
func (e *Engine) meterStart(c *call, now time.Time) {
	m := &c.t.meter
	x := now.UnixNano()
	r := c.rate
	m.rated++
	c.billed = r.Initial
	c.chg = chargeOf(r, r.Initial)
	m.run.add(c.chg - c.prior)
	m.chargedAt(x, c.chg)
	c.lastAt, c.lastInc = x, c.chg
	if r.PerMinute == 0 {
		return
	}
	c.next = x + r.Initial*int64(time.Second)
	m.push(c)
	if ib := incrementBound(r); ib > hugeBound {
		m.huge++
	} else {
		m.csum += ib
		m.rate += (ib + r.Subsequent - 1) / r.Subsequent
	}
}

// meterStop removes a rated call from its tenant's running spend at x and
// returns its cost this cycle up to x (the increments started before x).
func (e *Engine) meterStop(c *call, x time.Time) int64 {
	m := &c.t.meter
	r := c.rate
	m.rated--
	m.run.add(c.prior - c.chg)
	if c.lastAt == m.atTime {
		m.atAmt -= c.lastInc
	}
	if r.PerMinute > 0 {
		m.remove(c)
		if ib := incrementBound(r); ib > hugeBound {
			m.huge--
		} else {
			m.csum -= ib
			m.rate -= (ib + r.Subsequent - 1) / r.Subsequent
		}
	}
	return cost(r, x.Sub(c.ans)) - c.prior
}

// meterRollover starts the tenant's spend of a new cycle at b: what each
// drawing call charged before b belongs to the old month (prior).
func (e *Engine) meterRollover(t *tenantState, c *call, prior int64) {
	m := &t.meter
	m.run.add(c.prior - prior)
	c.prior = prior
}

// spendReach is reach for a spend budget: the first instant in [now, cycle
// end) at which the tenant's spend is >= x (exact), or an earlier instant
// at which to evaluate again (not exact).
func (e *Engine) spendReach(t *tenantState, now time.Time, x int64) (time.Time, bool, bool) {
	m := &t.meter
	if len(m.heap) == 0 {
		if e.spendAt(t, now, true) >= x {
			return now, true, true
		}
		return time.Time{}, false, false // nothing grows
	}
	// First from the bound (no work per call), then from the exact spend.
	for _, exact := range []bool{false, true} {
		g := m.bound(t.spend.settled, now.UnixNano())
		if exact {
			if g = e.spendAt(t, now, true); g >= x {
				return now, true, true
			}
		}
		if need := x - g; m.huge == 0 && need > m.csum {
			// Spend stays below x for T < secs seconds: re-evaluate then.
			if secs := (need - m.csum) / m.rate; secs >= 1 {
				if secs > int64(e.cycleEnd.Sub(now)/time.Second) {
					return time.Time{}, false, false
				}
				return now.Add(time.Duration(secs) * time.Second), false, true
			}
		}
	}
	return e.spendReplay(t, now, x-e.spendAt(t, now, true))
}

// spendReplay replays the tenant's next boundaries (at most simPops) until
// they add up to need, then undoes the replay. It returns the boundary at
// which the spend reaches need (exact), or the next boundary not replayed
// (not exact: the spend stays below need before it).
func (e *Engine) spendReplay(t *tenantState, now time.Time, need int64) (time.Time, bool, bool) {
	m := &t.meter
	end := e.cycleEnd.UnixNano()
	e.simGen++
	saved := e.simSaved[:0]
	var (
		sum       int64
		cur       int64 = math.MinInt64
		pops      int
		at        int64
		exact, ok bool
	)
	for {
		c := m.heap[0]
		if c.next != cur {
			if sum >= need {
				at, exact, ok = cur, true, true
				break
			}
			if c.next >= end {
				break // not reached this cycle
			}
			if pops >= simPops {
				at, ok = c.next, true
				break
			}
			cur = c.next
		}
		if c.sim != e.simGen {
			c.sim = e.simGen
			saved = append(saved, simSave{c: c, billed: c.billed, chg: c.chg, next: c.next})
		}
		sum = min(sum+c.step(), math.MaxInt64/4)
		pops++
		m.down(0)
	}
	for i := range saved {
		s := &saved[i]
		s.c.billed, s.c.chg, s.c.next = s.billed, s.chg, s.next
		m.fix(s.c.sidx)
		s.c = nil
	}
	e.simSaved = saved[:0]
	if !ok {
		return time.Time{}, false, false
	}
	return now.Add(time.Duration(at - now.UnixNano())), exact, true
}

// simSave is a call's meter state before a replay.
type simSave struct {
	c      *call
	billed int64
	chg    int64
	next   int64
}
