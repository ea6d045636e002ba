package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/callrec"
	"github.com/tollgate/tollgate/meter"
	"github.com/tollgate/tollgate/store"
)

// Cap names in UsageView.Caps.
const (
	capParallel = "max_parallel_calls"
	capMinutes  = "max_monthly_minutes"
	capSpend    = "monthly_spend_limit"
)

// Usage returns the tenant's usage in the current cycle: its caps (used,
// limit, percent), the users on a role with a minutes cap, and the days.
func (s *Service) Usage(_ context.Context, tenant string) (api.UsageView, error) {
	s.mu.RLock()
	_, ok := s.tenants[tenant]
	s.mu.RUnlock()
	if !ok {
		return api.UsageView{}, notFound("tenant", tenant)
	}
	now := s.now()
	eff, err := s.runner.EffectiveLimits(tenant)
	if err != nil {
		return api.UsageView{}, notFound("tenant", tenant)
	}
	u := s.runner.Usage(now, tenant)
	active := s.runner.Active(tenant)
	start, end := s.runner.Cycle()
	if start.IsZero() { // the engine has seen no time yet
		start, end = cycleOf(now)
	}
	v := api.UsageView{
		Tenant:     tenant,
		CycleStart: start,
		CycleEnd:   end,
		Status:     s.viewStatus(tenant),
		Caps:       []api.CapUsage{},
		Users:      []api.UserUsage{},
		Days:       []api.DayUsage{},
	}
	v.AlertThresholdPct = admission.DefaultAlertThresholdPct
	if eff.AlertThresholdPct != nil {
		v.AlertThresholdPct = *eff.AlertThresholdPct
	}
	if c := s.getCluster(); c != nil {
		cu := c.Usage(tenant)
		v.Cluster = &cu
	}

	parallel := api.CapUsage{Cap: capParallel, Unit: "calls", Used: json.Number(strconv.FormatInt(active, 10))}
	if l := eff.MaxParallelCalls; l != nil {
		parallel.Limit = number(strconv.FormatInt(*l, 10))
		parallel.Percent = percent(float64(active), float64(*l))
	}
	minutes := api.CapUsage{Cap: capMinutes, Unit: "minutes", Used: json.Number(api.FormatMinutes(u.Seconds))}
	if l := eff.MaxMonthlyMinutes; l != nil {
		minutes.Limit = number(strconv.FormatInt(*l, 10))
		minutes.Percent = percent(float64(u.Seconds), float64(time.Duration(*l)*time.Minute))
	}
	spend := api.CapUsage{Cap: capSpend, Unit: "money", Used: json.Number(configs.Money(u.Spend).String())}
	if l := eff.MonthlySpendLimit; l != nil {
		spend.Limit = number(configs.Money(*l).String())
		spend.Percent = percent(float64(u.Spend), float64(*l))
	}
	if at, mOK, sAt, sOK := s.runner.Exhaustion(now, tenant); mOK || sOK {
		if mOK && minutes.Limit != nil {
			minutes.ExhaustsAt = utcPtr(at)
		}
		if sOK && spend.Limit != nil {
			spend.ExhaustsAt = utcPtr(sAt)
		}
	}
	v.Caps = append(v.Caps, parallel, minutes, spend)

	for _, r := range s.runner.RoleUsages(now, tenant) {
		uu := api.UserUsage{User: r.User, Role: r.Role, Minutes: json.Number(api.FormatMinutes(r.Seconds))}
		if r.Limit >= 0 {
			uu.Limit = number(strconv.FormatInt(r.Limit, 10))
			uu.Percent = percent(float64(r.Seconds), float64(time.Duration(r.Limit)*time.Minute))
			if r.Exhausts {
				uu.ExhaustsAt = utcPtr(r.ExhaustsAt)
			}
		}
		v.Users = append(v.Users, uu)
	}

	// Settled calls reach the store with the next group commit: commit
	// now, so the days agree with the caps.
	if err := s.commit.Flush(); err != nil {
		return api.UsageView{}, fmt.Errorf("control: usage: %w", err)
	}
	days, err := s.st.Days(tenant, start, end)
	if err != nil {
		return api.UsageView{}, fmt.Errorf("control: usage days: %w", err)
	}
	for _, d := range days {
		v.Days = append(v.Days, api.DayUsage{
			Date:             d.Day.UTC().Format("2006-01-02"),
			Calls:            d.Calls,
			Seconds:          d.Seconds.Seconds(),
			Spend:            configs.Money(d.Spend),
			EmergencySeconds: d.EmergencySeconds.Seconds(),
		})
	}
	return v, nil
}

