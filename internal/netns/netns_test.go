package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Enter(m) }

// helperEnv makes TestHelperProcess act; the other tests use it to run this
// test binary as a fresh go test process would.
const helperEnv = "TOLLGATE_NETNS_HELPER"

func TestIsolated(t *testing.T) {
	Require(t)
	if !Isolated() {
		t.Fatal("Isolated() is false inside the test process")
	}
	if os.Getenv(Env) != envIsolated {
		t.Fatalf("%s=%q in the test process, want %q", Env, os.Getenv(Env), envIsolated)
	}
	if err := Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestOnlyLoopback(t *testing.T) {
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var up []string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp != 0 {
			up = append(up, ifc.Name)
		} else {
			t.Logf("interface %s is present but down (a fallback tunnel device)", ifc.Name)
		}
	}
	if len(up) != 1 || up[0] != "lo" {
		t.Fatalf("interfaces up: %v, want only lo", up)
	}
}

func TestNotTheParentNamespace(t *testing.T) {
	parent := os.Getenv(envParentNS)
	if parent == "" {
		t.Fatalf("%s is not set: the parent did not re-execute this binary", envParentNS)
	}
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if self == parent {
		t.Fatalf("network namespace %s is the parent's", self)
	}
	t.Logf("parent %s, tests in %s", parent, self)
}

func TestOffMachineUnreachable(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "192.0.2.1:5060"},
		{"udp4", "127.0.1.50:5060"}, // control: loopback is routable
		{"tcp4", "192.0.2.1:5060"},
		{"tcp4", "198.51.100.7:5061"},
		{"udp4", "8.8.8.8:53"},
		{"udp6", "[2001:db8::1]:5060"},
		{"tcp6", "[2001:db8::1]:5060"},
	} {
		c, err := net.DialTimeout(tc.network, tc.addr, 2*time.Second)
		loop := strings.HasPrefix(tc.addr, "127.")
		switch {
		case loop && err != nil:
			t.Errorf("%s %s: %v, want a connected UDP socket", tc.network, tc.addr, err)
		case loop:
			c.Close()
		case err == nil:
			c.Close()
			t.Errorf("%s %s: connected, want network unreachable", tc.network, tc.addr)
		case strings.HasSuffix(tc.network, "4") && !errors.Is(err, syscall.ENETUNREACH):
			t.Errorf("%s %s: %v, want network unreachable", tc.network, tc.addr, err)
		default:
			t.Logf("%s %s: %v", tc.network, tc.addr, err)
		}
	}
}

func TestLoopbackAddresses(t *testing.T) {
	// UDP between two 127.0.1.x addresses: the catch-all address the
	// adversarial tests use, and another.
	a, err := net.ListenPacket("udp4", "127.0.1.50:0")
	if err != nil {
		t.Fatalf("bind 127.0.1.50:0: %v", err)
	}
	defer a.Close()
	b, err := net.ListenPacket("udp4", "127.0.1.51:0")
	if err != nil {
		t.Fatalf("bind 127.0.1.51:0: %v", err)
	}
	defer b.Close()
	if _, err := b.WriteTo([]byte("ping"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	n, from, err := a.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "ping" || from.(*net.UDPAddr).IP.String() != "127.0.1.51" {
		t.Fatalf("got %q from %v, want ping from 127.0.1.51", buf[:n], from)
	}

	// TCP, with the client bound to its own loopback address.
	ln, err := net.Listen("tcp4", "127.0.1.50:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.1.52")}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ip := s.RemoteAddr().(*net.TCPAddr).IP.String(); ip != "127.0.1.52" {
		t.Fatalf("TCP peer %s, want 127.0.1.52", ip)
	}

	// IPv6 loopback, where the kernel has IPv6.
	if _, err := os.Stat("/proc/net/if_inet6"); err != nil {
		t.Logf("no IPv6 in this kernel: %v", err)
		return
	}
	c6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatalf("bind [::1]:0: %v", err)
	}
	c6.Close()
}

