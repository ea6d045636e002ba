package sip

import (
	"sync/atomic"
	"testing"
	"time"
)

// tollgate patch: terminal timers share a queue per duration.

func TestLingerFiresEachTimerOnceAfterItsDuration(t *testing.T) {
	const d = 30 * time.Millisecond
	const n = 200
	var fired atomic.Int32
	early := make(chan time.Duration, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		afterLinger(d, func() {
			if e := time.Since(start); e < d {
				early <- e
			}
			fired.Add(1)
		})
		if i%50 == 0 {
			time.Sleep(5 * time.Millisecond) // spread over several runs
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for fired.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := fired.Load(); got != n {
		t.Fatalf("%d of %d timers fired", got, n)
	}
	select {
	case e := <-early:
		t.Fatalf("a timer fired after %v, before its %v", e, d)
	default:
	}
	time.Sleep(3 * d)
	if got := fired.Load(); got != n {
		t.Fatalf("%d firings for %d timers", got, n)
	}
}

func TestLingerStopKeepsTheTimerFromFiring(t *testing.T) {
	const d = 20 * time.Millisecond
	var stoppedFired, kept atomic.Bool
	s := afterLinger(d, func() { stoppedFired.Store(true) })
	afterLinger(d, func() { kept.Store(true) })
	if !s.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if s.Stop() {
		t.Fatal("second Stop reported true")
	}
	time.Sleep(d + LingerResolution + 50*time.Millisecond)
	if stoppedFired.Load() {
		t.Fatal("a stopped timer fired")
	}
	if !kept.Load() {
		t.Fatal("the timer beside it did not fire")
	}
}

func TestLingerZeroRunsAtOnce(t *testing.T) {
	done := make(chan struct{})
	afterLinger(0, func() { close(done) })
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("a zero linger did not run")
	}
}