// cycleOf returns the calendar month (UTC) of t.
func cycleOf(t time.Time) (start, end time.Time) {
	t = t.UTC()
	start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

func utcPtr(t time.Time) *time.Time {
	t = t.UTC()
	return &t
}

func number(s string) *json.Number {
	n := json.Number(s)
	return &n
}

// percent is used/limit*100; a limit of 0 (blocked) is 100 %.
func percent(used, limit float64) *float64 {
	p := 100.0
	if limit > 0 {
		p = used / limit * 100
	}
	return &p
}

// --- calls ---

// Calls lists the active calls of tenant ("" = all) as the SIP edge
// sees them; none without an edge.
func (s *Service) Calls(_ context.Context, tenant string) ([]api.CallView, error) {
	if tenant != "" {
		// An unknown tenant is a 404 (as the OpenAPI document says), not
		// an empty list that reads as "no calls".
		s.mu.RLock()
		_, ok := s.tenants[tenant]
		s.mu.RUnlock()
		if !ok {
			return nil, notFound("tenant", tenant)
		}
	}
	e := s.getEdge()
	if e == nil {
		return []api.CallView{}, nil
	}
	out := []api.CallView{}
	for _, c := range e.Calls(tenant) {
		out = append(out, callView(c))
	}
	return out, nil
}

// callView is an active call's wire form.
func callView(c callrec.Call) api.CallView {
	v := api.CallView{ID: c.ID, CallID: c.CallID, Tenant: c.Tenant, Direction: c.Direction, Caller: c.Caller,
		Callee: c.Callee, State: c.State, Started: c.Started}
	if !c.Answered.IsZero() {
		a := c.Answered
		v.Answered, v.Seconds = &a, c.Billed.Seconds()
	}
	if c.Media != nil {
		v.Media = &api.CallMedia{Caller: mediaLeg(c.Media.Caller), Callee: mediaLeg(c.Media.Callee)}
	}
	return v
}

// mediaLeg maps a leg's meters to the API's view.
func mediaLeg(s meter.Stats) api.MediaLeg {
	v := api.MediaLeg{Packets: s.Packets, Bytes: s.Bytes, Lost: s.Lost, JitterMs: s.Jitter, SSRCChanges: s.SSRCChanges,
		Dropped: s.Dropped, Malformed: s.Malformed, RTCPPackets: s.RTCPPackets}
	if !s.FirstPacket.IsZero() {
		f, l := s.FirstPacket.UTC(), s.LastPacket.UTC()
		v.FirstPacket, v.LastPacket = &f, &l
	}
	return v
}

// Hangup tears down a call by admission id or SIP Call-ID (both legs).
func (s *Service) Hangup(_ context.Context, actor, id string) error {
	e := s.getEdge()
	if e == nil {
		return notFound("call", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var call *api.CallView
	for _, c := range e.Calls("") {
		if c.ID == id || c.CallID == id {
			v := callView(c)
			call = &v
			break
		}
	}
	if !e.Hangup(id) {
		return notFound("call", id)
	}
	entry := audit(now, actor, "call.hangup", "calls/"+id, "", nil, nil)
	if call != nil {
		entry.Tenant = call.Tenant
		entry.Before = mustJSON(call)
	}
	return s.submit(&store.Batch{Audit: []store.AuditEntry{entry}}, now)
}

// --- suspension ---

// Suspend suspends the tenant by hand: its active calls are cut, new
// outbound calls rejected, inbound callers hear the announcement.
func (s *Service) Suspend(_ context.Context, actor, tenant, reason string) (api.TenantStatus, error) {
	return s.suspension(actor, tenant, reason, "tenant.suspend", s.runner.Suspend)
}

// Resume lifts the tenant's suspension (manual or automatic).
func (s *Service) Resume(_ context.Context, actor, tenant, reason string) (api.TenantStatus, error) {
	return s.suspension(actor, tenant, reason, "tenant.resume", s.runner.Resume)
}

func (s *Service) suspension(actor, tenant, reason, action string, op func(time.Time, string, string) (admission.Ready, error)) (api.TenantStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.suspendLocked(actor, tenant, reason, action, op)
}

// suspendLocked is suspension with mu held; the new status is
// replicated unless it came from another node.
func (s *Service) suspendLocked(actor, tenant, reason, action string, op func(time.Time, string, string) (admission.Ready, error)) (api.TenantStatus, error) {
	if _, ok := s.tenants[tenant]; !ok {
		return api.TenantStatus{}, notFound("tenant", tenant)
	}
	now := s.now()
	before := s.status(tenant)
	rd, err := op(now, tenant, reason)
	s.effects(rd)
	if err != nil {
		if errors.Is(err, admission.ErrUnknownTenant) {
			return api.TenantStatus{}, notFound("tenant", tenant)
		}
		return api.TenantStatus{}, fmt.Errorf("control: %s %q: %w", action, tenant, err)
	}
	after := s.status(tenant)
	entry := audit(now, actor, action, "tenants/"+tenant, tenant, before, after)
	entry.Reason = reason
	if err := s.submit(&store.Batch{Audit: []store.AuditEntry{entry}}, now, statusChange(tenant, after, actor)); err != nil {
		return after, err
	}
	if after.Suspended {
		return s.viewStatus(tenant), nil
	}
	return after, nil
}
