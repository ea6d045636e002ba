package control_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/control/controltest"
	"github.com/tollgate/tollgate/store"
)

// parityConfig is a config file; %s is where the case's plan goes (a list
// item of plans) and where its roles go (acme's roles). The plans and
// tenants are in the order the control service validates a change in
// (stored objects by name, the changed one last), so that paths inside
// messages ("same as plans[1].rates[0]") are the same on both sides.
const parityConfig = `
sip:
  listen:
    - {transport: udp, address: 127.0.0.1:5060}
carriers:
  - {name: up, address: 192.0.2.1:5060}
plans:
  - {name: basic, rates: [{per_minute: "1"}]}
%s
tenants:
  - {name: beta, plan: basic, carrier: up, sources: [10.2.0.0/24]}
  - {name: acme, plan: basic, carrier: up, sources: [10.1.0.0/24]%s}
`

// TestRatesAndRolesRejectedAlikeByFileAndAPI: a bad rate table or role
// list is rejected by the config loader (path in the file and line) and by
// the control service (path in the request body) with the same field and
// the same message, and by the engine with the same message: one
// validator (admission.ValidateRates, admission.ValidateRoles) behind the
// three.
func TestRatesAndRolesRejectedAlikeByFileAndAPI(t *testing.T) {
	rate := func(rows string) string { return `{"name": "gold", "rates": [` + rows + `]}` }
	for _, tc := range []struct {
		name  string
		plan  string // a plan "gold" (JSON, which is also YAML), or
		roles string // acme's roles
		field string // in the request body
		msg   string // a part of the message
		// noEngine: the engine's rows cannot express the fault (a
		// missing price is 0 there).
		noEngine bool
	}{
		{name: "duplicate prefix", plan: rate(`{"prefix": "+44", "per_minute": "0.01"}, {"prefix": "+44", "per_minute": "0.02"}`),
			field: "rates[1].prefix", msg: `duplicate prefix "+44" (same as plans[1].rates[0])`},
		{name: "duplicate default row", plan: rate(`{"per_minute": "0.01"}, {"prefix": "", "per_minute": "0.02"}`),
			field: "rates[1].prefix", msg: "duplicate default row (empty prefix)"},
		{name: "malformed prefix", plan: rate(`{"prefix": "44x", "per_minute": "0.01"}`),
			field: "rates[0].prefix", msg: `must be digits with an optional leading +, or empty for the default row, got "44x"`},
		{name: "prefix not normalised", plan: rate(`{"prefix": "+44 20", "per_minute": "0.01"}`),
			field: "rates[0].prefix", msg: `"+44 20" is not a normalised number; write "+4420"`},
		{name: "price too high", plan: rate(`{"prefix": "44", "per_minute": "1000000001"}`),
			field: "rates[0].per_minute", msg: "must be an amount 0..1000000000, got 1000000001"},
		{name: "negative connect fee", plan: rate(`{"prefix": "44", "per_minute": "0.01", "connect_fee": "-1"}`),
			field: "rates[0].connect_fee", msg: "must be an amount 0..1000000000, got -1"},
		{name: "price missing", plan: rate(`{"prefix": "44"}`),
			field: "rates[0].per_minute", msg: "required", noEngine: true},

		{name: "role without name", roles: `[{"users": ["alice"]}]`, field: "[0].name", msg: "required"},
		{name: "role name", roles: `[{"name": "sales team"}]`, field: "[0].name", msg: `must contain only letters, digits, '-' and '_', got "sales team"`},
		{name: "role name twice", roles: `[{"name": "a"}, {"name": "a"}]`, field: "[1].name", msg: `duplicate role name "a" (already used by tenants[1].roles[0])`},
		{name: "role cap", roles: `[{"name": "a", "max_parallel_calls": -2}]`, field: "[0].max_parallel_calls", msg: "must be -1 (unlimited), 0 (blocked) or a positive cap, got -2"},
		{name: "role minutes", roles: `[{"name": "a", "max_monthly_minutes": 100000001}]`, field: "[0].max_monthly_minutes", msg: "must be at most 100000000, got 100000001"},
		{name: "user malformed", roles: `[{"name": "a", "users": ["al ice"]}]`, field: "[0].users[0]", msg: "must be a user identity of 1..128 printable characters without spaces"},
		{name: "user twice", roles: `[{"name": "a", "users": ["alice", "alice"]}]`, field: "[0].users[1]", msg: `user "alice" listed twice (same as tenants[1].roles[0].users[0])`},
		{name: "user on two roles", roles: `[{"name": "a", "users": ["alice"]}, {"name": "b", "users": ["alice"]}]`,
			field: "[1].users[0]", msg: `user "alice" is already on role "a" (tenants[1].roles[0].users[0]); a user may be on one role of a tenant`},
		{name: "pattern empty", roles: `[{"name": "a", "patterns": [""]}]`, field: "[0].patterns[0]", msg: "must not be empty"},
		{name: "pattern malformed", roles: `[{"name": "a", "patterns": ["1555*", "agent-["]}]`, field: "[0].patterns[1]", msg: `invalid glob "agent-[": syntax error in pattern`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The config file.
			planItem, roles, base := "", "", ""
			if tc.plan != "" {
				planItem, base = "  - "+tc.plan, "plans[1]."
			} else {
				roles, base = ", roles: "+tc.roles, "tenants[1].roles"
			}
			_, err := configs.Parse("parity.yaml", []byte(fmt.Sprintf(parityConfig, planItem, roles)))
			if err == nil {
				t.Fatal("the config file loads")
			}
			if want := "parity.yaml: " + base + tc.field + ": "; !strings.HasPrefix(err.Error(), want) ||
				!strings.Contains(err.Error(), ": "+tc.msg) || !strings.Contains(err.Error(), "(line ") {
				t.Fatalf("config error %q, want %q...%q...(line N)", err, want, tc.msg)
			}
			fileMsg := strings.TrimPrefix(err.Error(), "parity.yaml: "+base+tc.field+": ")
			fileMsg = fileMsg[:strings.LastIndex(fileMsg, " (line ")]

			// The API: the same payload as a request body.
			svc := parityService(t)
			if tc.plan != "" {
				var p configs.Plan
				mustNil(t, json.Unmarshal([]byte(tc.plan), &p))
				_, err = svc.PutPlan(ctx, "a", p, true)
			} else {
				var rs []configs.Role
				mustNil(t, json.Unmarshal([]byte(tc.roles), &rs))
				_, err = svc.PutRoles(ctx, "a", "acme", rs)
			}
			fe := wantField(t, err, tc.field)
			if fe.Message != fileMsg {
				t.Fatalf("API message %q, config file's %q", fe.Message, fileMsg)
			}

			// The engine, given the same plan or roles.
			if tc.noEngine {
				return
			}
			e := admission.NewEngine(admission.Settings{})
			basic := configs.Plan{Name: "basic"}
			_, err = e.UpsertPlan(t0, basic.AdmissionPlan())
			mustNil(t, err)
			kind, wantPath := admission.ErrInvalidRate, tc.field
			if tc.plan != "" {
				var p configs.Plan
				mustNil(t, json.Unmarshal([]byte(tc.plan), &p))
				_, err = e.UpsertPlan(t0, p.AdmissionPlan())
			} else {
				tn := configs.Tenant{Name: "acme", Plan: "basic"}
				mustNil(t, json.Unmarshal([]byte(tc.roles), &tn.Roles))
				_, err = e.UpsertTenant(t0, tn.AdmissionTenant())
				kind, wantPath = admission.ErrInvalidRole, "roles"+tc.field
				if strings.HasPrefix(tc.field, "[0].max_") {
					kind = admission.ErrInvalidLimit
				}
			}
			var afe *admission.FieldError
			if !errors.As(err, &afe) || !errors.Is(err, kind) {
				t.Fatalf("engine error %v, want an admission.FieldError wrapping %v", err, kind)
			}
			// The engine's paths are under "rates" or "roles".
			wantMsg := strings.NewReplacer("plans[1].rates", "rates", "tenants[1].roles", "roles").Replace(fileMsg)
			if afe.Path != wantPath || afe.Msg != wantMsg {
				t.Fatalf("engine error %q: %q, want %q: %q", afe.Path, afe.Msg, wantPath, wantMsg)
			}
		})
	}
}

// parityService opens a control service on the parity config without the
// case's plan and roles.
func parityService(t *testing.T) *control.Service {
	t.Helper()
	cfg, err := configs.Parse("parity.yaml", []byte(fmt.Sprintf(parityConfig, "", "")))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	svc, err := control.Open(cfg, store.NewMem(), control.Options{Now: func() time.Time { return now }, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc.SetEdge(&controltest.FakeEdge{})
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}
