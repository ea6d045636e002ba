// Package apitest provides an in-memory implementation of api.Backend for
// tests of the admin API server and of its clients (the CLI golden tests).
//
// NewBackend returns a backend seeded with a fixed, deterministic state:
//
//	tokens   admin-secret (root, admin), settings-secret (ops, settings),
//	         billing-secret (finance, billing), read-secret (viewer, read)
//	plan     standard: max_parallel_calls 10, max_monthly_minutes 10000,
//	         monthly_spend_limit 500, rate "" 0.01/min 60/60 (other limits
//	         unlimited after the plan defaults)
//	tenant   demo on standard: carrier "carrier", sources 127.0.0.10/32,
//	         DID +1555, PBX 127.0.0.10:5070 udp, role reception
//	         (max_parallel_calls 2, users 100 and 101), two active calls,
//	         usage on two days of the current cycle
//	blocked  two sources blocked by flood protection (BlockedIP4: unknown,
//	         since 30 s ago for 60 s, 4127 dropped; BlockedIP6: known,
//	         since 10 s ago for 60 s, 12 dropped)
//	cluster  node gw-a (this one, renewed now) and gw-b (silent since
//	         5 min), one ledger entry demo/max_parallel_calls cap 10:
//	         gw-a holds 4 (use 3, busy 2), gw-b 2 (use 2, busy 2); demo's
//	         usage adds gw-b's: 90 minutes, 0.9 spent, 2 calls up
//
// Every change appends an audit entry with the actor. The clock is the Now
// field (default DefaultNow), so timestamps are reproducible.
package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
)

// DefaultNow is the fixed time of a new Backend's clock.
var DefaultNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// The seeded token secrets.
const (
	AdminToken    = "admin-secret"
	SettingsToken = "settings-secret"
	BillingToken  = "billing-secret"
	ReadToken     = "read-secret"
)

// The IDs of the two seeded active calls of tenant demo. Call1 contains ';'
// and '@' on purpose (admission ids are Call-ID;from-tag).
const (
	Call1ID = "a84b4c76e66710@pc33.example.com;1928301774"
	Call2ID = "f81d4fae-7dec-11d0@10.0.0.7;9fxced76sl"
)

// The seeded blocked sources.
const (
	BlockedIP4 = "203.0.113.7"
	BlockedIP6 = "2001:db8::bad"
)

// Backend is an in-memory, mutex-guarded api.Backend. Create it with
// NewBackend; the zero value is not usable.
type Backend struct {
	// Now is the clock (timestamps of audit entries, tokens, usage cycle).
	// Set it before the backend is used concurrently.
	Now func() time.Time

	mu       sync.Mutex
	ready    error
	tokens   map[string]*token // by name
	plans    map[string]configs.Plan
	tenants  map[string]*tenant
	calls    []api.CallView
	blocked  []api.BlockedView
	cluster  api.ClusterStatus
	audit    []api.AuditEntry
	nextID   int
	tokenSeq int
}

type token struct {
	secret  string
	view    api.TokenView
	ordinal int
}

type tenant struct {
	cfg    configs.Tenant
	status api.TenantStatus
	// usage in the current cycle
	seconds float64
	spend   configs.Money
	days    []api.DayUsage
}

// Compile-time check.
var _ api.Backend = (*Backend)(nil)

// NewBackend returns a Backend seeded with the fixed state described in the
// package documentation.
func NewBackend() *Backend {
	b := &Backend{
		Now:     func() time.Time { return DefaultNow },
		tokens:  map[string]*token{},
		plans:   map[string]configs.Plan{},
		tenants: map[string]*tenant{},
	}
	now := DefaultNow
	for i, t := range []struct {
		secret, name string
		scope        api.Scope
	}{
		{AdminToken, "root", api.ScopeAdmin},
		{SettingsToken, "ops", api.ScopeSettings},
		{BillingToken, "finance", api.ScopeBilling},
		{ReadToken, "viewer", api.ScopeRead},
	} {
		b.tokens[t.name] = &token{secret: t.secret, ordinal: i,
			view: api.TokenView{Name: t.name, Scope: t.scope, Created: now.Add(-24 * time.Hour)}}
	}
	b.tokenSeq = len(b.tokens)

	perMinute := configs.MustMoney("0.01")
	plan := configs.Plan{
		Name: "standard",
		Limits: configs.Limits{
			MaxParallelCalls:  ptr(int64(10)),
			MaxMonthlyMinutes: ptr(int64(10000)),
			MonthlySpendLimit: ptr(configs.MustMoney("500")),
		},
		Rates: []configs.Rate{{Prefix: "", PerMinute: &perMinute, Increments: configs.Increments{Initial: 60, Subsequent: 60}}},
	}
	b.plans[plan.Name] = planDefaults(plan)

	demo := configs.Tenant{
		Name:    "demo",
		Plan:    "standard",
		Carrier: "carrier",
		Sources: []string{"127.0.0.10/32"},
		DIDs:    []string{"+1555"},
		PBX:     configs.Hop{Address: "127.0.0.10:5070", Transport: "udp"},
		Roles: []configs.Role{{
			Name:             "reception",
			MaxParallelCalls: ptr(int64(2)),
			Users:            []string{"100", "101"},
		}},
	}
	b.tenants[demo.Name] = &tenant{
		cfg:     demo,
		seconds: 2550, // 42.5 minutes
		spend:   configs.MustMoney("0.43"),
		days: []api.DayUsage{
			{Date: "2026-11-20", Calls: 12, Seconds: 1500, Spend: configs.MustMoney("0.25"), EmergencySeconds: 0},
			{Date: "2026-11-21", Calls: 7, Seconds: 1050, Spend: configs.MustMoney("0.18"), EmergencySeconds: 60},
		},
	}

	answered := now.Add(-90 * time.Second)
	b.calls = []api.CallView{
		{
			ID: Call1ID, CallID: "a84b4c76e66710@pc33.example.com", Tenant: "demo",
			Direction: "outbound", Caller: "100", Callee: "+4930123456", State: "confirmed",
			Started: now.Add(-95 * time.Second), Answered: &answered, Seconds: 120,
		},
		{
			ID: Call2ID, CallID: "f81d4fae-7dec-11d0@10.0.0.7", Tenant: "demo",
			Direction: "inbound", Caller: "+4989555000", Callee: "+15550100", State: "early",
			Started: now.Add(-5 * time.Second),
		},
	}
	b.blocked = []api.BlockedView{
		{IP: BlockedIP4, Since: now.Add(-30 * time.Second), Until: now.Add(30 * time.Second),
			Reason: "unknown_rate", Rate: 5, Burst: 10, Dropped: 4127},
		{IP: BlockedIP6, Known: true, Since: now.Add(-10 * time.Second), Until: now.Add(50 * time.Second),
			Reason: "rate", Rate: 2000, Burst: 4000, Dropped: 12},
	}
	b.cluster = seedCluster(now)
	b.appendAudit(api.AuditEntry{Actor: "config", Action: "seed", Resource: "config"}, now.Add(-24*time.Hour))
	return b
}

