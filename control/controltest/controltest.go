// Package controltest builds the real control service for tests of its
// clients (the admin API server, the API client, the CLI): control.Open
// over store.NewMem() with a fixed, deterministic seed, and fakes of what
// the service drives but does not own, the SIP edge (FakeEdge), the flood
// limiter (FakeFlood) and the cluster ledger (FakeCluster).
//
// New seeds:
//
//	tokens   AdminToken (root, admin), SettingsToken (ops, settings),
//	         BillingToken (finance, billing), ReadToken (viewer, read),
//	         given in the config file by their SHA-256
//	plan     standard: max_parallel_calls 10, max_monthly_minutes 10000,
//	         monthly_spend_limit 500, rate "" 0.01/min 60/60
//	tenant   demo on standard: carrier "carrier", sources 127.0.0.10/32,
//	         DID +1555, PBX 127.0.0.10:5070 udp, role reception
//	         (max_parallel_calls 2, users 100 and 101)
//	usage    three settled calls of demo to +4930123456: two on
//	         2026-11-20 (600 s and 900 s, 0.25), one on 2026-11-21
//	         (1050 s, 0.18): 42.5 minutes and 0.43 settled; with the
//	         answered active call's 90 s the caps show 44 minutes, 0.45
//	calls    two active calls of demo, admitted in the engine and listed
//	         by the edge: Call1ID (outbound, user 100, answered 90 s ago)
//	         and Call2ID (inbound to +15550100, ringing since 5 s ago)
//	blocked  BlockedIP4 (unknown, since 30 s ago for 60 s, 4127 dropped)
//	         and BlockedIP6 (known, since 10 s ago for 60 s, 12 dropped)
//	cluster  node gw-a (this one, renewed now) and gw-b (silent since 5
//	         min), one ledger entry demo/max_parallel_calls cap 10: gw-a
//	         holds 4 (use 3, busy 2), gw-b 2 (use 2, busy 2); demo's
//	         cluster usage adds gw-b's 90 minutes and 0.90
//
// The clock is a Clock at DefaultNow; the audit log holds the seed
// entries of the config file and nothing else.
package controltest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/internal/callrec"
	"github.com/tollgate/tollgate/internal/pike"
	"github.com/tollgate/tollgate/store"
)

// DefaultNow is the clock of a new service (mid-cycle, UTC).
var DefaultNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// The seeded token secrets.
const (
	AdminToken    = "admin-secret"
	SettingsToken = "settings-secret"
	BillingToken  = "billing-secret"
	ReadToken     = "read-secret"
)

// The admission ids of the two seeded active calls of tenant demo. Call1
// contains ';' and '@' on purpose (admission ids are Call-ID;from-tag).
const (
	Call1ID = "a84b4c76e66710@pc33.example.com;1928301774"
	Call2ID = "f81d4fae-7dec-11d0@10.0.0.7;9fxced76sl"
)

