// Package netns runs a package's tests inside a network namespace of their
// own, one that holds nothing but a loopback interface. Adversarial tests
// (RFC 4475 torture messages, fuzzing, relay and reflection probes) use it:
// a gateway bug may then fail a test, but it can never send a packet off
// the machine, because off the machine there is no route.
//
// Use it from the package's TestMain:
//
//	func TestMain(m *testing.M) { netns.Enter(m) }
//
// or, when TestMain has its own work to do around the tests:
//
//	func TestMain(m *testing.M) {
//		code := netns.RunIsolated(m)
//		cleanup()
//		os.Exit(code)
//	}
//
// RunIsolated runs in two processes. The first (the test binary as go test
// started it) is not isolated: it re-executes the same binary, with the same
// arguments, in a new network namespace (clone with CLONE_NEWNET, as
// "unshare --net" does), forwards stdin, stdout and stderr unchanged (so
// go test -v and go test -json parse the output as usual), passes on
// SIGINT, SIGTERM, SIGQUIT and SIGHUP, and returns the child's exit code.
// The second (the child, marked by TOLLGATE_NETNS=1 in its environment)
// brings lo up, checks that it is isolated (see Verify), and only then runs
// the tests. If the check fails the tests do not run and the binary fails.
//
// Without the right to create a network namespace (not root and no
// CAP_SYS_ADMIN, and no unprivileged user namespaces to fall back on), the
// tests FAIL with a message that says so. Set TOLLGATE_NETNS=skip to skip
// them instead: the binary then prints why and runs no test of the package.
// Skipping never runs a test outside a namespace.
//
// TOLLGATE_NETNS=1 set by hand means "this process already is in an
// isolated namespace" (for example a CI job run under unshare --net): the
// binary does not re-execute, but it still checks its isolation and fails
// if the check does not hold.
package netns

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Env is the environment variable that carries the isolation state.
const Env = "TOLLGATE_NETNS"

const (
	// envIsolated marks the child that runs inside the namespace.
	envIsolated = "1"
	// envSkip asks to skip the package's tests when no namespace can be had.
	envSkip = "skip"
	// envParentNS carries the parent's /proc/self/ns/net link, so that the
	// child can check it really is somewhere else.
	envParentNS = "TOLLGATE_NETNS_PARENT"
	// envTestDeny makes the namespace creation fail as if it were not
	// permitted. It exists for this package's own tests of the failure and
	// skip paths; it can only ever stop tests from running.
	envTestDeny = "TOLLGATE_NETNS_TEST_DENY"
)

// Enter is RunIsolated followed by os.Exit with its result. Call it as the
// whole body of TestMain.
func Enter(m *testing.M) {
	os.Exit(RunIsolated(m))
}

// RunIsolated runs m's tests inside a new network namespace that has only a
// loopback interface, and returns the exit code for TestMain to pass to
// os.Exit. See the package documentation.
func RunIsolated(m *testing.M) int {
	switch os.Getenv(Env) {
	case envIsolated:
		return runChild(m)
	default:
		return runParent(m)
	}
}

// Isolated reports whether this process runs as the isolated child of
// RunIsolated (or was declared isolated with TOLLGATE_NETNS=1) and passed
// Verify.
func Isolated() bool {
	return verified
}

// Require fails the test unless the process is isolated. A test that sends
// adversarial traffic can call it to guard against a TestMain that forgot
// RunIsolated.
func Require(tb testing.TB) {
	tb.Helper()
	if !verified {
		tb.Fatalf("netns: this test must run inside an isolated network namespace: call netns.Enter(m) or netns.RunIsolated(m) from the package's TestMain")
	}
}

var verified bool

func runChild(m *testing.M) int {
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "netns: FAIL: cannot bring lo up in the test namespace: %v\n", err)
		return 1
	}
	if err := Verify(); err != nil {
		fmt.Fprintf(os.Stderr, "netns: FAIL: tests not run, the test process is not isolated: %v\n", err)
		return 1
	}
	verified = true
	return m.Run()
}