// seedCluster is the seeded cluster status (see the package comment).
func seedCluster(now time.Time) api.ClusterStatus {
	late := now.Add(-5 * time.Minute)
	return api.ClusterStatus{
		Enabled: true, Node: "gw-a", Bucket: "TOLLGATE_LEDGER", Ready: true, Valid: true, TTL: "10s",
		Nodes: []cluster.Node{
			{Name: "gw-a", Epoch: "0a1b2c3d4e5f6071", Renewed: now, RenewBy: now.Add(10 * time.Second), Started: now.Add(-time.Hour), Alive: true, Self: true},
			{Name: "gw-b", Epoch: "8192a3b4c5d6e7f8", Renewed: late, RenewBy: late.Add(10 * time.Second), Started: now.Add(-2 * time.Hour)},
		},
		Entries: []cluster.Entry{{
			Tenant: "demo", Dimension: "max_parallel_calls", Cap: 10, Leased: 6, Busy: 4,
			Leases: []cluster.Lease{
				{Node: "gw-a", Held: 4, Use: 3, Busy: 2, Epoch: "0a1b2c3d4e5f6071", At: now},
				{Node: "gw-b", Held: 2, Use: 2, Busy: 2, Epoch: "8192a3b4c5d6e7f8", At: late},
			},
		}},
	}
}

// AddBlocked adds a blocked source (for tests).
func (b *Backend) AddBlocked(v api.BlockedView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.blocked = append(b.blocked, v)
}

// SetReady sets what Ready returns (nil: ready).
func (b *Backend) SetReady(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ready = err
}

// AddCall adds an active call (for tests).
func (b *Backend) AddCall(c api.CallView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, c)
}

// AuditLog returns every audit entry, oldest first.
func (b *Backend) AuditLog() []api.AuditEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return clone(b.audit)
}

// Authenticate implements api.Backend.
func (b *Backend) Authenticate(secret string) (api.Principal, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if secret == "" {
		return api.Principal{}, false
	}
	for _, t := range b.tokens {
		if t.secret == secret {
			return api.Principal{Name: t.view.Name, Scope: t.view.Scope}, true
		}
	}
	return api.Principal{}, false
}

// Ready implements api.Backend.
func (b *Backend) Ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ready != nil {
		return fmt.Errorf("%w: %w", api.ErrNotReady, b.ready)
	}
	return nil
}

// ---- plans ----

// ListPlans implements api.Backend (sorted by name).
func (b *Backend) ListPlans(ctx context.Context) ([]configs.Plan, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]configs.Plan, 0, len(b.plans))
	for _, name := range sortedKeys(b.plans) {
		out = append(out, clone(b.plans[name]))
	}
	return out, nil
}

// GetPlan implements api.Backend.
func (b *Backend) GetPlan(ctx context.Context, name string) (configs.Plan, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.plans[name]
	if !ok {
		return configs.Plan{}, fmt.Errorf("plan %q: %w", name, api.ErrNotFound)
	}
	return clone(p), nil
}

// PutPlan implements api.Backend.
func (b *Backend) PutPlan(ctx context.Context, actor string, p configs.Plan, create bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := validatePlan(p); err != nil {
		return false, err
	}
	p = clone(planDefaults(p))
	old, exists := b.plans[p.Name]
	if exists && create {
		return false, fmt.Errorf("plan %q already exists: %w", p.Name, api.ErrConflict)
	}
	b.plans[p.Name] = p
	e := api.AuditEntry{Actor: actor, Action: "plan.create", Resource: "plans/" + p.Name, After: raw(p)}
	if exists {
		e.Action, e.Before = "plan.update", raw(old)
	}
	b.appendAudit(e, b.Now())
	return !exists, nil
}