// The seeded blocked sources.
const (
	BlockedIP4 = "203.0.113.7"
	BlockedIP6 = "2001:db8::bad"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func ptr[T any](v T) *T { return &v }

// Config is the seed's config file (after ApplyDefaults and Validate).
func Config(t testing.TB) *configs.Config {
	t.Helper()
	perMinute := configs.MustMoney("0.01")
	cfg := &configs.Config{
		SIP:      configs.SIP{Listen: []configs.Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}},
		Carriers: []configs.Carrier{{Name: "carrier", Hop: configs.Hop{Address: "127.0.0.2:5060"}}},
		DestinationClasses: map[string][]string{
			"international": {"00", "+"},
			"premium":       {"1900", "+1900"},
		},
		Plans: []configs.Plan{{
			Name: "standard",
			Limits: configs.Limits{
				MaxParallelCalls:  ptr(int64(10)),
				MaxMonthlyMinutes: ptr(int64(10000)),
				MonthlySpendLimit: ptr(configs.MustMoney("500")),
			},
			Rates: []configs.Rate{{Prefix: "", PerMinute: &perMinute, Increments: configs.Increments{Initial: 60, Subsequent: 60}}},
		}},
		Tenants: []configs.Tenant{{
			Name:    "demo",
			Plan:    "standard",
			Carrier: "carrier",
			Sources: []string{"127.0.0.10/32"},
			DIDs:    []string{"+1555"},
			PBX:     configs.Hop{Address: "127.0.0.10:5070", Transport: "udp"},
			Roles: []configs.Role{{
				Name:             "reception",
				MaxParallelCalls: ptr(int64(2)),
				Users:            []string{"100", "101"},
			}},
		}},
		API: configs.API{Tokens: []configs.APIToken{
			{Name: "root", Scope: "admin", TokenSHA256: sha(AdminToken)},
			{Name: "ops", Scope: "settings", TokenSHA256: sha(SettingsToken)},
			{Name: "finance", Scope: "billing", TokenSHA256: sha(BillingToken)},
			{Name: "viewer", Scope: "read", TokenSHA256: sha(ReadToken)},
		}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("controltest config: %v", err)
	}
	return cfg
}

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Env is the service under test and its fakes.
type Env struct {
	Svc     *control.Service
	Edge    *FakeEdge
	Flood   *FakeFlood
	Cluster *FakeCluster
	Clock   *Clock
	Store   store.Store
}

// New returns the seeded service (see the package comment) and its edge.
// The service is closed at the end of the test.
func New(t testing.TB) (*control.Service, *FakeEdge) {
	e := NewEnv(t)
	return e.Svc, e.Edge
}

// NewEnv is New with every fake.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	cfg := Config(t)
	clk := &Clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	st := store.NewMem()
	svc, err := control.Open(cfg, st, control.Options{Now: clk.Now, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("control.Open: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	rn := svc.Runner()
	edge := &FakeEdge{runner: rn, now: clk.Now}
	svc.SetEdge(edge)

	// The settled calls of the cycle, at their own instants.
	settle := func(id string, start time.Time, secs int) {
		t.Helper()
		clk.Set(start)
		if d := rn.Admit(start, admission.CallRequest{CallID: id, Tenant: "demo", Direction: admission.Outbound, Caller: "100", Callee: "+4930123456"}); !d.Admitted {
			t.Fatalf("controltest: seed call %s rejected: %+v", id, d.Rejection)
		}
		rn.Answer(start, id)
		end := start.Add(time.Duration(secs) * time.Second)
		clk.Set(end)
		if _, ok := rn.End(end, id); !ok {
			t.Fatalf("controltest: seed call %s: unknown", id)
		}
	}
	settle("seed-1", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC), 600)
	settle("seed-2", time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC), 900)
	settle("seed-3", time.Date(2026, 11, 21, 16, 0, 0, 0, time.UTC), 1050)

	// The two active calls.
	now := DefaultNow
	started1, answered1, started2 := now.Add(-95*time.Second), now.Add(-90*time.Second), now.Add(-5*time.Second)
	clk.Set(started1)
	if d := rn.Admit(started1, admission.CallRequest{CallID: Call1ID, Tenant: "demo", Direction: admission.Outbound, Caller: "100", Callee: "+4930123456"}); !d.Admitted {
		t.Fatalf("controltest: call 1 rejected: %+v", d.Rejection)
	}
	clk.Set(answered1)
	rn.Answer(answered1, Call1ID)
	clk.Set(started2)
	if d := rn.Admit(started2, admission.CallRequest{CallID: Call2ID, Tenant: "demo", Direction: admission.Inbound, Caller: "+4989555000", Callee: "+15550100"}); !d.Admitted {
		t.Fatalf("controltest: call 2 rejected: %+v", d.Rejection)
	}
	clk.Set(now)
	edge.calls = []callrec.Call{
		{
			ID: Call1ID, CallID: "a84b4c76e66710@pc33.example.com", Tenant: "demo",
			Direction: "outbound", Caller: "100", Callee: "+4930123456", State: "confirmed",
			Started: started1, Answered: answered1, Billed: 120 * time.Second,
		},
		{
			ID: Call2ID, CallID: "f81d4fae-7dec-11d0@10.0.0.7", Tenant: "demo",
			Direction: "inbound", Caller: "+4989555000", Callee: "+15550100", State: "early",
			Started: started2,
		},
	}

	flood := &FakeFlood{entries: []pike.Entry{
		{IP: netip.MustParseAddr(BlockedIP4), Since: now.Add(-30 * time.Second), Until: now.Add(30 * time.Second),
			Reason: pike.ReasonUnknownRate, Rate: 5, Burst: 10, Dropped: 4127},
		{IP: netip.MustParseAddr(BlockedIP6), Known: true, Since: now.Add(-10 * time.Second), Until: now.Add(50 * time.Second),
			Reason: pike.ReasonRate, Rate: 2000, Burst: 4000, Dropped: 12},
	}}
	svc.SetFlood(flood)
	cl := &FakeCluster{status: seedCluster(now), now: clk.Now, svc: svc}
	svc.SetCluster(cl)
	return &Env{Svc: svc, Edge: edge, Flood: flood, Cluster: cl, Clock: clk, Store: st}
}

// FakeEdge is the SIP gateway as control.Edge: it lists a fixed set of
// calls, hangs them up (ending them in the engine, as the gateway does
// when its BYE goes out), records the engine effects and routing
// rebuilds it is handed, and reports a settable readiness.
type FakeEdge struct {
	runner *admission.Runner
	now    func() time.Time

	mu      sync.Mutex
	calls   []callrec.Call
	hungUp  []string
	effects []admission.Ready
	routing []*configs.Config
	ready   error
}

var _ control.Edge = (*FakeEdge)(nil)

// Calls implements control.Edge.
func (e *FakeEdge) Calls(tenant string) []callrec.Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []callrec.Call{}
	for _, c := range e.calls {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, c)
		}
	}
	return out
}

