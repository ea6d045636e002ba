package admission_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

func TestLimitsValidation(t *testing.T) {
	tests := []struct {
		field string
		l     admission.Limits
	}{
		{"max_parallel_calls", admission.Limits{MaxParallelCalls: lim(-2)}},
		{"max_parallel_inbound", admission.Limits{MaxParallelInbound: lim(-5)}},
		{"max_parallel_outbound", admission.Limits{MaxParallelOutbound: lim(-2)}},
		{"max_calls_per_second", admission.Limits{MaxCallsPerSecond: lim(-2)}},
		{"cps_burst", admission.Limits{CPSBurst: lim(0)}},
		{"cps_burst", admission.Limits{CPSBurst: lim(-1)}},
		{"max_monthly_minutes", admission.Limits{MaxMonthlyMinutes: lim(-2)}},
		{"max_monthly_minutes", admission.Limits{MaxMonthlyMinutes: lim(1 << 40)}},
		{"monthly_spend_limit", admission.Limits{MonthlySpendLimit: lim(1 << 62)}},
		{"alert_threshold_pct", admission.Limits{AlertThresholdPct: lim(0)}},
		{"alert_threshold_pct", admission.Limits{AlertThresholdPct: lim(101)}},
	}
	for _, tt := range tests {
		e := admission.NewEngine(admission.Settings{})
		_, err := e.UpsertPlan(t0, admission.Plan{Name: "p", Limits: tt.l})
		if !errors.Is(err, admission.ErrInvalidLimit) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("plan with bad %s: err = %v", tt.field, err)
		}
		mustPlan(t, e, admission.Plan{Name: "p"})
		if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p", Overrides: tt.l}); !errors.Is(err, admission.ErrInvalidLimit) {
			t.Errorf("tenant with bad %s: err = %v", tt.field, err)
		}
	}
	// Valid extremes.
	e := admission.NewEngine(admission.Settings{})
	ok := admission.Limits{MaxParallelCalls: lim(-1), CPSBurst: lim(1), AlertThresholdPct: lim(100), MaxMonthlyMinutes: lim(0), MonthlySpendLimit: lim(-1)}
	if _, err := e.UpsertPlan(t0, admission.Plan{Name: "p", Limits: ok}); err != nil {
		t.Errorf("valid limits refused: %v", err)
	}
	// Invalid tenant defaults surface at CreateTenant.
	e = admission.NewEngine(admission.Settings{TenantDefaults: admission.Limits{AlertThresholdPct: lim(0)}})
	mustPlan(t, e, admission.Plan{Name: "p"})
	if _, err := e.CreateTenant(t0, "t", "p"); !errors.Is(err, admission.ErrInvalidLimit) {
		t.Errorf("CreateTenant with bad defaults: %v", err)
	}
}

