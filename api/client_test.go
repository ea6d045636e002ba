package api_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control/controltest"
)

// clientRecorded is a request as the server saw it.
type clientRecorded struct {
	method, rawPath, path, rawQuery, contentType, auth string
}

// clientTestServer serves the API on a fresh seeded backend and records
// the requests.
func clientTestServer(t *testing.T) (*httptest.Server, *controltest.Env, func() []clientRecorded) {
	t.Helper()
	b := controltest.NewEnv(t)
	h := api.NewServer(b.Svc, nil, api.ServerOptions{})
	var (
		mu  sync.Mutex
		got []clientRecorded
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, clientRecorded{r.Method, r.URL.EscapedPath(), r.URL.Path, r.URL.RawQuery,
			r.Header.Get("Content-Type"), r.Header.Get("Authorization")})
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, b, func() []clientRecorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]clientRecorded(nil), got...)
	}
}

func clientFor(srv *httptest.Server, token string) *api.Client {
	return api.NewClient(srv.URL, token, srv.Client())
}

func clientPtr[T any](v T) *T { return &v }

// clientMust fails the test on err.
func clientMust(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestClientReads(t *testing.T) {
	srv, _, _ := clientTestServer(t)
	c := clientFor(srv, controltest.AdminToken)
	ctx := context.Background()

	plans, err := c.Plans(ctx)
	clientMust(t, "Plans", err)
	if len(plans) != 1 || plans[0].Name != "standard" || *plans[0].Limits.MaxParallelCalls != 10 {
		t.Errorf("Plans = %+v", plans)
	}
	p, err := c.Plan(ctx, "standard")
	clientMust(t, "Plan", err)
	if len(p.Rates) != 1 || p.Rates[0].PerMinute.String() != "0.01" || p.Rates[0].Increments != (configs.Increments{Initial: 60, Subsequent: 60}) {
		t.Errorf("Plan rates = %+v", p.Rates)
	}
	tenants, err := c.Tenants(ctx)
	clientMust(t, "Tenants", err)
	if len(tenants) != 1 || tenants[0].Name != "demo" || tenants[0].Status.ActiveCalls != 2 {
		t.Errorf("Tenants = %+v", tenants)
	}
	tv, err := c.Tenant(ctx, "demo")
	clientMust(t, "Tenant", err)
	if tv.Plan != "standard" || tv.PBX.Address != "127.0.0.10:5070" || len(tv.Roles) != 1 {
		t.Errorf("Tenant = %+v", tv)
	}
	lv, err := c.Limits(ctx, "demo")
	clientMust(t, "Limits", err)
	if lv.Overrides.MaxParallelCalls != nil || *lv.Effective.MaxParallelCalls != 10 || lv.Effective.MonthlySpendLimit.String() != "500" {
		t.Errorf("Limits = %+v", lv)
	}
	roles, err := c.Roles(ctx, "demo")
	clientMust(t, "Roles", err)
	if len(roles) != 1 || roles[0].Name != "reception" || *roles[0].MaxParallelCalls != 2 {
		t.Errorf("Roles = %+v", roles)
	}
	u, err := c.Usage(ctx, "demo")
	clientMust(t, "Usage", err)
	// 0.43 settled and the answered call's two started increments.
	if len(u.Caps) != 3 || u.Caps[2].Used.String() != "0.45" || len(u.Days) != 2 || !u.CycleStart.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Usage = %+v", u)
	}
	for _, tenant := range []string{"", "demo"} {
		calls, err := c.Calls(ctx, tenant)
		clientMust(t, "Calls", err)
		if len(calls) != 2 || calls[0].ID != controltest.Call1ID || calls[0].Answered == nil {
			t.Errorf("Calls(%q) = %+v", tenant, calls)
		}
	}
	blocked, err := c.Blocked(ctx)
	clientMust(t, "Blocked", err)
	if len(blocked) != 2 || blocked[0].IP != controltest.BlockedIP4 || blocked[1].IP != controltest.BlockedIP6 {
		t.Errorf("Blocked = %+v", blocked)
	}
	tokens, err := c.Tokens(ctx)
	clientMust(t, "Tokens", err)
	// Sorted by name.
	if len(tokens) != 4 || tokens[0].Name != "finance" || tokens[2].Name != "root" || tokens[2].Scope != api.ScopeAdmin {
		t.Errorf("Tokens = %+v", tokens)
	}
	entries, err := c.Audit(ctx, api.AuditQuery{})
	clientMust(t, "Audit", err)
	// The seed of the plan, the tenant and the four tokens, newest first.
	if len(entries) != 6 || entries[0].Action != "seed" || entries[0].Resource != "tokens/viewer" || entries[5].Resource != "plans/standard" {
		t.Errorf("Audit = %+v", entries)
	}
}

