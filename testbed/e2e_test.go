package testbed

// End-to-end tests: the tollgate binary between SIPp user agents. SIPp's uac
// plays the tenant's PBX (127.0.0.10), SIPp's uas the carrier (127.0.0.2);
// the gateway listens on 127.0.0.1. Every wait polls a condition (log line,
// bound socket, flag file, process exit) with a deadline; nothing sleeps a
// fixed time and calls it an assertion.

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
)

// TestSIPpCallsThroughGateway: 300 calls at 30 calls/s with no cap all
// complete, each admitted and ended once, and nothing is left active.
func TestSIPpCallsThroughGateway(t *testing.T) {
	requireSIPp(t)
	const calls = 300
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second})
	startUAS(t, gw)

	uac := startUAC(t, gw, 40*time.Second, "-sn", "uac",
		"-r", "30", "-m", strconv.Itoa(calls), "-l", "100", "-d", "1000")
	if code := uac.wait(50 * time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (every call successful)", code)
	}
	st := uac.stats()
	if got := st["SuccessfulCall(C)"]; got != calls {
		t.Errorf("SIPp successful calls = %d, want %d", got, calls)
	}
	if got := st["FailedCall(C)"]; got != 0 {
		t.Errorf("SIPp failed calls = %d, want 0", got)
	}

	// The gateway's side: every call admitted once and ended once.
	gw.waitLog(10*time.Second, strconv.Itoa(calls)+` "call ended" lines`, func() bool {
		return gw.count(message("call ended")) >= calls
	})
	if got := gw.count(decision("admit", "")); got != calls {
		t.Errorf("admit decisions = %d, want %d", got, calls)
	}
	if got := gw.count(decision("reject", "")); got != 0 {
		t.Errorf("reject decisions = %d, want 0", got)
	}
	if got := gw.count(message("call ended")); got != calls {
		t.Errorf(`"call ended" lines = %d, want %d`, got, calls)
	}
	if got := gw.count(func(l logLine) bool {
		return l.str("message") == "call ended" && l.str("cause") == "bye_caller" && l.str("state") == "confirmed"
	}); got != calls {
		t.Errorf(`"call ended" with cause bye_caller after a confirmed call = %d, want %d`, got, calls)
	}

	// Every call's media was anchored (the default) and every port pair
	// came back: none leaks over 300 calls.
	m := metricValues(httpGet(t, gw.apiURL+"/metrics"))
	if m["tollgate_media_ports_in_use"] != 0 || m["tollgate_media_ports_free"] != 10000 {
		t.Errorf("after %d calls: %v media ports in use, %v free, want 0 and 10000", calls,
			m["tollgate_media_ports_in_use"], m["tollgate_media_ports_free"])
	}

	// Nothing left in the dialog table: the drain reports its active count.
	gw.signal(syscall.SIGTERM)
	gw.waitLog(5*time.Second, `"draining" line`, func() bool { return gw.count(message("draining")) > 0 })
	if l, _ := gw.find(message("draining")); l.num("active") != 0 {
		t.Errorf("active calls after the run = %v, want 0", l["active"])
	}
	if code := gw.waitExit(10 * time.Second); code != 0 {
		t.Errorf("tollgate exit code %d, want 0", code)
	}
	gw.noErrors()
}

