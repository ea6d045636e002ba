package control

import (
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
)

// Validation runs configs.Validate on the candidate effective config (the
// stored plans and tenants with the change), so an operation is accepted
// exactly when a config file holding the result would load. The changed
// object is placed last in its list: errors about two objects (overlapping
// sources, a DID claimed twice) name the later one, i.e. the change.
// The error's path is then rewritten into a path in the request body.

// rebase maps a config path to a body path: a path at or under prefix
// ("tenants[3]", "tenants[3].limits") becomes relative to it; other paths
// (about other objects) stay as they are.
func rebase(prefix string) func(string) string {
	return func(path string) string {
		if path == prefix {
			return ""
		}
		if strings.HasPrefix(path, prefix) {
			switch rest := path[len(prefix):]; rest[0] {
			case '.':
				return rest[1:]
			case '[':
				return rest
			}
		}
		return path
	}
}

// check validates cfg; a failure is an *api.FieldError whose Field is
// rel(path of the error).
func check(cfg *configs.Config, rel func(string) string) error {
	return fieldErr(cfg.Validate(), rel)
}

// fieldErr turns a configs validation error into an *api.FieldError
// whose Field is rel(path of the error); nil stays nil.
func fieldErr(err error, rel func(string) string) error {
	if err == nil {
		return nil
	}
	path, msg, ok := configs.FieldPath(err)
	if !ok {
		return &api.FieldError{Message: err.Error()}
	}
	return &api.FieldError{Field: rel(path), Message: msg}
}

// withPlan returns the stored plans without name, plus p last; i is p's
// index.
func (s *Service) withPlan(p configs.Plan) (plans []configs.Plan, i int) {
	for _, o := range s.sortedPlans() {
		if o.Name != p.Name {
			plans = append(plans, o)
		}
	}
	return append(plans, p), len(plans)
}

// withTenant returns the stored tenants without t.Name, plus t last; i is
// t's index.
func (s *Service) withTenant(t configs.Tenant) (tenants []configs.Tenant, i int) {
	for _, o := range s.sortedTenants() {
		if o.Name != t.Name {
			tenants = append(tenants, o)
		}
	}
	return append(tenants, t), len(tenants)
}

// checkTenant validates the effective config with t in place of the stored
// tenant of its name; errors about t are rebased on under, a path inside
// the tenant ("" for the whole tenant, "limits", "roles", "roles[2]").
func (s *Service) checkTenant(t configs.Tenant, under string) error {
	tenants, i := s.withTenant(t)
	prefix := "tenants[" + strconv.Itoa(i) + "]"
	if under != "" {
		prefix += "." + under
	}
	return check(s.build(s.sortedPlans(), tenants), rebase(prefix))
}

// checkCaps checks t's provisioning caps (max_dids, max_users) against
// the stored tenant of its name: only a change that raises a count past
// its cap is refused (configs.CheckProvisioning). Errors are rebased on
// under as checkTenant's. Replicated changes are not checked again: the
// node that took them did.
func (s *Service) checkCaps(t configs.Tenant, under string) error {
	var prev *configs.Tenant
	if old, ok := s.tenants[t.Name]; ok {
		prev = &old
	}
	err := configs.CheckProvisioning("tenant", t, s.plans[t.Plan].Limits, prev)
	if err == nil {
		return nil
	}
	prefix := "tenant"
	if under != "" {
		prefix += "." + under
	}
	rel := rebase(prefix)
	return fieldErr(err, func(path string) string {
		path = rel(path)
		// A path outside under (not expected): relative to the tenant.
		return rebase("tenant")(path)
	})
}

// checkPlan validates the effective config with p in place of the stored
// plan of its name.
func (s *Service) checkPlan(p configs.Plan) error {
	plans, i := s.withPlan(p)
	return check(s.build(plans, s.sortedTenants()), rebase("plans["+strconv.Itoa(i)+"]"))
}

// validName checks the syntax of a token name (as plan, tenant and role
// names: admission.CheckName).
func validName(name string) string {
	if name == "" {
		return "required"
	}
	return admission.CheckName(name)
}
