package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control/controltest"
	"github.com/tollgate/tollgate/internal/callrec"
	"github.com/tollgate/tollgate/internal/testutil"
)

// tokens of the seeded backend by scope.
var tokens = map[api.Scope]string{
	api.ScopeAdmin:    controltest.AdminToken,
	api.ScopeSettings: controltest.SettingsToken,
	api.ScopeBilling:  controltest.BillingToken,
	api.ScopeRead:     controltest.ReadToken,
}

var allScopes = []api.Scope{api.ScopeAdmin, api.ScopeSettings, api.ScopeBilling, api.ScopeRead}

type env struct {
	b    *controltest.Env
	m    *api.Metrics
	h    http.Handler
	logs *testutil.SyncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, controltest.NewEnv(t), nil)
}

// newEnvWith serves backend (b is the seeded backend, used by setups).
func newEnvWith(t *testing.T, b *controltest.Env, backend api.Backend) *env {
	t.Helper()
	if backend == nil {
		backend = b.Svc
	}
	logs := &testutil.SyncBuffer{}
	m := api.NewMetrics(nil, 2)
	return &env{b: b, m: m, logs: logs,
		h: api.NewServer(backend, m, api.ServerOptions{Logger: zerolog.New(logs).Level(zerolog.DebugLevel)})}
}

// do sends a request; target is sent as written (escapes preserved).
// headers are name, value pairs.
func (e *env) do(t *testing.T, method, target, token, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) api.ErrorDetail {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q, want application/json (body %s)", ct, w.Body)
	}
	var eb api.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if eb.Error.Code == "" || eb.Error.Message == "" {
		t.Fatalf("error body without code or message: %s", w.Body)
	}
	return eb.Error
}

func decodeInto[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %T from %q: %v", v, w.Body, err)
	}
	return v
}

// routeCase is a valid request to one route on the seeded backend.
type routeCase struct {
	target string // concrete path and query
	body   string
	setup  func(b *controltest.Env)
	want   int
}

func mustOK(err error) {
	if err != nil {
		panic(err)
	}
}

var ctx = context.Background()

// routeCases cover every authenticated route of the table, by
// "METHOD pattern".
var routeCases = map[string]routeCase{
	"GET /v1/whoami": {target: "/v1/whoami", want: 200},
	// The test server has no event source: past the scope check, 503
	// (TestEventsStream streams from one).
	"GET /v1/events":       {target: "/v1/events?tenant=demo", want: 503},
	"GET /v1/plans":        {target: "/v1/plans", want: 200},
	"POST /v1/plans":       {target: "/v1/plans", body: `{"name":"gold","limits":{"max_parallel_calls":5}}`, want: 201},
	"GET /v1/plans/{name}": {target: "/v1/plans/standard", want: 200},
	"PUT /v1/plans/{name}": {target: "/v1/plans/gold", body: `{"limits":{"max_parallel_calls":5}}`, want: 201},
	"DELETE /v1/plans/{name}": {target: "/v1/plans/spare", want: 204, setup: func(b *controltest.Env) {
		_, err := b.Svc.PutPlan(ctx, "test", configs.Plan{Name: "spare"}, true)
		mustOK(err)
	}},
	"GET /v1/tenants": {target: "/v1/tenants", want: 200},
	"POST /v1/tenants": {target: "/v1/tenants", want: 201,
		body: `{"name":"acme","plan":"standard","carrier":"carrier","sources":["10.1.0.0/24"]}`},
	"GET /v1/tenants/{name}": {target: "/v1/tenants/demo", want: 200},
	"PUT /v1/tenants/{name}": {target: "/v1/tenants/demo", want: 200,
		body: `{"plan":"standard","carrier":"carrier","sources":["127.0.0.10/32"],"dids":["+1555"],"pbx":{"address":"127.0.0.10:5070"}}`},
	"DELETE /v1/tenants/{name}": {target: "/v1/tenants/idle", want: 204, setup: func(b *controltest.Env) {
		_, err := b.Svc.PutTenant(ctx, "test", configs.Tenant{Name: "idle", Plan: "standard", Carrier: "carrier", Sources: []string{"10.9.0.1/32"}}, true)
		mustOK(err)
	}},
	"GET /v1/tenants/{name}/limits":          {target: "/v1/tenants/demo/limits", want: 200},
	"PATCH /v1/tenants/{name}/limits":        {target: "/v1/tenants/demo/limits", body: `{"max_parallel_calls":5}`, want: 200},
	"POST /v1/tenants/{name}/reset":          {target: "/v1/tenants/demo/reset", want: 200},
	"GET /v1/tenants/{name}/roles":           {target: "/v1/tenants/demo/roles", want: 200},
	"PUT /v1/tenants/{name}/roles":           {target: "/v1/tenants/demo/roles", body: `[]`, want: 200},
	"PUT /v1/tenants/{name}/roles/{role}":    {target: "/v1/tenants/demo/roles/sales", body: `{"max_parallel_calls":1,"users":["200"]}`, want: 201},
	"DELETE /v1/tenants/{name}/roles/{role}": {target: "/v1/tenants/demo/roles/reception", want: 204},
	"GET /v1/tenants/{name}/usage":           {target: "/v1/tenants/demo/usage", want: 200},
	"POST /v1/tenants/{name}/suspend":        {target: "/v1/tenants/demo/suspend", body: `{"reason":"unpaid"}`, want: 200},
	"POST /v1/tenants/{name}/resume":         {target: "/v1/tenants/demo/resume", want: 200},
	"GET /v1/calls":                          {target: "/v1/calls?tenant=demo", want: 200},
	"DELETE /v1/calls/{id}":                  {target: "/v1/calls/" + url.PathEscape(controltest.Call1ID), want: 204},
	"GET /v1/audit":                          {target: "/v1/audit?limit=10", want: 200},
	"GET /v1/blocked":                        {target: "/v1/blocked", want: 200},
	"DELETE /v1/blocked/{ip}":                {target: "/v1/blocked/" + controltest.BlockedIP4, want: 204},
	"GET /v1/cluster":                        {target: "/v1/cluster?tenant=demo", want: 200},
	"POST /v1/cluster/nodes/{node}/release":  {target: "/v1/cluster/nodes/gw-b/release", want: 200},
	"GET /v1/tokens":                         {target: "/v1/tokens", want: 200},
	"POST /v1/tokens":                        {target: "/v1/tokens", body: `{"name":"ci","scope":"read"}`, want: 201},
	"DELETE /v1/tokens/{name}":               {target: "/v1/tokens/viewer", want: 204},
	"POST /v1/apply": {target: "/v1/apply?dry_run=true", want: 200,
		body: `{"plans":[{"name":"standard","limits":{"max_parallel_calls":20}}],"tenants":[]}`},
}