// DeletePlan implements api.Backend: ErrConflict while a tenant uses it.
func (b *Backend) DeletePlan(ctx context.Context, actor, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.plans[name]
	if !ok {
		return fmt.Errorf("plan %q: %w", name, api.ErrNotFound)
	}
	for _, tn := range sortedKeys(b.tenants) {
		if b.tenants[tn].cfg.Plan == name {
			return fmt.Errorf("plan %q is used by tenant %q: %w", name, tn, api.ErrConflict)
		}
	}
	delete(b.plans, name)
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "plan.delete", Resource: "plans/" + name, Before: raw(old)}, b.Now())
	return nil
}

// ---- tenants ----

// ListTenants implements api.Backend (sorted by name).
func (b *Backend) ListTenants(ctx context.Context) ([]api.TenantView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]api.TenantView, 0, len(b.tenants))
	for _, name := range sortedKeys(b.tenants) {
		out = append(out, b.viewLocked(name))
	}
	return out, nil
}

// GetTenant implements api.Backend.
func (b *Backend) GetTenant(ctx context.Context, name string) (api.TenantView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.tenants[name]; !ok {
		return api.TenantView{}, notFoundTenant(name)
	}
	return b.viewLocked(name), nil
}

// PutTenant implements api.Backend.
func (b *Backend) PutTenant(ctx context.Context, actor string, t configs.Tenant, create bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.validateTenantLocked(t, nil); err != nil {
		return false, err
	}
	t = clone(tenantDefaults(t))
	old, exists := b.tenants[t.Name]
	if exists && create {
		return false, fmt.Errorf("tenant %q already exists: %w", t.Name, api.ErrConflict)
	}
	e := api.AuditEntry{Actor: actor, Action: "tenant.create", Resource: "tenants/" + t.Name, Tenant: t.Name, After: raw(t)}
	if exists {
		e.Action, e.Before = "tenant.update", raw(old.cfg)
		old.cfg = t
	} else {
		b.tenants[t.Name] = &tenant{cfg: t}
	}
	b.appendAudit(e, b.Now())
	return !exists, nil
}

// DeleteTenant implements api.Backend: ErrConflict while it has active
// calls.
func (b *Backend) DeleteTenant(ctx context.Context, actor, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return notFoundTenant(name)
	}
	if n := b.activeLocked(name); n > 0 {
		return fmt.Errorf("tenant %q has %d active calls: %w", name, n, api.ErrConflict)
	}
	delete(b.tenants, name)
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "tenant.delete", Resource: "tenants/" + name, Tenant: name, Before: raw(t.cfg)}, b.Now())
	return nil
}

// ---- limits ----

// GetLimits implements api.Backend.
func (b *Backend) GetLimits(ctx context.Context, name string) (api.LimitsView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.tenants[name]; !ok {
		return api.LimitsView{}, notFoundTenant(name)
	}
	return b.limitsLocked(name), nil
}

// PatchLimits implements api.Backend: Set fields are set (destinations
// merged per class), Clear fields are unset, ClearDestinations classes are
// removed. Count values below -1 are a *api.FieldError naming the field.
func (b *Backend) PatchLimits(ctx context.Context, actor, name string, p api.LimitsPatch) (api.LimitsView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return api.LimitsView{}, notFoundTenant(name)
	}
	if err := validateLimits("", p.Set); err != nil {
		return api.LimitsView{}, err
	}
	for _, c := range p.Clear {
		if lookupField(c) < 0 {
			return api.LimitsView{}, &api.FieldError{Field: c, Message: "unknown limit"}
		}
	}
	before := clone(t.cfg.Limits)
	next := clone(t.cfg.Limits)
	lv := reflect.ValueOf(&next).Elem()
	sv := reflect.ValueOf(p.Set)
	for i := 0; i < lv.NumField(); i++ {
		name := jsonName(lv.Type().Field(i))
		for _, c := range p.Clear {
			if c == name {
				lv.Field(i).SetZero()
			}
		}
		if sv.Field(i).IsNil() {
			continue
		}
		if name == "destinations" {
			continue
		}
		copyPtr(lv.Field(i), sv.Field(i))
	}
	if len(p.Set.Destinations) > 0 && next.Destinations == nil {
		next.Destinations = map[string]bool{}
	}
	for class, on := range p.Set.Destinations {
		next.Destinations[class] = on
	}
	for _, class := range p.ClearDestinations {
		delete(next.Destinations, class)
	}
	if next.Destinations != nil && len(next.Destinations) == 0 {
		next.Destinations = nil
	}
	t.cfg.Limits = next
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "limits.update", Resource: "tenants/" + name + "/limits",
		Tenant: name, Before: raw(before), After: raw(next)}, b.Now())
	return b.limitsLocked(name), nil
}

