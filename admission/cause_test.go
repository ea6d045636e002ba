package admission_test

import (
	"errors"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

func TestCauseNames(t *testing.T) {
	tests := []struct {
		cause admission.Cause
		name  string
	}{
		{admission.CauseParallelCalls, "parallel_calls"},
		{admission.CauseUnknownTenant, "unknown_tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cause.String(); got != tt.name {
				t.Fatalf("String() = %q, want %q", got, tt.name)
			}
			got, err := admission.ParseCause(tt.name)
			if err != nil || got != tt.cause {
				t.Fatalf("ParseCause(%q) = %v, %v; want %v", tt.name, got, err, tt.cause)
			}
		})
	}
	for _, bad := range []string{"", "none", "Parallel_Calls", "bogus"} {
		if _, err := admission.ParseCause(bad); !errors.Is(err, admission.ErrUnknownCause) {
			t.Errorf("ParseCause(%q) err = %v, want ErrUnknownCause", bad, err)
		}
	}
	if got := admission.Cause(200).String(); got != "cause(200)" {
		t.Errorf("unknown cause String() = %q", got)
	}
}

func TestDirectionString(t *testing.T) {
	tests := []struct {
		d    admission.Direction
		want string
	}{
		{admission.Outbound, "outbound"},
		{admission.Inbound, "inbound"},
		{0, "direction(0)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("%d.String() = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRejectionText(t *testing.T) {
	tests := []struct {
		name      string
		r         admission.Rejection
		wantError string
		wantText  string
	}{
		{
			name:      "cap reached",
			r:         admission.Rejection{Cause: admission.CauseParallelCalls, Code: 486, Reason: "Busy Here", Limit: 50, Usage: 50},
			wantError: "admission: parallel_calls limit 50 reached (usage 50)",
			wantText:  "max_parallel_calls 50 reached",
		},
		{
			name:      "blocked",
			r:         admission.Rejection{Cause: admission.CauseParallelCalls, Code: 486, Reason: "Busy Here", Limit: 0, Usage: 0},
			wantError: "admission: parallel_calls limit 0 reached (usage 0)",
			wantText:  "max_parallel_calls 0: calls blocked",
		},
		{
			name:      "unknown tenant",
			r:         admission.Rejection{Cause: admission.CauseUnknownTenant, Code: 403, Reason: "Forbidden"},
			wantError: "admission: unknown tenant",
			wantText:  "unknown tenant",
		},
		{
			name:      "none",
			r:         admission.Rejection{},
			wantError: "admission: no rejection",
			wantText:  "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error = tt.r // Rejection implements error
			if got := err.Error(); got != tt.wantError {
				t.Errorf("Error() = %q, want %q", got, tt.wantError)
			}
			if got := tt.r.Text(); got != tt.wantText {
				t.Errorf("Text() = %q, want %q", got, tt.wantText)
			}
		})
	}
}

func TestDefaultRejects(t *testing.T) {
	d := admission.DefaultRejects()
	want := map[admission.Cause]admission.Reject{
		admission.CauseParallelCalls: {Code: 486, Reason: "Busy Here"},
		admission.CauseUnknownTenant: {Code: 403, Reason: "Forbidden"},
	}
	if len(d) != len(want) {
		t.Fatalf("DefaultRejects() = %v", d)
	}
	for c, r := range want {
		if d[c] != r {
			t.Errorf("DefaultRejects()[%v] = %v, want %v", c, d[c], r)
		}
	}
	d[admission.CauseParallelCalls] = admission.Reject{Code: 503}
	if admission.DefaultRejects()[admission.CauseParallelCalls].Code != 486 {
		t.Error("DefaultRejects returns shared state")
	}
}
