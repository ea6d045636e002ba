package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/store"
)

const replConfig = `
sip: {listen: [{transport: udp, address: 127.0.0.1:5060}]}
carriers: [{name: carrier, address: 127.0.0.2:5060}]
plans:
  - name: standard
    limits: {max_parallel_calls: 10, max_monthly_minutes: 1000}
    rates: [{prefix: "", per_minute: 0.01}]
tenants:
  - name: demo
    plan: standard
    carrier: carrier
    sources: [127.0.0.10/32]
api:
  tokens: [{name: root, scope: admin, token_env: ROOT_TOKEN}]
`

// gateway is one node's control service with its replicator.
type gateway struct {
	name string
	svc  *control.Service
	repl *cluster.Replicator
}

func startGateway(t *testing.T, js jetstream.JetStream, name string) *gateway {
	t.Helper()
	cfg, err := configs.Parse("repl.yaml", []byte(replConfig))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := control.Open(cfg, store.NewMem(), control.Options{
		Logger: zerolog.Nop(), Env: func(string) string { return "root-token-0123456789abcdef" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	svc.ExpectReplicator(name)
	// As serve does: the start's context ends once the replicator runs.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := cluster.StartReplicator(ctx, cluster.ReplicatorOptions{
		Node: name, Bucket: "CFG", Replicas: 1, JS: js, Target: svc, Log: zerolog.Nop(),
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	svc.SetReplicator(r, name)
	return &gateway{name: name, svc: svc, repl: r}
}

// within polls cond for up to 1 s: the bound for a change to
// apply on every node.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 1 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// maxParallel is a limits patch setting max_parallel_calls to the
// number v spells.
func maxParallel(v string) api.LimitsPatch {
	n, _ := strconv.ParseInt(v, 10, 64)
	return api.LimitsPatch{Set: configs.Limits{MaxParallelCalls: &n}}
}

func parallel(t *testing.T, svc *control.Service, tenant string) int64 {
	t.Helper()
	lv, err := svc.GetLimits(context.Background(), tenant)
	if err != nil || lv.Effective.MaxParallelCalls == nil {
		return -2
	}
	return *lv.Effective.MaxParallelCalls
}

// Plans, tenants, limits, roles, suspensions and tokens changed on one
// node apply on the others within 1 s, audited there too.
func TestConfigReplicates(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	var gws []*gateway
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		_, js := bustest.Connect(t, url)
		gws = append(gws, startGateway(t, js, name))
	}
	a, b, c := gws[0].svc, gws[1].svc, gws[2].svc
	ctx := context.Background()

	// A limit: the engine of every node admits against it.
	if _, err := a.PatchLimits(ctx, "alice", "demo", maxParallel("3")); err != nil {
		t.Fatal(err)
	}
	within(t, "the limit on gw-b and gw-c", func() bool { return parallel(t, b, "demo") == 3 && parallel(t, c, "demo") == 3 })
	if u, _ := b.Runner().LeaseUsage("demo"); u.Cap[1] != 3 {
		t.Fatalf("gw-b's engine cap %d, want 3", u.Cap[1])
	}
	// A plan and a tenant created on another node.
	gold := configs.Plan{Name: "gold"}
	if _, err := b.PutPlan(ctx, "bob", gold, true); err != nil {
		t.Fatal(err)
	}
	acme := configs.Tenant{Name: "acme", Plan: "gold", Carrier: "carrier", Sources: []string{"127.0.0.20/32"}}
	if _, err := b.PutTenant(ctx, "bob", acme, true); err != nil {
		t.Fatal(err)
	}
	within(t, "plan gold and tenant acme on gw-a", func() bool {
		_, e1 := a.GetPlan(ctx, "gold")
		_, e2 := a.GetTenant(ctx, "acme")
		return e1 == nil && e2 == nil
	})
	// A suspension and its resumption.
	if _, err := c.Suspend(ctx, "carol", "demo", "fraud check"); err != nil {
		t.Fatal(err)
	}
	within(t, "demo suspended on gw-a", func() bool {
		v, _ := a.GetTenant(ctx, "demo")
		return v.Status.Suspended && v.Status.SuspendReason == "fraud check"
	})
	if _, err := a.Resume(ctx, "alice", "demo", ""); err != nil {
		t.Fatal(err)
	}
	within(t, "demo resumed on gw-b and gw-c", func() bool {
		v1, _ := b.GetTenant(ctx, "demo")
		v2, _ := c.GetTenant(ctx, "demo")
		return !v1.Status.Suspended && !v2.Status.Suspended
	})
	// A token made on gw-a authenticates on gw-c; deleted, it stops.
	tok, err := a.CreateToken(ctx, "alice", "ops", api.ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	within(t, "the token on gw-b and gw-c", func() bool {
		_, ok1 := b.Authenticate(tok.Token)
		_, ok2 := c.Authenticate(tok.Token)
		return ok1 && ok2
	})
	if err := b.DeleteToken(ctx, "bob", "ops"); err != nil {
		t.Fatal(err)
	}
	within(t, "the token gone on gw-a and gw-c", func() bool {
		_, ok1 := a.Authenticate(tok.Token)
		_, ok2 := c.Authenticate(tok.Token)
		return !ok1 && !ok2
	})
	// Deletions.
	if err := a.DeleteTenant(ctx, "alice", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeletePlan(ctx, "alice", "gold"); err != nil {
		t.Fatal(err)
	}
	within(t, "acme and gold gone on gw-b", func() bool {
		_, e1 := b.GetPlan(ctx, "gold")
		_, e2 := b.GetTenant(ctx, "acme")
		return e1 != nil && e2 != nil
	})
	// The audit log of gw-b has gw-a's change, by its actor and node.
	entries, err := b.Audit(ctx, api.AuditQuery{Tenant: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || e.Actor == "alice@gw-a" && e.Action == "limits.update" || e.Actor == "alice@gw-a" && e.Action == "tenant.update"
	}
	if !found {
		t.Fatalf("gw-b's audit has no entry by alice@gw-a: %+v", entries)
	}
	// Concurrent changes of one tenant on two nodes converge.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			a.PatchLimits(ctx, "alice", "demo", maxParallel(strconv.Itoa(1+i%10)))
		}
	}()
	for i := range 20 {
		b.PatchLimits(ctx, "bob", "demo", maxParallel(strconv.Itoa(20-i%10)))
	}
	<-done
	within(t, "the three nodes agree after concurrent changes", func() bool {
		x := parallel(t, a, "demo")
		return x == parallel(t, b, "demo") && x == parallel(t, c, "demo")
	})
}

// A node that starts later (or comes back) takes the cluster's state from
// the bucket over its own store's, and changes made on a node while the
// bucket could not be reached win over the bucket's older state.
func TestConfigCatchUp(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	_, js := bustest.Connect(t, url)
	a := startGateway(t, js, "gw-a")
	ctx := context.Background()
	if _, err := a.svc.PatchLimits(ctx, "alice", "demo", maxParallel("7")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Suspend(ctx, "alice", "demo", "unpaid"); err != nil {
		t.Fatal(err)
	}
	// gw-b starts from the config file (max_parallel_calls 10) and takes 7
	// and the suspension from the bucket.
	_, js2 := bustest.Connect(t, url)
	b := startGateway(t, js2, "gw-b")
	if got := parallel(t, b.svc, "demo"); got != 7 {
		t.Fatalf("gw-b started with max_parallel_calls %d, want the cluster's 7", got)
	}
	if v, _ := b.svc.GetTenant(ctx, "demo"); !v.Status.Suspended {
		t.Fatal("gw-b did not take the suspension from the bucket")
	}
	// gw-c changes a limit before its replicator runs: the change wins.
	cfg, _ := configs.Parse("repl.yaml", []byte(replConfig))
	svc, err := control.Open(cfg, store.NewMem(), control.Options{Logger: zerolog.Nop(), Env: func(string) string { return "root-token-0123456789abcdef" }})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	svc.ExpectReplicator("gw-c")
	if _, err := svc.PatchLimits(ctx, "carol", "demo", maxParallel("4")); err != nil {
		t.Fatal(err)
	}
	_, js3 := bustest.Connect(t, url)
	r, err := cluster.StartReplicator(ctx, cluster.ReplicatorOptions{Node: "gw-c", Bucket: "CFG", Replicas: 1, JS: js3, Target: svc, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	svc.SetReplicator(r, "gw-c")
	if got := parallel(t, svc, "demo"); got != 4 {
		t.Fatalf("gw-c's own pending change was undone: max_parallel_calls %d, want 4", got)
	}
	within(t, "gw-c's change on gw-a and gw-b", func() bool { return parallel(t, a.svc, "demo") == 4 && parallel(t, b.svc, "demo") == 4 })
}

// The control service over a real ledger: GET /v1/cluster's status, and a
// release refused for a live node (409) and an unknown one (404), then
// granted and audited for a node that went silent.
func TestControlClusterRelease(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	ctx := context.Background()
	var gws []*gateway
	var ledgers []*cluster.Ledger
	for _, name := range []string{"gw-a", "gw-b"} {
		_, js := bustest.Connect(t, url)
		g := startGateway(t, js, name)
		l, err := cluster.Start(ctx, cluster.Options{Node: name, TTL: time.Second, MaxCallDuration: time.Hour,
			Bucket: "LEDGER", Replicas: 1, JS: js, Engine: g.svc.Runner(), Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		g.svc.SetCluster(l)
		gws, ledgers = append(gws, g), append(ledgers, l)
	}
	a := gws[0].svc
	within(t, "both nodes in gw-a's status", func() bool {
		st, err := a.Cluster(ctx, "")
		return err == nil && st.Enabled && len(st.Nodes) == 2
	})
	if _, err := a.ReleaseNode(ctx, "alice", "gw-b"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("release of live gw-b: %v, want ErrConflict", err)
	}
	if _, err := a.ReleaseNode(ctx, "alice", "gw-z"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("release of an unknown node: %v, want ErrNotFound", err)
	}
	ledgers[1].Close() // gw-b stops renewing
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := a.ReleaseNode(ctx, "alice", "gw-b")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gw-b still not releasable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, err := a.Audit(ctx, api.AuditQuery{})
	if err != nil || len(entries) == 0 || entries[0].Action != "cluster.release" || entries[0].Actor != "alice" || entries[0].Resource != "cluster/nodes/gw-b" {
		t.Fatalf("audit after the release: %+v, %v", entries, err)
	}
	for _, l := range ledgers {
		l.Close()
	}
}

// A change made while NATS is away outlives a restart of its node: the
// mark is in the node's store, and the change reaches the others when
// the replicator starts after the restart. A pending change older than
// the cluster's newer state of the object loses to it (last writer wins),
// and either way no mark is left behind.
func TestPendingSurvivesRestart(t *testing.T) {
	t.Parallel()
	_, url := bustest.Start(t, t.TempDir())
	_, js := bustest.Connect(t, url)
	a := startGateway(t, js, "gw-a")
	ctx := context.Background()
	dir := t.TempDir()
	// open is gw-c's process: its Badger store and control service,
	// with NATS not reached (ExpectReplicator only).
	open := func() (*store.Badger, *control.Service) {
		t.Helper()
		st, err := store.Open(dir, store.Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := configs.Parse("repl.yaml", []byte(replConfig))
		svc, err := control.Open(cfg, st, control.Options{Logger: zerolog.Nop(), Env: func(string) string { return "root-token-0123456789abcdef" }})
		if err != nil {
			t.Fatal(err)
		}
		svc.ExpectReplicator("gw-c")
		return st, svc
	}
	closeNode := func(st *store.Badger, svc *control.Service) {
		if err := svc.Close(); err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
	connect := func(svc *control.Service) *cluster.Replicator {
		t.Helper()
		_, js := bustest.Connect(t, url)
		r, err := cluster.StartReplicator(ctx, cluster.ReplicatorOptions{Node: "gw-c", Bucket: "CFG", Replicas: 1, JS: js, Target: svc, Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		svc.SetReplicator(r, "gw-c")
		return r
	}
	marks := func(st *store.Badger) int {
		t.Helper()
		s, err := st.Load()
		if err != nil {
			t.Fatal(err)
		}
		return len(s.Unreplicated)
	}

	// 1. Changed while away, restarted before NATS is back.
	st, svc := open()
	if _, err := svc.PatchLimits(ctx, "carol", "demo", maxParallel("3")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Suspend(ctx, "carol", "demo", "fraud"); err != nil {
		t.Fatal(err)
	}
	closeNode(st, svc)
	st, svc = open()
	if n := marks(st); n != 2 {
		t.Fatalf("%d replication marks after the restart, want 2 (tenant and status)", n)
	}
	r := connect(svc)
	within(t, "gw-c's change made before its restart on gw-a", func() bool {
		v, _ := a.svc.GetTenant(ctx, "demo")
		return parallel(t, a.svc, "demo") == 3 && v.Status.Suspended
	})
	if n := marks(st); n != 0 {
		t.Errorf("%d replication marks left once replicated", n)
	}
	r.Close()
	closeNode(st, svc)

	// 2. Changed while away; the cluster changes the same object later.
	st, svc = open()
	if _, err := svc.PatchLimits(ctx, "carol", "demo", maxParallel("5")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := a.svc.PatchLimits(ctx, "alice", "demo", maxParallel("6")); err != nil {
		t.Fatal(err)
	}
	closeNode(st, svc)
	st, svc = open()
	r = connect(svc)
	defer func() { r.Close(); closeNode(st, svc) }()
	if got := parallel(t, svc, "demo"); got != 6 {
		t.Errorf("gw-c has max_parallel_calls %d after rejoining, want the cluster's newer 6", got)
	}
	time.Sleep(2 * resyncEvery)
	if got := parallel(t, a.svc, "demo"); got != 6 {
		t.Errorf("gw-c's older change overwrote the cluster's: gw-a has %d, want 6", got)
	}
	if n := marks(st); n != 0 {
		t.Errorf("%d replication marks left after the cluster's newer change", n)
	}
}

// resyncEvery is the control service's retry period of failed
// publications.
const resyncEvery = time.Second
