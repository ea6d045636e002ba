package admission_test

import (
	"strconv"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

func req(callID, tenant string) admission.CallRequest {
	return admission.CallRequest{CallID: callID, Tenant: tenant, Direction: admission.Outbound, Caller: "100", Callee: "4930123"}
}

func TestAdmitCap(t *testing.T) {
	busy := admission.Reject{Code: 486, Reason: "Busy Here"}
	custom := admission.Reject{Code: 503, Reason: "Service Unavailable"}
	tests := []struct {
		name     string
		rejects  map[admission.Cause]admission.Reject
		plan     *int64
		override *int64
		calls    int   // calls attempted
		admitted int   // of which the first `admitted` pass
		wantLim  int64 // Limit in the rejections
		want     admission.Reject
	}{
		{name: "unset in plan and tenant is unlimited", plan: nil, calls: 1000, admitted: 1000},
		{name: "plan -1 unlimited", plan: lim(-1), calls: 1000, admitted: 1000},
		{name: "override -1 beats plan cap", plan: lim(2), override: lim(-1), calls: 100, admitted: 100},
		{name: "plan 0 blocks", plan: lim(0), calls: 5, admitted: 0, wantLim: 0, want: busy},
		{name: "override 0 blocks", plan: lim(-1), override: lim(0), calls: 5, admitted: 0, wantLim: 0, want: busy},
		{name: "plan cap 1", plan: lim(1), calls: 3, admitted: 1, wantLim: 1, want: busy},
		{name: "plan cap 50", plan: lim(50), calls: 60, admitted: 50, wantLim: 50, want: busy},
		{name: "override cap 3 under plan 50", plan: lim(50), override: lim(3), calls: 10, admitted: 3, wantLim: 3, want: busy},
		{name: "nil override inherits cap", plan: lim(4), override: nil, calls: 6, admitted: 4, wantLim: 4, want: busy},
		{
			name:    "custom reject honoured",
			rejects: map[admission.Cause]admission.Reject{admission.CauseParallelCalls: custom},
			plan:    lim(2), calls: 4, admitted: 2, wantLim: 2, want: custom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.rejects, tt.plan, tt.override)
			for i := range tt.calls {
				d := e.Admit(t0, req("c"+strconv.Itoa(i), "t"))
				if i < tt.admitted {
					if !d.Admitted || d.Rejection != (admission.Rejection{}) {
						t.Fatalf("call %d: %+v, want admitted with zero rejection", i+1, d)
					}
					continue
				}
				want := admission.Rejection{
					Cause: admission.CauseParallelCalls, Code: tt.want.Code, Reason: tt.want.Reason,
					Limit: tt.wantLim, Usage: int64(tt.admitted),
				}
				if d.Admitted || d.Rejection != want {
					t.Fatalf("call %d: %+v, want rejection %+v", i+1, d, want)
				}
			}
			if got := e.Active("t"); got != int64(tt.admitted) {
				t.Fatalf("Active = %d, want %d", got, tt.admitted)
			}
			if got := e.ActiveCalls(); got != tt.admitted {
				t.Fatalf("ActiveCalls = %d, want %d", got, tt.admitted)
			}
		})
	}
}

func TestUnknownTenant(t *testing.T) {
	tests := []struct {
		name    string
		rejects map[admission.Cause]admission.Reject
		want    admission.Reject
	}{
		{name: "default", want: admission.Reject{Code: 403, Reason: "Forbidden"}},
		{
			name:    "custom",
			rejects: map[admission.Cause]admission.Reject{admission.CauseUnknownTenant: {Code: 404, Reason: "Not Found"}},
			want:    admission.Reject{Code: 404, Reason: "Not Found"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.rejects, nil, nil)
			d := e.Admit(t0, req("c1", "stranger"))
			want := admission.Rejection{Cause: admission.CauseUnknownTenant, Code: tt.want.Code, Reason: tt.want.Reason}
			if d.Admitted || d.Rejection != want {
				t.Fatalf("got %+v, want %+v", d, want)
			}
			if e.ActiveCalls() != 0 || e.Active("stranger") != 0 {
				t.Fatal("rejected call was counted")
			}
			// Overriding one cause leaves the others at their defaults.
			if tt.rejects != nil {
				e2 := newEngine(t, tt.rejects, lim(0), nil)
				if r := e2.Admit(t0, req("x", "t")).Rejection; r.Code != 486 || r.Reason != "Busy Here" {
					t.Fatalf("parallel_calls default lost: %+v", r)
				}
			}
		})
	}
}

