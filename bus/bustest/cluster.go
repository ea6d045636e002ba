package bustest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Timeouts of the cluster helper: generous, since they are only reached
// when something is wrong (meta elections take up to ~10 s after a
// leader is lost without stepping down).
const (
	readyTimeout     = 10 * time.Second
	jetStreamTimeout = 30 * time.Second
	pollInterval     = 25 * time.Millisecond
)

// Cluster is n nats-servers with JetStream joined in one NATS cluster on
// loopback (127.0.0.1). Every server has a fixed name, client port,
// cluster port and store directory for the whole test, so Stop and
// Restart bring a server back exactly as it was and clients configured
// with URLs() find it again on the same port.
//
// Ports are reserved outside the kernel's ephemeral port range (see
// reservePorts), so no outgoing TCP connection of this or any other
// process can take a port while its server is stopped.
//
// With n == 1 the only server is a plain single server (no cluster, no
// routes). Methods are safe for concurrent use, but a test should not
// stop and restart the same server from two goroutines at once.
type Cluster struct {
	t     testing.TB
	name  string // NATS cluster name, unique per Cluster
	mu    sync.Mutex
	nodes []*node
}

type node struct {
	name     string
	port     int // client port
	cport    int // cluster (route) port; 0 with n == 1
	dir      string
	srv      *server.Server // nil while stopped
	isolated bool
}

// StartCluster starts n (>= 1) nats-servers with JetStream in one
// cluster and waits until every server is routed to all the others,
// there is a JetStream meta leader that sees all n peers and every
// server is current with it: replicated streams and KV buckets (up to
// Replicas n) can be created right away. Servers are shut down at the
// end of the test.
//
// Environment variable BUSTEST_NATS_LOG=1 sends the servers' logs to
// stderr (for debugging a test).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("bustest.StartCluster: n = %d, want >= 1", n)
	}
	c := &Cluster{t: t, name: fmt.Sprintf("bustest-%08x", rand.Uint32())}
	per := 2
	if n == 1 {
		per = 1
	}
	ls := reservePorts(t, n*per)
	for i := 0; i < n; i++ {
		nd := &node{
			name: fmt.Sprintf("%s-s%d", c.name, i),
			port: port(ls[i*per]),
			dir:  t.TempDir(),
		}
		if n > 1 {
			nd.cport = port(ls[i*per+1])
		}
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(c.shutdown)
	for i, nd := range c.nodes {
		// Free this server's ports only right before it binds them.
		ls[i*per].Close()
		if n > 1 {
			ls[i*per+1].Close()
		}
		c.mu.Lock()
		err := c.startLocked(nd)
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("bustest.StartCluster: %v", err)
		}
	}
	c.WaitJetStream(t)
	return c
}

// URLs is the comma-separated client URLs of all servers, stopped ones
// included (they come back on the same port): what a client that should
// survive the loss of a server connects to.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// URL is the client URL of server i, whether it is running or not.
func (c *Cluster) URL(i int) string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[i].port))
}

// N is the number of servers.
func (c *Cluster) N() int { return len(c.nodes) }

// Name is the server name of server i (its JetStream peer name).
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Server is server i, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Stop shuts server i down and waits until it has; its store is kept.
// Stopping a stopped server does nothing.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		Stop(s)
	}
}

// StopAll stops every running server.
func (c *Cluster) StopAll() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// Restart starts server i again with the same name, client port,
// cluster port, routes and store directory, and waits until it accepts
// clients and is routed to the other running servers. If the running
// servers are a JetStream quorum it also waits as WaitJetStream does.
// Restarting a running server does nothing.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.restart(i) {
		c.waitReady(c.t)
	}
}

// RestartAll starts every stopped server again (see Restart) and waits
// until the cluster is whole and JetStream usable again.
func (c *Cluster) RestartAll() {
	c.t.Helper()
	for i := range c.nodes {
		c.restart(i)
	}
	c.waitReady(c.t)
}

func (c *Cluster) restart(i int) bool {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	nd := c.nodes[i]
	if nd.srv != nil {
		return false
	}
	if err := waitPortsFree(nd); err != nil {
		c.t.Fatalf("bustest: restart %s: %v", nd.name, err)
	}
	if err := c.startLocked(nd); err != nil {
		c.t.Fatalf("bustest: restart: %v", err)
	}
	return true
}

// Isolate partitions server i from the others: its routes are closed
// in both directions and not retried, while every server keeps running,
// with its clients connected, on its client port. Server i's JetStream
// (without a quorum, for n >= 3) stops being current; the others keep a
// meta leader (Isolate waits for one when they are a quorum). Done with
// configuration reloads of the route lists: server i keeps a route only
// to itself, the others drop it. A server stopped while isolated
// restarts isolated.
//
// Under load, keep Isolate and Heal out of -race runs that read KV
// buckets: nats-server v2.15.2 reads its options without a lock when it
// answers a direct get, so a reload at that moment is a data race inside
// the server. Stopping a server (Stop, Restart) has no such race.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	if len(c.nodes) == 1 {
		c.t.Fatalf("bustest: Isolate on a single server")
	}
	c.mu.Lock()
	c.nodes[i].isolated = true
	err := c.reloadRoutesLocked()
	c.mu.Unlock()
	if err != nil {
		c.t.Fatalf("bustest: isolate %d: %v", i, err)
	}
	c.waitReady(c.t)
}

