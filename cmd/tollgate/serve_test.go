package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/pike"
	"github.com/tollgate/tollgate/internal/testutil"
)

// freeTCPAddr is a 127.0.0.1 TCP address that was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// startServe runs serveUntil with extra (YAML appended to a minimal
// config whose admin API is on apiAddr; without a nats section in extra,
// the embedded NATS server has no client port) until the test ends, and
// waits until the admin API answers.
func startServe(t *testing.T, apiAddr, extra string) *testutil.SyncBuffer {
	t.Helper()
	if !strings.Contains(extra, "nats:") {
		extra += "nats: {listen: \"off\"}\n"
	}
	cfg, err := configs.Parse("serve.yaml", []byte(fmt.Sprintf(`
log: {level: info}
sip:
  listen: [{transport: udp, address: "%s"}]
  shutdown_grace: 0s
carriers: [{name: carrier, address: 127.0.0.2:5060}]
plans: [{name: p}]
tenants: [{name: demo, plan: p, carrier: carrier, sources: [127.0.0.10/32]}]
store: {data_dir: "%s"}
api: {listen: "%s"}
%s`, freeUDPAddr(t), filepath.Join(t.TempDir(), "data"), apiAddr, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return runServe(t, cfg, apiAddr)
}

// runServe runs serveUntil with cfg until the test ends, and waits until
// the admin API (on apiAddr) answers.
func runServe(t *testing.T, cfg *configs.Config, apiAddr string) *testutil.SyncBuffer {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	stop := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serveUntil(cfg, logs, stop) }()
	t.Cleanup(func() {
		stop <- syscall.SIGTERM
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop; log:\n%s", logs)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v; log:\n%s", err, logs)
		default:
		}
		if code, _ := get(t, "http://"+apiAddr+"/healthz"); code == http.StatusOK {
			return logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not up; log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, body
}

// listeningTCP returns the local ports of this process's listening TCP
// sockets (Linux: /proc/self/fd and /proc/net/tcp{,6}).
func listeningTCP(t *testing.T) map[int]bool {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("listening sockets are read from /proc")
	}
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode: st 0A is LISTEN.
			if len(fs) < 10 || fs[3] != "0A" || !mine[fs[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				ports[int(p)] = true
			}
		}
		f.Close()
	}
	return ports
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// keepRuntime restores the garbage collector settings after the test.
func keepRuntime(t *testing.T) {
	gogc := debug.SetGCPercent(100)
	debug.SetGCPercent(gogc)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gogc)
		debug.SetMemoryLimit(limit)
	})
}

// With debug.listen set, serve answers /debug/pprof/ there (index and a
// CPU profile), not on the admin API; runtime settings are applied.
func TestServeDebugAndRuntime(t *testing.T) {
	keepRuntime(t)
	before := listeningTCP(t)
	apiAddr, debugAddr := freeTCPAddr(t), freeTCPAddr(t)
	logs := startServe(t, apiAddr, fmt.Sprintf("debug: {listen: \"%s\"}\nruntime: {gogc: 250, memory_limit: 1GiB}\n", debugAddr))

	code, body := get(t, "http://"+debugAddr+"/debug/pprof/")
	if code != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) || !bytes.Contains(body, []byte("heap")) {
		t.Fatalf("GET /debug/pprof/: %d\n%s", code, body)
	}
	code, body = get(t, "http://"+debugAddr+"/debug/pprof/profile?seconds=1")
	if code != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b { // a gzipped profile.proto
		t.Fatalf("GET /debug/pprof/profile: %d, %d bytes %q", code, len(body), body[:min(len(body), 64)])
	}
	if code, _ := get(t, "http://"+debugAddr+"/debug/pprof/heap?debug=1"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/heap: %d", code)
	}
	if code, _ := get(t, "http://"+apiAddr+"/debug/pprof/"); code == http.StatusOK {
		t.Errorf("the admin API serves /debug/pprof/")
	}
	opened := listeningTCP(t)
	for p := range before {
		delete(opened, p)
	}
	if len(opened) != 2 || !opened[portOf(t, apiAddr)] || !opened[portOf(t, debugAddr)] {
		t.Errorf("listening TCP ports opened by serve: %v, want the API's %s and debug's %s", opened, apiAddr, debugAddr)
	}
	if g := debug.SetGCPercent(100); g != 250 {
		t.Errorf("GOGC in effect %d, want 250", g)
	}
	debug.SetGCPercent(250)
	if l := debug.SetMemoryLimit(-1); l != 1<<30 {
		t.Errorf("memory limit in effect %d, want 1GiB", l)
	}
	if l := logs.String(); !strings.Contains(l, `"gogc":250,"memory_limit":"1024MiB"`) || !strings.Contains(l, "profiling (net/http/pprof) listening") {
		t.Errorf("log:\n%s", l)
	}
}