// TestRouteScopes: every authenticated route answers its success status to
// the scopes allowed, 403 to the others and 401 without a valid token.
func TestRouteScopes(t *testing.T) {
	expected := map[string]api.Scope{
		"GET /v1/whoami": api.ScopeRead, "GET /v1/events": api.ScopeRead,
		"GET /v1/plans": api.ScopeRead, "POST /v1/plans": api.ScopeSettings,
		"GET /v1/plans/{name}": api.ScopeRead, "PUT /v1/plans/{name}": api.ScopeSettings, "DELETE /v1/plans/{name}": api.ScopeSettings,
		"GET /v1/tenants": api.ScopeRead, "POST /v1/tenants": api.ScopeAdmin,
		"GET /v1/tenants/{name}": api.ScopeRead, "PUT /v1/tenants/{name}": api.ScopeAdmin, "DELETE /v1/tenants/{name}": api.ScopeAdmin,
		"GET /v1/tenants/{name}/limits": api.ScopeRead, "PATCH /v1/tenants/{name}/limits": api.ScopeSettings,
		"POST /v1/tenants/{name}/reset": api.ScopeSettings,
		"GET /v1/tenants/{name}/roles":  api.ScopeRead, "PUT /v1/tenants/{name}/roles": api.ScopeSettings,
		"PUT /v1/tenants/{name}/roles/{role}": api.ScopeSettings, "DELETE /v1/tenants/{name}/roles/{role}": api.ScopeSettings,
		"GET /v1/tenants/{name}/usage":    api.ScopeRead,
		"POST /v1/tenants/{name}/suspend": api.ScopeAdmin, "POST /v1/tenants/{name}/resume": api.ScopeAdmin,
		"GET /v1/calls": api.ScopeRead, "DELETE /v1/calls/{id}": api.ScopeAdmin,
		"GET /v1/blocked": api.ScopeRead, "DELETE /v1/blocked/{ip}": api.ScopeAdmin,
		"GET /v1/cluster": api.ScopeRead, "POST /v1/cluster/nodes/{node}/release": api.ScopeAdmin,
		"GET /v1/audit":  api.ScopeBilling,
		"GET /v1/tokens": api.ScopeAdmin, "POST /v1/tokens": api.ScopeAdmin, "DELETE /v1/tokens/{name}": api.ScopeAdmin,
		"POST /v1/apply": api.ScopeAdmin,
	}
	seen := map[string]bool{}
	for _, rt := range api.RouteTable() {
		key := rt.Method + " " + rt.Path
		if rt.Scope == "" {
			continue
		}
		seen[key] = true
		if want, ok := expected[key]; !ok || want != rt.Scope {
			t.Errorf("%s needs scope %q, want %q", key, rt.Scope, want)
		}
		c, ok := routeCases[key]
		if !ok {
			t.Errorf("%s: no test case", key)
			continue
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			for _, sc := range allScopes {
				e := newEnv(t)
				if c.setup != nil {
					c.setup(e.b)
				}
				w := e.do(t, rt.Method, c.target, tokens[sc], c.body)
				if api.ScopeAllows(sc, rt.Scope) {
					if w.Code != c.want {
						t.Errorf("scope %s: status %d, want %d: %s", sc, w.Code, c.want, w.Body)
					}
					if w.Code != http.StatusNoContent && w.Header().Get("Content-Type") != "application/json" {
						t.Errorf("scope %s: Content-Type %q", sc, w.Header().Get("Content-Type"))
					}
					if w.Code == http.StatusNoContent && w.Body.Len() != 0 {
						t.Errorf("scope %s: 204 with a body %q", sc, w.Body)
					}
				} else {
					if w.Code != http.StatusForbidden || errorOf(t, w).Code != "forbidden" {
						t.Errorf("scope %s: status %d, want 403: %s", sc, w.Code, w.Body)
					}
				}
			}
			e := newEnv(t)
			for name, tok := range map[string]string{"no token": "", "bad token": "not-a-token"} {
				w := e.do(t, rt.Method, c.target, tok, c.body)
				if w.Code != http.StatusUnauthorized || errorOf(t, w).Code != "unauthorized" {
					t.Errorf("%s: status %d, want 401: %s", name, w.Code, w.Body)
				}
				if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q", name, h)
				}
			}
			// A scheme other than Bearer is not a token.
			req := httptest.NewRequest(rt.Method, c.target, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Basic "+controltest.AdminToken)
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, req)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("Basic scheme: status %d, want 401", w.Code)
			}
		})
	}
	for key := range expected {
		if !seen[key] {
			t.Errorf("route %s missing from the table", key)
		}
	}
}

func TestScopeHierarchy(t *testing.T) {
	want := map[api.Scope][]api.Scope{ // need → granted
		api.ScopeAdmin:    {api.ScopeAdmin},
		api.ScopeSettings: {api.ScopeAdmin, api.ScopeSettings},
		api.ScopeBilling:  {api.ScopeAdmin, api.ScopeBilling},
		api.ScopeRead:     {api.ScopeAdmin, api.ScopeSettings, api.ScopeBilling, api.ScopeRead},
	}
	for need, granted := range want {
		for _, have := range allScopes {
			g := false
			for _, s := range granted {
				g = g || s == have
			}
			if api.ScopeAllows(have, need) != g {
				t.Errorf("ScopeAllows(%s, %s) = %v, want %v", have, need, !g, g)
			}
		}
	}
	if api.ScopeAllows("root", api.ScopeRead) {
		t.Error("an invalid scope reads")
	}
}

func TestPublicEndpoints(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "GET", "/healthz", "", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "GET", "/readyz", "", "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"status":"ready"}` {
		t.Errorf("readyz: %d %s", w.Code, w.Body)
	}
	e.b.Edge.SetReady(errors.New("sip: draining"))
	w = e.do(t, "GET", "/readyz", "", "")
	if w.Code != 503 {
		t.Fatalf("readyz not ready: %d %s", w.Code, w.Body)
	}
	if d := errorOf(t, w); d.Code != "not_ready" || d.Message != "not ready: the SIP gateway is draining" {
		t.Errorf("readyz not ready: %+v", d)
	}
	e.b.Edge.SetReady(nil)
	if w := e.do(t, "GET", "/readyz", "", ""); w.Code != 200 {
		t.Errorf("readyz again: %d", w.Code)
	}
	for _, p := range []string{"/metrics", "/v1/openapi.json"} {
		if w := e.do(t, "GET", p, "", ""); w.Code != 200 {
			t.Errorf("%s without a token: %d", p, w.Code)
		}
	}
	// HEAD works where GET does.
	if w := e.do(t, "HEAD", "/healthz", "", ""); w.Code != 200 {
		t.Errorf("HEAD /healthz: %d", w.Code)
	}
}