// ResetLimits implements api.Backend: every override is removed (this
// backend has no tenant_defaults).
func (b *Backend) ResetLimits(ctx context.Context, actor, name string) (api.LimitsView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return api.LimitsView{}, notFoundTenant(name)
	}
	before := t.cfg.Limits
	t.cfg.Limits = configs.Limits{}
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "limits.reset", Resource: "tenants/" + name + "/limits",
		Tenant: name, Before: raw(before), After: raw(t.cfg.Limits)}, b.Now())
	return b.limitsLocked(name), nil
}

// ---- roles ----

// GetRoles implements api.Backend.
func (b *Backend) GetRoles(ctx context.Context, name string) ([]configs.Role, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return nil, notFoundTenant(name)
	}
	return nonNil(clone(t.cfg.Roles)), nil
}

// PutRoles implements api.Backend: the roles replace the tenant's.
func (b *Backend) PutRoles(ctx context.Context, actor, name string, roles []configs.Role) ([]configs.Role, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return nil, notFoundTenant(name)
	}
	if err := validateRoles("", roles); err != nil {
		return nil, err
	}
	before := t.cfg.Roles
	t.cfg.Roles = clone(roles)
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "roles.update", Resource: "tenants/" + name + "/roles",
		Tenant: name, Before: raw(nonNil(before)), After: raw(nonNil(t.cfg.Roles))}, b.Now())
	return nonNil(clone(t.cfg.Roles)), nil
}

// PutRole implements api.Backend: it creates or replaces one role.
func (b *Backend) PutRole(ctx context.Context, actor, name string, role configs.Role) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return false, notFoundTenant(name)
	}
	next := clone(t.cfg.Roles)
	created := true
	for i := range next {
		if next[i].Name == role.Name {
			next[i], created = clone(role), false
		}
	}
	if created {
		next = append(next, clone(role))
	}
	if err := validateRole("", role); err != nil {
		return false, err
	}
	if err := validateRoles("roles", next); err != nil {
		return false, err
	}
	before := t.cfg.Roles
	t.cfg.Roles = next
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "roles.update", Resource: "tenants/" + name + "/roles/" + role.Name,
		Tenant: name, Before: raw(nonNil(before)), After: raw(next)}, b.Now())
	return created, nil
}

// DeleteRole implements api.Backend.
func (b *Backend) DeleteRole(ctx context.Context, actor, name, role string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return notFoundTenant(name)
	}
	for i, r := range t.cfg.Roles {
		if r.Name == role {
			before := clone(t.cfg.Roles)
			t.cfg.Roles = append(t.cfg.Roles[:i:i], t.cfg.Roles[i+1:]...)
			b.appendAudit(api.AuditEntry{Actor: actor, Action: "roles.update", Resource: "tenants/" + name + "/roles/" + role,
				Tenant: name, Before: raw(before), After: raw(nonNil(t.cfg.Roles))}, b.Now())
			return nil
		}
	}
	return fmt.Errorf("role %q of tenant %q: %w", role, name, api.ErrNotFound)
}

// ---- usage, calls, status ----

// Usage implements api.Backend: caps of max_parallel_calls (active calls),
// max_monthly_minutes and monthly_spend_limit, users of roles with a
// minutes cap, and the seeded days.
func (b *Backend) Usage(ctx context.Context, name string) (api.UsageView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return api.UsageView{}, notFoundTenant(name)
	}
	now := b.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	eff := b.limitsLocked(name).Effective
	active := b.activeLocked(name)
	minutes := t.seconds / 60
	u := api.UsageView{
		Tenant:     name,
		CycleStart: start,
		CycleEnd:   start.AddDate(0, 1, 0),
		Status:     b.statusLocked(name),
		Caps: []api.CapUsage{
			capUsage("max_parallel_calls", "calls", float64(active), count(eff.MaxParallelCalls)),
			capUsage("max_monthly_minutes", "minutes", minutes, count(eff.MaxMonthlyMinutes)),
			capUsage("monthly_spend_limit", "money", float64(t.spend)/configs.MicrosPerUnit, money(eff.MonthlySpendLimit)),
		},
		Users: []api.UserUsage{},
		Days:  nonNil(clone(t.days)),
	}
	u.AlertThresholdPct = 80
	if p := eff.AlertThresholdPct; p != nil {
		u.AlertThresholdPct = *p
	}
	u.Caps[2].Used = json.Number(t.spend.String())
	if m := eff.MonthlySpendLimit; m != nil && *m >= 0 {
		l := json.Number(m.String())
		u.Caps[2].Limit = &l
	}
	for _, r := range t.cfg.Roles {
		if r.MaxMonthlyMinutes == nil || *r.MaxMonthlyMinutes < 0 {
			continue
		}
		for _, user := range r.Users {
			c := capUsage("", "minutes", 0, float64(*r.MaxMonthlyMinutes))
			u.Users = append(u.Users, api.UserUsage{User: user, Role: r.Name, Minutes: c.Used, Limit: c.Limit, Percent: c.Percent})
		}
	}
	if name == "demo" { // the seeded cluster: gw-a is this node
		now := b.Now()
		self := cluster.NodeUsage{Node: "gw-a", CycleStart: u.CycleStart, BilledSeconds: t.seconds,
			SpendMicros: int64(t.spend), ActiveCalls: 2, Published: now, Self: true}
		other := cluster.NodeUsage{Node: "gw-b", CycleStart: u.CycleStart, BilledSeconds: 5400,
			SpendMicros: 900000, ActiveCalls: 2, Published: now.Add(-time.Second)}
		u.Cluster = &api.ClusterUsage{CycleStart: u.CycleStart, Nodes: []cluster.NodeUsage{self, other},
			BilledSeconds: self.BilledSeconds + other.BilledSeconds, SpendMicros: self.SpendMicros + other.SpendMicros, ActiveCalls: 4}
	}
	return u, nil
}

