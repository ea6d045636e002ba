package testbed

// The harness: build and run the tollgate binary, run SIPp, read what they
// leave behind. Everything runs on loopback; the parties are told apart by
// their 127.0.0.x source address, as in configs/tollgate.yaml.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/netns"
)

const (
	gatewayIP = "127.0.0.1"  // tollgate
	carrierIP = "127.0.0.2"  // the carrier: SIPp uas
	pbxIP     = "127.0.0.10" // the tenant's PBX: SIPp uac

	// callee is the Request-URI user of the tenant's outbound calls.
	callee = "15550001"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
	buildLog  []byte
)

// TestMain runs the package's tests inside a network namespace of their
// own with only loopback (internal/netns): they flood and probe the
// gateway, so whatever a bug makes it send can never leave the machine.
// The gateway binary is built, and SIPp runs, inside the namespace too.
func TestMain(m *testing.M) {
	code := netns.RunIsolated(m)
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// tollgateBinary builds cmd/tollgate once per test binary (with -race when
// the tests run with -race) and returns its path.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "tollgate-e2e-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "tollgate")
		args := []string{"build", "-o", buildBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "../cmd/tollgate")
		buildLog, buildErr = exec.Command("go", args...).CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ../cmd/tollgate: %v\n%s", buildErr, buildLog)
	}
	return buildBin
}

// requireSIPp skips the test when sipp is not installed, except on CI
// (CI non-empty), where a missing sipp is an error.
func requireSIPp(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("SIPp end-to-end test: skipped with -short")
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("sipp is not on PATH; CI must install it (Debian/Ubuntu package sip-tester)")
		}
		t.Skip("sipp is not on PATH (Debian/Ubuntu package sip-tester): skipping the SIPp end-to-end tests")
	}
}

// freeUDPPort returns a UDP port that was free on ip a moment ago.
func freeUDPPort(t *testing.T, ip string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("pick a free UDP port on %s: %v", ip, err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// freeTCPPort returns a TCP port free on ip.
func freeTCPPort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// freeMediaPort returns an even port p such that p and p+2 (the audio and
// video RTP sockets SIPp binds at start) are free on ip, so that SIPp
// instances do not fight over the default 6000.
func freeMediaPort(t *testing.T, ip string) int {
	t.Helper()
	for range 100 {
		p := 20000 + 2*rand.IntN(15000)
		a, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p+2)))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return p
	}
	t.Fatalf("no free media port pair on %s", ip)
	return 0
}

// udpBound reports whether something is bound to ip:port (UDP).
func udpBound(ip string, port int) bool {
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	pc.Close()
	return false
}

// poll calls cond every 10ms until it is true or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The gateway process.

// gatewayConfig is what varies between the tests' configs.
type gatewayConfig struct {
	MaxParallelCalls int64         // -1 unlimited
	ShutdownGrace    time.Duration // sip.shutdown_grace
	// Dir holds the config, the log and the store (data/); a restarted
	// gateway reuses it. Empty: a fresh temporary directory.
	Dir string
	// SIPPort, CarrierPort and APIPort: 0 picks free ports.
	SIPPort, CarrierPort, APIPort int
	// TLS, when set, adds a tls listener and makes the carrier a tls next
	// hop (tls_test.go).
	TLS *gatewayTLS
	// BillFromMedia bills anchored calls to their last RTP packet (the
	// product default). Off, the testbed bills by signalling: most of its
	// SIPp scenarios send no RTP, and their tests check billed durations.
	BillFromMedia bool
	// NATS is the body of the config's nats section (indented two
	// spaces). Empty: the embedded server without a client port
	// (listen: off), so parallel gateways never share one.
	NATS string
	// Extra is top-level YAML appended to the config (node, cluster).
	Extra string
}

func natsSection(body string) string {
	if body == "" {
		return "  listen: \"off\"\n"
	}
	return body
}

// adminToken is the admin API token of the testbed gateways.
const adminToken = "testbed-admin-token-0123456789"

// logLine is one JSON line of the gateway's log.
type logLine map[string]any

func (l logLine) str(k string) string {
	s, _ := l[k].(string)
	return s
}

func (l logLine) num(k string) float64 {
	f, _ := l[k].(float64)
	return f
}