// Heal ends the isolation of server i: all running servers get the
// full route list again; Heal waits until the cluster is routed again
// and, with a quorum running, JetStream is current everywhere.
func (c *Cluster) Heal(i int) {
	c.t.Helper()
	c.mu.Lock()
	c.nodes[i].isolated = false
	err := c.reloadRoutesLocked()
	c.mu.Unlock()
	if err != nil {
		c.t.Fatalf("bustest: heal %d: %v", i, err)
	}
	c.waitReady(c.t)
}

// WaitJetStream polls until the running, non-isolated servers are routed
// to each other, one of them is the JetStream meta leader, it counts all
// of them as online peers, and each is current with it. Use it after
// restarts; it fails the test after 30 s, and right away when those
// servers are no quorum of the cluster (no leader can be elected).
func (c *Cluster) WaitJetStream(t testing.TB) {
	t.Helper()
	var why string
	deadline := time.Now().Add(jetStreamTimeout)
	for {
		var ok bool
		if ok, why = c.jetStreamReady(); ok {
			return
		}
		if strings.HasPrefix(why, "no quorum") || time.Now().After(deadline) {
			t.Fatalf("bustest: JetStream not ready: %s", why)
		}
		time.Sleep(pollInterval)
	}
}

// WaitStream polls until stream (in the default account $G; a KV
// bucket B is stream "KV_B") has a leader among the running servers
// and every running, non-isolated replica is current with it.
// After restarts a stream's own Raft group may need longer than the
// meta group to elect its leader.
func (c *Cluster) WaitStream(t testing.TB, stream string) {
	t.Helper()
	const acc = server.DEFAULT_GLOBAL_ACCOUNT
	deadline := time.Now().Add(jetStreamTimeout)
	for {
		leader, current := false, true
		for _, s := range c.group() {
			if !s.JetStreamIsStreamAssigned(acc, stream) {
				continue
			}
			leader = leader || s.JetStreamIsStreamLeader(acc, stream)
			current = current && s.JetStreamIsStreamCurrent(acc, stream)
		}
		if leader && current {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bustest: stream %s: leader %v, replicas current %v", stream, leader, current)
		}
		time.Sleep(pollInterval)
	}
}

// waitReady waits for routes and, if there is a quorum, JetStream.
func (c *Cluster) waitReady(t testing.TB) {
	t.Helper()
	if c.quorum() {
		c.WaitJetStream(t)
		return
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		why := c.routesMissing()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bustest: cluster not routed: %s", why)
		}
		time.Sleep(pollInterval)
	}
}

// group is the running servers that are not isolated.
func (c *Cluster) group() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var g []*server.Server
	for _, nd := range c.nodes {
		if nd.srv != nil && !nd.isolated {
			g = append(g, nd.srv)
		}
	}
	return g
}

func (c *Cluster) quorum() bool {
	return len(c.group()) > len(c.nodes)/2
}

// jetStreamReady tells whether JetStream is usable in the group, or why not.
func (c *Cluster) jetStreamReady() (bool, string) {
	g := c.group()
	if len(c.nodes) == 1 {
		if len(g) == 1 && g[0].JetStreamEnabled() {
			return true, ""
		}
		return false, "server not running or JetStream not enabled"
	}
	if len(g) <= len(c.nodes)/2 {
		return false, fmt.Sprintf("no quorum: %d of %d servers running and not isolated", len(g), len(c.nodes))
	}
	if why := c.routesMissing(); why != "" {
		return false, why
	}
	var leader *server.Server
	for _, s := range g {
		if s.JetStreamIsLeader() {
			if leader != nil {
				return false, "two meta leaders: " + leader.Name() + ", " + s.Name()
			}
			leader = s
		}
	}
	if leader == nil {
		return false, "no meta leader"
	}
	peers := map[string]bool{}
	for _, p := range leader.JetStreamClusterPeers() {
		peers[p] = true
	}
	for _, s := range g {
		if !peers[s.Name()] {
			return false, "meta leader " + leader.Name() + " does not see " + s.Name() + " online"
		}
		if !s.JetStreamIsCurrent() {
			return false, s.Name() + " not current"
		}
	}
	return true, ""
}

