package sip

import "time"

// Clock is the edge's time source. Every protocol and billing timer of the
// gateway (the engine's deadline, Timer C, the CANCEL wait, maximum call
// duration) goes through it, so tests run them in virtual time. Waits for
// sockets and transactions at start and shutdown poll in real time: they
// wait for I/O, not for an instant.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer made by Clock.AfterFunc.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// chanTimer is a Clock timer whose expiry is read from C, for select loops.
type chanTimer struct {
	Timer
	C <-chan struct{}
}

// newChanTimer starts a timer that posts to C once d has passed.
func newChanTimer(c Clock, d time.Duration) chanTimer {
	ch := make(chan struct{}, 1)
	t := c.AfterFunc(d, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return chanTimer{Timer: t, C: ch}
}