// dur reads a duration field: the gateway logs durations as strings with
// their unit ("8.123s"); a number is read as milliseconds (zerolog's
// default, for a log written before durations carried units).
func (l logLine) dur(k string) time.Duration {
	switch v := l[k].(type) {
	case string:
		d, _ := time.ParseDuration(v)
		return d
	case float64:
		return time.Duration(v * float64(time.Millisecond))
	}
	return 0
}

// gateway is a running tollgate process whose stderr is collected.
type gateway struct {
	t           *testing.T
	addr        string // SIP UDP listen address
	tlsAddr     string // SIP TLS listen address (with conf.TLS)
	carrierPort int    // where the carrier (SIPp uas) must listen on carrierIP
	apiURL      string // admin API base URL
	conf        gatewayConfig
	logPath     string
	cmd         *exec.Cmd
	done        chan struct{} // closed once the process has exited
	exitCode    int           // valid after done
	exitedAt    time.Time     // valid after done

	mu      sync.Mutex
	lines   []logLine     // the JSON lines
	raw     []string      // every line, JSON or not (race reports, panics)
	changed chan struct{} // closed and replaced whenever a line arrives
}

// startGateway writes a config, starts tollgate and waits until it is
// listening. The process is killed at the end of the test if still running.
func startGateway(t *testing.T, c gatewayConfig) *gateway {
	t.Helper()
	bin := tollgateBinary(t)
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	dir := c.Dir
	if c.SIPPort == 0 {
		c.SIPPort = freeUDPPort(t, gatewayIP)
	}
	if c.CarrierPort == 0 && c.TLS != nil {
		c.CarrierPort = freeTCPPort(t, carrierIP)
	}
	if c.CarrierPort == 0 {
		c.CarrierPort = freeUDPPort(t, carrierIP)
	}
	if c.APIPort == 0 {
		c.APIPort = freeTCPPort(t, gatewayIP)
	}
	g := &gateway{
		t:           t,
		addr:        net.JoinHostPort(gatewayIP, strconv.Itoa(c.SIPPort)),
		carrierPort: c.CarrierPort,
		apiURL:      "http://" + net.JoinHostPort(gatewayIP, strconv.Itoa(c.APIPort)),
		conf:        c,
		logPath:     filepath.Join(dir, fmt.Sprintf("tollgate-%d.log", time.Now().UnixNano())),
		done:        make(chan struct{}),
		changed:     make(chan struct{}),
	}
	tlsListen, carrierHop := "", "    transport: udp\n"
	if c.TLS != nil {
		g.tlsAddr = net.JoinHostPort(gatewayIP, strconv.Itoa(freeTCPPort(t, gatewayIP)))
		tlsListen, carrierHop = c.TLS.yaml(g.tlsAddr)
	}
	cfg := fmt.Sprintf(`# written by testbed/harness_test.go
log:
  level: info
  format: json
sip:
  listen:
    - transport: udp
      address: %s
%s  advertise: %s
  timer_c: 30s
  max_call_duration: 5m
  shutdown_grace: %s
media:
  bill_from: %s
carriers:
  - name: carrier
    address: %s:%d
%s    sources: [%s/32]
plans:
  - name: e2e
    limits:
      max_parallel_calls: %d
tenants:
  - name: demo
    plan: e2e
    carrier: carrier
    sources: [%s/32]
nats:
%sstore:
  data_dir: %s
api:
  listen: %s
  tokens:
    - name: testbed
      scope: admin
      token_env: TOLLGATE_ADMIN_TOKEN
%s`, g.addr, tlsListen, gatewayIP, c.ShutdownGrace, billFrom(c.BillFromMedia), carrierIP, g.carrierPort, carrierHop, carrierIP, c.MaxParallelCalls, pbxIP,
		natsSection(c.NATS), filepath.Join(dir, "data"), strings.TrimPrefix(g.apiURL, "http://"), c.Extra)
	cfgPath := filepath.Join(dir, "tollgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(g.logPath)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(bin, "serve", "-c", cfgPath)
	g.cmd.Env = append(os.Environ(), "TOLLGATE_ADMIN_TOKEN="+adminToken)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start tollgate: %v", err)
	}
	go func() {
		defer close(g.done)
		defer logFile.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			var l logLine
			isJSON := json.Unmarshal([]byte(line), &l) == nil
			g.mu.Lock()
			g.raw = append(g.raw, line)
			if isJSON {
				g.lines = append(g.lines, l)
			}
			close(g.changed)
			g.changed = make(chan struct{})
			g.mu.Unlock()
		}
		// All output is read: now Wait may reap the process.
		g.cmd.Wait()
		g.exitedAt = time.Now()
		g.exitCode = g.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			g.cmd.Process.Kill()
			<-g.done
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for i, l := range g.raw {
			if strings.Contains(l, "WARNING: DATA RACE") {
				end := min(i+60, len(g.raw))
				t.Errorf("the gateway reported a data race:\n%s", strings.Join(g.raw[i:end], "\n"))
				break
			}
		}
		if t.Failed() {
			from := max(0, len(g.raw)-40)
			t.Logf("gateway log (%s), last %d lines:\n%s", g.logPath, len(g.raw)-from, strings.Join(g.raw[from:], "\n"))
		}
	})
	g.waitLog(10*time.Second, "tollgate started", func() bool {
		return g.count(func(l logLine) bool { return l.str("message") == "tollgate started" }) > 0
	})
	return g
}

