package admission

import "time"

// Suspend suspends the tenant by hand with a reason: its active
// non-emergency calls are cut (CauseSuspended, Cap "suspended"), new
// outbound calls get CauseSuspended and new inbound calls
// CauseSuspendedInbound until Resume. Suspending a suspended tenant makes
// the suspension manual (so a rollover does not lift it) with the new
// reason. It returns an error wrapping ErrUnknownTenant.
func (e *Engine) Suspend(now time.Time, tenant, reason string) (Output, error) {
	return e.onTenant(now, tenant, func(t *tenantState, now time.Time, out *Output) error {
		if t.suspended {
			t.suspendReason = reason
			t.suspendCap = ""
			e.markTenant(t)
			out.Events = append(out.Events, Event{Type: EventSuspended, Tenant: t.name, Reason: reason, At: now})
		} else {
			e.suspend(t, now, reason, "", out)
		}
		return nil
	})
}

// Resume lifts the tenant's suspension, manual or automatic. Budgets are
// not reset: a hard cap still exhausted trips again on the next call.
// Resuming a tenant that is not suspended does nothing. It returns an
// error wrapping ErrUnknownTenant.
func (e *Engine) Resume(now time.Time, tenant, reason string) (Output, error) {
	return e.onTenant(now, tenant, func(t *tenantState, now time.Time, out *Output) error {
		e.resume(t, now, reason, out)
		return nil
	})
}

// suspend suspends t at x (no-op if already suspended) and cuts its calls.
// capName is the cap of an automatic suspension, "" for a manual one.
func (e *Engine) suspend(t *tenantState, x time.Time, reason, capName string, out *Output) {
	if t.suspended {
		return
	}
	t.suspended = true
	t.suspendReason = reason
	t.suspendCap = capName
	t.suspendedAt = x
	e.markTenant(t)
	out.Events = append(out.Events, Event{Type: EventSuspended, Tenant: t.name, Cap: capName, Reason: reason, At: x})
	e.cutAll(t, x, out)
}

func (e *Engine) resume(t *tenantState, x time.Time, reason string, out *Output) {
	if !t.suspended {
		return
	}
	capName := t.suspendCap
	e.markTenant(t)
	t.suspended = false
	t.suspendReason = ""
	t.suspendCap = ""
	t.suspendedAt = time.Time{}
	out.Events = append(out.Events, Event{Type: EventResumed, Tenant: t.name, Cap: capName, Reason: reason, At: x})
}
