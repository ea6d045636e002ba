package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control/controltest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// testAPI starts the admin API on a fresh seeded backend.
func testAPI(t *testing.T) (*httptest.Server, *controltest.Env) {
	t.Helper()
	b := controltest.NewEnv(t)
	srv := httptest.NewServer(api.NewServer(b.Svc, nil, api.ServerOptions{}))
	t.Cleanup(srv.Close)
	return srv, b
}

// result is one runCLI run.
type result struct {
	code           int
	stdout, stderr string
}

// cliRun runs the CLI against url with token (both through the
// environment, as an operator would set them).
func cliRun(t *testing.T, url, token string, args ...string) result {
	t.Helper()
	old := cliNow
	cliNow = func() time.Time { return controltest.DefaultNow }
	defer func() { cliNow = old }()
	env := map[string]string{"TOLLGATE_API": url, "TOLLGATE_TOKEN": token}
	var out, errOut bytes.Buffer
	code := runCLI(args, &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

// checkGolden compares got with testdata/name.golden (-update rewrites it).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/tollgate -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s: output differs from %s (rerun with -update if intended)\n--- got\n%s--- want\n%s", t.Name(), path, got, want)
	}
}

// step is one command of a golden scenario: it must exit 0 unless code
// says otherwise; its stdout is compared with testdata/golden.golden when
// golden is set.
type step struct {
	args   []string
	golden string
	token  string // default admin
}

func runSteps(t *testing.T, url string, steps []step) {
	t.Helper()
	for _, s := range steps {
		token := s.token
		if token == "" {
			token = controltest.AdminToken
		}
		r := cliRun(t, url, token, s.args...)
		if r.code != exitOK {
			t.Fatalf("tollgate %s: exit %d, stderr %q", strings.Join(s.args, " "), r.code, r.stderr)
		}
		if s.golden != "" {
			checkGolden(t, s.golden, r.stdout)
		}
	}
}

func TestCLIReadGolden(t *testing.T) {
	srv, _ := testAPI(t)
	runSteps(t, srv.URL, []step{
		{args: []string{"plans"}, golden: "plans"},
		{args: []string{"plans", "list", "-o", "json"}, golden: "plans_json"},
		{args: []string{"plans", "get", "standard"}, golden: "plans_get"},
		{args: []string{"plans", "get", "standard", "-o", "json"}, golden: "plans_get_json"},
		{args: []string{"tenants"}, golden: "tenants", token: controltest.ReadToken},
		{args: []string{"tenants", "-o", "json"}, golden: "tenants_json"},
		{args: []string{"tenants", "get", "demo"}, golden: "tenants_get"},
		{args: []string{"tenants", "-o", "json", "get", "demo"}, golden: "tenants_get_json"},
		{args: []string{"limits", "demo"}, golden: "limits"},
		{args: []string{"limits", "demo", "-o", "json"}, golden: "limits_json"},
		{args: []string{"roles", "demo"}, golden: "roles"},
		{args: []string{"roles", "demo", "-o", "json"}, golden: "roles_json"},
		{args: []string{"usage", "demo"}, golden: "usage"},
		{args: []string{"usage", "demo", "-o", "json"}, golden: "usage_json"},
		{args: []string{"calls"}, golden: "calls"},
		{args: []string{"calls", "--tenant", "demo", "-o", "json"}, golden: "calls_json"},
		{args: []string{"tokens"}, golden: "tokens"},
		{args: []string{"tokens", "-o", "json"}, golden: "tokens_json"},
		{args: []string{"blocked"}, golden: "blocked", token: controltest.ReadToken},
		{args: []string{"blocked", "-o", "json"}, golden: "blocked_json"},
		{args: []string{"cluster"}, golden: "cluster", token: controltest.ReadToken},
		{args: []string{"cluster", "status", "--tenant", "demo", "-o", "json"}, golden: "cluster_json"},
		{args: []string{"audit"}, golden: "audit_seed", token: controltest.BillingToken},
	})
}