// TestBadPayloads: 400 (or 413/415) with the offending field named.
func TestBadPayloads(t *testing.T) {
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	cases := []struct {
		name, method, target, body string
		ctype                      string
		status                     int
		field                      string
		msg                        string // substring of the message
	}{
		{"unknown field", "POST", "/v1/plans", `{"name":"x","foo":1}`, "", 400, "foo", `unknown field "foo"`},
		{"nested unknown field", "POST", "/v1/plans", `{"name":"x","limits":{"bogus":1}}`, "", 400, "limits.bogus", "unknown field"},
		{"wrong type", "POST", "/v1/plans", `{"name":"x","limits":{"max_parallel_calls":"ten"}}`, "", 400, "limits.max_parallel_calls", "expected an integer"},
		{"wrong type in list", "POST", "/v1/plans", `{"name":"x","rates":[{"per_minute":1},{"per_minute":"abc"}]}`, "", 400, "rates[1].per_minute", "invalid amount"},
		{"bad increments", "POST", "/v1/plans", `{"name":"x","rates":[{"per_minute":1,"increments":"60"}]}`, "", 400, "rates[0].increments", "increments"},
		{"not an object", "POST", "/v1/plans", `[1]`, "", 400, "", "expected an object"},
		{"empty body", "POST", "/v1/plans", ``, "", 400, "", "body required"},
		{"malformed", "POST", "/v1/plans", `{"name":`, "", 400, "", "malformed JSON"},
		{"trailing data", "POST", "/v1/plans", `{"name":"a"} {"name":"b"}`, "", 400, "", "after the JSON value"},
		{"too large", "POST", "/v1/plans", big, "", 413, "", "larger than"},
		{"plan name required", "POST", "/v1/plans", `{"name":""}`, "", 400, "name", ""},
		{"plan count below -1", "POST", "/v1/plans", `{"name":"x","limits":{"max_monthly_minutes":-5}}`, "", 400, "limits.max_monthly_minutes", "-5"},
		{"put name mismatch", "PUT", "/v1/plans/gold", `{"name":"silver"}`, "", 400, "name", "does not match"},
		{"tenant plan unknown", "POST", "/v1/tenants", `{"name":"t2","plan":"nope","carrier":"c","sources":["10.0.0.1/32"]}`, "", 400, "plan", "nope"},
		{"tenant status is not input", "POST", "/v1/tenants", `{"name":"t2","status":{}}`, "", 400, "status", "unknown field"},
		{"tenant role user type", "POST", "/v1/tenants", `{"name":"t","roles":[{"name":"r","users":["1",2]}]}`, "", 400, "roles[0].users[1]", "expected a string"},
		{"tenant put mismatch", "PUT", "/v1/tenants/demo", `{"name":"other"}`, "", 400, "name", "does not match"},
		{"patch unknown field", "PATCH", "/v1/tenants/demo/limits", `{"foo":1}`, "", 400, "foo", "unknown field"},
		{"patch wrong type", "PATCH", "/v1/tenants/demo/limits", `{"max_parallel_calls":"x"}`, "", 400, "max_parallel_calls", "expected an integer (-1 unlimited, 0 blocked, N cap) or null"},
		{"patch fraction", "PATCH", "/v1/tenants/demo/limits", `{"max_parallel_inbound":1.5}`, "", 400, "max_parallel_inbound", "expected an integer"},
		{"patch below -1", "PATCH", "/v1/tenants/demo/limits", `{"max_calls_per_second":-7}`, "", 400, "max_calls_per_second", "-7"},
		{"patch bad money", "PATCH", "/v1/tenants/demo/limits", `{"monthly_spend_limit":"abc"}`, "", 400, "monthly_spend_limit", "invalid amount"},
		{"patch money type", "PATCH", "/v1/tenants/demo/limits", `{"monthly_spend_limit":true}`, "", 400, "monthly_spend_limit", "got a boolean"},
		{"patch money negative", "PATCH", "/v1/tenants/demo/limits", `{"monthly_spend_limit":-3}`, "", 400, "monthly_spend_limit", "negative"},
		{"patch bool", "PATCH", "/v1/tenants/demo/limits", `{"auto_suspend":"yes"}`, "", 400, "auto_suspend", "true, false or null"},
		{"patch pct", "PATCH", "/v1/tenants/demo/limits", `{"alert_threshold_pct":"80%"}`, "", 400, "alert_threshold_pct", "percentage"},
		{"patch destinations type", "PATCH", "/v1/tenants/demo/limits", `{"destinations":["premium"]}`, "", 400, "destinations", "object"},
		{"patch destination value", "PATCH", "/v1/tenants/demo/limits", `{"destinations":{"premium":1}}`, "", 400, "destinations.premium", "true (enabled)"},
		// Rules of the control service that the removed fake backend
		// lacked: upper bounds, declared destination classes, carriers
		// and sources owned by one party.
		{"patch minutes above the bound", "PATCH", "/v1/tenants/demo/limits", `{"max_monthly_minutes":100000001}`, "", 400, "max_monthly_minutes", "at most 100000000"},
		{"patch cps above the bound", "PATCH", "/v1/tenants/demo/limits", `{"max_calls_per_second":1000000001}`, "", 400, "max_calls_per_second", "1000000000"},
		{"patch cps_burst zero", "PATCH", "/v1/tenants/demo/limits", `{"cps_burst":0}`, "", 400, "cps_burst", "1..1000000000"},
		{"patch pct above 100", "PATCH", "/v1/tenants/demo/limits", `{"alert_threshold_pct":101}`, "", 400, "alert_threshold_pct", "1..100"},
		{"patch unknown class", "PATCH", "/v1/tenants/demo/limits", `{"destinations":{"nope":true}}`, "", 400, "destinations.nope", `unknown destination class "nope"`},
		{"plan unknown class", "POST", "/v1/plans", `{"name":"x","limits":{"destinations":{"nope":false}}}`, "", 400, "limits.destinations.nope", "unknown destination class"},
		{"tenant unknown carrier", "POST", "/v1/tenants", `{"name":"t2","plan":"standard","carrier":"nope","sources":["10.0.0.1/32"]}`, "", 400, "carrier", `unknown carrier "nope"`},
		{"tenant source overlaps", "POST", "/v1/tenants", `{"name":"t2","plan":"standard","carrier":"carrier","sources":["127.0.0.10/32"]}`, "", 400, "sources[0]", "overlaps"},
		{"patch not an object", "PATCH", "/v1/tenants/demo/limits", `[]`, "", 400, "", "JSON object"},
		{"patch null", "PATCH", "/v1/tenants/demo/limits", `null`, "", 400, "", "JSON object"},
		{"patch malformed", "PATCH", "/v1/tenants/demo/limits", `{"max_parallel_calls":}`, "", 400, "", "malformed JSON"},
		{"patch empty", "PATCH", "/v1/tenants/demo/limits", ``, "", 400, "", "body required"},
		{"patch content type", "PATCH", "/v1/tenants/demo/limits", `{"max_parallel_calls":1}`, "text/plain", 415, "", "Content-Type"},
		{"roles not a list", "PUT", "/v1/tenants/demo/roles", `{}`, "", 400, "", "expected an array"},
		{"roles null", "PUT", "/v1/tenants/demo/roles", `null`, "", 400, "", "got null"},
		{"roles unknown field", "PUT", "/v1/tenants/demo/roles", `[{"name":"a"},{"name":"b","bogus":1}]`, "", 400, "[1].bogus", "unknown field"},
		{"roles duplicate", "PUT", "/v1/tenants/demo/roles", `[{"name":"a"},{"name":"a"}]`, "", 400, "[1].name", "duplicate"},
		{"role name mismatch", "PUT", "/v1/tenants/demo/roles/x", `{"name":"y"}`, "", 400, "name", "does not match"},
		{"role count", "PUT", "/v1/tenants/demo/roles/x", `{"max_parallel_calls":-9}`, "", 400, "max_parallel_calls", ""},
		{"suspend without reason", "POST", "/v1/tenants/demo/suspend", `{}`, "", 400, "reason", "required"},
		{"suspend blank reason", "POST", "/v1/tenants/demo/suspend", `{"reason":"  "}`, "", 400, "reason", "required"},
		{"suspend without body", "POST", "/v1/tenants/demo/suspend", ``, "", 400, "reason", "required"},
		{"suspend reason type", "POST", "/v1/tenants/demo/suspend", `{"reason":5}`, "", 400, "reason", "expected a string"},
		{"resume unknown field", "POST", "/v1/tenants/demo/resume", `{"why":"x"}`, "", 400, "why", "unknown field"},
		{"token scope", "POST", "/v1/tokens", `{"name":"x","scope":"god"}`, "", 400, "scope", "god"},
		{"token scope missing", "POST", "/v1/tokens", `{"name":"x"}`, "", 400, "scope", ""},
		{"token name missing", "POST", "/v1/tokens", `{"scope":"read"}`, "", 400, "name", "required"},
		{"token name syntax", "POST", "/v1/tokens", `{"name":"a b","scope":"read"}`, "", 400, "name", "letters"},
		{"audit from", "GET", "/v1/audit?from=yesterday", ``, "", 400, "from", "RFC 3339"},
		{"audit to", "GET", "/v1/audit?to=2026-13-01", ``, "", 400, "to", "RFC 3339"},
		{"audit to before from", "GET", "/v1/audit?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", ``, "", 400, "to", "before"},
		{"audit limit zero", "GET", "/v1/audit?limit=0", ``, "", 400, "limit", "1..1000"},
		{"audit limit text", "GET", "/v1/audit?limit=ten", ``, "", 400, "limit", ""},
		{"audit limit big", "GET", "/v1/audit?limit=5000", ``, "", 400, "limit", ""},
		{"unknown query parameter", "GET", "/v1/plans?verbose=1", ``, "", 400, "verbose", "unknown query parameter"},
		{"calls unknown query", "GET", "/v1/calls?tenantt=demo", ``, "", 400, "tenantt", "unknown query parameter"},
		{"apply dry_run", "POST", "/v1/apply?dry_run=maybe", `{}`, "", 400, "dry_run", "true or false"},
		{"apply plan name", "POST", "/v1/apply", `{"plans":[{"name":"ok"},{"name":""}]}`, "", 400, "plans[1].name", ""},
		{"apply tenant plan", "POST", "/v1/apply", `{"tenants":[{"name":"t","plan":"nope","carrier":"c","sources":["10.0.0.1/32"]}]}`, "", 400, "tenants[0].plan", "nope"},
		{"apply plans type", "POST", "/v1/apply", `{"plans":{}}`, "", 400, "plans", "expected an array"},
		{"apply nested unknown", "POST", "/v1/apply", `{"tenants":[{"name":"t","pbx":{"adress":"x"}}]}`, "", 400, "tenants[0].pbx.adress", "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			var hdr []string
			if c.ctype != "" {
				hdr = []string{"Content-Type", c.ctype}
			}
			w := e.do(t, c.method, c.target, controltest.AdminToken, c.body, hdr...)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			d := errorOf(t, w)
			if d.Code != "invalid" || d.Field != c.field || !strings.Contains(d.Message, c.msg) {
				t.Errorf("error %+v, want code invalid, field %q, message with %q", d, c.field, c.msg)
			}
		})
	}
}

