package configs

import "fmt"

// Provisioning caps: max_dids and max_users limit what may be assigned to
// a tenant (its DID prefixes, the users on its roles), not its calls. The
// admission engine never sees them. They are checked when something is
// assigned: a change that raises a count past its cap is refused; a change
// that does not raise it is accepted even over the cap, so lowering a cap
// below the current count is not retroactive (docs/ARCHITECTURE.md,
// "Provisioning caps").

// Users returns the distinct user identities listed on the tenant's roles
// (roles[].users), in role then list order. Patterns are not users.
func (t Tenant) Users() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range t.Roles {
		for _, u := range r.Users {
			if !seen[u] {
				seen[u] = true
				out = append(out, u)
			}
		}
	}
	return out
}

// EffectiveCap resolves a provisioning cap: the tenant's override if set,
// else the plan's, else -1 (unlimited).
func EffectiveCap(override, plan *int64) int64 {
	switch {
	case override != nil:
		return *override
	case plan != nil:
		return *plan
	}
	return -1
}

// EffectiveProvisioning fills MaxDIDs and MaxUsers of eff (an effective
// limits value, e.g. from LimitsFromEngine) from the tenant's overrides
// over its plan's limits.
func EffectiveProvisioning(eff, overrides, plan Limits) Limits {
	eff.MaxDIDs = ptrTo(EffectiveCap(overrides.MaxDIDs, plan.MaxDIDs))
	eff.MaxUsers = ptrTo(EffectiveCap(overrides.MaxUsers, plan.MaxUsers))
	return eff
}

// CheckProvisioning checks tenant t, at path (e.g. "tenants[2]"; "" for
// the tenant itself), against its effective max_dids and max_users (t's
// overrides over plan, the limits of its plan). prev is the tenant as it
// is now (nil: t is new). A count above its cap is an error only when it
// is higher than prev's: the error names the list (path.dids) or the
// first user beyond the cap that prev did not have
// (path.roles[i].users[j]), e.g. "dids: 3 DIDs, max_dids is 2".
func CheckProvisioning(path string, t Tenant, plan Limits, prev *Tenant) error {
	join := func(field string) string {
		if path == "" {
			return field
		}
		return path + "." + field
	}
	if max := EffectiveCap(t.Limits.MaxDIDs, plan.MaxDIDs); max >= 0 {
		n, before := int64(len(t.DIDs)), int64(-1)
		if prev != nil {
			before = int64(len(prev.DIDs))
		}
		if n > max && n > before {
			return errf(join("dids"), "%d DID%s, max_dids is %d%s", n, plural(int(n)), max, notRetroactive(prev, before, "DID"))
		}
	}
	if max := EffectiveCap(t.Limits.MaxUsers, plan.MaxUsers); max >= 0 {
		users := t.Users()
		n, before := int64(len(users)), int64(-1)
		had := map[string]bool{}
		if prev != nil {
			prevUsers := prev.Users()
			before = int64(len(prevUsers))
			for _, u := range prevUsers {
				had[u] = true
			}
		}
		if n > max && n > before {
			// Name the first new user beyond the cap.
			at, k, seen := join("roles"), int64(0), map[string]bool{}
			found := false
			for i, r := range t.Roles {
				for j, u := range r.Users {
					if seen[u] {
						continue
					}
					seen[u] = true
					k++
					if had[u] {
						continue
					}
					at = join(fmt.Sprintf("roles[%d].users[%d]", i, j)) // else the last new one
					if k > max {
						found = true
						break
					}
				}
				if found {
					break
				}
			}
			return errf(at, "%d user%s on the roles, max_users is %d%s", n, plural(int(n)), max, notRetroactive(prev, before, "user"))
		}
	}
	return nil
}

// notRetroactive explains, for a tenant already over its cap, that only
// adding is refused.
func notRetroactive(prev *Tenant, before int64, what string) string {
	if prev == nil || before <= 0 {
		return ""
	}
	return fmt.Sprintf(" (it has %d %s%s: they stay, but none may be added)", before, what, plural(int(before)))
}

// CheckProvisioningCaps checks every tenant of the file against its
// max_dids and max_users (its overrides over its plan's limits; the
// file's tenants do not take tenant_defaults). A config file is a
// declaration of what is assigned, so listing more DIDs or users than the
// cap is an attempt to assign the (N+1)th: an error naming the tenant and
// the field. Parse (Load) runs it after Validate. It is not part of
// Validate: the control service validates the stored state with Validate,
// and a stored tenant may be over a cap that was lowered after its
// numbers were assigned.
func (c *Config) CheckProvisioningCaps() error {
	plans := make(map[string]Limits, len(c.Plans))
	for _, p := range c.Plans {
		plans[p.Name] = p.Limits
	}
	for i, t := range c.Tenants {
		if err := CheckProvisioning(fmt.Sprintf("tenants[%d]", i), t, plans[t.Plan], nil); err != nil {
			var fe *fieldError
			if asFieldError(err, &fe) {
				fe.msg += fmt.Sprintf(" (tenant %q)", t.Name)
			}
			return err
		}
	}
	return nil
}

func asFieldError(err error, fe **fieldError) bool {
	e, ok := err.(*fieldError)
	if ok {
		*fe = e
	}
	return ok
}