// Calls implements api.Backend (tenant "" = all), oldest first.
func (b *Backend) Calls(ctx context.Context, name string) ([]api.CallView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.tenants[name]; name != "" && !ok {
		return nil, notFoundTenant(name)
	}
	out := []api.CallView{}
	for _, c := range b.calls {
		if name == "" || c.Tenant == name {
			out = append(out, clone(c))
		}
	}
	return out, nil
}

// Hangup implements api.Backend: id is a CallView.ID or a SIP Call-ID.
func (b *Backend) Hangup(ctx context.Context, actor, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.calls {
		if c.ID == id || c.CallID == id {
			b.calls = append(b.calls[:i:i], b.calls[i+1:]...)
			b.appendAudit(api.AuditEntry{Actor: actor, Action: "call.hangup", Resource: "calls/" + c.ID, Tenant: c.Tenant}, b.Now())
			return nil
		}
	}
	return fmt.Errorf("call %q: %w", id, api.ErrNotFound)
}

// Blocked implements api.Backend: the blocked sources, oldest block first.
func (b *Backend) Blocked(ctx context.Context) ([]api.BlockedView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := clone(b.blocked)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, nil
}

// Unblock implements api.Backend.
func (b *Backend) Unblock(ctx context.Context, actor string, ip netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.blocked {
		if a, err := netip.ParseAddr(v.IP); err == nil && a == ip {
			b.blocked = append(b.blocked[:i:i], b.blocked[i+1:]...)
			before, _ := json.Marshal(v)
			b.appendAudit(api.AuditEntry{Actor: actor, Action: "source.unblock", Resource: "blocked/" + ip.String(), Before: before}, b.Now())
			return nil
		}
	}
	return fmt.Errorf("source %s is not blocked: %w", ip, api.ErrNotFound)
}

// Cluster implements api.Backend.
func (b *Backend) Cluster(ctx context.Context, tenant string) (api.ClusterStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.cluster
	st.Nodes = clone(st.Nodes)
	st.Entries = []cluster.Entry{}
	for _, e := range b.cluster.Entries {
		if tenant == "" || e.Tenant == tenant {
			e.Leases = clone(e.Leases)
			st.Entries = append(st.Entries, e)
		}
	}
	return st, nil
}

// ReleaseNode implements api.Backend: the live node (gw-a) is refused,
// gw-b's leases and heartbeat go.
func (b *Backend) ReleaseNode(ctx context.Context, actor, node string) (api.ClusterReleased, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := api.ClusterReleased{Node: node}
	i := slices.IndexFunc(b.cluster.Nodes, func(n cluster.Node) bool { return n.Name == node })
	if i < 0 {
		return out, fmt.Errorf("cluster: unknown node %q: %w", node, api.ErrNotFound)
	}
	if b.cluster.Nodes[i].Alive {
		return out, fmt.Errorf("cluster: node %q is alive: %w", node, api.ErrConflict)
	}
	b.cluster.Nodes = slices.Delete(b.cluster.Nodes, i, i+1)
	for k := range b.cluster.Entries {
		e := &b.cluster.Entries[k]
		e.Leases = slices.DeleteFunc(e.Leases, func(l cluster.Lease) bool {
			if l.Node != node {
				return false
			}
			out.Entries++
			out.Calls += l.Held
			e.Leased -= l.Held
			e.Busy -= l.Busy
			return true
		})
	}
	after, _ := json.Marshal(out)
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "cluster.release", Resource: "cluster/nodes/" + node, After: after}, b.Now())
	return out, nil
}

// Suspend implements api.Backend; the reason is required.
func (b *Backend) Suspend(ctx context.Context, actor, name, reason string) (api.TenantStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return api.TenantStatus{}, notFoundTenant(name)
	}
	if strings.TrimSpace(reason) == "" {
		return api.TenantStatus{}, &api.FieldError{Field: "reason", Message: "required"}
	}
	t.status = api.TenantStatus{Suspended: true, SuspendReason: reason}
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "tenant.suspend", Resource: "tenants/" + name, Tenant: name, Reason: reason}, b.Now())
	return b.statusLocked(name), nil
}

// Resume implements api.Backend.
func (b *Backend) Resume(ctx context.Context, actor, name, reason string) (api.TenantStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tenants[name]
	if !ok {
		return api.TenantStatus{}, notFoundTenant(name)
	}
	t.status = api.TenantStatus{}
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "tenant.resume", Resource: "tenants/" + name, Tenant: name, Reason: reason}, b.Now())
	return b.statusLocked(name), nil
}