func TestCLIWriteGolden(t *testing.T) {
	srv, b := testAPI(t)
	runSteps(t, srv.URL, []step{
		{args: []string{"limits", "set", "demo", "max_parallel_calls=5", "monthly_spend_limit=250.5",
			"max_monthly_minutes=unlimited", "auto_suspend=true", "destinations.premium=false", "destinations.international=true"},
			golden: "limits_set", token: controltest.SettingsToken},
		{args: []string{"limits", "set", "demo", "max_monthly_minutes=inherit", "destinations.international=null", "-o", "json"},
			golden: "limits_set_json", token: controltest.SettingsToken},
		{args: []string{"tenants", "get", "demo"}, golden: "tenants_get_overrides"},
		{args: []string{"limits", "reset", "demo"}, golden: "limits_reset", token: controltest.SettingsToken},
		{args: []string{"suspend", "demo", "--reason", "fraud check"}, golden: "suspend"},
		{args: []string{"tenants"}, golden: "tenants_suspended"},
		{args: []string{"resume", "demo", "-o", "json"}, golden: "resume_json"},
		{args: []string{"calls", "hangup", controltest.Call1ID}, golden: "calls_hangup"},
		{args: []string{"calls"}, golden: "calls_after_hangup"},
		{args: []string{"unblock", controltest.BlockedIP4}, golden: "unblock"},
		{args: []string{"unblock", "-o", "json", "2001:db8:0::bad"}, golden: "empty"},
		{args: []string{"blocked"}, golden: "blocked_after_unblock"},
		{args: []string{"cluster", "release", "gw-b"}, golden: "cluster_release"},
		{args: []string{"cluster", "--tenant", "demo"}, golden: "cluster_after_release"},
	})
	// A created token's secret is random (tg_ and 64 hex digits): the
	// goldens have it as tg_SECRET.
	secret := func(golden string, args ...string) string {
		t.Helper()
		r := cliRun(t, srv.URL, controltest.AdminToken, args...)
		if r.code != exitOK {
			t.Fatalf("tollgate %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		m := regexp.MustCompile(`tg_[0-9a-f]{64}`).FindString(r.stdout)
		if m == "" {
			t.Fatalf("tollgate %s: no tg_ secret in %q", strings.Join(args, " "), r.stdout)
		}
		checkGolden(t, golden, strings.ReplaceAll(r.stdout, m, "tg_SECRET"))
		return m
	}
	ciSecret := secret("tokens_create", "tokens", "create", "ci", "--scope", "read")
	ci2Secret := secret("tokens_create_json", "tokens", "create", "ci2", "--scope", "billing", "-o", "json")
	runSteps(t, srv.URL, []step{
		{args: []string{"tokens", "delete", "ci"}, golden: "tokens_delete"},
		{args: []string{"audit"}, golden: "audit", token: controltest.BillingToken},
		{args: []string{"audit", "--tenant", "demo", "--limit", "2", "-o", "json"}, golden: "audit_json"},
		{args: []string{"audit", "--since", "1h", "--tenant", "demo"}, golden: "audit_since"},
		// The seed (2026-11-20T09:00) and nothing of today's changes.
		{args: []string{"audit", "--from", "2026-11-20T00:00:00Z", "--to", "2026-11-21T00:00:00Z"}, golden: "audit_from_to"},
	})
	// The new read token works, the deleted one does not.
	if r := cliRun(t, srv.URL, ci2Secret, "audit", "--limit", "1"); r.code != exitOK {
		t.Errorf("new billing token: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := cliRun(t, srv.URL, ciSecret, "tenants"); r.code != exitAuth {
		t.Errorf("deleted token: exit %d, want %d; stderr %q", r.code, exitAuth, r.stderr)
	}
	// The users table of usage: a role with a minutes cap. The service
	// lists the users with minutes in the cycle: 200 made a 3-minute call,
	// 201 none.
	c := api.NewClient(srv.URL, controltest.AdminToken, nil)
	if _, _, err := c.PutRole(context.Background(), "demo", configs.Role{Name: "agents",
		MaxMonthlyMinutes: ptrTo(int64(300)), Users: []string{"200", "201"}}); err != nil {
		t.Fatal(err)
	}
	rn, now := b.Svc.Runner(), controltest.DefaultNow
	if d := rn.Admit(now, admission.CallRequest{CallID: "agent-1", Tenant: "demo", Direction: admission.Outbound, Caller: "200", Callee: "+4930123456"}); !d.Admitted {
		t.Fatalf("call of user 200 rejected: %+v", d.Rejection)
	}
	rn.Answer(now, "agent-1")
	rn.End(now.Add(3*time.Minute), "agent-1")
	runSteps(t, srv.URL, []step{{args: []string{"usage", "demo"}, golden: "usage_users", token: controltest.ReadToken}})

	// Deleting goes through the API; the plan deletion needs a plan no
	// tenant uses.
	runSteps(t, srv.URL, []step{
		{args: []string{"apply", "-f", "testdata/apply.yaml"}},
		{args: []string{"tenants", "delete", "acme"}, golden: "tenants_delete"},
		{args: []string{"plans", "delete", "gold", "-o", "json"}, golden: "empty"},
		{args: []string{"plans"}, golden: "plans"},
	})
}

func TestCLIApplyGolden(t *testing.T) {
	srv, b := testAPI(t)
	before := len(b.AuditLog(t))
	runSteps(t, srv.URL, []step{
		{args: []string{"apply", "-f", "testdata/apply.yaml", "--dry-run"}, golden: "apply_dry_run"},
	})
	if n := len(b.AuditLog(t)); n != before {
		t.Fatalf("dry run changed the audit log: %d entries, want %d", n, before)
	}
	runSteps(t, srv.URL, []step{
		{args: []string{"apply", "--dry-run", "-f", "testdata/apply.yaml", "-o", "json"}, golden: "apply_dry_run_json"},
		{args: []string{"apply", "-f", "testdata/apply.yaml"}, golden: "apply"},
		{args: []string{"apply", "-f", "testdata/apply.yaml"}, golden: "apply_again"},
		{args: []string{"plans"}, golden: "plans_after_apply"},
		{args: []string{"plans", "get", "gold"}, golden: "plans_get_gold"},
		{args: []string{"limits", "acme"}, golden: "limits_acme"},
	})
}

func TestCLIExitCodes(t *testing.T) {
	srv, _ := testAPI(t)
	// A closed port: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	admin, read, settings := controltest.AdminToken, controltest.ReadToken, controltest.SettingsToken
	cases := []struct {
		name     string
		url      string // default srv.URL
		token    string
		args     []string
		code     int
		inStderr []string
	}{
		{"success", "", read, []string{"tenants"}, exitOK, nil},
		{"unknown tenant", "", read, []string{"tenants", "get", "nope"}, exitNotFound, []string{"nope"}},
		{"unknown tenant limits", "", read, []string{"limits", "nope"}, exitNotFound, []string{"nope"}},
		{"unknown plan", "", read, []string{"plans", "get", "nope"}, exitNotFound, []string{"nope"}},
		{"unknown call", "", admin, []string{"calls", "hangup", "nope@x;1"}, exitNotFound, []string{"nope@x;1"}},
		{"unknown token", "", admin, []string{"tokens", "delete", "nope"}, exitNotFound, []string{"nope"}},
		{"bad token", "", "wrong", []string{"tenants"}, exitAuth, []string{"unauthorized", "TOLLGATE_TOKEN"}},
		{"no token", "", "", []string{"plans"}, exitAuth, []string{"unauthorized"}},
		{"read token writes limits", "", read, []string{"limits", "set", "demo", "max_parallel_calls=3"}, exitAuth, []string{"forbidden"}},
		{"read token suspends", "", read, []string{"suspend", "demo", "--reason", "x"}, exitAuth, []string{"forbidden"}},
		{"settings token lists tokens", "", settings, []string{"tokens"}, exitAuth, []string{"forbidden"}},
		{"read token reads audit", "", read, []string{"audit"}, exitAuth, []string{"forbidden"}},
		{"bad limit value", "", settings, []string{"limits", "set", "demo", "max_parallel_calls=-5"}, exitInvalid,
			[]string{"tollgate: invalid max_parallel_calls: "}},
		{"limit not a number", "", settings, []string{"limits", "set", "demo", "max_calls_per_second=fast"}, exitInvalid,
			[]string{"tollgate: invalid max_calls_per_second: "}},
		{"bad money", "", settings, []string{"limits", "set", "demo", "monthly_spend_limit=1.2345678"}, exitInvalid,
			[]string{"tollgate: invalid monthly_spend_limit: "}},
		{"unknown limit", "", settings, []string{"limits", "set", "demo", "max_paralel_calls=3"}, exitInvalid,
			[]string{"max_paralel_calls"}},
		{"plan in use", "", admin, []string{"plans", "delete", "standard"}, exitInvalid, []string{"conflict", "demo"}},
		{"tenant with calls", "", admin, []string{"tenants", "delete", "demo"}, exitInvalid, []string{"conflict"}},
		{"token exists", "", admin, []string{"tokens", "create", "root", "--scope", "read"}, exitInvalid, []string{"conflict"}},
		{"bad scope", "", admin, []string{"tokens", "create", "x", "--scope", "god"}, exitInvalid, []string{"invalid scope"}},
		{"audit limit", "", admin, []string{"audit", "--limit", "5000"}, exitInvalid, []string{"invalid limit"}},
		{"unreachable", closed, admin, []string{"tenants"}, exitUnreachable, []string{"cannot reach the admin API at " + closed, "TOLLGATE_API"}},
		{"unreachable apply", closed, admin, []string{"apply", "-f", "testdata/apply.yaml"}, exitUnreachable, []string{"cannot reach"}},
		{"missing name", "", admin, []string{"tenants", "get"}, exitUsage, []string{"missing tenant name", "usage: tollgate tenants"}},
		{"extra arg", "", admin, []string{"roles", "demo", "extra"}, exitUsage, []string{`unexpected argument "extra"`}},
		{"unknown subcommand", "", admin, []string{"plans", "show", "x"}, exitUsage, []string{`unknown subcommand "show"`}},
		{"unknown flag", "", admin, []string{"tenants", "--nope"}, exitUsage, []string{"flag provided but not defined: -nope"}},
		{"bad output", "", admin, []string{"tenants", "-o", "yaml"}, exitUsage, []string{"-o must be table or json"}},
		{"bad api url", "", admin, []string{"tenants", "--api", "127.0.0.1:8080"}, exitUsage, []string{"invalid API URL"}},
		{"limits set no pairs", "", admin, []string{"limits", "set", "demo"}, exitUsage, []string{"KEY=VALUE"}},
		{"limits set not a pair", "", admin, []string{"limits", "set", "demo", "max_parallel_calls"}, exitUsage, []string{"want KEY=VALUE"}},
		{"limits set bad class value", "", admin, []string{"limits", "set", "demo", "destinations.premium=maybe"}, exitUsage, []string{"destinations.premium"}},
		{"suspend without reason", "", admin, []string{"suspend", "demo"}, exitUsage, []string{"--reason is required"}},
		{"token without scope", "", admin, []string{"tokens", "create", "x"}, exitUsage, []string{"--scope is required"}},
		{"hangup without id", "", admin, []string{"calls", "hangup"}, exitUsage, []string{"missing call ID"}},
		{"unblock without ip", "", admin, []string{"unblock"}, exitUsage, []string{"missing IP address", "usage: tollgate unblock IP"}},
		{"unblock two ips", "", admin, []string{"unblock", "192.0.2.1", "192.0.2.2"}, exitUsage, []string{`unexpected argument "192.0.2.2"`}},
		{"blocked with an argument", "", admin, []string{"blocked", "203.0.113.7"}, exitUsage, []string{`unexpected argument "203.0.113.7"`}},
		{"unblock bad ip", "", admin, []string{"unblock", "203.0.113.0/24"}, exitInvalid,
			[]string{"tollgate: invalid ip: expected an IPv4 or IPv6 address", `"203.0.113.0/24"`}},
		{"unblock not blocked", "", admin, []string{"unblock", "192.0.2.1"}, exitNotFound, []string{"192.0.2.1", "not blocked"}},
		{"release a live node", "", admin, []string{"cluster", "release", "gw-a"}, exitInvalid, []string{"gw-a", "alive"}},
		{"release an unknown node", "", admin, []string{"cluster", "release", "gw-z"}, exitNotFound, []string{"gw-z", "unknown node"}},
		{"release without a node", "", admin, []string{"cluster", "release"}, exitUsage, []string{"node name"}},
		{"release by a read token", "", controltest.ReadToken, []string{"cluster", "release", "gw-b"}, exitAuth, []string{"admin"}},
		{"read token unblocks", "", read, []string{"unblock", controltest.BlockedIP4}, exitAuth, []string{"forbidden"}},
		{"audit bad from", "", admin, []string{"audit", "--from", "yesterday"}, exitUsage, []string{"--from: want an RFC 3339 time"}},
		{"audit since and from", "", admin, []string{"audit", "--since", "1h", "--from", "2026-11-01T00:00:00Z"}, exitUsage, []string{"exclusive"}},
		{"audit bad since", "", admin, []string{"audit", "--since", "1 day"}, exitUsage, []string{"invalid value"}},
		{"apply without file", "", admin, []string{"apply"}, exitUsage, []string{"-f FILE is required"}},
		{"apply missing file", "", admin, []string{"apply", "-f", "testdata/missing.yaml"}, exitUsage, []string{"testdata/missing.yaml"}},
		{"apply typo", "", admin, []string{"apply", "-f", "testdata/apply_typo.yaml"}, exitInvalid,
			[]string{`testdata/apply_typo.yaml: plans[0].limits.max_paralel_calls: unknown field "max_paralel_calls"`, "(line 4)"}},
		{"apply bad money", "", admin, []string{"apply", "-f", "testdata/apply_badmoney.yaml"}, exitInvalid,
			[]string{"testdata/apply_badmoney.yaml: plans[0].limits.monthly_spend_limit: ", "at most 6 decimal places", "(line 4)"}},
		{"apply invalid", "", admin, []string{"apply", "-f", "testdata/apply_invalid.yaml", "--dry-run"}, exitInvalid,
			[]string{`invalid tenants[0].plan: `, "platinum", "(testdata/apply_invalid.yaml line 3)"}},
		{"apply as settings", "", settings, []string{"apply", "-f", "testdata/apply.yaml"}, exitAuth, []string{"forbidden"}},
		{"unknown command", "", admin, []string{"bogus"}, exitUsage, []string{`unknown command "bogus"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = srv.URL
			}
			r := cliRun(t, url, tc.token, tc.args...)
			if r.code != tc.code {
				t.Errorf("tollgate %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), r.code, tc.code, r.stderr)
			}
			for _, s := range tc.inStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("tollgate %s: stderr %q does not contain %q", strings.Join(tc.args, " "), r.stderr, s)
				}
			}
			if tc.code != exitOK {
				if r.stdout != "" {
					t.Errorf("tollgate %s failed but printed to stdout: %q", strings.Join(tc.args, " "), r.stdout)
				}
				if !strings.HasPrefix(r.stderr, "tollgate: ") {
					t.Errorf("stderr %q does not start with \"tollgate: \"", r.stderr)
				}
			}
		})
	}
}

func TestCLIFlagsAndEnv(t *testing.T) {
	srv, _ := testAPI(t)
	// Flags win over the environment and may come before the arguments.
	r := cliRun(t, "http://127.0.0.1:1", "wrong", "--api", srv.URL, "--token", controltest.ReadToken, "-o", "json", "limits", "demo")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "{") { // the global flags may come before the command
		t.Errorf("flags before the command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = cliRun(t, "http://127.0.0.1:1", "wrong", "limits", "--api", srv.URL+"/", "--token="+controltest.ReadToken, "-o=json", "demo")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "{") {
		t.Errorf("flags over env: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// "--" ends the flags.
	r = cliRun(t, srv.URL, controltest.ReadToken, "tenants", "get", "--", "-o")
	if r.code != exitNotFound {
		t.Errorf("after --: exit %d, want %d; stderr %q", r.code, exitNotFound, r.stderr)
	}
	// -h prints the command's usage and the flags.
	r = cliRun(t, srv.URL, "", "audit", "-h")
	if r.code != exitOK || !strings.Contains(r.stdout, "tollgate audit [--tenant T]") || !strings.Contains(r.stdout, "-since duration") {
		t.Errorf("audit -h: exit %d, stdout %q", r.code, r.stdout)
	}
	// The default API URL.
	var out, errOut bytes.Buffer
	code := runCLI([]string{"tenants"}, &out, &errOut, func(string) string { return "" })
	if code != exitUnreachable && code != exitAuth { // something may listen on :8080 on a dev box
		t.Errorf("default URL: exit %d, stderr %q", code, errOut.String())
	}
	if code == exitUnreachable && !strings.Contains(errOut.String(), defaultAPI) {
		t.Errorf("default URL: stderr %q does not name %s", errOut.String(), defaultAPI)
	}
}

func TestCLIServerError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error":{"code":"internal","message":"store: disk full"}}`))
	}))
	defer srv.Close()
	r := cliRun(t, srv.URL, controltest.AdminToken, "tenants")
	if r.code != exitFailure || r.stderr != "tollgate: store: disk full (HTTP 500 internal)\n" || r.stdout != "" {
		t.Errorf("500: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCLITokenSecretOnStdoutOnly(t *testing.T) {
	srv, _ := testAPI(t)
	r := cliRun(t, srv.URL, controltest.AdminToken, "tokens", "create", "ops2", "--scope", "settings")
	if r.code != exitOK || !regexp.MustCompile(`^tg_[0-9a-f]{64}\n$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "not shown again") {
		t.Fatalf("tokens create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := cliRun(t, srv.URL, strings.TrimSpace(r.stdout), "limits", "set", "demo", "max_parallel_calls=3"); r.code != exitOK {
		t.Errorf("the new settings token: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestHelpDocumentsCommandsAndExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	checkGolden(t, "help", out.String())
	for name := range cliCommands {
		if !strings.Contains(out.String(), "tollgate "+name) {
			t.Errorf("help does not mention %q", name)
		}
	}
	for _, s := range []string{"Exit codes:", "6  admin API unreachable", "TOLLGATE_API", "TOLLGATE_TOKEN"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help does not contain %q", s)
		}
	}
	// main dispatches the admin commands to runCLI.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"tenants", "--api", "::bad"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "invalid API URL") {
		t.Errorf("run tenants: exit %d, stderr %q", code, errOut.String())
	}
}

func TestLimitsPatch(t *testing.T) {
	got, err := limitsPatch([]string{"max_parallel_calls=20", "cps_burst=null", "alert_threshold_pct=inherit",
		"monthly_spend_limit=12.50", "max_monthly_minutes=unlimited", "auto_suspend=false", "destinations.premium=true",
		"destinations.international=inherit"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"alert_threshold_pct":null,"auto_suspend":false,"cps_burst":null,"destinations":{"international":null,"premium":true},"max_monthly_minutes":-1,"max_parallel_calls":20,"monthly_spend_limit":"12.50"}`
	if s := mustJSON(t, got); s != want {
		t.Errorf("patch = %s\nwant    %s", s, want)
	}
	got, err = limitsPatch([]string{"destinations=inherit", "monthly_spend_limit=unlimited"})
	if err != nil {
		t.Fatal(err)
	}
	if s, want := mustJSON(t, got), `{"destinations":null,"monthly_spend_limit":"-1"}`; s != want {
		t.Errorf("patch = %s, want %s", s, want)
	}
	for _, bad := range [][]string{
		{"max_parallel_calls"}, {"=5"}, {"a=1", "a=2"}, {"destinations=true"}, {"destinations.=true"},
		{"destinations=null", "destinations.premium=true"}, {"destinations.premium=true", "destinations=null"},
	} {
		if _, err := limitsPatch(bad); err == nil {
			t.Errorf("limitsPatch(%q): no error", bad)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func ptrTo[T any](v T) *T { return &v }

// The global flags may come before the command, as the help says.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	srv, _ := testAPI(t)
	want := cliRun(t, srv.URL, controltest.AdminToken, "tenants").stdout
	wantJSON := cliRun(t, srv.URL, controltest.AdminToken, "tenants", "-o", "json").stdout
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api", srv.URL, "--token", controltest.AdminToken, "tenants"}, want},
		{[]string{"--token=" + controltest.AdminToken, "--api=" + srv.URL, "tenants", "list"}, want},
		{[]string{"-o", "json", "--api", srv.URL, "-token", controltest.AdminToken, "tenants"}, wantJSON},
		{[]string{"-o=json", "--token", controltest.AdminToken, "--api", srv.URL, "tenants", "--", "list"}, wantJSON},
	} {
		var out, errOut bytes.Buffer
		// Through main's dispatch, with nothing in the environment.
		code := run(tc.args, &out, &errOut)
		if code != 0 || out.String() != tc.want {
			t.Errorf("tollgate %s: exit %d, stderr %q, stdout\n%s\nwant\n%s", strings.Join(tc.args, " "), code, errOut.String(), out.String(), tc.want)
		}
	}
	// A global flag without a command is still a usage error.
	var out, errOut bytes.Buffer
	if code := run([]string{"--token", "x"}, &out, &errOut); code != exitUsage {
		t.Errorf("tollgate --token x: exit %d, want %d", code, exitUsage)
	}
}
