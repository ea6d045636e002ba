package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	t.Setenv("TOLLGATE_ADMIN_TOKEN", "demo-admin-token-change-me")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("sip:\n  timerc: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"check", "-c", "../../configs/tollgate.yaml"}, 0, "ok (1 carriers, 1 plans, 1 tenants)", ""},
		{[]string{"check", "-c", bad}, 1, "", `sip.timerc: unknown field "timerc"`},
		{[]string{"serve", "-c", filepath.Join(t.TempDir(), "missing.yaml")}, 1, "", "missing.yaml"},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{nil, 2, "", "Usage:"},
		{[]string{"version"}, 0, "tollgate", ""},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String(), tc.inStdout) || !strings.Contains(errOut.String(), tc.inStderr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.inStdout, tc.inStderr)
		}
	}
}

// check fails, naming the token and the variable, when a token's secret
// is not in the environment or too short: serve would refuse to start.
func TestCheckTokenEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		code  int
		want  string
	}{
		{"", 1, `api.tokens[0].token_env: token "admin": environment variable TOLLGATE_ADMIN_TOKEN is not set`},
		{"short", 1, `api.tokens[0].token_env: token "admin": the secret in TOLLGATE_ADMIN_TOKEN must be at least 16 characters, got 5`},
		{"demo-admin-token-change-me", 0, ""},
	} {
		t.Setenv("TOLLGATE_ADMIN_TOKEN", tc.value)
		var out, errOut bytes.Buffer
		code := run([]string{"check", "-c", "../../configs/tollgate.yaml"}, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("TOLLGATE_ADMIN_TOKEN=%q: check = %d, stderr %q; want %d, %q", tc.value, code, errOut.String(), tc.code, tc.want)
		}
	}
}
