package sip

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a virtual clock: time stands still until Advance, which
// fires the due timers in time order, each at its own instant.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c   *fakeClock
	at  time.Time
	f   func()
	on  bool
	seq int
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f, on: true, seq: len(c.timers)}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.on
	t.on = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.on
	t.on, t.at = true, t.c.now.Add(d)
	return was
}

// Advance moves time forward by d, firing every timer that falls due on
// the way at its own instant (synchronously, in time order).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var due []*fakeTimer
		for _, t := range c.timers {
			if t.on && !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			c.now = end
			c.mu.Unlock()
			return
		}
		sort.Slice(due, func(i, j int) bool {
			if due[i].at.Equal(due[j].at) {
				return due[i].seq < due[j].seq
			}
			return due[i].at.Before(due[j].at)
		})
		t := due[0]
		t.on = false
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

func TestFakeClockFiresInOrder(t *testing.T) {
	c := newFakeClock(time.Unix(0, 0))
	var got []int
	c.AfterFunc(3*time.Second, func() { got = append(got, 3) })
	t1 := c.AfterFunc(time.Second, func() { got = append(got, 1) })
	c.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	t1.Reset(4 * time.Second)
	c.Advance(3 * time.Second)
	if len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("fired %v, want [2 3]", got)
	}
	c.Advance(time.Second)
	if len(got) != 3 || got[2] != 1 {
		t.Fatalf("fired %v, want the reset timer last", got)
	}
}