// Audit implements api.Backend: newest first; From inclusive, To
// exclusive; Limit 0 = 100, at most 1000.
func (b *Backend) Audit(ctx context.Context, q api.AuditQuery) ([]api.AuditEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q.Limit < 0 {
		return nil, &api.FieldError{Field: "limit", Message: "must be 0..1000"}
	}
	limit := q.Limit
	if limit == 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	out := []api.AuditEntry{}
	for i := len(b.audit) - 1; i >= 0 && len(out) < limit; i-- {
		e := b.audit[i]
		if q.Tenant != "" && e.Tenant != q.Tenant ||
			!q.From.IsZero() && e.At.Before(q.From) ||
			!q.To.IsZero() && !e.At.Before(q.To) {
			continue
		}
		out = append(out, clone(e))
	}
	return out, nil
}

// ---- tokens ----

// ListTokens implements api.Backend (in creation order).
func (b *Backend) ListTokens(ctx context.Context) ([]api.TokenView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := make([]*token, 0, len(b.tokens))
	for _, t := range b.tokens {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].ordinal < ts[j].ordinal })
	out := make([]api.TokenView, len(ts))
	for i, t := range ts {
		out[i] = t.view
	}
	return out, nil
}

// CreateToken implements api.Backend. The secret is deterministic:
// "tok-<name>-<sequence>".
func (b *Backend) CreateToken(ctx context.Context, actor, name string, scope api.Scope) (api.NewToken, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if msg := nameSyntax(name); msg != "" {
		return api.NewToken{}, &api.FieldError{Field: "name", Message: msg}
	}
	if !scope.Valid() {
		return api.NewToken{}, &api.FieldError{Field: "scope", Message: fmt.Sprintf("must be admin, settings, billing or read, got %q", scope)}
	}
	if _, ok := b.tokens[name]; ok {
		return api.NewToken{}, fmt.Errorf("token %q already exists: %w", name, api.ErrConflict)
	}
	b.tokenSeq++
	t := &token{
		secret:  fmt.Sprintf("tok-%s-%d", name, b.tokenSeq),
		ordinal: b.tokenSeq,
		view:    api.TokenView{Name: name, Scope: scope, Created: b.Now().UTC()},
	}
	b.tokens[name] = t
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "token.create", Resource: "tokens/" + name, After: raw(t.view)}, b.Now())
	return api.NewToken{TokenView: t.view, Token: t.secret}, nil
}

// DeleteToken implements api.Backend.
func (b *Backend) DeleteToken(ctx context.Context, actor, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tokens[name]
	if !ok {
		return fmt.Errorf("token %q: %w", name, api.ErrNotFound)
	}
	delete(b.tokens, name)
	b.appendAudit(api.AuditEntry{Actor: actor, Action: "token.delete", Resource: "tokens/" + name, Before: raw(t.view)}, b.Now())
	return nil
}

// ---- apply ----

// Apply implements api.Backend: plans first, then tenants, in document
// order; each is created, updated (Diff lists the changed fields) or
// unchanged. Validation errors name the path in the document
// ("plans[0].name", "tenants[1].plan"). A dry run changes nothing.
func (b *Backend) Apply(ctx context.Context, actor string, doc api.ApplyDoc, dryRun bool) (api.ApplyResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	res := api.ApplyResult{DryRun: dryRun, Changes: []api.ApplyChange{}}
	docPlans := map[string]bool{}
	seen := map[string]int{}
	for i, p := range doc.Plans {
		if err := validatePlan(p); err != nil {
			return api.ApplyResult{}, prefixed(fmt.Sprintf("plans[%d]", i), err)
		}
		if j, dup := seen[p.Name]; dup {
			return api.ApplyResult{}, &api.FieldError{Field: fmt.Sprintf("plans[%d].name", i), Message: fmt.Sprintf("duplicate plan %q (plans[%d])", p.Name, j)}
		}
		seen[p.Name] = i
		docPlans[p.Name] = true
	}
	seen = map[string]int{}
	for i, t := range doc.Tenants {
		if err := b.validateTenantLocked(t, docPlans); err != nil {
			return api.ApplyResult{}, prefixed(fmt.Sprintf("tenants[%d]", i), err)
		}
		if j, dup := seen[t.Name]; dup {
			return api.ApplyResult{}, &api.FieldError{Field: fmt.Sprintf("tenants[%d].name", i), Message: fmt.Sprintf("duplicate tenant %q (tenants[%d])", t.Name, j)}
		}
		seen[t.Name] = i
	}
	now := b.Now()
	for _, p := range doc.Plans {
		p = clone(planDefaults(p))
		ch := api.ApplyChange{Kind: "plan", Name: p.Name, Op: "create"}
		old, exists := b.plans[p.Name]
		if exists {
			ch.Diff = api.JSONDiff(old, p)
			ch.Op = "update"
			if len(ch.Diff) == 0 {
				ch.Op = "unchanged"
			}
		}
		res.Changes = append(res.Changes, ch)
		if dryRun || ch.Op == "unchanged" {
			continue
		}
		b.plans[p.Name] = p
		e := api.AuditEntry{Actor: actor, Action: "plan." + ch.Op, Resource: "plans/" + p.Name, After: raw(p)}
		if exists {
			e.Before = raw(old)
		}
		b.appendAudit(e, now)
	}
	for _, t := range doc.Tenants {
		t = clone(tenantDefaults(t))
		ch := api.ApplyChange{Kind: "tenant", Name: t.Name, Op: "create"}
		old, exists := b.tenants[t.Name]
		if exists {
			ch.Diff = api.JSONDiff(old.cfg, t)
			ch.Op = "update"
			if len(ch.Diff) == 0 {
				ch.Op = "unchanged"
			}
		}
		res.Changes = append(res.Changes, ch)
		if dryRun || ch.Op == "unchanged" {
			continue
		}
		e := api.AuditEntry{Actor: actor, Action: "tenant." + ch.Op, Resource: "tenants/" + t.Name, Tenant: t.Name, After: raw(t)}
		if exists {
			e.Before = raw(old.cfg)
			old.cfg = t
		} else {
			b.tenants[t.Name] = &tenant{cfg: t}
		}
		b.appendAudit(e, now)
	}
	return res, nil
}