// TestSIPpParallelCallsCap: 20 overlapping calls against a cap of 10: ten
// are answered, ten get 486 from the gateway.
//
// The gateway starts unlimited; the cap is set through the admin API while
// it runs, so this also shows a limit change applying to the next INVITE
// without a restart, and the metrics counting the outcome.
func TestSIPpParallelCallsCap(t *testing.T) {
	requireSIPp(t)
	const capacity, calls = 10, 20
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second})
	startUAS(t, gw)
	client := api.NewClient(gw.apiURL, adminToken, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lv, err := client.PatchLimits(ctx, "demo", map[string]any{"max_parallel_calls": capacity})
	if err != nil || lv.Effective.MaxParallelCalls == nil || *lv.Effective.MaxParallelCalls != capacity {
		t.Fatalf("PATCH limits: %+v, %v", lv, err)
	}

	scenario, err := filepath.Abs("scenarios/uac_cap.xml")
	if err != nil {
		t.Fatal(err)
	}
	// 20 calls within 200 ms, each answered call held 3 s: all overlap.
	uac := startUAC(t, gw, 30*time.Second, "-sf", scenario,
		"-r", "100", "-rp", "1000", "-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-d", "3000")
	if code := uac.wait(40 * time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (both outcomes end the scenario normally)", code)
	}
	st := uac.stats()
	if got := st["SuccessfulCall(C)"]; got != calls {
		t.Errorf("SIPp successful calls = %d, want %d", got, calls)
	}

	// Per-message counters, in scenario order: one 486 receive (the INVITE's
	// busy answer) and two 200 receives (the INVITE's answer, the BYE's).
	busy, ok := uac.recvCounts(486), uac.recvCounts(200)
	if len(busy) != 1 || len(ok) != 2 {
		t.Fatalf("unexpected -trace_counts layout: 486 receives %v, 200 receives %v", busy, ok)
	}
	if busy[0] != calls-capacity {
		t.Errorf("calls rejected with 486 = %d, want %d", busy[0], calls-capacity)
	}
	if ok[0] != capacity {
		t.Errorf("calls answered 200 = %d, want %d", ok[0], capacity)
	}
	if ok[1] != ok[0] {
		t.Errorf("BYEs answered 200 = %d, want %d (one per answered call)", ok[1], ok[0])
	}

	gw.waitLog(10*time.Second, strconv.Itoa(capacity)+` "call ended" lines`, func() bool {
		return gw.count(message("call ended")) >= capacity
	})
	if got := gw.count(decision("admit", "")); got != capacity {
		t.Errorf("admit decisions = %d, want %d", got, capacity)
	}
	if got := gw.count(decision("reject", "parallel_calls")); got != calls-capacity {
		t.Errorf("reject decisions with cause parallel_calls = %d, want %d", got, calls-capacity)
	}
	if got := gw.count(func(l logLine) bool {
		return decision("reject", "parallel_calls")(l) && l.num("code") == 486
	}); got != calls-capacity {
		t.Errorf("parallel_calls rejections answered 486 = %d, want %d", got, calls-capacity)
	}
	if got := gw.count(message("call decision")); got != calls {
		t.Errorf("call decisions = %d, want %d", got, calls)
	}
	if got := gw.count(message("call ended")); got != capacity {
		t.Errorf(`"call ended" lines = %d, want %d`, got, capacity)
	}
	metrics := httpGet(t, gw.apiURL+"/metrics")
	for _, want := range []string{
		`tollgate_calls_rejected_total{cause="parallel_calls"} 10`,
		`tollgate_calls_admitted_total{direction="outbound"} 10`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	audit, err := client.Audit(ctx, api.AuditQuery{Tenant: "demo"})
	if err != nil || len(audit) == 0 || audit[0].Action != "limits.update" || audit[0].Actor != "testbed" {
		t.Errorf("audit = %+v, %v; want limits.update by testbed first", audit, err)
	}
	gw.noErrors()
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
	return string(b)
}

// TestSIPpGracefulShutdown: on SIGTERM the gateway answers new INVITEs 503,
// lets the call in progress end with its own BYE within the grace period,
// then exits 0.
func TestSIPpGracefulShutdown(t *testing.T) {
	requireSIPp(t)
	t.Run("carrier answers BYE at once", func(t *testing.T) {
		testGracefulShutdown(t, "-sn", "uas")
	})
	t.Run("carrier answers BYE 300ms late", func(t *testing.T) {
		// A draining gateway must relay the last BYE's 200 before it exits.
		scenario, err := filepath.Abs("scenarios/uas_slow_bye.xml")
		if err != nil {
			t.Fatal(err)
		}
		testGracefulShutdown(t, "-sf", scenario)
	})
}

// testGracefulShutdown runs the shutdown check with the carrier playing the
// SIPp scenario selected by uasScenario.
func testGracefulShutdown(t *testing.T, uasScenario ...string) {
	const grace = 10 * time.Second
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: grace})
	startUASScenario(t, gw, uasScenario...)

	scenario, err := filepath.Abs("scenarios/uac_hold.xml")
	if err != nil {
		t.Fatal(err)
	}
	// One call, held 3 s after the answer; the scenario creates the file
	// "answered" once it has ACKed the 200.
	uac := startUAC(t, gw, 30*time.Second, "-sf", scenario, "-m", "1", "-d", "3000")
	answered := filepath.Join(uac.dir, "answered")
	if !poll(10*time.Second, func() bool { _, err := os.Stat(answered); return err == nil }) {
		t.Fatal("the call was not answered within 10s")
	}
	if got := gw.count(decision("admit", "")); got != 1 {
		t.Fatalf("admit decisions = %d, want 1", got)
	}

	stopAt := time.Now()
	gw.signal(syscall.SIGTERM)
	gw.waitLog(5*time.Second, `"draining" line`, func() bool { return gw.count(message("draining")) > 0 })
	if l, _ := gw.find(message("draining")); l.num("active") != 1 {
		t.Errorf("active calls when draining starts = %v, want 1", l["active"])
	}

	// A new call while draining: 503.
	if code := inviteProbe(t, pbxIP, gw.addr); code != 503 {
		t.Errorf("new INVITE while draining answered %d, want 503", code)
	}
	gw.waitLog(5*time.Second, "the draining rejection", func() bool {
		return gw.count(func(l logLine) bool { return decision("reject", "draining")(l) && l.num("code") == 503 }) == 1
	})

	// The call in progress ends normally: the caller's BYE gets its 200.
	if code := uac.wait(20 * time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (BYE answered 200 through the draining gateway)", code)
	}
	if st := uac.stats(); st["SuccessfulCall(C)"] != 1 {
		t.Errorf("SIPp successful calls = %d, want 1", st["SuccessfulCall(C)"])
	}
	if code := gw.waitExit(grace + 5*time.Second); code != 0 {
		t.Errorf("tollgate exit code %d, want 0", code)
	}
	if took := gw.exitedAt.Sub(stopAt); took > grace {
		t.Errorf("tollgate took %s to stop, more than the %s grace period", took, grace)
	}

	ended := gw.index(func(l logLine) bool {
		return l.str("message") == "call ended" && l.str("cause") == "bye_caller"
	})
	stopped := gw.index(message("tollgate stopped"))
	if ended < 0 {
		t.Error(`no "call ended" line with cause bye_caller: the call did not end by its own BYE`)
	}
	if stopped < 0 || stopped < ended {
		t.Errorf(`"tollgate stopped" at log line %d, want after the call ended (line %d)`, stopped, ended)
	}
	if n := gw.count(message("grace period over: tearing down remaining calls")); n != 0 {
		t.Error("the gateway tore the call down instead of letting it end")
	}
	gw.noErrors()
}
