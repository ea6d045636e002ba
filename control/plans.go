package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// ListPlans returns the plans, sorted by name.
func (s *Service) ListPlans(context.Context) ([]configs.Plan, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]configs.Plan, 0, len(s.plans))
	for _, p := range s.sortedPlans() {
		out = append(out, p.Clone())
	}
	return out, nil
}

// GetPlan returns the plan name.
func (s *Service) GetPlan(_ context.Context, name string) (configs.Plan, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.plans[name]
	if !ok {
		return configs.Plan{}, notFound("plan", name)
	}
	return p.Clone(), nil
}

// PutPlan creates (create: ErrConflict if it exists) or creates or
// replaces the plan p. Unset limits mean unlimited and rate increments
// default to 60/60, as in the config file. A replaced plan's limits apply
// at once to its tenants; its rates to calls admitted from now on.
func (s *Service) PutPlan(_ context.Context, actor string, p configs.Plan, create bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	old, exists := s.plans[p.Name]
	if create && exists {
		return false, existsErr("plan", p.Name)
	}
	np := normalisePlan(p)
	if err := s.checkPlan(np); err != nil {
		return false, err
	}
	action, before := "plan.create", any(nil)
	if exists {
		action, before = "plan.update", old
	}
	return !exists, s.setPlan(now, np, audit(now, actor, action, "plans/"+np.Name, "", before, np))
}

// setPlan upserts a validated plan into the engine, hands the effects to
// the edge and commits it with its audit entry. Called with mu held.
func (s *Service) setPlan(now time.Time, np configs.Plan, entry store.AuditEntry) error {
	rd, err := s.changes().UpsertPlan(now, np.AdmissionPlan())
	s.effects(rd)
	if err != nil {
		return fmt.Errorf("control: plan %q: %w", np.Name, err)
	}
	s.plans[np.Name] = np
	s.refresh()
	return s.submit(&store.Batch{PutPlans: []configs.Plan{np.Clone()}, Audit: []store.AuditEntry{entry}}, now)
}

// DeletePlan deletes a plan no tenant is on (ErrConflict otherwise).
func (s *Service) DeletePlan(_ context.Context, actor, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletePlan(s.now(), actor, name)
}

// deletePlan is DeletePlan with mu held.
func (s *Service) deletePlan(now time.Time, actor, name string) error {
	old, ok := s.plans[name]
	if !ok {
		return notFound("plan", name)
	}
	for _, t := range s.sortedTenants() {
		if t.Plan == name {
			return opErr(api.ErrConflict, "plan %q is the plan of tenant %q", name, t.Name)
		}
	}
	rd, err := s.runner.DeletePlan(now, name)
	s.effects(rd) // deadlines of other tenants that fell due are in it
	if err != nil {
		switch {
		case errors.Is(err, admission.ErrPlanInUse):
			return opErr(api.ErrConflict, "plan %q is in use", name)
		case errors.Is(err, admission.ErrUnknownPlan):
			return notFound("plan", name)
		}
		return fmt.Errorf("control: delete plan %q: %w", name, err)
	}
	delete(s.plans, name)
	s.refresh()
	return s.submit(&store.Batch{
		DeletePlans: []string{name},
		Audit:       []store.AuditEntry{audit(now, actor, "plan.delete", "plans/"+name, "", old, nil)},
	}, now)
}

// refresh rebuilds the effective config from plans and tenants. Called
// with mu held.
func (s *Service) refresh() {
	s.eff = s.build(s.sortedPlans(), s.sortedTenants())
}
