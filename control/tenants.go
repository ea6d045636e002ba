package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// ListTenants returns the tenants with their status, sorted by name.
func (s *Service) ListTenants(context.Context) ([]api.TenantView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]api.TenantView, 0, len(s.tenants))
	for _, t := range s.sortedTenants() {
		out = append(out, api.TenantView{Tenant: t.Clone(), Status: s.viewStatus(t.Name), Provisioning: s.provisioning(t)})
	}
	return out, nil
}

// GetTenant returns the tenant name with its status.
func (s *Service) GetTenant(_ context.Context, name string) (api.TenantView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tenants[name]
	if !ok {
		return api.TenantView{}, notFound("tenant", name)
	}
	return api.TenantView{Tenant: t.Clone(), Status: s.viewStatus(name), Provisioning: s.provisioning(t)}, nil
}

// provisioning is t's use of its provisioning caps. Called with mu held.
func (s *Service) provisioning(t configs.Tenant) *api.Provisioning {
	plan := s.plans[t.Plan].Limits
	return &api.Provisioning{
		DIDs:  api.ProvisionedCount{Used: int64(len(t.DIDs)), Limit: configs.EffectiveCap(t.Limits.MaxDIDs, plan.MaxDIDs)},
		Users: api.ProvisionedCount{Used: int64(len(t.Users())), Limit: configs.EffectiveCap(t.Limits.MaxUsers, plan.MaxUsers)},
	}
}

// PutTenant creates (create: ErrConflict if it exists) or creates or
// replaces the tenant t. With create, limits the body leaves unset are
// pre-filled from tenant_defaults; a replace (create false) takes the body
// as it is. A replaced tenant keeps its counters, calls and suspension.
func (s *Service) PutTenant(_ context.Context, actor string, t configs.Tenant, create bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	old, exists := s.tenants[t.Name]
	if create && exists {
		return false, existsErr("tenant", t.Name)
	}
	nt := t.Clone()
	if create {
		nt.Limits = fillLimits(nt.Limits, s.base.TenantDefaults)
	}
	nt = normaliseTenant(nt)
	if err := s.checkTenant(nt, ""); err != nil {
		return false, err
	}
	if err := s.checkCaps(nt, ""); err != nil {
		return false, err
	}
	action, before := "tenant.create", any(nil)
	if exists {
		action, before = "tenant.update", old
	}
	if err := s.setTenant(now, nt, audit(now, actor, action, "tenants/"+nt.Name, nt.Name, before, nt)); err != nil {
		return false, err
	}
	if !exists || routingChanged(old, nt) {
		s.routing()
	}
	return !exists, nil
}

// setTenant upserts a validated tenant into the engine, hands the effects
// to the edge and commits it with its audit entry. Called with mu held.
func (s *Service) setTenant(now time.Time, t configs.Tenant, entry store.AuditEntry) error {
	rd, err := s.changes().UpsertTenant(now, t.AdmissionTenant())
	s.effects(rd)
	if err != nil {
		return fmt.Errorf("control: tenant %q: %w", t.Name, err)
	}
	s.tenants[t.Name] = t
	s.refresh()
	return s.submit(&store.Batch{PutTenants: []configs.Tenant{t.Clone()}, Audit: []store.AuditEntry{entry}}, now)
}

// routingChanged reports whether a tenant change matters to the SIP
// classification and routing (not limits or roles).
func routingChanged(a, b configs.Tenant) bool {
	return a.Name != b.Name || a.Carrier != b.Carrier || a.PBX != b.PBX ||
		!slices.Equal(a.Sources, b.Sources) || !slices.Equal(a.DIDs, b.DIDs)
}

// fillLimits returns l with its unset fields taken from defaults
// (destinations: the defaults' classes l does not set).
func fillLimits(l, defaults configs.Limits) configs.Limits {
	out := l.Clone()
	d := defaults.Clone()
	ov, dv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(d)
	for i := 0; i < ov.NumField(); i++ {
		if f := ov.Field(i); f.Kind() == reflect.Pointer && f.IsNil() {
			f.Set(dv.Field(i))
		}
	}
	if len(d.Destinations) > 0 {
		if out.Destinations == nil {
			out.Destinations = map[string]bool{}
		}
		for k, v := range d.Destinations {
			if _, ok := out.Destinations[k]; !ok {
				out.Destinations[k] = v
			}
		}
	}
	return out
}