// Without debug.listen serve listens on the admin API only, and leaves
// the garbage collector as it found it.
func TestServeNoDebugByDefault(t *testing.T) {
	keepRuntime(t)
	debug.SetGCPercent(123)
	debug.SetMemoryLimit(math.MaxInt64) // none, whatever $GOMEMLIMIT said
	before := listeningTCP(t)
	apiAddr := freeTCPAddr(t)
	logs := startServe(t, apiAddr, "")
	opened := listeningTCP(t)
	for p := range before {
		delete(opened, p)
	}
	if len(opened) != 1 || !opened[portOf(t, apiAddr)] {
		t.Errorf("listening TCP ports opened by serve: %v, want only the API's %s", opened, apiAddr)
	}
	if g := debug.SetGCPercent(123); g != 123 {
		t.Errorf("GOGC changed to %d without runtime.gogc", g)
	}
	// Flood protection is wired to /metrics.
	code, body := get(t, "http://"+apiAddr+"/metrics")
	for _, want := range []string{"\ntollgate_flood_allowed_total 0\n", "\ntollgate_flood_blocked_sources 0\n",
		"\ntollgate_flood_tracked_sources 0\n", "\ntollgate_flood_connections_refused_total 0\n"} {
		if code != http.StatusOK || !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics (%d) lacks %q", code, strings.TrimSpace(want))
		}
	}
	if l := logs.String(); !strings.Contains(l, `"gogc":123,"memory_limit":"none"`) || strings.Contains(l, "pprof") {
		t.Errorf("log:\n%s", l)
	}
}

// floodStats merges the request and connection limiters' counts.
func TestFloodStats(t *testing.T) {
	f := configs.Flood{Rate: 10, Burst: 2, UnknownRate: 1, UnknownBurst: 1, Block: time.Minute, MaxTracked: 100,
		MaxConnectionsPerSource: 1, MaxConnections: 1}
	flood, conns := pike.New(f.PikeConfig()), f.ConnLimiter()
	now := time.Unix(1_800_000_000, 0)
	a := netip.MustParseAddr("192.0.2.1")
	for range 5 {
		flood.Allow(a, false, now)
	}
	flood.Allow(netip.MustParseAddr("192.0.2.2"), true, now)
	got := floodStats(flood, conns, now)
	want := api.FloodStats{Allowed: 2, Limited: 1, Dropped: 3, BlockedSources: 1, TrackedSources: 2}
	if got != want {
		t.Fatalf("floodStats = %+v, want %+v", got, want)
	}
	if got := floodStats(flood, conns, now.Add(time.Minute)); got.BlockedSources != 0 {
		t.Fatalf("after the block: %+v", got)
	}
}

// A port in use is said once, naming the config field: not
// `sip: listen udp A: listen udp A: bind: address already in use`.
func TestServeListenErrorMessage(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.LocalAddr().String()
	cfg, err := configs.Parse("serve.yaml", []byte(fmt.Sprintf(`
sip:
  listen: [{transport: udp, address: "%s"}]
carriers: [{name: carrier, address: 127.0.0.2:5060}]
plans: [{name: p}]
tenants: [{name: demo, plan: p, carrier: carrier, sources: [127.0.0.10/32]}]
store: {data_dir: ":memory:"}
api: {listen: "off"}
nats: {enabled: false}
`, addr)))
	if err != nil {
		t.Fatal(err)
	}
	err = serveUntil(cfg, io.Discard, make(chan os.Signal))
	want := "sip.listen (udp " + addr + "): address already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("serve = %v, want %q", err, want)
	}
}