// ActiveByTenant implements api.Backend: active calls per tenant (tenants
// without calls are absent).
func (b *Backend) ActiveByTenant() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int64{}
	for _, c := range b.calls {
		out[c.Tenant]++
	}
	return out
}

// ---- helpers (b.mu held where the name ends in Locked) ----

func (b *Backend) appendAudit(e api.AuditEntry, at time.Time) {
	b.nextID++
	e.ID = fmt.Sprintf("%06d", b.nextID)
	e.At = at.UTC()
	b.audit = append(b.audit, e)
}

func (b *Backend) activeLocked(name string) int64 {
	var n int64
	for _, c := range b.calls {
		if c.Tenant == name {
			n++
		}
	}
	return n
}

func (b *Backend) statusLocked(name string) api.TenantStatus {
	s := b.tenants[name].status
	s.ActiveCalls = b.activeLocked(name)
	return s
}

func (b *Backend) viewLocked(name string) api.TenantView {
	return api.TenantView{Tenant: clone(b.tenants[name].cfg), Status: b.statusLocked(name)}
}

func (b *Backend) limitsLocked(name string) api.LimitsView {
	t := b.tenants[name].cfg
	plan := b.plans[t.Plan]
	eff := clone(plan.Limits)
	ev := reflect.ValueOf(&eff).Elem()
	ov := reflect.ValueOf(t.Limits)
	for i := 0; i < ev.NumField(); i++ {
		if jsonName(ev.Type().Field(i)) == "destinations" || ov.Field(i).IsNil() {
			continue
		}
		copyPtr(ev.Field(i), ov.Field(i))
	}
	if len(t.Limits.Destinations) > 0 {
		if eff.Destinations == nil {
			eff.Destinations = map[string]bool{}
		}
		for k, v := range t.Limits.Destinations {
			eff.Destinations[k] = v
		}
	}
	return api.LimitsView{Tenant: name, Plan: t.Plan, Overrides: clone(t.Limits), Effective: eff}
}

func (b *Backend) validateTenantLocked(t configs.Tenant, extraPlans map[string]bool) error {
	if msg := nameSyntax(t.Name); msg != "" {
		return &api.FieldError{Field: "name", Message: msg}
	}
	if t.Plan == "" {
		return &api.FieldError{Field: "plan", Message: "required"}
	}
	if _, ok := b.plans[t.Plan]; !ok && !extraPlans[t.Plan] {
		return &api.FieldError{Field: "plan", Message: fmt.Sprintf("unknown plan %q", t.Plan)}
	}
	if t.Carrier == "" {
		return &api.FieldError{Field: "carrier", Message: "required"}
	}
	if len(t.Sources) == 0 {
		return &api.FieldError{Field: "sources", Message: "at least one source CIDR is required"}
	}
	for i, s := range t.Sources {
		if s == "" {
			return &api.FieldError{Field: fmt.Sprintf("sources[%d]", i), Message: "must not be empty"}
		}
	}
	if len(t.DIDs) > 0 && t.PBX.Address == "" {
		return &api.FieldError{Field: "pbx.address", Message: "required when dids are set"}
	}
	if err := validateLimits("limits", t.Limits); err != nil {
		return err
	}
	return validateRoles("roles", t.Roles)
}

func validatePlan(p configs.Plan) error {
	if msg := nameSyntax(p.Name); msg != "" {
		return &api.FieldError{Field: "name", Message: msg}
	}
	if err := validateLimits("limits", p.Limits); err != nil {
		return err
	}
	prefixes := map[string]bool{}
	for i, r := range p.Rates {
		if r.PerMinute == nil {
			return &api.FieldError{Field: fmt.Sprintf("rates[%d].per_minute", i), Message: "required"}
		}
		if prefixes[r.Prefix] {
			return &api.FieldError{Field: fmt.Sprintf("rates[%d].prefix", i), Message: fmt.Sprintf("duplicate prefix %q", r.Prefix)}
		}
		prefixes[r.Prefix] = true
	}
	return nil
}