// DeleteTenant deletes a tenant without active calls (ErrConflict
// otherwise), with its counters and usage.
func (s *Service) DeleteTenant(_ context.Context, actor, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteTenant(s.now(), actor, name)
}

// deleteTenant is DeleteTenant with mu held.
func (s *Service) deleteTenant(now time.Time, actor, name string) error {
	old, ok := s.tenants[name]
	if !ok {
		return notFound("tenant", name)
	}
	rd, err := s.runner.DeleteTenant(now, name)
	s.effects(rd) // deadlines of other tenants that fell due are in it
	if err != nil {
		switch {
		case errors.Is(err, admission.ErrTenantBusy):
			return opErr(api.ErrConflict, "tenant %q has active calls", name)
		case errors.Is(err, admission.ErrUnknownTenant):
			return notFound("tenant", name)
		}
		return fmt.Errorf("control: delete tenant %q: %w", name, err)
	}
	delete(s.tenants, name)
	s.refresh()
	err = s.submit(&store.Batch{
		DeleteTenants: []string{name},
		Audit:         []store.AuditEntry{audit(now, actor, "tenant.delete", "tenants/"+name, name, old, nil)},
	}, now)
	s.routing()
	return err
}

// --- limits ---

// GetLimits returns the tenant's overrides and effective limits.
func (s *Service) GetLimits(_ context.Context, tenant string) (api.LimitsView, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.limitsView(tenant)
}

func (s *Service) limitsView(tenant string) (api.LimitsView, error) {
	t, ok := s.tenants[tenant]
	if !ok {
		return api.LimitsView{}, notFound("tenant", tenant)
	}
	eff, err := s.runner.EffectiveLimits(tenant)
	if err != nil {
		return api.LimitsView{}, notFound("tenant", tenant)
	}
	// The engine knows the call limits; the provisioning caps are the
	// control plane's (override, else plan).
	effective := configs.EffectiveProvisioning(configs.LimitsFromEngine(eff), t.Limits, s.plans[t.Plan].Limits)
	return api.LimitsView{Tenant: tenant, Plan: t.Plan, Overrides: t.Limits.Clone(), Effective: effective}, nil
}

// limitFields maps the JSON names of Limits' fields to their pointers.
func limitFields(l *configs.Limits) map[string]any {
	return map[string]any{
		"max_parallel_calls":    &l.MaxParallelCalls,
		"max_parallel_inbound":  &l.MaxParallelInbound,
		"max_parallel_outbound": &l.MaxParallelOutbound,
		"max_calls_per_second":  &l.MaxCallsPerSecond,
		"cps_burst":             &l.CPSBurst,
		"max_monthly_minutes":   &l.MaxMonthlyMinutes,
		"monthly_spend_limit":   &l.MonthlySpendLimit,
		"alert_threshold_pct":   &l.AlertThresholdPct,
		"auto_suspend":          &l.AutoSuspend,
		"max_dids":              &l.MaxDIDs,
		"max_users":             &l.MaxUsers,
		"destinations":          &l.Destinations,
	}
}

// applyPatch applies a merge patch to a copy of l.
func applyPatch(l configs.Limits, p api.LimitsPatch) (configs.Limits, error) {
	out := l.Clone()
	fields := limitFields(&out)
	for _, name := range p.Clear {
		switch f := fields[name].(type) {
		case **int64:
			*f = nil
		case **configs.Money:
			*f = nil
		case **bool:
			*f = nil
		case *map[string]bool:
			*f = nil
		default:
			return out, &api.FieldError{Field: name, Message: fmt.Sprintf("unknown limit %q", name)}
		}
	}
	set := p.Set.Clone()
	sv, ov := reflect.ValueOf(set), reflect.ValueOf(&out).Elem()
	for i := 0; i < sv.NumField(); i++ {
		if f := sv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			ov.Field(i).Set(f)
		}
	}
	if len(set.Destinations) > 0 {
		if out.Destinations == nil {
			out.Destinations = make(map[string]bool, len(set.Destinations))
		}
		maps.Copy(out.Destinations, set.Destinations)
	}
	for _, class := range p.ClearDestinations {
		delete(out.Destinations, class)
	}
	if len(out.Destinations) == 0 {
		out.Destinations = nil
	}
	return out, nil
}