// Hangup implements control.Edge.
func (e *FakeEdge) Hangup(id string) bool {
	e.mu.Lock()
	i := slices.IndexFunc(e.calls, func(c callrec.Call) bool { return c.ID == id || c.CallID == id })
	if i < 0 {
		e.mu.Unlock()
		return false
	}
	c := e.calls[i]
	e.calls = slices.Delete(e.calls, i, i+1)
	e.hungUp = append(e.hungUp, c.ID)
	e.mu.Unlock()
	if e.runner != nil {
		e.runner.End(e.now(), c.ID)
	}
	return true
}

// SetRouting implements control.Edge.
func (e *FakeEdge) SetRouting(cfg *configs.Config) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.routing = append(e.routing, cfg)
	return nil
}

// Effects implements control.Edge.
func (e *FakeEdge) Effects(rd admission.Ready) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.effects = append(e.effects, rd)
}

// Ready implements control.Edge.
func (e *FakeEdge) Ready() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready
}

// SetReady sets what Ready returns (nil: listening, not draining).
func (e *FakeEdge) SetReady(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ready = err
}

// AddCall adds a call to the list (not to the engine).
func (e *FakeEdge) AddCall(c callrec.Call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, c)
}

// HungUp returns the ids of the calls hung up, in order.
func (e *FakeEdge) HungUp() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.hungUp)
}

// Cuts returns the call ids of every cut in the effects handed to the edge.
func (e *FakeEdge) Cuts() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, rd := range e.effects {
		for _, c := range rd.Cuts {
			ids = append(ids, c.CallID)
		}
	}
	return ids
}

// EffectsSeen returns the engine effects handed to the edge, in order.
func (e *FakeEdge) EffectsSeen() []admission.Ready {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.effects)
}

// Routing returns how many routing rebuilds the edge was asked for.
func (e *FakeEdge) Routing() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.routing)
}

// RoutingSeen returns the configurations of the routing rebuilds, in order.
func (e *FakeEdge) RoutingSeen() []*configs.Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.routing)
}

// Deadline is the deadline of the newest Ready handed to the edge, the
// one its timer is armed at.
func (e *FakeEdge) Deadline() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var newest admission.Ready
	for _, rd := range e.effects {
		if rd.Gen > newest.Gen {
			newest = rd
		}
	}
	return newest.Deadline
}

// FakeFlood is the flood limiter as control.Flood: a fixed list of
// blocked sources.
type FakeFlood struct {
	mu      sync.Mutex
	entries []pike.Entry
}

var _ control.Flood = (*FakeFlood)(nil)

// Blocked implements control.Flood (oldest block first).
func (f *FakeFlood) Blocked(time.Time) []pike.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.entries)
	slices.SortStableFunc(out, func(a, b pike.Entry) int { return a.Since.Compare(b.Since) })
	return out
}

// Unblock implements control.Flood.
func (f *FakeFlood) Unblock(ip netip.Addr, _ time.Time) (pike.Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.entries, func(e pike.Entry) bool { return e.IP == ip })
	if i < 0 {
		return pike.Entry{}, false
	}
	e := f.entries[i]
	f.entries = slices.Delete(f.entries, i, i+1)
	return e, true
}

// Add adds a blocked source.
func (f *FakeFlood) Add(e pike.Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, e)
}

// FakeCluster is the cluster ledger as control.Cluster: a fixed status
// (see the package comment); Release refuses a live node and drops a
// silent one's leases and heartbeat.
type FakeCluster struct {
	now func() time.Time
	svc *control.Service

	mu     sync.Mutex
	status cluster.Status
}

var _ control.Cluster = (*FakeCluster)(nil)