// count returns how many JSON log lines satisfy pred.
func (g *gateway) count(pred func(logLine) bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, l := range g.lines {
		if pred(l) {
			n++
		}
	}
	return n
}

// find returns the first JSON log line satisfying pred.
func (g *gateway) find(pred func(logLine) bool) (logLine, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.lines {
		if pred(l) {
			return l, true
		}
	}
	return nil, false
}

// index returns the position of the first JSON log line satisfying pred, or -1.
func (g *gateway) index(pred func(logLine) bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, l := range g.lines {
		if pred(l) {
			return i
		}
	}
	return -1
}

// waitLog waits until cond holds, re-checking on every new log line; it
// fails the test after timeout or if the process exits first.
func (g *gateway) waitLog(timeout time.Duration, what string, cond func() bool) {
	g.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		g.mu.Lock()
		ch := g.changed
		g.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-g.done:
			if cond() {
				return
			}
			g.t.Fatalf("waiting for %s: tollgate exited (code %d)", what, g.exitCode)
		case <-timer.C:
			g.t.Fatalf("waiting for %s: not after %s", what, timeout)
		}
	}
}

// signal sends sig to the gateway process.
func (g *gateway) signal(sig os.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		g.t.Fatalf("signal tollgate: %v", err)
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (g *gateway) waitExit(timeout time.Duration) int {
	g.t.Helper()
	select {
	case <-g.done:
		return g.exitCode
	case <-time.After(timeout):
		g.t.Fatalf("tollgate still running %s after being asked to stop", timeout)
		return -1
	}
}

// noErrors fails the test if the gateway logged anything at error level.
func (g *gateway) noErrors() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.lines {
		if l.str("level") == "error" || l.str("level") == "fatal" || l.str("level") == "panic" {
			b, _ := json.Marshal(l)
			g.t.Errorf("gateway logged an error: %s", b)
		}
	}
}

// Log line predicates.

func decision(decision, cause string) func(logLine) bool {
	return func(l logLine) bool {
		return l.str("message") == "call decision" && l.str("decision") == decision && (cause == "" || l.str("cause") == cause)
	}
}

func message(msg string) func(logLine) bool {
	return func(l logLine) bool { return l.str("message") == msg }
}

// ---------------------------------------------------------------------------
// SIPp.

// sipp is one SIPp process running in its own directory, where its trace
// files (-trace_stat, -trace_counts, -trace_err, flag files) end up.
type sipp struct {
	t        *testing.T
	name     string
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	exitCode int // valid after done
}

// startSIPp starts sipp with args (plus -nostdin) in a fresh directory; it
// is killed at the end of the test if still running.
func startSIPp(t *testing.T, name string, args ...string) *sipp {
	t.Helper()
	return startSIPpBinary(t, "sipp", name, args...)
}

// startSIPpBinary is startSIPp with the sipp executable bin.
func startSIPpBinary(t *testing.T, bin, name string, args ...string) *sipp {
	t.Helper()
	s := &sipp{t: t, name: name, dir: t.TempDir(), done: make(chan struct{})}
	screen, err := os.Create(filepath.Join(s.dir, "screen.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, append([]string{"-nostdin"}, args...)...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout = screen
	s.cmd.Stderr = screen
	if err := s.cmd.Start(); err != nil {
		screen.Close()
		t.Fatalf("start sipp (%s): %v", name, err)
	}
	go func() {
		defer close(s.done)
		s.cmd.Wait()
		screen.Close()
		s.exitCode = s.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			s.dump()
		}
	})
	return s
}

