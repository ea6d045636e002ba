package main

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/internal/pike"
	"github.com/tollgate/tollgate/store"
)

const realToken = "real-admin-token-0123456789"

// realNow is the service's clock: mid-month, so the test's calls never
// straddle a cycle.
var realNow = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// realAPI serves the admin API of the real control service (engine,
// committer, in-memory store) seeded from a config file.
func realAPI(t *testing.T) (*httptest.Server, *control.Service) {
	t.Helper()
	cfg, err := configs.Parse("real.yaml", []byte(`
sip: {listen: [{transport: udp, address: 127.0.0.1:5060}]}
carriers: [{name: carrier, address: 127.0.0.2:5060}]
destination_classes: {international: ["00", "+"], premium: ["1900", "+1900"]}
plans:
  - name: standard
    limits: {max_parallel_calls: 10, max_monthly_minutes: 1000}
    rates: [{prefix: "", per_minute: 0.01}]
tenant_defaults: {max_parallel_calls: 5}
tenants:
  - name: demo
    plan: standard
    carrier: carrier
    sources: [127.0.0.10/32]
api:
  tokens: [{name: root, scope: admin, token_env: ROOT_TOKEN}]
`))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := control.Open(cfg, store.NewMem(), control.Options{
		Logger: zerolog.Nop(), Env: func(string) string { return realToken },
		Now: func() time.Time { return realNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(api.NewServer(svc, nil, api.ServerOptions{}))
	t.Cleanup(srv.Close)
	return srv, svc
}

// The CLI against the real service: a limit set with the CLI decides the
// next admission, usage reflects a settled call, and the audit log names
// the token that made the change.
func TestCLIAgainstRealService(t *testing.T) {
	srv, svc := realAPI(t)
	run := func(args ...string) result {
		t.Helper()
		r := cliRun(t, srv.URL, realToken, args...)
		if r.code != 0 {
			t.Fatalf("tollgate %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r
	}
	if r := run("tenants"); !strings.Contains(r.stdout, "demo") || !strings.Contains(r.stdout, "standard") {
		t.Fatalf("tenants:\n%s", r.stdout)
	}
	run("limits", "set", "demo", "max_parallel_calls=1")

	now := realNow
	rn := svc.Runner()
	call := func(id string) admission.Decision {
		return rn.Admit(now, admission.CallRequest{CallID: id, Tenant: "demo", Direction: admission.Outbound, Caller: "100", Callee: "4930"}).Decision
	}
	if d := call("c1"); !d.Admitted {
		t.Fatalf("first call rejected: %v", d.Rejection)
	}
	if d := call("c2"); d.Admitted || d.Rejection.Cause != admission.CauseParallelCalls {
		t.Fatalf("second call with max_parallel_calls=1: %+v", d)
	}
	rn.AnswerWith(now, "c1", nil)
	rn.End(now.Add(90*time.Second), "c1")

	var u api.UsageView
	if err := json.Unmarshal([]byte(run("usage", "demo", "-o", "json").stdout), &u); err != nil {
		t.Fatal(err)
	}
	var days int64
	for _, d := range u.Days {
		days += d.Calls
	}
	minutes := ""
	for _, c := range u.Caps {
		if c.Cap == "max_monthly_minutes" {
			minutes = c.Used.String()
		}
	}
	if days != 1 || minutes != "1.5" {
		t.Fatalf("usage: %d calls in days, %q minutes used; want 1 and 1.5\n%+v", days, minutes, u)
	}
	if r := run("audit", "--tenant", "demo"); !strings.Contains(r.stdout, "root") || !strings.Contains(r.stdout, "limits.update") {
		t.Fatalf("audit:\n%s", r.stdout)
	}
	if r := cliRun(t, srv.URL, realToken, "limits", "set", "demo", "max_parallel_calls=-7"); r.code != 5 || !strings.Contains(r.stderr, "max_parallel_calls") {
		t.Fatalf("bad limit: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cliRun(t, srv.URL, "wrong-token", "tenants"); r.code != 4 {
		t.Fatalf("bad token: exit %d", r.code)
	}
}

// The blocked and unblock commands against the real service with a real
// flood limiter: a stranger over its bucket is listed, unblocking lifts
// the block in the limiter, and the audit log names the token.
func TestCLIBlockedAgainstRealService(t *testing.T) {
	srv, svc := realAPI(t)
	lim := pike.New(svc.Config().SIP.Flood.PikeConfig())
	svc.SetFlood(lim)
	stranger := netip.MustParseAddr("203.0.113.7")
	for range svc.Config().SIP.Flood.UnknownBurst + 4 {
		lim.Allow(stranger, false, realNow)
	}
	run := func(args ...string) result {
		t.Helper()
		r := cliRun(t, srv.URL, realToken, args...)
		if r.code != 0 {
			t.Fatalf("tollgate %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r
	}
	want := "IP           SOURCE   REASON        LIMIT         SINCE                 UNTIL                 DROPPED\n" +
		"203.0.113.7  unknown  unknown_rate  5/s burst 10  2026-11-15T12:00:00Z  2026-11-15T12:01:00Z  3\n"
	if r := run("blocked"); r.stdout != want {
		t.Fatalf("blocked:\n%s\nwant\n%s", r.stdout, want)
	}
	if r := run("unblock", "203.0.113.7"); r.stdout != "unblocked 203.0.113.7\n" {
		t.Fatalf("unblock: %q", r.stdout)
	}
	if lim.IsBlocked(stranger, realNow) {
		t.Fatal("the limiter still blocks the source")
	}
	if r := run("blocked", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("blocked after unblock: %q", r.stdout)
	}
	if r := cliRun(t, srv.URL, realToken, "unblock", "203.0.113.7"); r.code != exitNotFound {
		t.Fatalf("second unblock: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := run("audit"); !strings.Contains(r.stdout, "root") || !strings.Contains(r.stdout, "source.unblock") || !strings.Contains(r.stdout, "blocked/203.0.113.7") {
		t.Fatalf("audit:\n%s", r.stdout)
	}
}

// Messages of the real service read as the operator needs them: no
// package prefix, nothing repeated.
func TestCLIMessagesAgainstRealService(t *testing.T) {
	srv, _ := realAPI(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tenants", "get", "nope"}, exitNotFound, "tollgate: tenant \"nope\" not found\n"},
		{[]string{"limits", "nope"}, exitNotFound, "tollgate: tenant \"nope\" not found\n"},
		{[]string{"plans", "get", "nope"}, exitNotFound, "tollgate: plan \"nope\" not found\n"},
		{[]string{"tokens", "delete", "nope"}, exitNotFound, "tollgate: token \"nope\" not found\n"},
		{[]string{"tokens", "create", "root", "--scope", "read"}, exitInvalid, "tollgate: conflict: token \"root\" already exists\n"},
	} {
		r := cliRun(t, srv.URL, realToken, tc.args...)
		if r.code != tc.code || r.stderr != tc.want {
			t.Errorf("tollgate %s: exit %d, stderr %q; want %d, %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// apply -f takes the config file itself, as the start's hint says: its
// plans and tenants are applied, the other sections named as not applied.
func TestCLIApplyConfigFile(t *testing.T) {
	srv, _ := realAPI(t)
	r := cliRun(t, srv.URL, realToken, "apply", "-f", "../../configs/tollgate.yaml", "--dry-run")
	if r.code != exitOK {
		t.Fatalf("apply -f configs/tollgate.yaml: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "update plan standard") || !strings.Contains(r.stdout, "update tenant demo") ||
		!strings.Contains(r.stdout, "(dry run)") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "not applied") || !strings.Contains(r.stderr, "carriers") || !strings.Contains(r.stderr, "sip") {
		t.Errorf("stderr %q does not name the sections not applied", r.stderr)
	}
}

// limits reset is "Reset to Defaults": the overrides become
// tenant_defaults, as its help says.
func TestCLILimitsResetAgainstRealService(t *testing.T) {
	srv, _ := realAPI(t)
	if r := cliRun(t, srv.URL, realToken, "limits", "set", "demo", "max_parallel_calls=7", "max_monthly_minutes=20"); r.code != exitOK {
		t.Fatalf("limits set: exit %d, %s", r.code, r.stderr)
	}
	r := cliRun(t, srv.URL, realToken, "limits", "reset", "demo", "-o", "json")
	if r.code != exitOK {
		t.Fatalf("limits reset: exit %d, %s", r.code, r.stderr)
	}
	var lv api.LimitsView
	if err := json.Unmarshal([]byte(r.stdout), &lv); err != nil {
		t.Fatal(err)
	}
	if v := lv.Overrides.MaxParallelCalls; v == nil || *v != 5 {
		t.Errorf("max_parallel_calls override after reset = %v, want 5 (tenant_defaults)", v)
	}
	if v := lv.Overrides.MaxMonthlyMinutes; v != nil {
		t.Errorf("max_monthly_minutes override after reset = %d, want none (inherit)", *v)
	}
	h := cliRun(t, srv.URL, realToken, "limits", "-h")
	if !strings.Contains(h.stdout, "tenant_defaults") {
		t.Errorf("limits -h does not say reset applies tenant_defaults:\n%s", h.stdout)
	}
}

// The usage table shows a call's minutes the same in the caps (the API's
// figure) and the per-day rows (the CLI's): 40 s is 0.666 in both (the
// per-day rows rounded it to 0.667).
func TestCLIUsageMinutesAgree(t *testing.T) {
	srv, svc := realAPI(t)
	rn := svc.Runner()
	if d := rn.Admit(realNow, admission.CallRequest{CallID: "m1", Tenant: "demo", Direction: admission.Outbound, Caller: "100", Callee: "4930"}).Decision; !d.Admitted {
		t.Fatalf("call rejected: %v", d.Rejection)
	}
	rn.AnswerWith(realNow, "m1", nil)
	rn.End(realNow.Add(40*time.Second), "m1")
	r := cliRun(t, srv.URL, realToken, "usage", "demo")
	if r.code != exitOK {
		t.Fatalf("usage: exit %d, %s", r.code, r.stderr)
	}
	var capRow, dayRow []string
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "max_monthly_minutes":
			capRow = f
		case len(f) > 0 && f[0] == realNow.Format("2006-01-02"):
			dayRow = f
		}
	}
	if len(capRow) < 2 || len(dayRow) < 3 || capRow[1] != "0.666" || dayRow[2] != "0.666" {
		t.Fatalf("minutes: cap row %q, day row %q; want 0.666 in both\n%s", capRow, dayRow, r.stdout)
	}
}
