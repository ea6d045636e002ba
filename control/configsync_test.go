package control_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/store"
)

// A token_env token follows the environment on every start, not the
// secret of the first start (issue #13: a new TOLLGATE_ADMIN_TOKEN was
// silently ignored).
func TestTokenEnvFollowsTheEnvironment(t *testing.T) {
	st := store.NewMem()
	clk := newClock(t0)
	open := func(secret string) *control.Service {
		t.Helper()
		svc, err := control.Open(testConfig(t), st, control.Options{Now: clk.Now, Logger: zerolog.Nop(),
			Env: func(name string) string {
				if name == "TG_OPS" {
					return secret
				}
				return ""
			}})
		mustNil(t, err)
		return svc
	}
	const first, second = "first-secret-0123456789", "second-secret-0123456789"
	svc := open(first)
	if _, ok := svc.Authenticate(first); !ok {
		t.Fatal("first secret does not authenticate")
	}
	mustNil(t, svc.Close())

	svc = open(second)
	defer svc.Close()
	if p, ok := svc.Authenticate(second); !ok || p.Name != "ops" || p.Scope != api.ScopeAdmin {
		t.Fatalf("new secret: Authenticate = %+v, %v; want ops/admin", p, ok)
	}
	if _, ok := svc.Authenticate(first); ok {
		t.Fatal("the old secret still authenticates after a restart with a new one")
	}
	es, err := svc.Audit(ctx, api.AuditQuery{Limit: 10})
	mustNil(t, err)
	if len(es) == 0 || es[0].Action != "token.update" || es[0].Actor != "config" {
		t.Fatalf("newest audit entry = %+v, want token.update by config", es)
	}
}

// A restart whose environment lacks the token's variable fails naming the
// token and the variable, as the first start does.
func TestTokenEnvUnsetOnRestart(t *testing.T) {
	st := store.NewMem()
	svc, err := control.Open(testConfig(t), st, control.Options{Now: newClock(t0).Now, Logger: zerolog.Nop(), Env: env})
	mustNil(t, err)
	mustNil(t, svc.Close())
	_, err = control.Open(testConfig(t), st, control.Options{Now: newClock(t0).Now, Logger: zerolog.Nop(),
		Env: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), `token "ops"`) || !strings.Contains(err.Error(), "TG_OPS is not set") {
		t.Fatalf("Open = %v, want an error naming token ops and TG_OPS", err)
	}
}

func TestConfigTokens(t *testing.T) {
	cfg := testConfig(t)
	for name, tc := range map[string]struct {
		secret string
		want   string
	}{
		"unset": {"", `api.tokens[0].token_env: token "ops": environment variable TG_OPS is not set`},
		"short": {"short", `api.tokens[0].token_env: token "ops": the secret in TG_OPS must be at least 16 characters, got 5`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := control.ConfigTokens(cfg, func(string) string { return tc.secret }, t0)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("ConfigTokens = %v, want %q", err, tc.want)
			}
		})
	}
}

// Editing the config file's plans or tenants after the first start is
// not in effect (the store is the source of truth), and the start says
// so, naming each object and how to apply it.
func TestStartLogsConfigDrift(t *testing.T) {
	st := store.NewMem()
	var logs bytes.Buffer
	open := func(cfg *configs.Config) *control.Service {
		t.Helper()
		svc, err := control.Open(cfg, st, control.Options{Now: newClock(t0).Now, Logger: zerolog.New(&logs), Env: env})
		mustNil(t, err)
		return svc
	}
	mustNil(t, open(testConfig(t)).Close())
	if strings.Contains(logs.String(), "differs") {
		t.Fatalf("first start logs drift: %s", logs.String())
	}

	// Unchanged file: nothing to say.
	logs.Reset()
	mustNil(t, open(testConfig(t)).Close())
	if strings.Contains(logs.String(), "tollgate apply") {
		t.Fatalf("unchanged file logs drift: %s", logs.String())
	}

	cfg := testConfig(t)
	cfg.Plans[0].Limits.MaxParallelCalls = i64(20)
	cfg.Tenants = append(cfg.Tenants, configs.Tenant{Name: "gamma", Plan: "basic", Carrier: "up", Sources: []string{"10.3.0.0/24"}})
	cfg.ApplyDefaults()
	logs.Reset()
	svc := open(cfg)
	defer svc.Close()
	out := logs.String()
	for _, want := range []string{
		`"plan":"basic"`, "limits.max_parallel_calls: 10 -> 20", "differs between the config file and the store",
		`"tenant":"gamma"`, "not in the store", "tollgate apply -f", "make reset-demo",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"tenant":"acme"`) {
		t.Errorf("unchanged tenant acme logged:\n%s", out)
	}
	if p, _ := svc.GetPlan(ctx, "basic"); *p.Limits.MaxParallelCalls != 10 {
		t.Fatalf("store's plan changed by the file: %d", *p.Limits.MaxParallelCalls)
	}
}

// In a cluster the config bucket is applied at start; a token the
// environment changed is kept pending, so it is published first and the
// bucket's older state does not undo it.
func TestTokenEnvChangeIsPendingInACluster(t *testing.T) {
	st := store.NewMem()
	cfg := testConfig(t)
	cfg.Cluster.Enabled, cfg.Cluster.Replicas = true, 1
	open := func(secret string) *control.Service {
		t.Helper()
		svc, err := control.Open(cfg, st, control.Options{Now: newClock(t0).Now, Logger: zerolog.Nop(),
			Env: func(string) string { return secret }})
		mustNil(t, err)
		return svc
	}
	mustNil(t, open("first-secret-0123456789").Close())
	svc := open("second-secret-0123456789")
	defer svc.Close()
	var names []string
	for _, c := range svc.Pending() {
		names = append(names, c.Kind+"."+c.Name)
	}
	if len(names) != 1 || names[0] != "token.ops" {
		t.Fatalf("pending after the token changed = %q, want [token.ops]", names)
	}
}

// A plan stored by a version without max_dids and max_users reads as
// unlimited in both, as the file's unset limits do: the next start logs
// no drift for it and re-applying the same file changes nothing (it
// reported "null -> -1").
func TestPlanStoredBeforeProvisioningCaps(t *testing.T) {
	st := store.NewMem()
	var logs bytes.Buffer
	open := func() *control.Service {
		t.Helper()
		svc, err := control.Open(testConfig(t), st, control.Options{Now: newClock(t0).Now, Logger: zerolog.New(&logs), Env: env})
		mustNil(t, err)
		return svc
	}
	mustNil(t, open().Close())
	state, err := st.Load()
	mustNil(t, err)
	var old []configs.Plan
	for _, p := range state.Plans {
		p.Limits.MaxDIDs, p.Limits.MaxUsers = nil, nil // as an earlier version stored it
		old = append(old, p)
	}
	mustNil(t, st.Apply(&store.Batch{At: t0, PutPlans: old}))
	logs.Reset()
	svc := open()
	defer svc.Close()
	if strings.Contains(logs.String(), "differs") {
		t.Fatalf("a plan stored before max_dids/max_users logs drift:\n%s", logs.String())
	}
	p, err := svc.GetPlan(ctx, old[0].Name)
	mustNil(t, err)
	if p.Limits.MaxDIDs == nil || *p.Limits.MaxDIDs != -1 || p.Limits.MaxUsers == nil || *p.Limits.MaxUsers != -1 {
		t.Fatalf("stored plan reads max_dids %v, max_users %v; want -1 (unlimited)", p.Limits.MaxDIDs, p.Limits.MaxUsers)
	}
}