// routesMissing is "" when every running server has routes to exactly
// the running servers it should (all non-isolated ones; none for an
// isolated one), else what is wrong.
func (c *Cluster) routesMissing() string {
	if len(c.nodes) == 1 {
		return ""
	}
	c.mu.Lock()
	type want struct {
		s     *server.Server
		peers map[string]bool
	}
	var ws []want
	for _, nd := range c.nodes {
		if nd.srv == nil {
			continue
		}
		w := want{nd.srv, map[string]bool{}}
		if !nd.isolated {
			for _, o := range c.nodes {
				if o != nd && o.srv != nil && !o.isolated {
					w.peers[o.name] = true
				}
			}
		}
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		rz, err := w.s.Routez(nil)
		if err != nil {
			return fmt.Sprintf("%s: routez: %v", w.s.Name(), err)
		}
		got := map[string]bool{}
		for _, r := range rz.Routes {
			got[r.RemoteName] = true
		}
		for p := range w.peers {
			if !got[p] {
				return w.s.Name() + " has no route to " + p
			}
		}
		for p := range got {
			if !w.peers[p] {
				return w.s.Name() + " has an unwanted route to " + p
			}
		}
	}
	return ""
}

// routesLocked is the route list of nd: every non-isolated server's
// cluster URL, its own included (a server recognises and drops a route
// to itself; JetStream in cluster mode needs at least one configured
// route), or only its own when nd is isolated.
func (c *Cluster) routesLocked(nd *node) []string {
	if nd.isolated {
		return []string{routeURL(nd)}
	}
	var rs []string
	for _, o := range c.nodes {
		if !o.isolated {
			rs = append(rs, routeURL(o))
		}
	}
	return rs
}

func routeURL(nd *node) string {
	return "nats-route://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(nd.cport))
}

// optsLocked is the complete configuration of nd; the same fields for
// every start and every reload, only the routes differ.
func (c *Cluster) optsLocked(nd *node) *server.Options {
	o := &server.Options{
		ServerName:             nd.name,
		Host:                   "127.0.0.1",
		Port:                   nd.port,
		JetStream:              true,
		StoreDir:               nd.dir,
		NoSigs:                 true,
		NoLog:                  os.Getenv("BUSTEST_NATS_LOG") == "",
		DisableJetStreamBanner: true,
	}
	if len(c.nodes) > 1 {
		o.Cluster.Name = c.name
		o.Cluster.Host = "127.0.0.1"
		o.Cluster.Port = nd.cport
		o.Routes = server.RoutesFromStr(strings.Join(c.routesLocked(nd), ","))
	}
	return o
}

func (c *Cluster) startLocked(nd *node) error {
	o := c.optsLocked(nd)
	s, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("nats-server %s: %w", nd.name, err)
	}
	if !o.NoLog {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		Stop(s)
		return fmt.Errorf("nats-server %s (client port %d, cluster port %d) not ready", nd.name, nd.port, nd.cport)
	}
	nd.srv = s
	return nil
}

// reloadRoutesLocked gives every running server its current route list.
// Isolated servers first: the side that solicited a route is the one
// that closes it when the route is removed, so every server must drop
// its routes to (or from) an isolated one.
func (c *Cluster) reloadRoutesLocked() error {
	for _, first := range []bool{true, false} {
		for _, nd := range c.nodes {
			if nd.srv == nil || nd.isolated != first {
				continue
			}
			if err := nd.srv.ReloadOptions(c.optsLocked(nd)); err != nil {
				return fmt.Errorf("reload %s: %w", nd.name, err)
			}
		}
	}
	return nil
}

// shutdown stops all servers: the test's cleanup.
func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Stop(i)
		}()
	}
	wg.Wait()
}

// reservePorts listens on k free ports of 127.0.0.1 and returns the
// listeners, to be closed right before a server binds the port.
//
// The ports are picked at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, usually 32768-60999), from 20000 up:
// the kernel never hands those out for outgoing connections or for
// listening on port 0, so a port of a stopped server stays free for its
// restart unless some other program binds that very port on purpose.
// If that range is too small, ports above the ephemeral range are used,
// and as a last resort port 0 (kernel-chosen, ephemeral).
func reservePorts(t testing.TB, k int) []net.Listener {
	t.Helper()
	lo, hi := portRange()
	var ls []net.Listener
	for attempts := 0; len(ls) < k; attempts++ {
		p := 0
		if hi > lo && attempts < 1000 {
			p = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			if p == 0 {
				t.Fatalf("bustest: no free port: %v", err)
			}
			continue
		}
		ls = append(ls, l)
	}
	return ls
}

// portRange is the [lo, hi) range reservePorts picks from.
func portRange() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				elo, ehi = a, z
			}
		}
	}
	const floor, least = 20000, 2000
	switch {
	case elo-floor >= least:
		return floor, elo
	case 65536-(ehi+1) >= least:
		return ehi + 1, 65536
	}
	return 0, 0
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// waitPortsFree polls until nd's ports can be bound (they normally can
// at once: the server that had them is shut down).
func waitPortsFree(nd *node) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := bindable(nd.port)
		if err == nil && nd.cport != 0 {
			err = bindable(nd.cport)
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port taken: %w", err)
		}
		time.Sleep(pollInterval)
	}
}

func bindable(p int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return err
	}
	return l.Close()
}
