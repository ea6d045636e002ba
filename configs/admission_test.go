package configs

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// engineConfig exercises every part of the config -> engine mapping.
const engineConfig = `
sip:
  listen: [{transport: udp, address: "127.0.0.1:5060"}]
admission:
  reject:
    role_parallel_calls: {code: 486, reason: User Busy}
    destination_class: {code: 404, reason: Barred}
destination_classes:
  premium: ["1900", "+1900"]
  international: ["00"]
tenant_defaults:
  max_parallel_calls: 2
  auto_suspend: false
carriers:
  - {name: c1, address: "192.0.2.1:5060"}
plans:
  - name: p1
    limits:
      max_parallel_calls: 10
      max_monthly_minutes: 1000
      monthly_spend_limit: 50
      auto_suspend: true
      destinations: {premium: false}
    rates:
      - {prefix: "", per_minute: 0.01}
      - {prefix: "+44", per_minute: 0.06, connect_fee: 0.1, increments: "6/6"}
tenants:
  - name: t1
    plan: p1
    carrier: c1
    sources: [10.0.0.0/24]
    limits:
      max_parallel_calls: 3
      alert_threshold_pct: 90
      destinations: {international: false}
    roles:
      - name: agents
        max_parallel_calls: 1
        users: [alice]
        patterns: ["agent-*"]
`

func TestAdmissionRunnerMapsConfig(t *testing.T) {
	cfg, err := Parse("engine.yaml", []byte(engineConfig))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	r, err := cfg.AdmissionRunner(now)
	if err != nil {
		t.Fatal(err)
	}

	// Effective limits: tenant overrides win, the rest comes from the plan.
	eff, err := r.EffectiveLimits("t1")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		got  *int64
		want int64
	}{
		"max_parallel_calls (override)":  {eff.MaxParallelCalls, 3},
		"max_monthly_minutes (plan)":     {eff.MaxMonthlyMinutes, 1000},
		"monthly_spend_limit (plan)":     {eff.MonthlySpendLimit, 50 * MicrosPerUnit},
		"alert_threshold_pct (override)": {eff.AlertThresholdPct, 90},
	} {
		if c.got == nil || *c.got != c.want {
			t.Errorf("effective %s = %v, want %d", name, c.got, c.want)
		}
	}
	if eff.AutoSuspend == nil || !*eff.AutoSuspend {
		t.Errorf("effective auto_suspend = %v, want true (plan)", eff.AutoSuspend)
	}
	if v := eff.MaxParallelInbound; v != nil && *v != -1 {
		t.Errorf("effective max_parallel_inbound = %d, want unlimited", *v)
	}

	n := 0
	call := func(caller, callee string) admission.Decision {
		n++
		return r.Admit(now, admission.CallRequest{CallID: "c" + strconv.Itoa(n), Tenant: "t1",
			Direction: admission.Outbound, Caller: caller, Callee: callee}).Decision
	}
	wantReject := func(d admission.Decision, cause admission.Cause, code int, reason string) {
		t.Helper()
		if d.Admitted || d.Rejection.Cause != cause || d.Rejection.Code != code || d.Rejection.Reason != reason {
			t.Errorf("decision = %+v, want %v %d %s", d, cause, code, reason)
		}
	}

	// Destination classes: premium disabled by the plan, international by
	// the tenant, with the configured answer.
	wantReject(call("bob", "19001234"), admission.CauseDestination, 404, "Barred")
	wantReject(call("bob", "0049301234"), admission.CauseDestination, 404, "Barred")

	// The role caps each user individually (explicit user and pattern),
	// with the configured answer; users without a role only meet the
	// tenant's cap of 3.
	if d := call("alice", "5550001"); !d.Admitted {
		t.Fatalf("alice: %+v", d)
	}
	wantReject(call("alice", "5550002"), admission.CauseRoleParallel, 486, "User Busy")
	if d := call("agent-7", "5550003"); !d.Admitted {
		t.Fatalf("agent-7: %+v", d)
	}
	wantReject(call("agent-7", "5550004"), admission.CauseRoleParallel, 486, "User Busy")
	if d := call("bob", "5550005"); !d.Admitted {
		t.Fatalf("bob: %+v", d)
	}
	wantReject(call("carol", "5550006"), admission.CauseParallelCalls, 486, "Busy Here")
	// Emergency numbers (the default list) pass the full tenant.
	if d := call("carol", "112"); !d.Admitted || !d.Emergency {
		t.Errorf("emergency call: %+v", d)
	}

	// Rates: the calls above were never answered and cost nothing. A 61 s
	// call to +44 on 6/6 increments bills 66 s at 0.06/min plus the 0.1
	// connect fee; a 61 s call on the default row (60/60) bills 120 s at
	// 0.01/min.
	for i := 1; i <= n; i++ {
		r.End(now, "c"+strconv.Itoa(i))
	}
	for _, callee := range []string{"+44201234", "5550100"} {
		d := call("bob", callee)
		if !d.Admitted {
			t.Fatalf("call to %s: %+v", callee, d)
		}
		id := "c" + strconv.Itoa(n)
		r.Answer(now, id)
		now = now.Add(61 * time.Second)
		if _, ok := r.End(now, id); !ok {
			t.Fatalf("End(%s) = false", id)
		}
	}
	u := r.Usage(now.Add(time.Minute), "t1")
	wantSpend := MustMoney("0.166") + MustMoney("0.02")
	if u.Spend != int64(wantSpend) || u.Seconds != 122*time.Second {
		t.Errorf("usage = %+v, want spend %d (%s) and 122s", u, int64(wantSpend), wantSpend)
	}

	// tenant_defaults pre-fill tenants created later, and "reset to
	// defaults" goes back to them.
	if _, err := r.CreateTenant(now, "t9", "p1"); err != nil {
		t.Fatal(err)
	}
	if eff, err := r.EffectiveLimits("t9"); err != nil || deref(eff.MaxParallelCalls) != 2 || eff.AutoSuspend == nil || *eff.AutoSuspend {
		t.Errorf("created tenant: %+v, %v; want max_parallel_calls 2, auto_suspend false", eff, err)
	}
	if _, err := r.ResetTenant(now, "t1"); err != nil {
		t.Fatal(err)
	}
	if eff, err := r.EffectiveLimits("t1"); err != nil || deref(eff.MaxParallelCalls) != 2 || deref(eff.AlertThresholdPct) != 80 {
		t.Errorf("reset tenant: %+v, %v; want max_parallel_calls 2, alert 80", eff, err)
	}
}

