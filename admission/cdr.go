package admission

import "time"

// The call.* events: every admitted call gets call.started, call.answered
// when answered, and exactly one call.ended (its CDR) when it ends or is
// settled by Restore after a crash; a refused call gets call.rejected. call.ended carries the sum of the
// call's Charges, so the call.ended events of a cycle add up to the
// tenant's counters.

// info describes c for a call event.
func (c *call) info() *CallInfo {
	ci := &CallInfo{
		Direction: c.dir, Caller: c.caller, Callee: c.callee, Emergency: c.emergency,
		Billed: c.billedSum, Cost: c.costSum,
	}
	if c.rate != nil {
		ci.Rated, ci.RatePrefix = true, c.rate.Prefix
	}
	if c.answered {
		ci.AnsweredAt = c.ans
	}
	return ci
}

// callEvent appends a call event of c at at and returns it (valid until
// the next append).
func (e *Engine) callEvent(typ string, c *call, at time.Time, out *Output) *Event {
	out.Events = append(out.Events, Event{Type: typ, Tenant: c.t.name, User: c.user(), CallID: c.id, At: at, Call: c.info()})
	return &out.Events[len(out.Events)-1]
}

// rejected appends the call.rejected of req.
func rejected(req *CallRequest, at time.Time, cause string, code int, out *Output) *CallInfo {
	dir := Outbound
	if req.Direction == Inbound {
		dir = Inbound
	}
	ci := &CallInfo{Direction: dir, Caller: req.Caller, Callee: req.Callee, Cause: cause, Code: code}
	out.Events = append(out.Events, Event{Type: EventCallRejected, Tenant: req.Tenant, User: req.user(), CallID: req.CallID, At: at, Call: ci})
	return ci
}

// Reject records that the edge refused a call of a known tenant before
// asking Admit (a bad SDP, a loop, a draining gateway): a call.rejected
// with the edge's cause and SIP status. It changes no state.
func (e *Engine) Reject(now time.Time, req CallRequest, cause string, code int) Output {
	var out Output
	now = e.step(now, &out)
	rejected(&req, now, cause, code, &out)
	return out
}

// ended appends the call.ended of c, which ended at at.
func (e *Engine) ended(c *call, at time.Time, end *End, out *Output) {
	ev := e.callEvent(EventCallEnded, c, at, out)
	ev.Call.End = end
	if end != nil {
		ev.Call.Cause = end.Cause
	}
}