// validateLimits checks count limits (>= -1), alert_threshold_pct (1..100)
// and cps_burst (>= 1); base is the path of the limits ("" for a patch).
func validateLimits(base string, l configs.Limits) error {
	path := func(name string) string {
		if base == "" {
			return name
		}
		return base + "." + name
	}
	for _, c := range []struct {
		name string
		v    *int64
	}{
		{"max_parallel_calls", l.MaxParallelCalls},
		{"max_parallel_inbound", l.MaxParallelInbound},
		{"max_parallel_outbound", l.MaxParallelOutbound},
		{"max_calls_per_second", l.MaxCallsPerSecond},
		{"max_monthly_minutes", l.MaxMonthlyMinutes},
	} {
		if c.v != nil && *c.v < -1 {
			return &api.FieldError{Field: path(c.name), Message: fmt.Sprintf("must be -1 (unlimited), 0 (blocked) or a positive cap, got %d", *c.v)}
		}
	}
	if v := l.CPSBurst; v != nil && *v < 1 {
		return &api.FieldError{Field: path("cps_burst"), Message: fmt.Sprintf("must be at least 1, got %d", *v)}
	}
	if v := l.AlertThresholdPct; v != nil && (*v < 1 || *v > 100) {
		return &api.FieldError{Field: path("alert_threshold_pct"), Message: fmt.Sprintf("must be 1..100, got %d", *v)}
	}
	return nil
}

func validateRoles(base string, roles []configs.Role) error {
	names := map[string]int{}
	for i, r := range roles {
		p := fmt.Sprintf("%s[%d]", base, i)
		if err := validateRole(p, r); err != nil {
			return err
		}
		if j, dup := names[r.Name]; dup {
			return &api.FieldError{Field: p + ".name", Message: fmt.Sprintf("duplicate role %q (%s[%d])", r.Name, base, j)}
		}
		names[r.Name] = i
	}
	return nil
}

func validateRole(base string, r configs.Role) error {
	path := func(name string) string {
		if base == "" {
			return name
		}
		return base + "." + name
	}
	if msg := nameSyntax(r.Name); msg != "" {
		return &api.FieldError{Field: path("name"), Message: msg}
	}
	for _, c := range []struct {
		name string
		v    *int64
	}{{"max_parallel_calls", r.MaxParallelCalls}, {"max_monthly_minutes", r.MaxMonthlyMinutes}} {
		if c.v != nil && *c.v < -1 {
			return &api.FieldError{Field: path(c.name), Message: fmt.Sprintf("must be -1 (unlimited), 0 (blocked) or a positive cap, got %d", *c.v)}
		}
	}
	return nil
}

// nameSyntax is configs' name rule: 1..64 letters, digits, '-' and '_'.
func nameSyntax(name string) string {
	if name == "" {
		return "required"
	}
	if len(name) > 64 {
		return fmt.Sprintf("must be at most 64 characters, got %d", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Sprintf("must contain only letters, digits, '-' and '_', got %q", name)
		}
	}
	return ""
}

// prefixed puts base in front of a FieldError's field.
func prefixed(base string, err error) error {
	if fe, ok := err.(*api.FieldError); ok {
		f := base
		if fe.Field != "" {
			f += "." + fe.Field
		}
		return &api.FieldError{Field: f, Message: fe.Message}
	}
	return err
}

// planDefaults applies the configs plan defaults (unset limits unlimited,
// alert threshold 80, auto_suspend false, increments 60/60).
func planDefaults(p configs.Plan) configs.Plan {
	p.Rates = slices.Clone(p.Rates) // ApplyDefaults writes the increments
	c := configs.Config{Plans: []configs.Plan{p}}
	c.ApplyDefaults()
	return c.Plans[0]
}

// tenantDefaults applies the configs tenant defaults (PBX transport udp).
func tenantDefaults(t configs.Tenant) configs.Tenant {
	c := configs.Config{Tenants: []configs.Tenant{t}}
	c.ApplyDefaults()
	return c.Tenants[0]
}

func notFoundTenant(name string) error {
	return fmt.Errorf("tenant %q: %w", name, api.ErrNotFound)
}

func capUsage(name, unit string, used, limit float64) api.CapUsage {
	c := api.CapUsage{Cap: name, Unit: unit, Used: decimal(used)}
	if limit < 0 {
		return c
	}
	l := decimal(limit)
	c.Limit = &l
	pct := 100.0
	if limit > 0 {
		pct = math.Round(used/limit*100*1000) / 1000 // 3 decimal places
	}
	c.Percent = &pct
	return c
}

func count(v *int64) float64 {
	if v == nil {
		return -1
	}
	return float64(*v)
}

func money(v *configs.Money) float64 {
	if v == nil || *v < 0 {
		return -1
	}
	return float64(*v) / configs.MicrosPerUnit
}

// decimal formats v with at most 3 decimal places.
func decimal(v float64) json.Number {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return json.Number(s)
}

// copyPtr sets dst to a new pointer to a copy of *src (a scalar).
func copyPtr(dst, src reflect.Value) {
	n := reflect.New(src.Type().Elem())
	n.Elem().Set(src.Elem())
	dst.Set(n)
}

func lookupField(name string) int {
	t := reflect.TypeOf(configs.Limits{})
	for i := 0; i < t.NumField(); i++ {
		if jsonName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func raw(v any) json.RawMessage {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// clone deep-copies v through JSON (every stored type round-trips).
func clone[T any](v T) T {
	var out T
	if err := json.Unmarshal(raw(v), &out); err != nil {
		panic(err)
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func ptr[T any](v T) *T { return &v }