// TestAdmissionRunnerResumeOnRollover: a tenant suspended by its minutes
// cap is resumed at the next month unless resume_on_rollover is false.
func TestAdmissionRunnerResumeOnRollover(t *testing.T) {
	for _, resume := range []bool{true, false} {
		yaml := strings.Replace(base, "      max_parallel_calls: 10\n",
			"      max_parallel_calls: 10\n      max_monthly_minutes: 1\n      auto_suspend: true\n", 1)
		if !resume {
			yaml = "admission: {resume_on_rollover: false}\n" + yaml
		}
		cfg, err := Parse("r.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 5, 31, 23, 0, 0, 0, time.UTC)
		r, err := cfg.AdmissionRunner(now)
		if err != nil {
			t.Fatal(err)
		}
		if d := r.Admit(now, admission.CallRequest{CallID: "x", Tenant: "t1", Direction: admission.Outbound, Caller: "a", Callee: "5550100"}); !d.Admitted {
			t.Fatalf("admit: %+v", d)
		}
		r.Answer(now, "x")
		r.Tick(now.Add(time.Minute))
		if s, _ := r.Suspended("t1"); !s {
			t.Fatalf("resume=%v: not suspended at the minutes cap", resume)
		}
		r.Tick(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
		if s, _ := r.Suspended("t1"); s == resume {
			t.Errorf("resume_on_rollover %v: suspended after rollover = %v", resume, s)
		}
	}
}

func TestAdmissionRunnerErrorsNamePath(t *testing.T) {
	cfg, err := Parse("e.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)

	bad := *cfg
	bad.Tenants = []Tenant{cfg.Tenants[0]}
	bad.Tenants[0].Plan = "gold" // bypasses Validate
	if _, err := bad.AdmissionRunner(now); err == nil || !strings.HasPrefix(err.Error(), `tenants[0] (tenant "t1"): `) {
		t.Errorf("unknown plan: err = %v", err)
	}

	bad = *cfg
	bad.Plans = []Plan{cfg.Plans[0]}
	bad.Plans[0].Limits.MaxMonthlyMinutes = ptr(-7)
	if _, err := bad.AdmissionRunner(now); err == nil || !strings.HasPrefix(err.Error(), `plans[0] (plan "p1"): `) {
		t.Errorf("invalid plan limit: err = %v", err)
	}

	bad = *cfg
	bad.Admission.Reject = map[string]Reject{"bogus": {Code: 486, Reason: "Busy Here"}}
	if _, err := bad.AdmissionRunner(now); err == nil || !strings.HasPrefix(err.Error(), "admission.reject.bogus: ") {
		t.Errorf("unknown cause: err = %v", err)
	}
}

// TestAdmissionCauseNames: every cause key the config accepts is an engine
// cause, with the same default answer.
func TestAdmissionCauseNames(t *testing.T) {
	defaults := admission.DefaultRejects()
	for name, want := range defaultRejects {
		c, err := admission.ParseCause(name)
		if err != nil {
			t.Errorf("config cause %q: %v", name, err)
			continue
		}
		if got := defaults[c]; got.Code != want.Code {
			t.Errorf("default for %q: engine %+v, config %+v", name, got, want)
		}
	}
}

// TestAdmissionExamples: every YAML file shipped in configs/ builds an
// engine.
func TestAdmissionExamples(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	more, _ := filepath.Glob("*.yml")
	for _, f := range append(files, more...) {
		cfg, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.AdmissionRunner(time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// deref returns *p, or math.MinInt64 for nil (never a valid limit).
func deref(p *int64) int64 {
	if p == nil {
		return math.MinInt64
	}
	return *p
}

// TestAdmissionRunnerAcceptsBounds: every value Validate accepts at the
// edges of its range is accepted by the engine too, so a valid config
// always builds an engine.
func TestAdmissionRunnerAcceptsBounds(t *testing.T) {
	if MicrosPerUnit != admission.MicroUnits || DefaultAlertThresholdPct != admission.DefaultAlertThresholdPct {
		t.Fatalf("constants differ from the engine's: %d/%d micro-units, threshold %d/%d",
			MicrosPerUnit, admission.MicroUnits, DefaultAlertThresholdPct, admission.DefaultAlertThresholdPct)
	}
	for _, edge := range []string{"low", "high"} {
		lo := edge == "low"
		pick := func(low, high int64) *int64 {
			if lo {
				return ptr(low)
			}
			return ptr(high)
		}
		money := MaxMoney
		inc := Increments{MaxIncrement, MaxIncrement}
		if lo {
			money, inc = 0, Increments{1, 1}
		}
		l := Limits{
			MaxParallelCalls: pick(-1, MaxParallel), MaxParallelInbound: pick(0, MaxParallel), MaxParallelOutbound: pick(-1, MaxParallel),
			MaxCallsPerSecond: pick(0, MaxCPS), CPSBurst: pick(1, MaxCPS), MaxMonthlyMinutes: pick(0, MaxMonthlyMinutes),
			MonthlySpendLimit: ptrTo(money), AlertThresholdPct: pick(1, 100), AutoSuspend: ptrTo(lo),
			Destinations: map[string]bool{"premium": lo},
		}
		if lo {
			l.MonthlySpendLimit = ptrTo(MoneyUnlimited)
		}
		var c Config
		c.SIP.Listen = []Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}
		c.Carriers = []Carrier{{Name: "c", Hop: Hop{Address: "192.0.2.1:5060"}}}
		c.DestinationClasses = map[string][]string{"premium": {"1900"}}
		c.TenantDefaults = l
		c.Plans = []Plan{{Name: "p", Limits: l, Rates: []Rate{{Prefix: "+", PerMinute: ptrTo(money), ConnectFee: money, Increments: inc}}}}
		c.Tenants = []Tenant{{Name: "t", Plan: "p", Carrier: "c", Sources: []string{"10.0.0.0/8"}, Limits: l,
			Roles: []Role{{Name: "r", MaxParallelCalls: pick(0, MaxParallel), MaxMonthlyMinutes: pick(-1, MaxMonthlyMinutes), Users: []string{"u"}, Patterns: []string{"[0-9]*"}}}}}
		c.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: Validate: %v", edge, err)
		}
		if _, err := c.AdmissionRunner(time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)); err != nil {
			t.Errorf("%s: engine refuses a valid config: %v", edge, err)
		}
	}
}