// TestErrorMapping: Backend errors to statuses; unknown paths and methods.
func TestErrorMapping(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, target, body string
		status               int
		code                 string
	}{
		{"GET", "/v1/plans/nope", "", 404, "not_found"},
		{"DELETE", "/v1/plans/standard", "", 409, "conflict"}, // used by demo
		{"POST", "/v1/plans", `{"name":"standard"}`, 409, "conflict"},
		{"GET", "/v1/tenants/nope", "", 404, "not_found"},
		{"GET", "/v1/tenants/nope/limits", "", 404, "not_found"},
		{"PATCH", "/v1/tenants/nope/limits", `{}`, 404, "not_found"},
		{"GET", "/v1/tenants/nope/usage", "", 404, "not_found"},
		{"DELETE", "/v1/tenants/demo", "", 409, "conflict"}, // active calls
		{"POST", "/v1/tenants", `{"name":"demo","plan":"standard","carrier":"c","sources":["10.0.0.1/32"]}`, 409, "conflict"},
		{"DELETE", "/v1/tenants/demo/roles/nope", "", 404, "not_found"},
		{"POST", "/v1/tenants/nope/suspend", `{"reason":"x"}`, 404, "not_found"},
		{"GET", "/v1/calls?tenant=nope", "", 404, "not_found"},
		{"DELETE", "/v1/calls/nope", "", 404, "not_found"},
		{"DELETE", "/v1/blocked/192.0.2.99", "", 404, "not_found"},
		{"DELETE", "/v1/blocked/nope", "", 400, "invalid"},
		{"POST", "/v1/cluster/nodes/gw-a/release", "", 409, "conflict"},
		{"POST", "/v1/cluster/nodes/gw-z/release", "", 404, "not_found"},
		{"DELETE", "/v1/tokens/nope", "", 404, "not_found"},
		{"POST", "/v1/tokens", `{"name":"root","scope":"read"}`, 409, "conflict"},
		{"GET", "/v1/nothing", "", 404, "not_found"},
		{"GET", "/", "", 404, "not_found"},
		{"GET", "/v1/plans/", "", 404, "not_found"},
		{"POST", "/v1/plans/standard", `{}`, 405, "method_not_allowed"},
		{"PATCH", "/v1/plans", `{}`, 405, "method_not_allowed"},
		{"DELETE", "/healthz", "", 405, "method_not_allowed"},
		{"POST", "/v1/openapi.json", "", 405, "method_not_allowed"},
	}
	for _, c := range cases {
		w := e.do(t, c.method, c.target, controltest.AdminToken, c.body)
		if w.Code != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.target, w.Code, c.status, w.Body)
			continue
		}
		if d := errorOf(t, w); d.Code != c.code {
			t.Errorf("%s %s: code %q, want %q", c.method, c.target, d.Code, c.code)
		}
		if c.status == 405 && w.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.target)
		}
	}
	if a := e.do(t, "POST", "/v1/plans/standard", controltest.AdminToken, "").Header().Get("Allow"); a != "GET, PUT, DELETE, HEAD" {
		t.Errorf("Allow = %q", a)
	}
}

