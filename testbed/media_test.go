package testbed

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
)

// TestSIPpRTPThroughTheRelay: SIPp's caller plays g711a.pcap (7 s of
// G.711 A-law in 30 ms packets) and a DTMF digit, SIPp's callee echoes every packet back
// (-rtp_echo). The gateway anchors both legs (media.mode relay, the
// default): the SDP each party sees names the gateway, so the caller's RTP
// reaches the gateway's leg A and leaves from leg B, and the callee echoes
// it to where it came from, leg B, which relays it back to the caller. The
// meters in the "call ended" line show both directions flowed through the
// gateway (if the parties had exchanged RTP directly, the gateway would
// count none), and /metrics shows every port released.
func TestSIPpRTPThroughTheRelay(t *testing.T) {
	requireSIPp(t)
	natsAddr := net.JoinHostPort(gatewayIP, strconv.Itoa(freeTCPPort(t, gatewayIP)))
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second, BillFromMedia: true,
		NATS: fmt.Sprintf("  listen: %s\n", natsAddr)})
	startUASScenario(t, gw, "-sn", "uas", "-rtp_echo")
	scenario, err := filepath.Abs("scenarios/uac_rtp.xml")
	if err != nil {
		t.Fatal(err)
	}
	uac := startUAC(t, gw, 40*time.Second, "-sf", scenario, "-m", "1")
	if code := uac.wait(50 * time.Second); code != 0 {
		t.Fatalf("sipp uac exit code %d, want 0", code)
	}
	gw.waitLog(10*time.Second, `"call ended" line`, func() bool { return gw.count(message("call ended")) >= 1 })
	l, _ := gw.find(message("call ended"))
	caller, callee := l.num("caller_rtp_packets"), l.num("callee_rtp_packets")
	t.Logf("billed %v; relayed: caller %v packets (%v bytes, %v lost, jitter %.2f ms), echo %v packets (%v lost, jitter %.2f ms)",
		l["billed"], caller, l["caller_rtp_bytes"], l["caller_rtp_lost"], l.num("caller_jitter_ms"), callee, l["callee_rtp_lost"], l.num("callee_jitter_ms"))
	// g711a.pcap holds 236 packets (30 ms of A-law each), and
	// dtmf_2833_1.pcap 10 (an RFC 2833 digit, its end packet sent three
	// times: 8 sequence numbers).
	const sent = 236 + 10
	if caller != sent {
		t.Errorf("the gateway relayed %v packets from the caller, want the pcaps' %d", caller, sent)
	}
	// The echo of every packet came back through leg B: the callee sent to
	// the gateway, the only address it was given.
	if callee != caller {
		t.Errorf("echo through the gateway: %v packets for %v sent", callee, caller)
	}
	// Nothing lost on loopback: -2 is the two repeated DTMF end packets
	// (RFC 3550's cumulative loss goes negative with duplicates).
	if l.num("caller_rtp_lost") != -2 || l.num("callee_rtp_lost") != -2 || l.num("caller_rtp_dropped") != 0 || l.num("callee_rtp_dropped") != 0 {
		t.Errorf("loss or drops on loopback: %v", l)
	}
	// Billed to the last RTP packet: the DTMF digit 8 s after the ACK
	// (uac_rtp.xml pauses 8 s after starting the recording), not the BYE
	// a second later.
	if billed := l.dur("billed"); billed < 7900*time.Millisecond || billed > 8600*time.Millisecond {
		t.Errorf("billed %v, want about 8.1 s: the last RTP packet, not the BYE at 9 s", billed)
	}
	m := metricValues(httpGet(t, gw.apiURL+"/metrics"))
	if m["tollgate_media_ports_in_use"] != 0 || m["tollgate_media_packets_total"] < caller+callee {
		t.Errorf("/metrics: %v ports in use (want 0), %v packets relayed (want >= %v)",
			m["tollgate_media_ports_in_use"], m["tollgate_media_packets_total"], caller+callee)
	}
	// The CDR on NATS carries the same meters and the media-verified end.
	waitOutboxEmpty(t, gw, 10*time.Second)
	var ended *events.Event
	for _, m := range checkStream(t, readStream(t, "nats://"+natsAddr)).events {
		if m.Type == "call.ended" {
			ended = &m
		}
	}
	if ended == nil || ended.Media == nil || float64(ended.Media.Caller.Packets) != caller || float64(ended.Media.Callee.Packets) != callee ||
		ended.Media.Caller.Lost != -2 || ended.BilledUntil == nil || ended.Media.Caller.LastPacket == nil ||
		ended.BilledUntil.Before(*ended.Media.Caller.LastPacket) || ended.BilledUntil.Sub(*ended.Media.Caller.LastPacket) > 40*time.Millisecond {
		t.Errorf("call.ended on NATS: %+v", ended)
	}
	gw.noErrors()
}