func TestReleaseFreesSlot(t *testing.T) {
	e := newEngine(t, nil, lim(2), nil)
	steps := []struct {
		op     string // "admit" or "release"
		callID string
		want   bool // Admitted / Release result
		active int64
	}{
		{"admit", "a", true, 1},
		{"admit", "b", true, 2},
		{"admit", "c", false, 2},
		{"release", "a", true, 1},
		{"admit", "c", true, 2},
		{"admit", "c", true, 2}, // idempotent: same call again, not counted twice
		{"admit", "b", true, 2}, // idempotent even at the cap
		{"admit", "d", false, 2},
		{"release", "b", true, 1},
		{"release", "b", false, 1}, // second release
		{"release", "zzz", false, 1},
		{"release", "", false, 1},
		{"release", "c", true, 0},
		{"release", "c", false, 0},
		{"release", "a", false, 0},
		{"admit", "a", true, 1}, // a released CallID may be admitted again as a new call
	}
	for i, s := range steps {
		var got bool
		switch s.op {
		case "admit":
			got = e.Admit(t0, req(s.callID, "t")).Admitted
		case "release":
			got = e.Release(t0, s.callID)
		}
		if got != s.want {
			t.Fatalf("step %d %s(%q) = %v, want %v", i, s.op, s.callID, got, s.want)
		}
		if a := e.Active("t"); a != s.active {
			t.Fatalf("step %d %s(%q): Active = %d, want %d", i, s.op, s.callID, a, s.active)
		}
		if n := e.ActiveCalls(); int64(n) != s.active {
			t.Fatalf("step %d: ActiveCalls = %d, want %d", i, n, s.active)
		}
	}
}

func TestLoweringCapKeepsRunningCalls(t *testing.T) {
	e := newEngine(t, nil, lim(10), nil)
	for i := range 5 {
		if !e.Admit(t0, req("c"+strconv.Itoa(i), "t")).Admitted {
			t.Fatalf("call %d rejected", i)
		}
	}
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "p", Overrides: admission.Limits{MaxParallelCalls: lim(2)}}); err != nil {
		t.Fatal(err)
	}
	if got := e.Active("t"); got != 5 {
		t.Fatalf("lowering the cap changed Active to %d", got)
	}
	d := e.Admit(t0, req("new", "t"))
	want := admission.Rejection{Cause: admission.CauseParallelCalls, Code: 486, Reason: "Busy Here", Limit: 2, Usage: 5}
	if d.Admitted || d.Rejection != want {
		t.Fatalf("got %+v, want %+v", d, want)
	}
	// Releasing down to the cap still rejects; below it admits.
	for i := range 3 {
		e.Release(t0, "c"+strconv.Itoa(i))
	}
	if e.Admit(t0, req("new", "t")).Admitted {
		t.Fatal("admitted at the cap")
	}
	e.Release(t0, "c3")
	if !e.Admit(t0, req("new", "t")).Admitted {
		t.Fatal("rejected below the cap")
	}
}

func TestTenantsAreIndependent(t *testing.T) {
	e := newEngine(t, nil, lim(1), nil)
	if err := e.UpsertTenant(admission.Tenant{Name: "u", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	if !e.Admit(t0, req("t1", "t")).Admitted || !e.Admit(t0, req("u1", "u")).Admitted {
		t.Fatal("first call of each tenant rejected")
	}
	if e.Admit(t0, req("t2", "t")).Admitted || e.Admit(t0, req("u2", "u")).Admitted {
		t.Fatal("second call admitted over cap 1")
	}
	if e.Active("t") != 1 || e.Active("u") != 1 || e.ActiveCalls() != 2 || e.Active("nobody") != 0 {
		t.Fatalf("counters: t=%d u=%d all=%d", e.Active("t"), e.Active("u"), e.ActiveCalls())
	}
	// Re-upserting a tenant keeps its active calls.
	if err := e.UpsertTenant(admission.Tenant{Name: "t", Plan: "p"}); err != nil {
		t.Fatal(err)
	}
	if e.Active("t") != 1 {
		t.Fatalf("upsert reset counters: %d", e.Active("t"))
	}
	if !e.Release(t0, "t1") || e.Active("t") != 0 || e.Active("u") != 1 {
		t.Fatal("release touched the wrong tenant")
	}
}

func TestAdmitDoesNotAllocate(t *testing.T) {
	e := newEngine(t, nil, lim(1), nil)
	r := req("c1", "t")
	rejected := req("c2", "t")
	unknown := req("c3", "nobody")
	// Warm up the call map so steady state is measured.
	e.Admit(t0, r)
	e.Release(t0, r.CallID)
	allocs := testing.AllocsPerRun(1000, func() {
		e.Admit(t0, r)
		e.Admit(t0, r)
		e.Admit(t0, rejected)
		e.Admit(t0, unknown)
		e.Release(t0, r.CallID)
		e.Release(t0, r.CallID)
	})
	if allocs != 0 {
		t.Fatalf("admit/release path allocates %.1f times per run", allocs)
	}
}