// dump logs the tail of SIPp's screen and its unexpected-message log.
func (s *sipp) dump() {
	tail := func(path string, n int) string {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		lines := strings.Split(string(b), "\n")
		return strings.Join(lines[max(0, len(lines)-n):], "\n")
	}
	s.t.Logf("sipp %s: %s (exit code %d)\nscreen, last lines:\n%s", s.name, s.cmd, s.exitCode, tail(filepath.Join(s.dir, "screen.log"), 40))
	if errs, _ := filepath.Glob(filepath.Join(s.dir, "*_errors.log")); len(errs) > 0 {
		s.t.Logf("sipp %s: %s, last lines:\n%s", s.name, errs[0], tail(errs[0], 40))
	}
}

// wait waits for SIPp to exit and returns its exit code (0: every call
// succeeded, 1: at least one failed, 97/99/255/254: aborted, see sipp(1)).
func (s *sipp) wait(timeout time.Duration) int {
	s.t.Helper()
	select {
	case <-s.done:
		return s.exitCode
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("sipp %s still running after %s: killed", s.name, timeout)
		return -1
	}
}

// startUAS starts SIPp's built-in uas as the carrier and waits until its
// socket is bound.
func startUAS(t *testing.T, g *gateway) *sipp {
	t.Helper()
	return startUASScenario(t, g, "-sn", "uas")
}

// startUASScenario starts SIPp as the carrier with the scenario selected by
// scenarioArgs (-sn NAME or -sf FILE) and waits until its socket is bound.
func startUASScenario(t *testing.T, g *gateway, scenarioArgs ...string) *sipp {
	t.Helper()
	s := startSIPp(t, "uas", append(scenarioArgs,
		"-i", carrierIP, "-p", strconv.Itoa(g.carrierPort),
		"-mi", carrierIP, "-mp", strconv.Itoa(freeMediaPort(t, carrierIP)),
		"-trace_err")...)
	up := poll(10*time.Second, func() bool {
		select {
		case <-s.done:
			return true
		default:
		}
		return udpBound(carrierIP, g.carrierPort)
	})
	select {
	case <-s.done:
		t.Fatalf("sipp uas exited at start (code %d)", s.exitCode)
	default:
	}
	if !up {
		t.Fatalf("sipp uas not listening on %s:%d after 10s", carrierIP, g.carrierPort)
	}
	return s
}

// startUAC starts a SIPp client as the tenant's PBX, calling callee through
// the gateway, with the stats, counts and error traces on. args select the
// scenario and the load (-sn/-sf, -r, -m, -l, -d ...). timeout is SIPp's
// own global timeout, after which it exits with an error.
func startUAC(t *testing.T, g *gateway, timeout time.Duration, args ...string) *sipp {
	t.Helper()
	base := []string{
		"-i", pbxIP, "-p", strconv.Itoa(freeUDPPort(t, pbxIP)),
		"-mi", pbxIP, "-mp", strconv.Itoa(freeMediaPort(t, pbxIP)),
		"-s", callee,
		"-trace_stat", "-stf", "stats.csv",
		"-trace_counts", "-trace_err",
		"-recv_timeout", "10000",
		"-timeout", strconv.Itoa(int(timeout.Seconds())) + "s", "-timeout_error",
	}
	return startSIPp(t, "uac", append(append(base, args...), g.addr)...)
}

// csvLast reads a SIPp CSV trace (";"-separated, header first) and returns
// the header and the last row.
func csvLast(path string) (header, row []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 {
		return nil, nil, fmt.Errorf("%s: %d lines, want a header and a row", path, len(lines))
	}
	return strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";"), nil
}

// stats returns the final cumulative counters of the -trace_stat file:
// "SuccessfulCall(C)", "FailedCall(C)", "TotalCallCreated", ...
func (s *sipp) stats() map[string]int {
	s.t.Helper()
	header, row, err := csvLast(filepath.Join(s.dir, "stats.csv"))
	if err != nil {
		s.t.Fatalf("sipp %s stats: %v", s.name, err)
	}
	out := make(map[string]int)
	for i, h := range header {
		if i < len(row) {
			if v, err := strconv.Atoi(strings.TrimSpace(row[i])); err == nil {
				out[h] = v
			}
		}
	}
	return out
}