func TestClientWrites(t *testing.T) {
	srv, b, _ := clientTestServer(t)
	c := clientFor(srv, controltest.AdminToken)
	ctx := context.Background()

	// Plans: create, replace, create by PUT, delete. The rate has no
	// increments: the client sends the default.
	gold := configs.Plan{Name: "gold", Limits: configs.Limits{MaxParallelCalls: clientPtr(int64(50))},
		Rates: []configs.Rate{{PerMinute: clientPtr(configs.MustMoney("0.008"))}}}
	got, err := c.CreatePlan(ctx, gold)
	clientMust(t, "CreatePlan", err)
	if got.Name != "gold" || *got.Limits.MaxParallelCalls != 50 || *got.Limits.MaxCallsPerSecond != -1 || got.Rates[0].Increments != configs.DefaultIncrements {
		t.Errorf("CreatePlan = %+v", got)
	}
	if gold.Rates[0].Increments != (configs.Increments{}) {
		t.Errorf("CreatePlan changed the caller's plan: %+v", gold.Rates[0])
	}
	gold.Limits.MaxParallelCalls = clientPtr(int64(60))
	got, created, err := c.PutPlan(ctx, gold)
	clientMust(t, "PutPlan", err)
	if created || *got.Limits.MaxParallelCalls != 60 {
		t.Errorf("PutPlan = %+v, created %v; want replaced", got, created)
	}
	_, created, err = c.PutPlan(ctx, configs.Plan{Name: "silver"})
	clientMust(t, "PutPlan silver", err)
	if !created {
		t.Error("PutPlan of a new plan: created false")
	}
	clientMust(t, "DeletePlan", c.DeletePlan(ctx, "silver"))

	// Tenants.
	acme := configs.Tenant{Name: "acme", Plan: "gold", Carrier: "carrier", Sources: []string{"192.0.2.0/24"}}
	tv, err := c.CreateTenant(ctx, acme)
	clientMust(t, "CreateTenant", err)
	if tv.Name != "acme" || tv.Status.Suspended {
		t.Errorf("CreateTenant = %+v", tv)
	}
	acme.DIDs, acme.PBX = []string{"+4930"}, configs.Hop{Address: "192.0.2.1:5060"}
	tv, created, err = c.PutTenant(ctx, acme)
	clientMust(t, "PutTenant", err)
	if created || tv.PBX.Transport != "udp" || len(tv.DIDs) != 1 {
		t.Errorf("PutTenant = %+v, created %v", tv, created)
	}

	// Limits: set, clear, destinations per class, reset.
	lv, err := c.PatchLimits(ctx, "acme", map[string]any{
		"max_parallel_calls": 5, "monthly_spend_limit": "99.5", "auto_suspend": true,
		"destinations": map[string]any{"premium": false, "international": true},
	})
	clientMust(t, "PatchLimits", err)
	if *lv.Overrides.MaxParallelCalls != 5 || lv.Overrides.MonthlySpendLimit.String() != "99.5" || !*lv.Effective.AutoSuspend ||
		len(lv.Overrides.Destinations) != 2 || lv.Overrides.Destinations["premium"] {
		t.Errorf("PatchLimits = %+v", lv)
	}
	lv, err = c.PatchLimits(ctx, "acme", map[string]any{"max_parallel_calls": nil, "destinations": map[string]any{"international": nil}})
	clientMust(t, "PatchLimits clear", err)
	if lv.Overrides.MaxParallelCalls != nil || *lv.Effective.MaxParallelCalls != 60 || len(lv.Overrides.Destinations) != 1 {
		t.Errorf("PatchLimits clear = %+v", lv)
	}
	lv, err = c.ResetLimits(ctx, "acme")
	clientMust(t, "ResetLimits", err)
	if lv.Overrides.MonthlySpendLimit != nil || lv.Overrides.AutoSuspend != nil || len(lv.Overrides.Destinations) != 0 {
		t.Errorf("ResetLimits = %+v", lv)
	}

	// Roles.
	roles, err := c.PutRoles(ctx, "acme", []configs.Role{{Name: "sales", Patterns: []string{"2*"}}})
	clientMust(t, "PutRoles", err)
	if len(roles) != 1 || roles[0].Name != "sales" {
		t.Errorf("PutRoles = %+v", roles)
	}
	role, created, err := c.PutRole(ctx, "acme", configs.Role{Name: "support", MaxMonthlyMinutes: clientPtr(int64(600)), Users: []string{"300"}})
	clientMust(t, "PutRole", err)
	if !created || role.Name != "support" || *role.MaxMonthlyMinutes != 600 {
		t.Errorf("PutRole = %+v, created %v", role, created)
	}
	_, created, err = c.PutRole(ctx, "acme", configs.Role{Name: "support"})
	clientMust(t, "PutRole replace", err)
	if created {
		t.Error("PutRole of an existing role: created true")
	}
	clientMust(t, "DeleteRole", c.DeleteRole(ctx, "acme", "sales"))
	if roles, err := c.Roles(ctx, "acme"); err != nil || len(roles) != 1 || roles[0].Name != "support" {
		t.Errorf("Roles after DeleteRole = %+v, %v", roles, err)
	}
	clientMust(t, "DeleteTenant", c.DeleteTenant(ctx, "acme"))

	// Suspend, resume, hang up (the id holds ';' and '@').
	st, err := c.Suspend(ctx, "demo", "fraud check")
	clientMust(t, "Suspend", err)
	if !st.Suspended || st.SuspendReason != "fraud check" {
		t.Errorf("Suspend = %+v", st)
	}
	st, err = c.Resume(ctx, "demo", "")
	clientMust(t, "Resume", err)
	if st.Suspended {
		t.Errorf("Resume = %+v", st)
	}
	clientMust(t, "Hangup", c.Hangup(ctx, controltest.Call1ID))
	if calls, err := c.Calls(ctx, "demo"); err != nil || len(calls) != 1 || calls[0].ID != controltest.Call2ID {
		t.Errorf("Calls after Hangup = %+v, %v", calls, err)
	}

	// Tokens.
	nt, err := c.CreateToken(ctx, "ci", api.ScopeRead)
	clientMust(t, "CreateToken", err)
	if nt.Name != "ci" || nt.Scope != api.ScopeRead || nt.Token == "" || !nt.Created.Equal(controltest.DefaultNow) {
		t.Errorf("CreateToken = %+v", nt)
	}
	if _, err := api.NewClient(srv.URL, nt.Token, nil).Tenants(ctx); err != nil {
		t.Errorf("the new token: %v", err)
	}
	clientMust(t, "DeleteToken", c.DeleteToken(ctx, "ci"))

	// Apply: dry run changes nothing, then apply, then unchanged.
	doc := api.ApplyDoc{
		Plans:   []configs.Plan{{Name: "bronze", Rates: []configs.Rate{{PerMinute: clientPtr(configs.MustMoney("0.02"))}}}},
		Tenants: []configs.Tenant{{Name: "beta", Plan: "bronze", Carrier: "carrier", Sources: []string{"198.51.100.7"}}},
	}
	n := len(b.AuditLog(t))
	res, err := c.Apply(ctx, doc, true)
	clientMust(t, "Apply dry run", err)
	if !res.DryRun || len(res.Changes) != 2 || res.Changes[0].Op != "create" || len(b.AuditLog(t)) != n {
		t.Errorf("Apply dry run = %+v (audit %d -> %d)", res, n, len(b.AuditLog(t)))
	}
	res, err = c.Apply(ctx, doc, false)
	clientMust(t, "Apply", err)
	if res.DryRun || len(res.Changes) != 2 || res.Changes[1].Op != "create" {
		t.Errorf("Apply = %+v", res)
	}
	res, err = c.Apply(ctx, doc, false)
	clientMust(t, "Apply again", err)
	for _, ch := range res.Changes {
		if ch.Op != "unchanged" {
			t.Errorf("Apply again: %+v", ch)
		}
	}

	// Every change is in the audit log with the token's name.
	entries, err := c.Audit(ctx, api.AuditQuery{Limit: 1000})
	clientMust(t, "Audit", err)
	if len(entries) < 20 || entries[len(entries)-1].Action != "seed" || entries[0].Actor != "root" {
		t.Errorf("Audit: %d entries, newest %+v", len(entries), entries[0])
	}
}

