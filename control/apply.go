package control

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// Apply creates or updates the plans and tenants of doc (objects not in it
// are left alone). A tenant it creates has the limits the document leaves
// unset pre-filled from tenant_defaults, as PutTenant with create does;
// applying the same document again leaves that tenant unchanged (a
// pre-filled override is cleared with a limits patch, not by apply). Every object is normalised as loading a config file
// would (defaults filled) and compared with the stored one. The whole
// resulting config is validated first (errors name paths in doc, e.g.
// "tenants[0].sources[0]"); then, unless dryRun, every change is made and
// committed in one batch with one audit entry per change.
func (s *Service) Apply(_ context.Context, actor string, doc api.ApplyDoc, dryRun bool) (api.ApplyResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// A tenant the document creates is pre-filled from tenant_defaults, as
	// POST /v1/tenants does; an existing one is taken as written.
	docTenants := make([]configs.Tenant, len(doc.Tenants))
	for i, t := range doc.Tenants {
		if _, ok := s.tenants[t.Name]; !ok {
			t = t.Clone()
			t.Limits = fillLimits(t.Limits, s.base.TenantDefaults)
		}
		docTenants[i] = t
	}
	plans, tenants := normalise(doc.Plans, docTenants)

	// Candidate: stored objects the document does not name, then the
	// document's objects in its order (so its indices map back).
	inDoc := map[string]bool{}
	for _, p := range plans {
		inDoc[p.Name] = true
	}
	var candPlans []configs.Plan
	for _, p := range s.sortedPlans() {
		if !inDoc[p.Name] {
			candPlans = append(candPlans, p)
		}
	}
	planBase := len(candPlans)
	candPlans = append(candPlans, plans...)
	inDoc = map[string]bool{}
	for _, t := range tenants {
		inDoc[t.Name] = true
	}
	var candTenants []configs.Tenant
	for _, t := range s.sortedTenants() {
		if !inDoc[t.Name] {
			candTenants = append(candTenants, t)
		}
	}
	tenantBase := len(candTenants)
	candTenants = append(candTenants, tenants...)
	if err := check(s.build(candPlans, candTenants), docPath(planBase, tenantBase)); err != nil {
		return api.ApplyResult{}, err
	}
	// Provisioning caps, against the tenant as stored: apply may not
	// assign the (N+1)th DID or user either.
	candPlan := make(map[string]configs.Limits, len(candPlans))
	for _, p := range candPlans {
		candPlan[p.Name] = p.Limits
	}
	for i, t := range tenants {
		var prev *configs.Tenant
		if old, ok := s.tenants[t.Name]; ok {
			prev = &old
		}
		if err := fieldErr(configs.CheckProvisioning(fmt.Sprintf("tenants[%d]", i), t, candPlan[t.Plan], prev), func(p string) string { return p }); err != nil {
			return api.ApplyResult{}, err
		}
	}

	res := api.ApplyResult{DryRun: dryRun, Changes: []api.ApplyChange{}}
	var (
		b            store.Batch
		planUps      []configs.Plan
		tenantUps    []configs.Tenant
		routeChanged bool
	)
	for _, p := range plans {
		old, exists := s.plans[p.Name]
		ch, before := compare("plan", p.Name, old, exists, p)
		res.Changes = append(res.Changes, ch)
		if ch.Op == "unchanged" {
			continue
		}
		planUps = append(planUps, p)
		b.PutPlans = append(b.PutPlans, p.Clone())
		b.Audit = append(b.Audit, audit(now, actor, "plan."+ch.Op, "plans/"+p.Name, "", before, p))
	}
	for _, t := range tenants {
		old, exists := s.tenants[t.Name]
		if exists && asCreated(old, t, s.base.TenantDefaults) {
			// Applying the document that created the tenant again is a
			// no-op, not a change that clears the tenant_defaults.
			t = old
		}
		ch, before := compare("tenant", t.Name, old, exists, t)
		res.Changes = append(res.Changes, ch)
		if ch.Op == "unchanged" {
			continue
		}
		routeChanged = routeChanged || !exists || routingChanged(old, t)
		tenantUps = append(tenantUps, t)
		b.PutTenants = append(b.PutTenants, t.Clone())
		b.Audit = append(b.Audit, audit(now, actor, "tenant."+ch.Op, "tenants/"+t.Name, t.Name, before, t))
	}
	if dryRun || b.Empty() {
		return res, nil
	}

	for _, p := range planUps {
		rd, err := s.runner.UpsertPlan(now, p.AdmissionPlan())
		s.effects(rd)
		if err != nil {
			return res, fmt.Errorf("control: apply plan %q: %w", p.Name, err)
		}
		s.plans[p.Name] = p
	}
	for _, t := range tenantUps {
		rd, err := s.runner.UpsertTenant(now, t.AdmissionTenant())
		s.effects(rd)
		if err != nil {
			s.refresh()
			return res, fmt.Errorf("control: apply tenant %q: %w", t.Name, err)
		}
		s.tenants[t.Name] = t
	}
	s.refresh()
	err := s.submit(&b, now)
	if routeChanged {
		s.routing()
	}
	return res, err
}