// counts returns the final per-message counters of the -trace_counts file,
// in scenario order: columns such as "4_486_Recv" or "0_INVITE_Sent".
func (s *sipp) counts() (names []string, values []int) {
	s.t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.dir, "*_counts.csv"))
	if len(files) != 1 {
		s.t.Fatalf("sipp %s: want one *_counts.csv in %s, got %v", s.name, s.dir, files)
	}
	header, row, err := csvLast(files[0])
	if err != nil {
		s.t.Fatalf("sipp %s counts: %v", s.name, err)
	}
	for i, h := range header {
		if i < 2 || h == "" || i >= len(row) { // CurrentTime;ElapsedTime
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(row[i]))
		if err != nil {
			s.t.Fatalf("sipp %s counts: column %s: %v", s.name, h, err)
		}
		names = append(names, h)
		values = append(values, v)
	}
	return names, values
}

// recvCounts returns, in scenario order, the receive counters of the
// responses with the given code (one per <recv response="code"> element).
func (s *sipp) recvCounts(code int) []int {
	names, values := s.counts()
	suffix := "_" + strconv.Itoa(code) + "_Recv"
	var out []int
	for i, n := range names {
		if strings.HasSuffix(n, suffix) {
			out = append(out, values[i])
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// A one-shot SIP client for probes SIPp cannot express mid-test.

// inviteProbe sends a bodiless INVITE for callee from ip (a fresh port) to
// addr and returns the final response's status code. It ACKs a non-2xx
// final response and fails the test if no final response comes in time.
func inviteProbe(t *testing.T, ip, addr string) int {
	t.Helper()
	code, _ := inviteProbeMsg(t, ip, addr)
	return code
}

// inviteProbeMsg is inviteProbe, with the final response itself.
func inviteProbeMsg(t *testing.T, ip, addr string) (int, string) {
	t.Helper()
	conn, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	id := strconv.FormatUint(rand.Uint64(), 36)
	via := "SIP/2.0/UDP " + local + ";branch=z9hG4bK-probe-" + id + ";rport"
	from := "<sip:probe@" + local + ">;tag=probe-" + id
	callID := "probe-" + id + "@" + ip
	ruri := "sip:" + callee + "@" + addr
	invite := "INVITE " + ruri + " SIP/2.0\r\n" +
		"Via: " + via + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: " + from + "\r\n" +
		"To: <" + ruri + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:probe@" + local + ">\r\n" +
		"Content-Length: 0\r\n\r\n"
	buf := make([]byte, 65535)
	deadline := time.Now().Add(5 * time.Second)
	nextSend := time.Now()
	for time.Now().Before(deadline) {
		if !time.Now().Before(nextSend) { // retransmit like Timer A, but flat
			if _, err := conn.WriteTo([]byte(invite), raddr); err != nil {
				t.Fatal(err)
			}
			nextSend = time.Now().Add(500 * time.Millisecond)
		}
		conn.SetReadDeadline(nextSend)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			continue // read deadline: retransmit
		}
		msg := string(buf[:n])
		var code int
		if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil || code < 200 {
			continue
		}
		if code >= 300 {
			to := headerValue(msg, "To")
			ack := "ACK " + ruri + " SIP/2.0\r\n" +
				"Via: " + via + "\r\n" +
				"Max-Forwards: 70\r\n" +
				"From: " + from + "\r\n" +
				"To: " + to + "\r\n" +
				"Call-ID: " + callID + "\r\n" +
				"CSeq: 1 ACK\r\n" +
				"Content-Length: 0\r\n\r\n"
			conn.WriteTo([]byte(ack), raddr)
		}
		return code, msg
	}
	t.Fatalf("INVITE probe from %s to %s: no final response in 5s", ip, addr)
	return 0, ""
}

// headerValue returns the value of the first header called name in msg.
func headerValue(msg, name string) string {
	for _, line := range strings.Split(msg, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func billFrom(media bool) string {
	if media {
		return "media"
	}
	return "signalling"
}