func TestClientRequests(t *testing.T) {
	srv, _, recorded := clientTestServer(t)
	c := clientFor(srv, controltest.AdminToken)
	ctx := context.Background()
	_, err := c.PatchLimits(ctx, "demo", map[string]any{"max_parallel_calls": 3})
	clientMust(t, "PatchLimits", err)
	clientMust(t, "Hangup", c.Hangup(ctx, controltest.Call1ID))
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	_, err = c.Audit(ctx, api.AuditQuery{Tenant: "demo", From: from, To: controltest.DefaultNow, Limit: 5})
	clientMust(t, "Audit", err)
	_, err = c.Apply(ctx, api.ApplyDoc{Plans: []configs.Plan{{Name: "x"}}}, true)
	clientMust(t, "Apply", err)
	_, err = c.Calls(ctx, "demo")
	clientMust(t, "Calls", err)
	clientMust(t, "Unblock", c.Unblock(ctx, controltest.BlockedIP6))
	_, err = c.Blocked(ctx)
	clientMust(t, "Blocked", err)

	got := recorded()
	want := []clientRecorded{
		{"PATCH", "/v1/tenants/demo/limits", "/v1/tenants/demo/limits", "", "application/merge-patch+json", "Bearer admin-secret"},
		{"DELETE", "/v1/calls/" + url.PathEscape(controltest.Call1ID), "/v1/calls/" + controltest.Call1ID, "", "", "Bearer admin-secret"},
		{"GET", "/v1/audit", "/v1/audit", "from=2026-10-31T23%3A00%3A00Z&limit=5&tenant=demo&to=2026-11-22T10%3A00%3A00Z", "", "Bearer admin-secret"},
		{"POST", "/v1/apply", "/v1/apply", "dry_run=true", "application/json", "Bearer admin-secret"},
		{"GET", "/v1/calls", "/v1/calls", "tenant=demo", "", "Bearer admin-secret"},
		{"DELETE", "/v1/blocked/" + url.PathEscape(controltest.BlockedIP6), "/v1/blocked/" + controltest.BlockedIP6, "", "", "Bearer admin-secret"},
		{"GET", "/v1/blocked", "/v1/blocked", "", "", "Bearer admin-secret"},
	}
	if len(got) != len(want) {
		t.Fatalf("requests = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %+v\nwant        %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[1].rawPath, "%3B") {
		t.Errorf("the call id's ';' is not escaped: %s", got[1].rawPath)
	}
}

func TestClientAPIErrors(t *testing.T) {
	srv, _, _ := clientTestServer(t)
	ctx := context.Background()
	admin := clientFor(srv, controltest.AdminToken)

	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
		field  string
	}{
		{"not found", func() error { _, err := admin.Tenant(ctx, "x"); return err }, 404, "not_found", ""},
		{"bad token", func() error { _, err := clientFor(srv, "wrong").Plans(ctx); return err }, 401, "unauthorized", ""},
		{"no token", func() error { _, err := clientFor(srv, "").Plans(ctx); return err }, 401, "unauthorized", ""},
		{"read token writes", func() error {
			_, err := clientFor(srv, controltest.ReadToken).PatchLimits(ctx, "demo", map[string]any{"max_parallel_calls": 1})
			return err
		}, 403, "forbidden", ""},
		{"bad value", func() error {
			_, err := admin.PatchLimits(ctx, "demo", map[string]any{"max_parallel_calls": -5})
			return err
		}, 400, "invalid", "max_parallel_calls"},
		{"conflict", func() error { return admin.DeletePlan(ctx, "standard") }, 409, "conflict", ""},
		{"suspend without reason", func() error { _, err := admin.Suspend(ctx, "demo", ""); return err }, 400, "invalid", "reason"},
	}
	for _, tc := range cases {
		err := tc.call()
		var ae *api.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: err = %v (%T), want *api.APIError", tc.name, err, err)
			continue
		}
		if ae.Status != tc.status || ae.Code != tc.code || ae.Field != tc.field || ae.Message == "" {
			t.Errorf("%s: %+v, want status %d code %s field %q", tc.name, ae, tc.status, tc.code, tc.field)
		}
		if errors.Is(err, api.ErrUnreachable) {
			t.Errorf("%s: an API error is ErrUnreachable", tc.name)
		}
	}

	e := &api.APIError{Status: 404, Code: "not_found", Message: `tenant "x" not found`}
	if got, want := e.Error(), `404 not_found: tenant "x" not found`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &api.APIError{Status: 400, Code: "invalid", Field: "max_parallel_calls", Message: "must be -1 or more"}
	if got, want := e.Error(), "400 invalid: max_parallel_calls: must be -1 or more"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestClientNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := clientFor(srv, "t").Plans(context.Background())
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "bad_gateway" || ae.Message != "upstream down" {
		t.Errorf("err = %#v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := api.NewClient("http://"+addr, controltest.AdminToken, &http.Client{Timeout: 5 * time.Second})
	_, err = c.Tenants(context.Background())
	var ue *url.Error
	if !errors.Is(err, api.ErrUnreachable) || !errors.As(err, &ue) {
		t.Errorf("closed port: err = %v, want ErrUnreachable wrapping *url.Error", err)
	}
	var ae *api.APIError
	if errors.As(err, &ae) {
		t.Errorf("closed port: an *APIError: %v", ae)
	}

	// A cancelled context is the caller's doing, not an unreachable API.
	srv, _, _ := clientTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = clientFor(srv, controltest.AdminToken).Tenants(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, api.ErrUnreachable) {
		t.Errorf("cancelled: err = %v, want context.Canceled and not ErrUnreachable", err)
	}
}

func TestClientBaseURLPrefix(t *testing.T) {
	b := controltest.NewEnv(t)
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", api.NewServer(b.Svc, nil, api.ServerOptions{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := api.NewClient(srv.URL+"/admin/", controltest.ReadToken, nil)
	if got, want := c.BaseURL(), srv.URL+"/admin"; got != want {
		t.Errorf("BaseURL() = %q, want %q", got, want)
	}
	if _, err := c.Tenant(context.Background(), "demo"); err != nil {
		t.Errorf("Tenant behind /admin/: %v", err)
	}
}
