package testbed

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/netns"
	"github.com/tollgate/tollgate/testbed/floodgen"
)

// floodIP is the flooding stranger: neither a carrier's nor a tenant's
// address.
const floodIP = "127.0.0.99"

// TestSIPpFlood (issue 9, "Tests: Flood"): 5,000 INVITE/s for 10 s from ONE
// unknown source while the tenant places 50 calls/s through the gateway,
// with the default sip.flood settings (the testbed config sets none).
//
//   - at least 99 % of the tenant's calls succeed;
//   - the flooding source is blocked: GET /v1/blocked lists it (and only
//     it: the tenant is not blocked), from the flood's first second, and
//     the tollgate_flood_* metrics count its requests;
//   - no amplification: the flooder receives at most one response per
//     request; in fact only its first unknown_burst requests are answered
//     (stateless 403, never retransmitted), and nothing once it is blocked.
//
// Every request the flooder sent is accounted for: the gateway let it
// through, blocked it on arrival, or the kernel dropped it for a full
// socket buffer (the namespace's own UDP counters, /proc/net/snmp).
func TestSIPpFlood(t *testing.T) {
	requireSIPp(t)
	netns.Require(t)
	const (
		floodRate     = 5000
		floodDuration = 10 * time.Second
		tenantRate    = 50
		tenantCalls   = 550 // 11 s: the flood's 10 s fall inside
	)
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second})
	startUAS(t, gw)

	uac := startUAC(t, gw, 45*time.Second, "-sn", "uac",
		"-r", strconv.Itoa(tenantRate), "-m", strconv.Itoa(tenantCalls), "-l", "500", "-d", "1000")
	// The flood starts once the tenant's calls flow.
	gw.waitLog(10*time.Second, "the tenant's first admitted call", func() bool {
		return gw.count(decision("admit", "")) > 0
	})

	udp0 := udpCounters(t)
	cpu0 := procTicks(t, gw.cmd.Process.Pid)
	floodStart := time.Now()
	res, err := floodgen.Run(context.Background(), floodgen.Config{
		Target:   gw.addr,
		Sources:  []netip.Addr{netip.MustParseAddr(floodIP)},
		Rate:     floodRate,
		Duration: floodDuration,
		Tick:     time.Millisecond,
		// A 403 retransmitted as the old gateway did (T1 doubling to T2)
		// would come back within 4 s of its request.
		Linger: 4 * time.Second,
	})
	if err != nil {
		t.Fatalf("flood: %v", err)
	}
	cpu1 := procTicks(t, gw.cmd.Process.Pid)
	udp1 := udpCounters(t)
	t.Logf("flood: %d INVITEs in %s (%.0f/s, %d send errors), per second %v; %d responses %v, per second %v",
		res.Sent, res.Elapsed.Round(time.Millisecond), res.AchievedRate(), res.SendErrors, res.SentPerSecond,
		res.Responses, res.ByCode, res.ResponsesPerSecond)
	t.Logf("gateway CPU during the flood and its linger (tenant calls included): %.2f s (%.0f %% of one core)",
		float64(cpu1-cpu0)/clkTck, 100*float64(cpu1-cpu0)/clkTck/time.Since(floodStart).Seconds())

	// The flooder must really have flooded: a slow machine that sent far
	// less than asked does not test anything.
	if want := uint64(0.95 * floodRate * floodDuration.Seconds()); res.Sent < want {
		t.Fatalf("the flooder sent %d INVITEs, want at least %d (95 %% of %d/s for %s): the machine is too busy",
			res.Sent, want, floodRate, floodDuration)
	}

	// The tenant's calls.
	code := uac.wait(30 * time.Second)
	st := uac.stats()
	ok, failed := st["SuccessfulCall(C)"], st["FailedCall(C)"]
	t.Logf("tenant: %d calls at %d/s: %d successful, %d failed, %d retransmissions (SIPp exit %d)",
		tenantCalls, tenantRate, ok, failed, st["Retransmissions(C)"], code)
	if 100*ok < 99*tenantCalls {
		t.Errorf("tenant calls successful = %d of %d, want at least 99 %%", ok, tenantCalls)
	}

	// No amplification: at most one response per request; in fact only
	// the unknown source's bucket (unknown_burst requests) is answered,
	// each with one stateless 403, and nothing after the block.
	if res.Responses > res.Sent {
		t.Errorf("the flooder got %d responses to %d requests: amplification", res.Responses, res.Sent)
	}
	if res.Responses == 0 {
		t.Errorf("the flooder got no response at all: its first requests must get 403 (is the flood reaching the gateway?)")
	}
	if res.Responses > configs.DefaultFloodUnknownBurst {
		t.Errorf("the flooder got %d responses, want at most sip.flood.unknown_burst = %d (answered until blocked, then nothing)",
			res.Responses, configs.DefaultFloodUnknownBurst)
	}
	if n := res.ByCode[403]; n != res.Responses {
		t.Errorf("responses by code %v, want only 403", res.ByCode)
	}
	if res.Other != 0 {
		t.Errorf("the flooder received %d datagrams that are not SIP responses", res.Other)
	}

	// Blocked, from the flood's first second, and the only source blocked.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	blocked, err := api.NewClient(gw.apiURL, adminToken, nil).Blocked(ctx)
	if err != nil {
		t.Fatalf("GET /v1/blocked: %v", err)
	}
	t.Logf("GET /v1/blocked: %+v", blocked)
	if len(blocked) != 1 || blocked[0].IP != floodIP {
		t.Fatalf("GET /v1/blocked = %+v, want exactly %s (the tenant must not be blocked)", blocked, floodIP)
	}
	b := blocked[0]
	if b.Known || b.Reason != "unknown_rate" {
		t.Errorf("block of %s: known %v, reason %q; want an unknown source over unknown_rate", floodIP, b.Known, b.Reason)
	}
	if d := b.Since.Sub(floodStart); d < 0 || d > time.Second {
		t.Errorf("%s blocked %s after the flood started, want within its first second", floodIP, d)
	}
	if !b.Until.After(time.Now()) {
		t.Errorf("block of %s ends %s, already over", floodIP, b.Until)
	}

	// Metrics, and every request accounted for.
	m := metricValues(httpGet(t, gw.apiURL+"/metrics"))
	t.Logf("metrics: flood allowed %v, limited %v, dropped %v, blocked sources %v; refused unknown_source %v",
		m["tollgate_flood_allowed_total"], m["tollgate_flood_limited_total"], m["tollgate_flood_dropped_total"],
		m["tollgate_flood_blocked_sources"], m[`tollgate_sip_refused_total{cause="unknown_source"}`])
	if m["tollgate_flood_blocked_sources"] != 1 || m["tollgate_flood_limited_total"] != 1 {
		t.Errorf("tollgate_flood_blocked_sources = %v, tollgate_flood_limited_total = %v; want 1 and 1",
			m["tollgate_flood_blocked_sources"], m["tollgate_flood_limited_total"])
	}
	if got := m["tollgate_flood_dropped_total"]; uint64(got) != b.Dropped {
		t.Errorf("tollgate_flood_dropped_total = %v, /v1/blocked says %d dropped", got, b.Dropped)
	}
	answered := uint64(m[`tollgate_sip_refused_total{cause="unknown_source"}`])
	if answered != res.Responses {
		t.Errorf("the gateway answered %d requests 403 (unknown_source), the flooder received %d responses", answered, res.Responses)
	}
	kernelDrops := udp1["RcvbufErrors"] - udp0["RcvbufErrors"]
	seen := answered + 1 + b.Dropped // 403s, the request that started the block, the blocked ones
	t.Logf("accounting: sent %d = answered %d + limited 1 + dropped while blocked %d + kernel drops (receive buffers full) %d (= %d)",
		res.Sent, answered, b.Dropped, kernelDrops, seen+kernelDrops)
	if seen+kernelDrops != res.Sent {
		t.Errorf("requests sent %d, but the gateway saw %d and the kernel dropped %d", res.Sent, seen, kernelDrops)
	}
	gw.noErrors()
}

// clkTck is the kernel's USER_HZ (/proc/PID/stat's CPU times are in it);
// 100 on every Linux the testbed runs on.
const clkTck = 100

// procTicks returns utime+stime of process pid, in clock ticks.
func procTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return ut + st
}

// udpCounters returns the "Udp:" counters of /proc/net/snmp: those of this
// process's network namespace (the test's own).
func udpCounters(t *testing.T) map[string]uint64 {
	t.Helper()
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		for i, v := range fields[1:] {
			if i < len(names) {
				out[names[i]], _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	if _, ok := out["RcvbufErrors"]; !ok {
		t.Fatalf("/proc/net/snmp has no Udp RcvbufErrors counter")
	}
	return out
}

// metricValues parses a Prometheus text exposition: series (name with its
// labels, as written) to value.
func metricValues(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
