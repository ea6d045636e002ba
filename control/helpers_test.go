package control_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/control/controltest"
	"github.com/tollgate/tollgate/store"
)

var ctx = context.Background()

// t0 is the start of the tests' fake clock (mid-month, so no rollover).
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

const opsSecret = "ops-secret-0123456789"

func i64(v int64) *int64 { return &v }
func bptr(v bool) *bool  { return &v }
func money(s string) *configs.Money {
	m := configs.MustMoney(s)
	return &m
}

// clock is a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// testConfig is a valid config: one carrier, plan "basic" (10 parallel,
// 1000 minutes, 1.00 per minute billed per second), tenants "acme" (with a
// DID and a PBX) and "beta", tenant defaults (5 parallel) and one token.
func testConfig(t testing.TB) *configs.Config {
	t.Helper()
	cfg := &configs.Config{
		SIP: configs.SIP{Listen: []configs.Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}},
		DestinationClasses: map[string][]string{
			"premium": {"1900"},
		},
		Carriers: []configs.Carrier{{Name: "up", Hop: configs.Hop{Address: "192.0.2.1:5060"}}},
		Plans: []configs.Plan{{
			Name: "basic",
			Limits: configs.Limits{
				MaxParallelCalls:  i64(10),
				MaxMonthlyMinutes: i64(1000),
			},
			Rates: []configs.Rate{{Prefix: "", PerMinute: money("1"), Increments: configs.Increments{Initial: 1, Subsequent: 1}}},
		}},
		TenantDefaults: configs.Limits{MaxParallelCalls: i64(5)},
		Tenants: []configs.Tenant{
			{Name: "acme", Plan: "basic", Carrier: "up", Sources: []string{"10.1.0.0/24"},
				DIDs: []string{"+1555"}, PBX: configs.Hop{Address: "10.1.0.10:5060"}},
			{Name: "beta", Plan: "basic", Carrier: "up", Sources: []string{"10.2.0.0/24"}},
		},
		API: configs.API{Tokens: []configs.APIToken{{Name: "ops", Scope: "admin", TokenEnv: "TG_OPS"}}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

func env(name string) string {
	if name == "TG_OPS" {
		return opsSecret
	}
	return ""
}

// fixture is an open service on a store with a fake clock and edge.
type fixture struct {
	t     *testing.T
	cfg   *configs.Config
	st    store.Store
	clock *clock
	edge  *controltest.FakeEdge
	svc   *control.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: testConfig(t), st: store.NewMem(), clock: newClock(t0)}
	f.open()
	return f
}

// open opens the service on the fixture's store (after a close).
func (f *fixture) open() {
	f.t.Helper()
	svc, err := control.Open(f.cfg, f.st, control.Options{Now: f.clock.Now, Logger: zerolog.Nop(), Env: env})
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	f.svc = svc
	f.edge = &controltest.FakeEdge{}
	svc.SetEdge(f.edge)
	f.t.Cleanup(func() { _ = svc.Close() })
}

// reopen closes the service and opens it again on the same store.
func (f *fixture) reopen() {
	f.t.Helper()
	if err := f.svc.Close(); err != nil {
		f.t.Fatalf("Close: %v", err)
	}
	f.open()
}

// call admits (and with answer, answers) an outbound call at the clock.
func (f *fixture) call(id, tenant, caller, callee string, answer bool) admission.Decision {
	f.t.Helper()
	now := f.clock.Now()
	d := f.svc.Runner().Admit(now, admission.CallRequest{CallID: id, Tenant: tenant, Direction: admission.Outbound, Caller: caller, Callee: callee})
	if d.Admitted && answer {
		f.svc.Runner().AnswerWith(now, id, []byte("dialog-"+id))
	}
	return d.Decision
}

func (f *fixture) end(id string) {
	f.t.Helper()
	if _, ok := f.svc.Runner().End(f.clock.Now(), id); !ok {
		f.t.Fatalf("End(%s): unknown call", id)
	}
}

// auditActions returns the actions of the audit entries of q, oldest first.
func (f *fixture) audit(q api.AuditQuery) []api.AuditEntry {
	f.t.Helper()
	q.Limit = 1000
	es, err := f.svc.Audit(ctx, q)
	if err != nil {
		f.t.Fatalf("Audit: %v", err)
	}
	slices.Reverse(es)
	return es
}

func actions(es []api.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Resource)
	}
	return out
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func wantField(t *testing.T, err error, field string) *api.FieldError {
	t.Helper()
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a FieldError on %q", err, err, field)
	}
	if fe.Field != field {
		t.Fatalf("FieldError.Field = %q (%s), want %q", fe.Field, fe.Message, field)
	}
	return fe
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func str(v any) string { return fmt.Sprint(v) }
