package sip

import (
	"sync"
	"sync/atomic"
	"time"
)

// LingerResolution is how late a transaction's terminal timer (Timers D, I,
// J, K, L, M: the time a finished transaction lingers to absorb
// retransmissions) may fire. Those timers share one queue per duration and
// one goroutine per batch instead of a runtime timer and a goroutine each:
// at hundreds of calls per second each fired time.AfterFunc cost a
// goroutine, and its wake of an idle thread, per transaction. A linger that
// runs up to LingerResolution longer only absorbs retransmissions a little
// longer. Set it before any transaction exists.
var LingerResolution = 20 * time.Millisecond

// lingerTimer is a terminal timer in a linger queue.
type lingerTimer struct {
	at      time.Time
	f       func()
	stopped atomic.Bool
}

// Stop keeps f from running; it reports whether it stopped the timer.
func (t *lingerTimer) Stop() bool { return !t.stopped.Swap(true) }

// lingerQueue holds the timers of one duration, in the order they were set,
// which is the order they expire.
type lingerQueue struct {
	d     time.Duration
	mu    sync.Mutex
	items []*lingerTimer
	armed bool
}

var lingerQueues sync.Map // time.Duration -> *lingerQueue

// afterLinger calls f in a goroutine shared with the other timers expiring
// then, once d (a linger: the same few durations for every transaction)
// has passed. A zero or negative d runs f at once, as time.AfterFunc would.
func afterLinger(d time.Duration, f func()) *lingerTimer {
	t := &lingerTimer{f: f}
	if d <= 0 {
		go f()
		return t
	}
	q, ok := lingerQueues.Load(d)
	if !ok {
		q, _ = lingerQueues.LoadOrStore(d, &lingerQueue{d: d})
	}
	lq := q.(*lingerQueue)
	t.at = time.Now().Add(d)
	lq.mu.Lock()
	lq.items = append(lq.items, t)
	if !lq.armed {
		lq.armed = true
		time.AfterFunc(d, lq.run)
	}
	lq.mu.Unlock()
	return t
}

// run fires every expired timer of the queue and arms the queue for the
// next one, at least LingerResolution later, so that one wake serves all the
// timers expiring in that time.
func (q *lingerQueue) run() {
	now := time.Now()
	q.mu.Lock()
	n := 0
	for n < len(q.items) && !q.items[n].at.After(now) {
		n++
	}
	due := make([]*lingerTimer, n)
	copy(due, q.items)
	rest := copy(q.items, q.items[n:])
	clear(q.items[rest:])
	q.items = q.items[:rest]
	if rest > 0 {
		time.AfterFunc(max(q.items[0].at.Sub(now), LingerResolution), q.run)
	} else {
		q.armed = false
	}
	q.mu.Unlock()
	for _, t := range due {
		if !t.stopped.Load() {
			t.f()
		}
	}
}
