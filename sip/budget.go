package sip

import (
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// The admission engine is pure: it returns its effects (events, calls to
// cut, the next deadline) as data, and this file carries them out.

// scheduler holds the one timer armed at the engine's next deadline
// (budget exhaustion, threshold crossing, re-evaluation, cycle rollover).
// There is no polling loop: the timer fires at the instant the engine
// asked for. gen is the generation of the Ready the timer was armed from:
// Readies are applied by many goroutines after the runner's lock is
// released, so an older one may arrive last and must not move the timer.
type scheduler struct {
	mu    sync.Mutex
	timer Timer
	at    time.Time
	gen   uint64
}

// apply carries out every effect of an engine Ready and re-arms the
// deadline timer from it.
func (g *Gateway) apply(r admission.Ready) {
	for _, ev := range r.Events {
		g.emit(ev)
	}
	for _, c := range r.Cuts {
		if d := g.dialogs.Get(c.CallID); d != nil {
			g.Teardown(d, cutCause(c))
		}
	}
	g.arm(r.Deadline, r.Gen)
}

// arm points the timer at the deadline of the newest Ready seen.
func (g *Gateway) arm(at time.Time, gen uint64) {
	s := &g.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.closed.Load() || gen <= s.gen {
		return
	}
	s.gen = gen
	// Moved only to fire earlier: a later deadline lets the armed timer
	// fire early, and the Tick then re-arms it. Every Reset of a pending
	// Go timer makes the runtime rescan its whole timer heap when the new
	// instant comes, and answers and ends move the deadline all the time.
	if s.timer != nil && !s.at.IsZero() && !at.Before(s.at) {
		return
	}
	s.at = at
	wait := at.Sub(g.now())
	if s.timer == nil {
		s.timer = g.clock.AfterFunc(wait, g.tick)
		return
	}
	s.timer.Reset(wait)
}

// tick runs the engine's deadlines that are due.
func (g *Gateway) tick() {
	g.sched.mu.Lock()
	g.sched.at = time.Time{}
	g.sched.mu.Unlock()
	g.apply(g.adm.Tick(g.now()))
}

func (g *Gateway) stopScheduler() {
	g.sched.mu.Lock()
	defer g.sched.mu.Unlock()
	if g.sched.timer != nil {
		g.sched.timer.Stop()
	}
}

// emit logs a usage event and hands it to the configured sink.
func (g *Gateway) emit(ev admission.Event) {
	if g.onEvent != nil {
		g.onEvent(ev)
	}
	switch ev.Type {
	case admission.EventCallStarted, admission.EventCallAnswered, admission.EventCallEnded, admission.EventCallRejected:
		return // the call's own log lines ("decision", "call ended") say it
	}
	e := g.log.Info().Str("event", ev.Type).Time("at", ev.At)
	if ev.Tenant != "" {
		e = e.Str("tenant", ev.Tenant)
	}
	if ev.User != "" {
		e = e.Str("user", ev.User)
	}
	if ev.CallID != "" {
		e = e.Str("call_key", ev.CallID)
	}
	if ev.Cap != "" {
		e = e.Str("cap", ev.Cap).Int64("value", ev.Value).Int64("limit", ev.Limit)
	}
	if ev.Reason != "" {
		e = e.Str("reason", ev.Reason)
	}
	e.Msg("usage event")
}

// cutCause turns an engine cut into a teardown cause whose Reason header
// names the cap.
func cutCause(c admission.Cut) Cause {
	if c.Cause == admission.CauseSuspended {
		return Cause{Name: "suspended", Q850: 21, Text: "tenant suspended", SIPCode: 403, SIPReason: "Forbidden"}
	}
	return Cause{Name: c.Cause.String(), Q850: 16, Text: c.Cap + " exhausted", SIPCode: 403, SIPReason: "Forbidden"}
}

// retryAfter renders a CPS rejection's wait as whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
