package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The provisioning caps through the CLI against the real service: limits
// set and shows max_dids and max_users, tenants get shows the use
// (used/cap), and apply refuses the (N+1)th DID naming the limit and the
// file's line.
func TestCLIProvisioningCaps(t *testing.T) {
	srv, _ := realAPI(t)
	run := func(args ...string) result {
		t.Helper()
		return cliRun(t, srv.URL, realToken, args...)
	}
	if r := run("limits", "set", "demo", "max_dids=2", "max_users=0"); r.code != 0 {
		t.Fatalf("limits set: exit %d: %s", r.code, r.stderr)
	}
	r := run("limits", "demo")
	for _, want := range []string{"max_dids", "max_users"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("limits demo has no %s row:\n%s", want, r.stdout)
		}
	}
	r = run("tenants", "get", "demo")
	if !strings.Contains(r.stdout, "DIDs 0/2, users 0/0") {
		t.Fatalf("tenants get demo:\n%s", r.stdout)
	}

	file := filepath.Join(t.TempDir(), "apply.yaml")
	doc := `tenants:
  - name: demo
    plan: standard
    carrier: carrier
    sources: [127.0.0.10/32]
    dids: ["+4930", "+4940", "+4950"]
    pbx: {address: 127.0.0.11:5060}
    limits: {max_dids: 2, max_users: 0}
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run("apply", "-f", file)
	if r.code == 0 || !strings.Contains(r.stderr, "tenants[0].dids: 3 DIDs, max_dids is 2") || !strings.Contains(r.stderr, "line 6") {
		t.Fatalf("apply over the cap: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(doc, `, "+4950"]`, `]`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = run("apply", "-f", file); r.code != 0 {
		t.Fatalf("apply at the cap: exit %d: %s", r.code, r.stderr)
	}
	if r = run("tenants", "get", "demo"); !strings.Contains(r.stdout, "DIDs 2/2, users 0/0") {
		t.Fatalf("tenants get demo:\n%s", r.stdout)
	}
}
