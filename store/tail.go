package store

import (
	"sync"
	"time"
)

// tailSize is how many of the newest outbox entries outboxTail keeps:
// 16 of the publisher's default batches, about 1.4 s of events at 1,000
// calls/s.
const tailSize = 4096

// outboxTail keeps the outbox entries this process committed last, as
// they were written (published form), so that the publisher's reads of
// what was just committed — nearly all of its reads in the steady state
// — do not go through Badger: every read there made an iterator over
// the memtable and every table, and copied and decoded each value (10 %
// of the CPU of the publishing path, BENCHMARKS.md "Outbox tail"). A
// read of anything older (after a restart, or behind an outage longer
// than the ring) goes to Badger. It only ever holds committed entries:
// they are added after their transaction committed, under the store's
// writer lock, so in Seq order.
type outboxTail struct {
	mu sync.Mutex
	// lo, hi: the ring holds every entry with lo < Seq <= hi; hi is the
	// last seq committed.
	lo, hi uint64
	ring   []tailEntry // the entry of seq s at s % len(ring)
}

type tailEntry struct {
	OutboxEntry
	expires time.Time // its Badger TTL (zero: none); past it, Badger is read
}

// newOutboxTail starts empty after last, the last seq in the store.
func newOutboxTail(last uint64, size int) *outboxTail {
	return &outboxTail{lo: last, hi: last, ring: make([]tailEntry, size)}
}

// add records entries just committed (ascending, contiguous). A gap
// (which the single writer never makes) restarts the ring after it.
func (t *outboxTail) add(es []OutboxEntry, expires time.Time) {
	if t == nil || len(es) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := uint64(len(t.ring))
	for _, e := range es {
		if e.Seq != t.hi+1 {
			t.clear(t.lo, t.hi)
			t.lo, t.hi = e.Seq-1, e.Seq-1
		}
		t.ring[e.Seq%n] = tailEntry{OutboxEntry: e, expires: expires}
		t.hi = e.Seq
		if t.hi-t.lo > n {
			t.lo = t.hi - n
		}
	}
}

// ack forgets the entries with Seq <= upTo (deleted from the outbox).
func (t *outboxTail) ack(upTo uint64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	upTo = min(upTo, t.hi)
	if upTo > t.lo {
		t.clear(t.lo, upTo)
		t.lo = upTo
	}
}

// clear drops the ring's references to the entries in (from, to].
func (t *outboxTail) clear(from, to uint64) {
	n := uint64(len(t.ring))
	if to-from > n {
		from = to - n
	}
	for s := from + 1; s <= to; s++ {
		t.ring[s%n] = tailEntry{}
	}
}

// read returns up to limit entries with Seq > after, as Outbox does, and
// true; false when the ring does not hold them all (the entry after
// after is older than the ring, or has reached its TTL): read Badger.
func (t *outboxTail) read(after uint64, limit int, now time.Time) ([]OutboxEntry, bool) {
	if t == nil {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if after < t.lo {
		return nil, false
	}
	if after >= t.hi {
		return nil, true
	}
	n := uint64(len(t.ring))
	first := t.ring[(after+1)%n]
	if !first.expires.IsZero() && !now.Before(first.expires) {
		return nil, false
	}
	out := make([]OutboxEntry, min(t.hi-after, uint64(limit)))
	for i := range out {
		out[i] = t.ring[(after+1+uint64(i))%n].OutboxEntry
	}
	return out, true
}