func TestRatesAndRolesValidation(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	badRates := [][]admission.Rate{
		{{Prefix: "+1", PerMinute: 1, Initial: 60, Subsequent: 60}, {Prefix: "+1", PerMinute: 2, Initial: 60, Subsequent: 60}},
		{{Prefix: "+1", PerMinute: -1, Initial: 60, Subsequent: 60}},
		{{Prefix: "+1", ConnectFee: -1, Initial: 60, Subsequent: 60}},
		{{Prefix: "+1", Initial: 0, Subsequent: 60}},
		{{Prefix: "+1", Initial: 60, Subsequent: 0}},
	}
	for i, rates := range badRates {
		if _, err := e.UpsertPlan(t0, admission.Plan{Name: "p", Rates: rates}); !errors.Is(err, admission.ErrInvalidRate) {
			t.Errorf("rates %d: err = %v", i, err)
		}
	}
	// The engine's errors name the field (admission.ValidateRates, also
	// configs' validator of rate tables).
	for _, tc := range []struct {
		rates []admission.Rate
		want  string
	}{
		{[]admission.Rate{{Prefix: "+1", Initial: 60, Subsequent: 60}, {Prefix: "44x", Initial: 60, Subsequent: 60}},
			`plan "p": rates[1].prefix: must be digits with an optional leading +, or empty for the default row, got "44x"`},
		{[]admission.Rate{{Prefix: "1-900", Initial: 60, Subsequent: 60}}, `plan "p": rates[0].prefix: "1-900" is not a normalised number; write "1900"`},
		{[]admission.Rate{{Prefix: "+1", Initial: 60, Subsequent: 60}, {Prefix: "+1", Initial: 60, Subsequent: 60}},
			`plan "p": rates[1].prefix: duplicate prefix "+1" (same as rates[0]); a prefix appears once per plan`},
		{[]admission.Rate{{PerMinute: admission.MaxMoney + 1, Initial: 60, Subsequent: 60}}, `plan "p": rates[0].per_minute: must be an amount 0..1000000000, got 1000000000.000001`},
		{[]admission.Rate{{ConnectFee: -500_000, Initial: 60, Subsequent: 60}}, `plan "p": rates[0].connect_fee: must be an amount 0..1000000000, got -0.5`},
		{[]admission.Rate{{Initial: 60, Subsequent: admission.MaxIncrement + 1}}, `plan "p": rates[0].increments: invalid increments "60/86401": both parts must be 1..86400 seconds`},
	} {
		_, err := e.UpsertPlan(t0, admission.Plan{Name: "p", Rates: tc.rates})
		var fe *admission.FieldError
		if !errors.Is(err, admission.ErrInvalidRate) || !errors.As(err, &fe) || err.Error() != tc.want {
			t.Errorf("rates %v: err = %v, want %s", tc.rates, err, tc.want)
		}
	}
	mustPlan(t, e, admission.Plan{Name: "p"})
	badRoles := [][]admission.Role{
		{{Name: ""}},
		{{Name: "a"}, {Name: "a"}},
		{{Name: "a", Patterns: []string{"[1-"}}},
	}
	for _, tc := range []struct {
		roles []admission.Role
		want  string
	}{
		{[]admission.Role{{Name: "sales team"}}, `tenant "t": roles[0].name: must contain only letters, digits, '-' and '_', got "sales team"`},
		{[]admission.Role{{Name: "a", Users: []string{"al ice"}}}, `tenant "t": roles[0].users[0]: must be a user identity of 1..128 printable characters without spaces, got "al ice"`},
		{[]admission.Role{{Name: "a", Users: []string{"u"}}, {Name: "b", Users: []string{"u"}}},
			`tenant "t": roles[1].users[0]: user "u" is already on role "a" (roles[0].users[0]); a user may be on one role of a tenant`},
		{[]admission.Role{{Name: "a", Patterns: []string{""}}}, `tenant "t": roles[0].patterns[0]: must not be empty`},
	} {
		_, err := e.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p", Roles: tc.roles})
		if !errors.Is(err, admission.ErrInvalidRole) || err.Error() != tc.want {
			t.Errorf("roles %v: err = %v, want %s", tc.roles, err, tc.want)
		}
	}
	for i, roles := range badRoles {
		if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p", Roles: roles}); !errors.Is(err, admission.ErrInvalidRole) {
			t.Errorf("roles %d: err = %v", i, err)
		}
	}
	if _, err := e.UpsertTenant(t0, admission.Tenant{Name: "t", Plan: "p", Roles: []admission.Role{{Name: "a", MaxParallelCalls: lim(-3)}}}); !errors.Is(err, admission.ErrInvalidLimit) {
		t.Errorf("role limit: err = %v", err)
	}
	if _, err := e.UpsertPlan(t0, admission.Plan{}); !errors.Is(err, admission.ErrEmptyName) {
		t.Errorf("empty plan name: %v", err)
	}
	if _, err := e.UpsertTenant(t0, admission.Tenant{Plan: "p"}); !errors.Is(err, admission.ErrEmptyName) {
		t.Errorf("empty tenant name: %v", err)
	}
	if _, err := e.ResetTenant(t0, "nobody"); !errors.Is(err, admission.ErrUnknownTenant) {
		t.Errorf("ResetTenant: %v", err)
	}
	if _, err := e.EffectiveLimits("nobody"); !errors.Is(err, admission.ErrUnknownTenant) {
		t.Errorf("EffectiveLimits: %v", err)
	}
	if _, err := e.CreateTenant(t0, "x", "nope"); !errors.Is(err, admission.ErrUnknownPlan) {
		t.Errorf("CreateTenant unknown plan: %v", err)
	}
}

// The engine copies what it is given and returns copies: no aliasing of
// caller memory either way.
func TestLimitsAreCopied(t *testing.T) {
	e := admission.NewEngine(admission.Settings{})
	cap := lim(2)
	dest := map[string]bool{"premium": false}
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: cap, Destinations: dest}})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p"})
	*cap = 100
	dest["premium"] = true
	l, err := e.EffectiveLimits("t")
	if err != nil {
		t.Fatal(err)
	}
	if *l.MaxParallelCalls != 2 || l.Destinations["premium"] {
		t.Fatalf("engine aliases caller memory: %d %v", *l.MaxParallelCalls, l.Destinations)
	}
	*l.MaxParallelCalls = 50
	l.Destinations["premium"] = true
	l2, _ := e.EffectiveLimits("t")
	if *l2.MaxParallelCalls != 2 || l2.Destinations["premium"] {
		t.Fatal("EffectiveLimits returns engine memory")
	}
	if l2.AlertThresholdPct == nil || *l2.AlertThresholdPct != 80 || l2.AutoSuspend == nil || *l2.AutoSuspend {
		t.Fatalf("defaults not applied: %+v", l2)
	}
}