func runParent(m *testing.M) int {
	skip := os.Getenv(Env) == envSkip
	code, err := reexec()
	if err == nil {
		return code
	}
	if skip {
		fmt.Printf("netns: SKIP: %s=%s and no network namespace can be created (%v): no test of this package runs\n", Env, envSkip, err)
		return runNothing(m)
	}
	fmt.Fprintf(os.Stderr, "netns: FAIL: cannot create a network namespace for these tests: %v\n"+
		"netns: they send adversarial traffic and run only inside a namespace of their own with just loopback.\n"+
		"netns: run them as root (or with CAP_SYS_ADMIN, or where unprivileged user namespaces are allowed),\n"+
		"netns: or set %s=%s to skip them.\n", err, Env, envSkip)
	return 1
}

// runNothing lets the testing package finish its usual bookkeeping (output,
// coverage profile, test log) without running any test.
func runNothing(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	for name, value := range map[string]string{"test.run": "^$", "test.bench": "", "test.fuzz": ""} {
		if flag.Lookup(name) != nil {
			flag.Set(name, value)
		}
	}
	return m.Run()
}

// Verify checks that this process sees an isolated network: no interface
// but lo is up or holds an address, lo is up, no off-machine address is
// routable (a UDP connect to a TEST-NET address fails with "network is
// unreachable"), loopback addresses other than 127.0.0.1 can be bound, and,
// when the parent left its namespace identity, the namespace is not the
// parent's.
func Verify() error {
	if parent := os.Getenv(envParentNS); parent != "" {
		self, err := os.Readlink("/proc/self/ns/net")
		if err != nil {
			return fmt.Errorf("read /proc/self/ns/net: %w", err)
		}
		if self == parent {
			return fmt.Errorf("still in the parent's network namespace %s", self)
		}
	}

	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	loUp := false
	var extra []string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Name == "lo" {
			loUp = ifc.Flags&net.FlagUp != 0
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		// A new namespace may hold fallback tunnel devices (tunl0, sit0,
		// ...) when those modules are loaded; down and unaddressed they
		// carry nothing.
		if ifc.Flags&net.FlagUp != 0 || len(addrs) > 0 {
			extra = append(extra, fmt.Sprintf("%s (flags %v, addresses %v)", ifc.Name, ifc.Flags, addrs))
		}
	}
	if len(extra) > 0 {
		return fmt.Errorf("interfaces other than lo are up or addressed: %s", strings.Join(extra, "; "))
	}
	if !loUp {
		return errors.New("lo is missing or down")
	}

	for _, addr := range offMachine4 {
		if err := unreachable("udp4", addr); err != nil {
			return err
		}
	}
	// IPv6 may be disabled altogether; then any error will do.
	if c, err := net.DialTimeout("udp6", offMachine6, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("udp6 connect to %s succeeded: an off-machine route exists", offMachine6)
	}

	c, err := net.ListenPacket("udp4", "127.0.1.1:0")
	if err != nil {
		return fmt.Errorf("bind 127.0.1.1: %w (loopback 127.0.0.0/8 not usable)", err)
	}
	c.Close()
	return nil
}

// Off-machine addresses whose routes must be missing: TEST-NET-1, a private
// range, and a public address. None is contacted: a UDP connect only looks
// the route up.
var offMachine4 = []string{"192.0.2.1:5060", "10.0.0.1:5060", "8.8.8.8:53"}

const offMachine6 = "[2001:db8::1]:5060"

func unreachable(network, addr string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s connect to %s succeeded: an off-machine route exists", network, addr)
	}
	if !errors.Is(err, syscall.ENETUNREACH) {
		return fmt.Errorf("%s connect to %s failed, but not with \"network is unreachable\": %w", network, addr, err)
	}
	return nil
}
