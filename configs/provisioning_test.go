package configs

import (
	"strings"
	"testing"
)

// A config file that assigns more DIDs or users than the tenant's
// effective max_dids / max_users (override, else plan) does not load; the
// error names the tenant and the field.
func TestProvisioningCapsInFile(t *testing.T) {
	threeDIDs := `    dids: ["+1555", "+1666", "+1777"]` + "\n"
	roles := "    roles:\n      - name: a\n        users: [u1, u2]\n      - name: b\n        users: [u3]\n        patterns: [\"9*\"]\n"
	for _, tc := range []struct {
		name, yaml, want string // want "": loads
	}{
		{"plan cap dids", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: 2\n",
			`    dids: ["+1555"]`+"\n", threeDIDs),
			`tenants[0].dids: 3 DIDs, max_dids is 2 (tenant "t1") (line 19)`},
		{"plan cap dids at the cap", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: 3\n",
			`    dids: ["+1555"]`+"\n", threeDIDs), ""},
		{"tenant override wins over the plan", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: 5\n",
			`    dids: ["+1555"]`+"\n", threeDIDs+"    limits:\n      max_dids: 1\n"),
			`tenants[0].dids: 3 DIDs, max_dids is 1 (tenant "t1")`},
		{"tenant override unlimited", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: 1\n",
			`    dids: ["+1555"]`+"\n", threeDIDs+"    limits:\n      max_dids: -1\n"), ""},
		{"zero allows none", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: 0\n"),
			`tenants[0].dids: 1 DID, max_dids is 0 (tenant "t1")`},
		{"users over the plan cap", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_users: 2\n") + roles,
			`tenants[0].roles[1].users[0]: 3 users on the roles, max_users is 2 (tenant "t1")`},
		{"users at the cap (patterns do not count)", edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_users: 3\n") + roles, ""},
		{"tenant_defaults do not apply to the file's tenants", "tenant_defaults:\n  max_dids: 0\n  max_users: 0\n" + base + roles, ""},
		{"unset: unlimited", base + roles, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Parse accepted it, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Parse error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestProvisioningCapsValidated(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n      max_dids: -2\n"), "plans[0].limits.max_dids: must be -1 (unlimited), 0 (blocked) or a positive cap, got -2"},
		{"tenant_defaults:\n  max_users: -5\n" + base, "tenant_defaults.max_users: must be -1"},
		{base + "    limits:\n      max_users: 1000000001\n", "tenants[0].limits.max_users: must be at most 1000000000"},
	} {
		_, err := Parse("x.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse error = %v, want %q", err, tc.want)
		}
	}
}

// CheckProvisioning refuses only a change that raises a count past the
// cap: a tenant already over it keeps what it has.
func TestCheckProvisioningNotRetroactive(t *testing.T) {
	plan := Limits{MaxDIDs: ptr(1), MaxUsers: ptr(1)}
	over := Tenant{Name: "t", DIDs: []string{"+1", "+2"}, Roles: []Role{{Name: "r", Users: []string{"a", "b"}}}}
	if err := CheckProvisioning("", over, plan, &over); err != nil {
		t.Fatalf("unchanged tenant over its caps: %v", err)
	}
	fewer := over.Clone()
	fewer.DIDs = fewer.DIDs[:1]
	if err := CheckProvisioning("", fewer, plan, &over); err != nil {
		t.Fatalf("removing a DID: %v", err)
	}
	swapped := over.Clone()
	swapped.DIDs = []string{"+1", "+3"}
	if err := CheckProvisioning("", swapped, plan, &over); err != nil {
		t.Fatalf("replacing a DID (count unchanged): %v", err)
	}
	more := over.Clone()
	more.DIDs = append(more.DIDs, "+3")
	err := CheckProvisioning("", more, plan, &over)
	if path, msg, _ := FieldPath(err); path != "dids" || !strings.HasPrefix(msg, "3 DIDs, max_dids is 1") {
		t.Fatalf("adding a DID over the cap: %v", err)
	}
	moreUsers := over.Clone()
	moreUsers.Roles = append(moreUsers.Roles, Role{Name: "s", Users: []string{"a2", "c"}})
	moreUsers.Roles[0].Users = []string{"b", "a"}
	err = CheckProvisioning("", moreUsers, plan, &over)
	if path, msg, _ := FieldPath(err); path != "roles[1].users[0]" || !strings.HasPrefix(msg, "4 users on the roles, max_users is 1") {
		t.Fatalf("adding users over the cap: %v", err)
	}
	// The same user on two roles counts once (Validate refuses it anyway).
	if got := len((Tenant{Roles: []Role{{Users: []string{"a"}}, {Users: []string{"a", "b"}}}}).Users()); got != 2 {
		t.Fatalf("Users = %d, want 2", got)
	}
}