func seedCluster(now time.Time) cluster.Status {
	late := now.Add(-5 * time.Minute)
	return cluster.Status{
		Enabled: true, Node: "gw-a", Bucket: "TOLLGATE_LEDGER", Ready: true, Valid: true, TTL: "10s",
		Nodes: []cluster.Node{
			{Name: "gw-a", Epoch: "0a1b2c3d4e5f6071", Renewed: now, RenewBy: now.Add(10 * time.Second), Started: now.Add(-time.Hour), Alive: true, Self: true},
			{Name: "gw-b", Epoch: "8192a3b4c5d6e7f8", Renewed: late, RenewBy: late.Add(10 * time.Second), Started: now.Add(-2 * time.Hour)},
		},
		Entries: []cluster.Entry{{
			Tenant: "demo", Dimension: "max_parallel_calls", Cap: 10, Leased: 6, Busy: 4,
			Leases: []cluster.Lease{
				{Node: "gw-a", Held: 4, Use: 3, Busy: 2, Epoch: "0a1b2c3d4e5f6071", At: now},
				{Node: "gw-b", Held: 2, Use: 2, Busy: 2, Epoch: "8192a3b4c5d6e7f8", At: late},
			},
		}},
	}
}

// Status implements control.Cluster.
func (c *FakeCluster) Status(tenant string) cluster.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.Nodes = slices.Clone(st.Nodes)
	st.Entries = []cluster.Entry{}
	for _, e := range c.status.Entries {
		if tenant == "" || e.Tenant == tenant {
			e.Leases = slices.Clone(e.Leases)
			st.Entries = append(st.Entries, e)
		}
	}
	return st
}

// Usage implements control.Cluster: this node's usage of the engine plus,
// for demo while gw-b is known, gw-b's 90 minutes, 0.90 and 2 calls.
func (c *FakeCluster) Usage(tenant string) cluster.TenantUsage {
	now := c.now()
	rn := c.svc.Runner()
	u := rn.Usage(now, tenant)
	start, _ := rn.Cycle()
	self := cluster.NodeUsage{Node: "gw-a", CycleStart: start, BilledSeconds: u.Seconds.Seconds(),
		BilledNanos: int64(u.Seconds), SpendMicros: u.Spend, ActiveCalls: rn.Active(tenant), Published: now, Self: true}
	out := cluster.TenantUsage{CycleStart: start, Nodes: []cluster.NodeUsage{self},
		BilledSeconds: self.BilledSeconds, SpendMicros: self.SpendMicros, ActiveCalls: self.ActiveCalls}
	c.mu.Lock()
	gwb := slices.ContainsFunc(c.status.Nodes, func(n cluster.Node) bool { return n.Name == "gw-b" })
	c.mu.Unlock()
	if tenant == "demo" && gwb {
		other := cluster.NodeUsage{Node: "gw-b", CycleStart: start, BilledSeconds: 5400, BilledNanos: int64(5400 * time.Second),
			SpendMicros: 900000, ActiveCalls: 2, Published: now.Add(-time.Second)}
		out.Nodes = append(out.Nodes, other)
		out.BilledSeconds += other.BilledSeconds
		out.SpendMicros += other.SpendMicros
		out.ActiveCalls += other.ActiveCalls
	}
	return out
}

// Release implements control.Cluster.
func (c *FakeCluster) Release(_ context.Context, node string) (cluster.Released, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := cluster.Released{Node: node}
	i := slices.IndexFunc(c.status.Nodes, func(n cluster.Node) bool { return n.Name == node })
	// The errors read as the ledger's.
	if i < 0 {
		return out, fmt.Errorf("%w %q", cluster.ErrUnknownNode, node)
	}
	if n := c.status.Nodes[i]; n.Alive {
		return out, fmt.Errorf("%w: %q renewed its leases at %s", cluster.ErrAlive, node, n.Renewed.UTC().Format(time.RFC3339))
	}
	c.status.Nodes = slices.Delete(c.status.Nodes, i, i+1)
	for k := range c.status.Entries {
		e := &c.status.Entries[k]
		e.Leases = slices.DeleteFunc(e.Leases, func(l cluster.Lease) bool {
			if l.Node != node {
				return false
			}
			out.Entries++
			out.Calls += l.Held
			e.Leased -= l.Held
			e.Busy -= l.Busy
			return true
		})
	}
	return out, nil
}

// AuditLog returns every audit entry of the service, oldest first.
func (e *Env) AuditLog(t testing.TB) []api.AuditEntry {
	t.Helper()
	es, err := e.Svc.Audit(context.Background(), api.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	slices.Reverse(es)
	return es
}