// PatchLimits applies a merge patch to the tenant's overrides. The change
// takes effect at once: the next call is admitted against it, and the
// deadlines of running calls move (the edge re-arms its timer).
func (s *Service) PatchLimits(_ context.Context, actor, tenant string, p api.LimitsPatch) (api.LimitsView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return api.LimitsView{}, notFound("tenant", tenant)
	}
	nl, err := applyPatch(t.Limits, p)
	if err != nil {
		return api.LimitsView{}, err
	}
	return s.setLimits(actor, "limits.update", t, nl)
}

// ResetLimits replaces the tenant's overrides with tenant_defaults.
func (s *Service) ResetLimits(_ context.Context, actor, tenant string) (api.LimitsView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return api.LimitsView{}, notFound("tenant", tenant)
	}
	return s.setLimits(actor, "limits.reset", t, s.base.TenantDefaults.Clone())
}

func (s *Service) setLimits(actor, action string, t configs.Tenant, nl configs.Limits) (api.LimitsView, error) {
	now := s.now()
	nt := t.Clone()
	nt.Limits = nl
	if err := s.checkTenant(nt, "limits"); err != nil {
		return api.LimitsView{}, err
	}
	// No checkCaps: a limits change assigns nothing, so a cap lowered
	// below the tenant's count is accepted (not retroactive).
	entry := audit(now, actor, action, "tenants/"+t.Name+"/limits", t.Name, t.Limits, nl)
	if err := s.setTenant(now, nt, entry); err != nil {
		return api.LimitsView{}, err
	}
	return s.limitsView(t.Name)
}

// --- roles ---

// GetRoles returns the tenant's roles.
func (s *Service) GetRoles(_ context.Context, tenant string) ([]configs.Role, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return nil, notFound("tenant", tenant)
	}
	out := configs.CloneRoles(t.Roles)
	if out == nil {
		out = []configs.Role{}
	}
	return out, nil
}

// PutRoles replaces all the tenant's roles. The body is the list, so
// errors name "[i].field".
func (s *Service) PutRoles(_ context.Context, actor, tenant string, roles []configs.Role) ([]configs.Role, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return nil, notFound("tenant", tenant)
	}
	if err := s.setRoles(actor, t, configs.CloneRoles(roles), "roles"); err != nil {
		return nil, err
	}
	out := configs.CloneRoles(roles)
	if out == nil {
		out = []configs.Role{}
	}
	return out, nil
}

// PutRole creates or replaces (by name) one role of the tenant. Errors
// name fields of the role ("name", "patterns[1]").
func (s *Service) PutRole(_ context.Context, actor, tenant string, role configs.Role) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return false, notFound("tenant", tenant)
	}
	roles := configs.CloneRoles(t.Roles)
	i := slices.IndexFunc(roles, func(r configs.Role) bool { return r.Name == role.Name })
	created := i < 0
	if created {
		i = len(roles)
		roles = append(roles, role.Clone())
	} else {
		roles[i] = role.Clone()
	}
	return created, s.setRoles(actor, t, roles, fmt.Sprintf("roles[%d]", i))
}

// DeleteRole deletes one role of the tenant.
func (s *Service) DeleteRole(_ context.Context, actor, tenant, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tenants[tenant]
	if !ok {
		return notFound("tenant", tenant)
	}
	i := slices.IndexFunc(t.Roles, func(r configs.Role) bool { return r.Name == role })
	if i < 0 {
		return notFound("role", role)
	}
	roles := slices.Delete(configs.CloneRoles(t.Roles), i, i+1)
	if len(roles) == 0 {
		roles = nil
	}
	return s.setRoles(actor, t, roles, "")
}

func (s *Service) setRoles(actor string, t configs.Tenant, roles []configs.Role, under string) error {
	now := s.now()
	nt := t.Clone()
	nt.Roles = roles
	if err := s.checkTenant(nt, under); err != nil {
		return err
	}
	if err := s.checkCaps(nt, under); err != nil {
		return err
	}
	before, after := t.Roles, roles
	if before == nil {
		before = []configs.Role{}
	}
	if after == nil {
		after = []configs.Role{}
	}
	entry := audit(now, actor, "roles.update", "tenants/"+t.Name+"/roles", t.Name, before, after)
	return s.setTenant(now, nt, entry)
}
