package admission_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

func TestEffectiveLimits(t *testing.T) {
	tests := []struct {
		name     string
		plan     *int64
		override *int64
		reset    bool
		want     *int64
	}{
		{name: "plan value", plan: lim(10), want: lim(10)},
		{name: "override wins", plan: lim(10), override: lim(3), want: lim(3)},
		{name: "override unlimited wins over plan cap", plan: lim(10), override: lim(-1), want: lim(-1)},
		{name: "override blocked wins over plan cap", plan: lim(10), override: lim(0), want: lim(0)},
		{name: "nil override inherits", plan: lim(7), override: nil, want: lim(7)},
		{name: "unset in both stays nil", want: nil},
		{name: "override over unset plan", override: lim(4), want: lim(4)},
		{name: "reset clears override", plan: lim(10), override: lim(3), reset: true, want: lim(10)},
		{name: "reset with unset plan", override: lim(3), reset: true, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, nil, tt.plan, tt.override)
			if tt.reset {
				if err := e.ResetTenant("t"); err != nil {
					t.Fatalf("ResetTenant: %v", err)
				}
			}
			got, err := e.EffectiveLimits("t")
			if err != nil {
				t.Fatalf("EffectiveLimits: %v", err)
			}
			if (got.MaxParallelCalls == nil) != (tt.want == nil) ||
				(got.MaxParallelCalls != nil && *got.MaxParallelCalls != *tt.want) {
				t.Fatalf("MaxParallelCalls = %v, want %v", limStr(got.MaxParallelCalls), limStr(tt.want))
			}
		})
	}
}

func TestEffectiveLimitsFollowPlanChanges(t *testing.T) {
	e := newEngine(t, nil, lim(10), nil)
	if err := e.UpsertPlan(admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(20)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.UpsertPlan(admission.Plan{Name: "q", Limits: admission.Limits{MaxParallelCalls: lim(30)}}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.EffectiveLimits("t")
	if *got.MaxParallelCalls != 20 {
		t.Fatalf("after plan update: %d, want 20", *got.MaxParallelCalls)
	}
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "q"}); err != nil {
		t.Fatal(err)
	}
	got, _ = e.EffectiveLimits("t")
	if *got.MaxParallelCalls != 30 {
		t.Fatalf("after plan switch: %d, want 30", *got.MaxParallelCalls)
	}
}

func TestLimitsAreCopied(t *testing.T) {
	planCap, override := lim(10), lim(5)
	e := newEngine(t, nil, planCap, override)
	*planCap, *override = 1, 1 // caller mutates its own values afterwards
	got, _ := e.EffectiveLimits("t")
	if *got.MaxParallelCalls != 5 {
		t.Fatalf("engine aliased caller's override: %d", *got.MaxParallelCalls)
	}
	*got.MaxParallelCalls = 99 // and mutates the returned value
	again, _ := e.EffectiveLimits("t")
	if *again.MaxParallelCalls != 5 {
		t.Fatalf("EffectiveLimits returned engine state: %d", *again.MaxParallelCalls)
	}
	if err := e.ResetTenant("t"); err != nil {
		t.Fatal(err)
	}
	got, _ = e.EffectiveLimits("t")
	if *got.MaxParallelCalls != 10 {
		t.Fatalf("engine aliased caller's plan limit: %d", *got.MaxParallelCalls)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		op      func(e *admission.Engine) error
		wantErr error
		wantMsg string // substring of the message, if set
	}{
		{
			name:    "tenant on unknown plan",
			op:      func(e *admission.Engine) error { return e.UpsertTenant(admission.Tenant{Name: "u", Plan: "nope"}) },
			wantErr: admission.ErrUnknownPlan,
			wantMsg: `"nope"`,
		},
		{
			name:    "tenant without plan",
			op:      func(e *admission.Engine) error { return e.UpsertTenant(admission.Tenant{Name: "u"}) },
			wantErr: admission.ErrUnknownPlan,
		},
		{
			name:    "reset unknown tenant",
			op:      func(e *admission.Engine) error { return e.ResetTenant("nobody") },
			wantErr: admission.ErrUnknownTenant,
		},
		{
			name: "effective limits of unknown tenant",
			op: func(e *admission.Engine) error {
				_, err := e.EffectiveLimits("nobody")
				return err
			},
			wantErr: admission.ErrUnknownTenant,
		},
		{
			name: "plan limit -2",
			op: func(e *admission.Engine) error {
				return e.UpsertPlan(admission.Plan{Name: "bad", Limits: admission.Limits{MaxParallelCalls: lim(-2)}})
			},
			wantErr: admission.ErrInvalidLimit,
			wantMsg: "max_parallel_calls",
		},
		{
			name: "tenant override -2",
			op: func(e *admission.Engine) error {
				return e.UpsertTenant(admission.Tenant{Name: "u", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: lim(-2)}})
			},
			wantErr: admission.ErrInvalidLimit,
			wantMsg: "max_parallel_calls",
		},
		{
			name:    "empty plan name",
			op:      func(e *admission.Engine) error { return e.UpsertPlan(admission.Plan{}) },
			wantErr: admission.ErrEmptyName,
		},
		{
			name:    "empty tenant name",
			op:      func(e *admission.Engine) error { return e.UpsertTenant(admission.Tenant{Plan: "p"}) },
			wantErr: admission.ErrEmptyName,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, nil, lim(10), nil)
			err := tt.op(e)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "admission: ") {
				t.Errorf("message %q lacks package prefix", err)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestInvalidUpdateKeepsState(t *testing.T) {
	e := newEngine(t, nil, lim(10), lim(5))
	if err := e.UpsertPlan(admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(-5)}}); err == nil {
		t.Fatal("want error")
	}
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: lim(-2)}}); err == nil {
		t.Fatal("want error")
	}
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "missing"}); err == nil {
		t.Fatal("want error")
	}
	if err := e.ResetTenant("t"); err != nil {
		t.Fatal(err)
	}
	got, _ := e.EffectiveLimits("t")
	if *got.MaxParallelCalls != 10 {
		t.Fatalf("plan limit changed by a rejected update: %d", *got.MaxParallelCalls)
	}
}