// docPath maps candidate paths back to the document: the document's
// objects sit after planBase stored plans and tenantBase stored tenants.
func docPath(planBase, tenantBase int) func(string) string {
	shift := func(path, list string, base int) (string, bool) {
		if !strings.HasPrefix(path, list+"[") {
			return path, false
		}
		rest := path[len(list)+1:]
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return path, false
		}
		i, err := strconv.Atoi(rest[:end])
		if err != nil || i < base {
			return path, false
		}
		return fmt.Sprintf("%s[%d]%s", list, i-base, rest[end+1:]), true
	}
	return func(path string) string {
		if p, ok := shift(path, "plans", planBase); ok {
			return p
		}
		p, _ := shift(path, "tenants", tenantBase)
		return p
	}
}

// diff lists the differences between two objects as sorted
// "path: before -> after" lines over their flattened JSON; a side without
// the path shows "<none>". before nil (a creation): every non-null field
// of after.
func diff(before, after any) []string {
	a, b := map[string]string{}, map[string]string{}
	if before != nil {
		flatten(before, a)
	}
	flatten(after, b)
	// A null object or list on one side and its members on the other
	// (limits.destinations: null before, limits.destinations.premium
	// after) is a change of the members from null: one line per member,
	// not the container going away besides.
	nullParents(a, b)
	nullParents(b, a)
	var out []string
	for k, av := range a {
		bv, ok := b[k]
		if !ok {
			bv = "<none>"
		}
		if av != bv {
			out = append(out, k+": "+av+" -> "+bv)
		}
	}
	for k, bv := range b {
		if _, ok := a[k]; !ok && !(before == nil && bv == "null") {
			out = append(out, k+": <none> -> "+bv)
		}
	}
	sort.Strings(out)
	return out
}

// nullParents turns every null leaf of x that has members in y
// ("p.k" or "p[i]" of a null "p") into null leaves at those members.
func nullParents(x, y map[string]string) {
	for k, v := range x {
		if v != "null" {
			continue
		}
		if _, ok := y[k]; ok {
			continue
		}
		var members []string
		for m := range y {
			if strings.HasPrefix(m, k+".") || strings.HasPrefix(m, k+"[") {
				members = append(members, m)
			}
		}
		if len(members) == 0 {
			continue
		}
		delete(x, k)
		for _, m := range members {
			if _, ok := x[m]; !ok {
				x[m] = "null"
			}
		}
	}
}

// flatten writes the leaves of v's JSON into out by path ("limits.x",
// "sources[1]"), strings unquoted and null as "null"; empty lists and
// objects have no leaves.
func flatten(v any, out map[string]string) {
	for k, x := range api.JSONLeaves(v) {
		switch x := x.(type) {
		case nil:
			out[k] = "null"
		case string:
			out[k] = x
		default:
			out[k] = fmt.Sprint(x)
		}
	}
}

// compare classifies an applied object against the stored one (exists
// false: none): create, update or unchanged, with the field diff. before
// is the stored object for the audit entry (nil on create).
func compare[T any](kind, name string, old T, exists bool, next T) (ch api.ApplyChange, before any) {
	ch = api.ApplyChange{Kind: kind, Name: name, Op: "create"}
	if !exists {
		ch.Diff = diff(nil, next)
		return ch, nil
	}
	ch.Diff = diff(old, next)
	ch.Op = "update"
	if len(ch.Diff) == 0 {
		ch.Op = "unchanged"
	}
	return ch, old
}

// asCreated reports whether the stored tenant old is t as a creation
// makes it: the limits t leaves unset pre-filled from tenant_defaults
// (and not t itself: then it is simply unchanged).
func asCreated(old, t configs.Tenant, defaults configs.Limits) bool {
	if len(diff(old, t)) == 0 {
		return false
	}
	filled := t.Clone()
	filled.Limits = fillLimits(filled.Limits, defaults)
	return len(diff(old, normaliseTenant(filled))) == 0
}