// TestHelperProcess is not a test: it is the body of the helper processes
// that the tests below start.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process only")
	}
	fmt.Printf("helper-stdout isolated=%v\n", Isolated())
	fmt.Fprintln(os.Stderr, "helper-stderr")
	switch mode {
	case "pass":
	case "fail":
		t.Error("helper failing on purpose")
	case "exit3":
		os.Exit(3)
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

type helperResult struct {
	code int
	out  string
}

// runHelper runs this test binary as go test would, with args, in an
// environment from which this package's variables are removed and to which
// env is added.
func runHelper(t *testing.T, args []string, env ...string) helperResult {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return runHelperRaw(t, exec.Command(exe, args...), env...)
}

func runHelperRaw(t *testing.T, cmd *exec.Cmd, env ...string) helperResult {
	t.Helper()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOLLGATE_NETNS") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("helper: %v", err)
		}
		code = ee.ExitCode()
	}
	// Logged with its ^V markers spelled out: under go test -json they would
	// be taken for this test binary's own events.
	t.Logf("helper %v exited %d:\n%s", env, code, strings.ReplaceAll(out.String(), "\x16", "^V"))
	return helperResult{code, out.String()}
}

func helperArgs(extra ...string) []string {
	return append([]string{"-test.run=^TestHelperProcess$", "-test.v"}, extra...)
}

func TestReexecForwardsOutputAndExitCode(t *testing.T) {
	t.Run("pass", func(t *testing.T) {
		r := runHelper(t, helperArgs(), helperEnv+"=pass")
		if r.code != 0 {
			t.Errorf("exit code %d, want 0", r.code)
		}
		for _, want := range []string{"helper-stdout isolated=true", "helper-stderr", "--- PASS: TestHelperProcess", "\nPASS\n"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("fail", func(t *testing.T) {
		r := runHelper(t, helperArgs(), helperEnv+"=fail")
		if r.code != 1 {
			t.Errorf("exit code %d, want 1", r.code)
		}
		if !strings.Contains(r.out, "--- FAIL: TestHelperProcess") {
			t.Errorf("output lacks the test's failure")
		}
	})
	t.Run("exit3", func(t *testing.T) {
		if r := runHelper(t, helperArgs(), helperEnv+"=exit3"); r.code != 3 {
			t.Errorf("exit code %d, want 3", r.code)
		}
	})
	t.Run("test2json", func(t *testing.T) {
		// go test -json runs the binary with -test.v=test2json and parses
		// the ^V-framed lines it prints: they must come through untouched.
		r := runHelper(t, helperArgs("-test.v=test2json"), helperEnv+"=pass")
		if r.code != 0 {
			t.Errorf("exit code %d, want 0", r.code)
		}
		for _, want := range []string{"\x16=== RUN   TestHelperProcess\n", "\x16--- PASS: TestHelperProcess"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
}

func TestNoNamespaceFails(t *testing.T) {
	r := runHelper(t, helperArgs(), helperEnv+"=pass", envTestDeny+"=1")
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	for _, want := range []string{"netns: FAIL: cannot create a network namespace", "operation not permitted", Env + "=skip"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(r.out, "helper-stdout") {
		t.Error("the test ran without a namespace")
	}
}

func TestNoNamespaceSkip(t *testing.T) {
	r := runHelper(t, helperArgs(), helperEnv+"=fail", envTestDeny+"=1", Env+"=skip")
	if r.code != 0 {
		t.Errorf("exit code %d, want 0", r.code)
	}
	for _, want := range []string{"netns: SKIP:", "no tests to run"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(r.out, "helper-stdout") {
		t.Error("the test ran without a namespace")
	}
}

// A process that claims to be isolated but runs in its parent's namespace
// refuses to run tests.
func TestClaimedIsolationInParentNamespace(t *testing.T) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	r := runHelper(t, helperArgs(), helperEnv+"=pass", Env+"=1", envParentNS+"="+self)
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	if !strings.Contains(r.out, "not isolated: still in the parent's network namespace") {
		t.Error("output lacks the reason")
	}
	if strings.Contains(r.out, "helper-stdout") {
		t.Error("the test ran although not isolated")
	}
}

// A namespace with an off-machine address routable (here on lo itself) is
// not isolated: the tests refuse to run in it.
func TestClaimedIsolationWithRoute(t *testing.T) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("no ip command: %v", err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := ip + ` link set lo up && ` + ip + ` addr add 10.0.0.1/8 dev lo && exec "$0" "$@"`
	cmd := exec.Command(sh, append([]string{"-c", script, exe}, helperArgs()...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	r := runHelperRaw(t, cmd, helperEnv+"=pass", Env+"=1")
	if r.code != 1 {
		t.Errorf("exit code %d, want 1", r.code)
	}
	if !strings.Contains(r.out, "not isolated: udp4 connect to 10.0.0.1:5060 succeeded") {
		t.Error("output lacks the reason")
	}
	if strings.Contains(r.out, "helper-stdout") {
		t.Error("the test ran although not isolated")
	}
}
