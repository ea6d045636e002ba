package admission_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

func TestCauseNames(t *testing.T) {
	names := map[admission.Cause]string{
		admission.CauseParallelCalls:    "parallel_calls",
		admission.CauseParallelInbound:  "parallel_inbound",
		admission.CauseParallelOutbound: "parallel_outbound",
		admission.CauseCPS:              "cps",
		admission.CauseMinutes:          "minutes",
		admission.CauseSpend:            "spend",
		admission.CauseDestination:      "destination_class",
		admission.CauseRoleParallel:     "role_parallel_calls",
		admission.CauseRoleMinutes:      "role_minutes",
		admission.CauseSuspended:        "suspended",
		admission.CauseSuspendedInbound: "suspended_inbound",
		admission.CauseUnknownTenant:    "unknown_tenant",
		admission.CauseLease:            "cluster_lease",
	}
	for c, name := range names {
		if got := c.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", c, got, name)
		}
		got, err := admission.ParseCause(name)
		if err != nil || got != c {
			t.Errorf("ParseCause(%q) = %v, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "none", "Parallel_Calls", "bogus"} {
		if _, err := admission.ParseCause(bad); !errors.Is(err, admission.ErrUnknownCause) {
			t.Errorf("ParseCause(%q) err = %v, want ErrUnknownCause", bad, err)
		}
	}
	if got := admission.Cause(200).String(); got != "cause(200)" {
		t.Errorf("unknown cause String() = %q", got)
	}
	if got := admission.CauseNone.String(); got != "none" {
		t.Errorf("CauseNone.String() = %q", got)
	}
}

func TestDirectionString(t *testing.T) {
	for d, want := range map[admission.Direction]string{admission.Outbound: "outbound", admission.Inbound: "inbound", 0: "direction(0)"} {
		if got := d.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", d, got, want)
		}
	}
}

func TestDefaultRejects(t *testing.T) {
	d := admission.DefaultRejects()
	want := map[admission.Cause]int{
		admission.CauseParallelCalls: 486, admission.CauseParallelInbound: 486, admission.CauseParallelOutbound: 486,
		admission.CauseCPS: 503, admission.CauseMinutes: 403, admission.CauseSpend: 403, admission.CauseDestination: 403,
		admission.CauseRoleParallel: 486, admission.CauseRoleMinutes: 403, admission.CauseSuspended: 403,
		admission.CauseSuspendedInbound: 480, admission.CauseUnknownTenant: 403, admission.CauseLease: 503,
	}
	if len(d) != len(want) {
		t.Fatalf("DefaultRejects() has %d causes, want %d", len(d), len(want))
	}
	for c, code := range want {
		if d[c].Code != code || d[c].Reason == "" {
			t.Errorf("DefaultRejects()[%v] = %+v, want code %d with a reason", c, d[c], code)
		}
	}
	d[admission.CauseParallelCalls] = admission.Reject{Code: 503}
	if admission.DefaultRejects()[admission.CauseParallelCalls].Code != 486 {
		t.Error("DefaultRejects returns shared state")
	}
}

func TestRejectionText(t *testing.T) {
	tests := []struct {
		r    admission.Rejection
		text string
	}{
		{admission.Rejection{Cause: admission.CauseParallelCalls, Limit: 50}, "max_parallel_calls 50 reached"},
		{admission.Rejection{Cause: admission.CauseParallelCalls, Limit: 0}, "max_parallel_calls 0: calls blocked"},
		{admission.Rejection{Cause: admission.CauseParallelInbound, Limit: 5}, "max_parallel_inbound 5 reached"},
		{admission.Rejection{Cause: admission.CauseParallelOutbound, Limit: 5}, "max_parallel_outbound 5 reached"},
		{admission.Rejection{Cause: admission.CauseCPS, Limit: 10, RetryAfter: time.Second}, "max_calls_per_second 10 exceeded"},
		{admission.Rejection{Cause: admission.CauseMinutes, Limit: 100}, "max_monthly_minutes 100 exhausted"},
		{admission.Rejection{Cause: admission.CauseSpend, Limit: 5_000_000}, "monthly_spend_limit 5000000 exhausted"},
		{admission.Rejection{Cause: admission.CauseDestination, Class: "premium"}, "destination class premium disabled"},
		{admission.Rejection{Cause: admission.CauseRoleParallel, Limit: 1}, "role max_parallel_calls 1 reached"},
		{admission.Rejection{Cause: admission.CauseRoleMinutes, Limit: 0}, "role max_monthly_minutes 0: calls blocked"},
		{admission.Rejection{Cause: admission.CauseSuspended}, "tenant suspended"},
		{admission.Rejection{Cause: admission.CauseSuspendedInbound}, "tenant suspended"},
		{admission.Rejection{Cause: admission.CauseUnknownTenant}, "unknown tenant"},
		{admission.Rejection{}, ""},
	}
	for _, tt := range tests {
		if got := tt.r.Text(); got != tt.text {
			t.Errorf("%v: Text() = %q, want %q", tt.r.Cause, got, tt.text)
		}
		var err error = tt.r
		want := "admission: rejected (" + tt.r.Cause.String() + "): " + tt.text
		if tt.r.Cause == admission.CauseNone {
			want = "admission: no rejection"
		}
		if err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	}
}

func TestSettingsRejectsOverrideOneCause(t *testing.T) {
	e := admission.NewEngine(admission.Settings{Rejects: map[admission.Cause]admission.Reject{
		admission.CauseUnknownTenant: {Code: 404, Reason: "Not Found"},
		admission.Cause(99):          {Code: 1}, // ignored
	}})
	d := e.Admit(t0, admission.CallRequest{CallID: "x", Tenant: "nobody"})
	if d.Rejection.Code != 404 || d.Rejection.Reason != "Not Found" {
		t.Fatalf("custom reject lost: %+v", d.Rejection)
	}
	mustPlan(t, e, admission.Plan{Name: "p", Limits: admission.Limits{MaxParallelCalls: lim(0)}})
	mustTenant(t, e, admission.Tenant{Name: "t", Plan: "p"})
	if r := e.Admit(t0, out("y", "t", "100", "4930")).Rejection; r.Code != 486 || r.Reason != "Busy Here" {
		t.Fatalf("default for another cause lost: %+v", r)
	}
}