// failing wraps a Backend with errors injected.
type failing struct {
	api.Backend
	err error
}

func (f failing) ListPlans(context.Context) ([]configs.Plan, error) { return nil, f.err }

func (f failing) GetTenant(context.Context, string) (api.TenantView, error) {
	panic("boom")
}

func TestInternalErrors(t *testing.T) {
	b := controltest.NewEnv(t)
	e := newEnvWith(t, b, failing{Backend: b.Svc, err: errors.New("badger: /var/lib/secret-path corrupted")})
	w := e.do(t, "GET", "/v1/plans", controltest.ReadToken, "")
	if w.Code != 500 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	d := errorOf(t, w)
	if d.Code != "internal" || strings.Contains(d.Message, "secret-path") {
		t.Errorf("internal error leaks or wrong code: %+v", d)
	}
	if !strings.Contains(e.logs.String(), "secret-path") {
		t.Errorf("internal error not logged: %s", e.logs)
	}
	w = e.do(t, "GET", "/v1/tenants/demo", controltest.ReadToken, "")
	if w.Code != 500 || errorOf(t, w).Code != "internal" {
		t.Errorf("panic: status %d %s", w.Code, w.Body)
	}
	if !strings.Contains(e.logs.String(), "boom") {
		t.Errorf("panic not logged")
	}

	e = newEnvWith(t, b, failing{Backend: b.Svc, err: fmt.Errorf("store: %w", api.ErrNotReady)})
	if w := e.do(t, "GET", "/v1/plans", controltest.ReadToken, ""); w.Code != 503 || errorOf(t, w).Code != "not_ready" {
		t.Errorf("ErrNotReady: %d %s", w.Code, w.Body)
	}
	e = newEnvWith(t, b, failing{Backend: b.Svc, err: fmt.Errorf("wrapped: %w", &api.FieldError{Field: "x.y", Message: "bad"})})
	w = e.do(t, "GET", "/v1/plans", controltest.ReadToken, "")
	if d := errorOf(t, w); w.Code != 400 || d.Field != "x.y" || d.Code != "invalid" {
		t.Errorf("wrapped FieldError: %d %s", w.Code, w.Body)
	}
}

// TestPatchLimits: set, clear with null, merge destinations; verified with
// GET.
func TestPatchLimits(t *testing.T) {
	e := newEnv(t)
	limits := func() api.LimitsView {
		t.Helper()
		w := e.do(t, "GET", "/v1/tenants/demo/limits", controltest.ReadToken, "")
		if w.Code != 200 {
			t.Fatalf("GET limits: %d %s", w.Code, w.Body)
		}
		return decodeInto[api.LimitsView](t, w)
	}
	patch := func(body string) api.LimitsView {
		t.Helper()
		w := e.do(t, "PATCH", "/v1/tenants/demo/limits", controltest.SettingsToken, body, "Content-Type", "application/merge-patch+json")
		if w.Code != 200 {
			t.Fatalf("PATCH %s: %d %s", body, w.Code, w.Body)
		}
		return decodeInto[api.LimitsView](t, w)
	}
	l := limits()
	if l.Overrides.MaxParallelCalls != nil || *l.Effective.MaxParallelCalls != 10 {
		t.Fatalf("seed limits: %+v", l)
	}
	got := patch(`{"max_parallel_calls":5,"monthly_spend_limit":"12.5","auto_suspend":true,"destinations":{"premium":false,"international":true}}`)
	l = limits()
	if !jsonEqual(got, l) {
		t.Errorf("PATCH answer %+v differs from GET %+v", got, l)
	}
	if *l.Overrides.MaxParallelCalls != 5 || *l.Effective.MaxParallelCalls != 5 ||
		*l.Overrides.MonthlySpendLimit != configs.MustMoney("12.5") || !*l.Effective.AutoSuspend ||
		len(l.Overrides.Destinations) != 2 || l.Overrides.Destinations["premium"] {
		t.Errorf("after set: %s", mustJSON(l))
	}
	// Money as a number.
	patch(`{"monthly_spend_limit":99.95}`)
	if l = limits(); *l.Overrides.MonthlySpendLimit != configs.MustMoney("99.95") {
		t.Errorf("money number: %s", mustJSON(l.Overrides))
	}
	// null clears one override (inherit the plan); absent fields stay.
	patch(`{"max_parallel_calls":null,"destinations":{"premium":null}}`)
	l = limits()
	if l.Overrides.MaxParallelCalls != nil || *l.Effective.MaxParallelCalls != 10 {
		t.Errorf("null did not clear max_parallel_calls: %s", mustJSON(l))
	}
	if l.Overrides.AutoSuspend == nil || len(l.Overrides.Destinations) != 1 || !l.Overrides.Destinations["international"] {
		t.Errorf("absent fields changed or class not cleared: %s", mustJSON(l.Overrides))
	}
	patch(`{"destinations":null,"auto_suspend":null,"monthly_spend_limit":null}`)
	l = limits()
	if l.Overrides.Destinations != nil || l.Overrides.AutoSuspend != nil || l.Overrides.MonthlySpendLimit != nil ||
		*l.Effective.MonthlySpendLimit != configs.MustMoney("500") {
		t.Errorf("after clearing: %s", mustJSON(l))
	}
	// An empty patch changes nothing; application/json works too.
	w := e.do(t, "PATCH", "/v1/tenants/demo/limits", controltest.SettingsToken, `{}`)
	if w.Code != 200 {
		t.Errorf("empty patch: %d %s", w.Code, w.Body)
	}
	// Reset removes every override.
	patch(`{"max_parallel_calls":3}`)
	w = e.do(t, "POST", "/v1/tenants/demo/reset", controltest.SettingsToken, "")
	if l := decodeInto[api.LimitsView](t, w); w.Code != 200 || l.Overrides.MaxParallelCalls != nil {
		t.Errorf("reset: %d %s", w.Code, w.Body)
	}
	// The audit log names the actor.
	entries := e.b.AuditLog(t)
	last := entries[len(entries)-1]
	if last.Actor != "ops" || last.Action != "limits.reset" {
		t.Errorf("last audit entry %+v", last)
	}
}

// TestCreateReplace: POST/PUT statuses, Location and bodies.
func TestCreateReplace(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "POST", "/v1/plans", controltest.SettingsToken, `{"name":"gold","rates":[{"prefix":"+44","per_minute":"0.02"}]}`)
	if w.Code != 201 || w.Header().Get("Location") != "/v1/plans/gold" {
		t.Fatalf("create: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	p := decodeInto[configs.Plan](t, w)
	if p.Name != "gold" || len(p.Rates) != 1 || p.Rates[0].Increments.String() != "60/60" {
		t.Errorf("created plan %s", mustJSON(p))
	}
	w = e.do(t, "PUT", "/v1/plans/gold", controltest.SettingsToken, `{"name":"gold","limits":{"max_parallel_calls":7}}`)
	if w.Code != 200 || *decodeInto[configs.Plan](t, w).Limits.MaxParallelCalls != 7 {
		t.Errorf("replace: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "PUT", "/v1/tenants/demo/roles/reception", controltest.SettingsToken, `{"max_parallel_calls":4,"users":["100"]}`)
	if r := decodeInto[configs.Role](t, w); w.Code != 200 || r.Name != "reception" || *r.MaxParallelCalls != 4 {
		t.Errorf("replace role: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "POST", "/v1/tokens", controltest.AdminToken, `{"name":"ci","scope":"settings"}`)
	nt := decodeInto[api.NewToken](t, w)
	if w.Code != 201 || nt.Token == "" || nt.Scope != api.ScopeSettings {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	// The new token works with its scope.
	if w := e.do(t, "PATCH", "/v1/tenants/demo/limits", nt.Token, `{"max_parallel_calls":1}`); w.Code != 200 {
		t.Errorf("new token: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "GET", "/v1/audit", nt.Token, ""); w.Code != 403 {
		t.Errorf("settings token reads the audit log: %d", w.Code)
	}
	// Deleting it revokes it.
	if w := e.do(t, "DELETE", "/v1/tokens/ci", controltest.AdminToken, ""); w.Code != 204 {
		t.Fatalf("delete token: %d", w.Code)
	}
	if w := e.do(t, "GET", "/v1/plans", nt.Token, ""); w.Code != 401 {
		t.Errorf("deleted token: %d", w.Code)
	}
	// Suspend and resume.
	w = e.do(t, "POST", "/v1/tenants/demo/suspend", controltest.AdminToken, `{"reason":"unpaid invoice"}`)
	if st := decodeInto[api.TenantStatus](t, w); w.Code != 200 || !st.Suspended || st.SuspendReason != "unpaid invoice" || st.ActiveCalls != 2 {
		t.Errorf("suspend: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "POST", "/v1/tenants/demo/resume", controltest.AdminToken, `{"reason":"paid"}`)
	if st := decodeInto[api.TenantStatus](t, w); w.Code != 200 || st.Suspended {
		t.Errorf("resume: %d %s", w.Code, w.Body)
	}
	// Apply: dry run changes nothing, then for real.
	doc := `{"plans":[{"name":"gold","limits":{"max_parallel_calls":8}},{"name":"new"}],"tenants":[]}`
	w = e.do(t, "POST", "/v1/apply?dry_run=true", controltest.AdminToken, doc)
	res := decodeInto[api.ApplyResult](t, w)
	if w.Code != 200 || !res.DryRun || len(res.Changes) != 2 || res.Changes[0].Op != "update" || res.Changes[1].Op != "create" {
		t.Fatalf("apply dry run: %d %s", w.Code, w.Body)
	}
	if len(res.Changes[0].Diff) != 1 || res.Changes[0].Diff[0] != "limits.max_parallel_calls: 7 -> 8" {
		t.Errorf("diff %q", res.Changes[0].Diff)
	}
	if w := e.do(t, "GET", "/v1/plans/new", controltest.ReadToken, ""); w.Code != 404 {
		t.Errorf("dry run created the plan: %d", w.Code)
	}
	w = e.do(t, "POST", "/v1/apply", controltest.AdminToken, doc)
	if res := decodeInto[api.ApplyResult](t, w); w.Code != 200 || res.DryRun {
		t.Fatalf("apply: %d %s", w.Code, w.Body)
	}
	if w := e.do(t, "GET", "/v1/plans/new", controltest.ReadToken, ""); w.Code != 200 {
		t.Errorf("apply did not create the plan: %d", w.Code)
	}
	w = e.do(t, "POST", "/v1/apply", controltest.AdminToken, doc)
	if res := decodeInto[api.ApplyResult](t, w); res.Changes[0].Op != "unchanged" || res.Changes[1].Op != "unchanged" {
		t.Errorf("apply twice: %s", w.Body)
	}
}

// TestHangupIDs: call ids with ';', '@' and '/' reach the backend
// unescaped, whichever way they are written.
func TestHangupIDs(t *testing.T) {
	e := newEnv(t)
	e.b.Edge.AddCall(callrec.Call{ID: "odd/id?x=1;tag#1", CallID: "odd/id?x=1", Tenant: "demo"})
	for _, target := range []string{
		"/v1/calls/a84b4c76e66710@pc33.example.com;1928301774", // raw ; and @
		"/v1/calls/f81d4fae-7dec-11d0%4010.0.0.7%3B9fxced76sl", // escaped
		"/v1/calls/" + url.PathEscape("odd/id?x=1;tag#1"),      // escaped / ? #
	} {
		if w := e.do(t, "DELETE", target, controltest.AdminToken, ""); w.Code != 204 {
			t.Errorf("DELETE %s: %d %s", target, w.Code, w.Body)
		}
	}
	w := e.do(t, "GET", "/v1/calls", controltest.ReadToken, "")
	if calls := decodeInto[[]api.CallView](t, w); len(calls) != 0 {
		t.Errorf("calls left: %s", w.Body)
	}
	// The edge got every hang-up by its admission id, and the engine no
	// longer counts the two seeded calls.
	want := []string{controltest.Call1ID, controltest.Call2ID, "odd/id?x=1;tag#1"}
	if got := e.b.Edge.HungUp(); !slices.Equal(got, want) {
		t.Errorf("edge hung up %q, want %q", got, want)
	}
	if n := e.b.Svc.ActiveByTenant()["demo"]; n != 0 {
		t.Errorf("demo has %d active calls after the hang-ups", n)
	}
	hangups := 0
	for _, a := range e.b.AuditLog(t) {
		if a.Action == "call.hangup" && a.Actor == "root" {
			hangups++
		}
	}
	if hangups != 3 {
		t.Errorf("%d call.hangup audit entries, want 3", hangups)
	}
	if w := e.do(t, "DELETE", "/v1/calls/"+url.PathEscape(controltest.Call1ID), controltest.AdminToken, ""); w.Code != 404 {
		t.Errorf("second hangup: %d", w.Code)
	}
}

// TestListsAreArrays: empty lists are [] (never null).
func TestListsAreArrays(t *testing.T) {
	e := newEnv(t)
	e.do(t, "PUT", "/v1/tenants/demo/roles", controltest.SettingsToken, `[]`)
	for _, target := range []string{"/v1/tenants/demo/roles", "/v1/audit?tenant=nobody", "/v1/calls?tenant=demo"} {
		if target == "/v1/calls?tenant=demo" {
			e.do(t, "DELETE", "/v1/calls/"+url.PathEscape(controltest.Call1ID), controltest.AdminToken, "")
			e.do(t, "DELETE", "/v1/calls/"+url.PathEscape(controltest.Call2ID), controltest.AdminToken, "")
		}
		w := e.do(t, "GET", target, controltest.AdminToken, "")
		if strings.TrimSpace(w.Body.String()) != "[]" {
			t.Errorf("%s: %d %s", target, w.Code, w.Body)
		}
	}
}

func TestAuditQuery(t *testing.T) {
	e := newEnv(t)
	e.do(t, "POST", "/v1/tenants/demo/suspend", controltest.AdminToken, `{"reason":"x"}`)
	e.do(t, "POST", "/v1/plans", controltest.AdminToken, `{"name":"gold"}`)
	w := e.do(t, "GET", "/v1/audit?tenant=demo&from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00%2B00:00&limit=5", controltest.BillingToken, "")
	entries := decodeInto[[]api.AuditEntry](t, w)
	if w.Code != 200 || len(entries) != 1 || entries[0].Action != "tenant.suspend" || entries[0].Actor != "root" || entries[0].Reason != "x" {
		t.Errorf("audit: %d %s", w.Code, w.Body)
	}
	w = e.do(t, "GET", "/v1/audit?limit=2", controltest.AdminToken, "")
	if entries := decodeInto[[]api.AuditEntry](t, w); len(entries) != 2 || entries[0].Action != "plan.create" {
		t.Errorf("audit newest first: %s", w.Body)
	}
}

// TestConcurrentRequests: concurrent PATCHes of different limits of one
// tenant all land (the final state has the last value of each, and the
// audit log an entry per change), while reads of the limits, the metrics
// and the OpenAPI document go on; concurrent suspends and resumes leave a
// status that is the last change's, with one audit entry per change whose
// before is the previous one's after. No request fails.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t)
	const rounds = 10
	// Each writer owns one limit and writes rounds distinct values, the
	// last of which is want.
	writers := []struct {
		field string
		value func(j int) string
		want  string
	}{
		{"max_parallel_calls", func(j int) string { return fmt.Sprint(20 + j) }, "29"},
		{"max_parallel_inbound", func(j int) string { return fmt.Sprint(1 + j) }, "10"},
		{"max_parallel_outbound", func(j int) string { return fmt.Sprint(2 + j) }, "11"},
		{"max_calls_per_second", func(j int) string { return fmt.Sprint(30 + j) }, "39"},
		{"max_monthly_minutes", func(j int) string { return fmt.Sprint(1000 + j) }, "1009"},
		{"monthly_spend_limit", func(j int) string { return fmt.Sprintf(`"%d.5"`, 100+j) }, "109.5"},
		{"alert_threshold_pct", func(j int) string { return fmt.Sprint(50 + j) }, "59"},
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
	)
	check := func(what string, w *httptest.ResponseRecorder, want int) {
		if w.Code != want {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s: %d %s", what, w.Code, w.Body))
			mu.Unlock()
		}
	}
	for _, wr := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				body := fmt.Sprintf(`{%q:%s}`, wr.field, wr.value(j))
				check("PATCH "+body, e.do(t, "PATCH", "/v1/tenants/demo/limits", controltest.SettingsToken, body), 200)
			}
		}()
	}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				switch (i + j) % 3 {
				case 0:
					check("GET limits", e.do(t, "GET", "/v1/tenants/demo/limits", controltest.ReadToken, ""), 200)
				case 1:
					check("GET /metrics", e.do(t, "GET", "/metrics", "", ""), 200)
				case 2:
					check("GET openapi", e.do(t, "GET", "/v1/openapi.json", "", ""), 200)
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(failed), failed[0])
	}
	w := e.do(t, "GET", "/v1/tenants/demo/limits", controltest.ReadToken, "")
	var lv struct {
		Overrides map[string]json.RawMessage `json:"overrides"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &lv); err != nil {
		t.Fatal(err)
	}
	for _, wr := range writers {
		if got := strings.Trim(string(lv.Overrides[wr.field]), `"`); got != wr.want {
			t.Errorf("override %s = %s, want %s (a concurrent PATCH was lost)", wr.field, got, wr.want)
		}
	}
	updates := 0
	for _, a := range e.b.AuditLog(t) {
		if a.Action == "limits.update" {
			updates++
		}
	}
	if updates != len(writers)*rounds {
		t.Errorf("%d limits.update audit entries, want %d", updates, len(writers)*rounds)
	}

	// Suspends and resumes at once.
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				if (i+j)%2 == 0 {
					check("suspend", e.do(t, "POST", "/v1/tenants/demo/suspend", controltest.AdminToken, fmt.Sprintf(`{"reason":"r%d-%d"}`, i, j)), 200)
				} else {
					check("resume", e.do(t, "POST", "/v1/tenants/demo/resume", controltest.AdminToken, ""), 200)
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(failed), failed[0])
	}
	var changes []api.AuditEntry
	for _, a := range e.b.AuditLog(t) {
		if a.Action == "tenant.suspend" || a.Action == "tenant.resume" {
			changes = append(changes, a)
		}
	}
	if len(changes) != 6*rounds {
		t.Fatalf("%d suspend/resume audit entries, want %d", len(changes), 6*rounds)
	}
	var prev *api.TenantStatus
	for i, a := range changes {
		var before, after api.TenantStatus
		if err := json.Unmarshal(a.Before, &before); err != nil {
			t.Fatalf("entry %d before: %v", i, err)
		}
		if err := json.Unmarshal(a.After, &after); err != nil {
			t.Fatalf("entry %d after: %v", i, err)
		}
		if after.Suspended != (a.Action == "tenant.suspend") {
			t.Errorf("entry %d %s: after.suspended = %v", i, a.Action, after.Suspended)
		}
		if prev != nil && before.Suspended != prev.Suspended {
			t.Errorf("entry %d %s: before.suspended = %v, the previous change left %v", i, a.Action, before.Suspended, prev.Suspended)
		}
		prev = &after
	}
	tv := decodeInto[api.TenantView](t, e.do(t, "GET", "/v1/tenants/demo", controltest.ReadToken, ""))
	if last := changes[len(changes)-1]; tv.Status.Suspended != (last.Action == "tenant.suspend") {
		t.Errorf("status suspended = %v after a last %s", tv.Status.Suspended, last.Action)
	}
}

func jsonEqual(a, b any) bool { return mustJSON(a) == mustJSON(b) }

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(data)
}

// TestBlocked: the list, then unblocking by every form of an address; bad
// addresses are a 400 naming the field ip; the unblock is audited.
func TestBlocked(t *testing.T) {
	e := newEnv(t)
	var list []api.BlockedView
	w := e.do(t, "GET", "/v1/blocked", controltest.ReadToken, "")
	if w.Code != 200 {
		t.Fatalf("GET /v1/blocked: %d %s", w.Code, w.Body)
	}
	mustOK(json.Unmarshal(w.Body.Bytes(), &list))
	if len(list) != 2 || list[0].IP != controltest.BlockedIP4 || list[0].Reason != "unknown_rate" || list[0].Dropped != 4127 ||
		list[0].Known || !list[0].Since.Equal(controltest.DefaultNow.Add(-30*time.Second)) || !list[0].Until.Equal(controltest.DefaultNow.Add(30*time.Second)) ||
		list[1].IP != controltest.BlockedIP6 || !list[1].Known || list[1].Rate != 2000 || list[1].Burst != 4000 {
		t.Fatalf("blocked = %+v", list)
	}
	for _, field := range []string{`"ip":`, `"known":`, `"since":`, `"until":`, `"reason":`, `"rate":`, `"burst":`, `"dropped":`} {
		if !strings.Contains(w.Body.String(), field) {
			t.Errorf("the JSON lacks %s: %s", field, w.Body)
		}
	}

	// Bad addresses: 400 naming ip, nothing unblocked.
	for _, bad := range []string{"nope", "203.0.113", "203.0.113.7:5060", url.PathEscape("fe80::1%eth0"), "203.0.113.0%2F24", "%20203.0.113.7"} {
		w := e.do(t, "DELETE", "/v1/blocked/"+bad, controltest.AdminToken, "")
		if w.Code != 400 {
			t.Errorf("DELETE /v1/blocked/%s: %d %s", bad, w.Code, w.Body)
			continue
		}
		if d := errorOf(t, w); d.Code != "invalid" || d.Field != "ip" || !strings.Contains(d.Message, "expected an IPv4 or IPv6 address") {
			t.Errorf("DELETE /v1/blocked/%s: %+v", bad, d)
		}
	}
	// The IPv4-mapped form and an escaped IPv6 address name the blocked
	// sources.
	for _, target := range []string{"/v1/blocked/::ffff:" + controltest.BlockedIP4, "/v1/blocked/" + url.PathEscape("2001:DB8:0:0::BAD")} {
		if w := e.do(t, "DELETE", target, controltest.AdminToken, ""); w.Code != 204 || w.Body.Len() != 0 {
			t.Errorf("DELETE %s: %d %s", target, w.Code, w.Body)
		}
		if w := e.do(t, "DELETE", target, controltest.AdminToken, ""); w.Code != 404 || errorOf(t, w).Code != "not_found" {
			t.Errorf("second DELETE %s: %d %s", target, w.Code, w.Body)
		}
	}
	w = e.do(t, "GET", "/v1/blocked", controltest.ReadToken, "")
	if strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("after unblocking all: %s", w.Body)
	}
	var unblocks []api.AuditEntry
	for _, a := range e.b.AuditLog(t) {
		if a.Action == "source.unblock" {
			unblocks = append(unblocks, a)
		}
	}
	if len(unblocks) != 2 || unblocks[0].Actor != "root" || unblocks[0].Resource != "blocked/"+controltest.BlockedIP4 ||
		unblocks[1].Resource != "blocked/"+controltest.BlockedIP6 || !strings.Contains(string(unblocks[0].Before), `"dropped":4127`) {
		t.Errorf("audit = %+v", unblocks)
	}
}

func TestParseSourceIP(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1", "::ffff:192.0.2.1": "192.0.2.1", "2001:DB8::1": "2001:db8::1"} {
		if a, err := api.ParseSourceIP(in); err != nil || a.String() != want {
			t.Errorf("%s: %v %v", in, a, err)
		}
	}
	for _, in := range []string{"", "x", "192.0.2.1/32", "fe80::1%eth0", "[2001:db8::1]"} {
		var fe *api.FieldError
		if _, err := api.ParseSourceIP(in); !errors.As(err, &fe) || fe.Field != "ip" {
			t.Errorf("%q: %v", in, err)
		}
	}
}
