package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/meter"
)

// rtpEndpoint is a party's media socket and the SDP that names it.
type rtpEndpoint struct {
	c *net.UDPConn
}

func newRTPEndpoint(t *testing.T, ip string) *rtpEndpoint {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rtpEndpoint{c: c}
}

func (r *rtpEndpoint) addr() netip.AddrPort { return r.c.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *rtpEndpoint) sdp() string {
	a := r.addr()
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\n"+
		"m=audio %[2]d RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
		a.Addr(), a.Port())
}

func (r *rtpEndpoint) send(t *testing.T, to netip.AddrPort, seq uint16) {
	t.Helper()
	pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 42},
		Payload: make([]byte, 160)}).Marshal()
	if _, err := r.c.WriteToUDPAddrPort(pkt, to); err != nil {
		t.Fatal(err)
	}
}

func (r *rtpEndpoint) recv(t *testing.T) netip.AddrPort {
	t.Helper()
	buf := make([]byte, 2048)
	r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, src, err := r.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no RTP: %v", err)
	}
	return src
}

// mediaOf parses the audio stream of a message's SDP.
func mediaOf(t *testing.T, what string, body []byte) netip.AddrPort {
	t.Helper()
	m, err := meter.ParseSDP(body)
	if err != nil {
		t.Fatalf("%s: SDP %q: %v", what, body, err)
	}
	return netip.AddrPortFrom(m.Addr, uint16(m.Port))
}

// anchoredCall places a call with callerSDP through the gateway to a
// carrier answering calleeSDP, and returns the session, its Call-ID and
// the address the gateway gave the caller for media (leg A).
func anchoredCall(t *testing.T, e *env, callerSDP, calleeSDP string) (*sipgo.DialogClientSession, string, netip.AddrPort) {
	t.Helper()
	e.carrier.setOnCall(answerBody(0, calleeSDP))
	sess, code, err := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, callerSDP)
	if err != nil || code != 200 {
		t.Fatalf("call: %d %v", code, err)
	}
	return sess, callIDOf(sess.InviteRequest), mediaOf(t, "200", sess.InviteResponse.Body())
}

func TestRelayAnchorsRTPOnBothLegs(t *testing.T) {
	const lo, hi = 31000, 31099
	e := newEnv(t, withMedia(lo, hi))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	e.carrier.setOnCall(answerBody(0, callee.sdp()))
	free := e.gw.media.FreePairs()

	sess, code, err := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp())
	if err != nil || code != 200 {
		t.Fatalf("call: %d %v", code, err)
	}
	callID := callIDOf(sess.InviteRequest)
	inv := e.carrier.waitFor(sip.INVITE, callID, time.Second).req
	gwB := mediaOf(t, "INVITE at the carrier", inv.Body())
	gwA := mediaOf(t, "200 at the caller", sess.InviteResponse.Body())
	for _, a := range []netip.AddrPort{gwA, gwB} {
		if a.Addr() != netip.MustParseAddr("127.0.0.1") || a.Port() < lo || a.Port() > hi {
			t.Fatalf("SDP points at %v, want the gateway's 127.0.0.1:%d-%d", a, lo, hi)
		}
	}
	// Everything but c= and the m= port arrives byte for byte.
	want := strings.NewReplacer("c=IN IP4 "+tenantIP, "c=IN IP4 127.0.0.1",
		fmt.Sprintf("m=audio %d ", caller.addr().Port()), fmt.Sprintf("m=audio %d ", gwB.Port())).Replace(caller.sdp())
	if string(inv.Body()) != want {
		t.Fatalf("offer at the carrier:\n%q\nwant\n%q", inv.Body(), want)
	}
	if e.gw.media.FreePairs() != free-2 {
		t.Fatalf("%d pairs free during the call, want %d", e.gw.media.FreePairs(), free-2)
	}

	caller.send(t, gwA, 1)
	if src := callee.recv(t); src != gwB {
		t.Fatalf("carrier got RTP from %v, want only the gateway's %v", src, gwB)
	}
	callee.send(t, gwB, 1)
	if src := caller.recv(t); src != gwA {
		t.Fatalf("caller got RTP from %v, want the gateway's %v", src, gwA)
	}
	d := e.gw.Dialog(callID)
	a, b, ok := d.MediaStats()
	if !ok || a.Packets != 1 || b.Packets != 1 {
		t.Fatalf("meters: caller %+v callee %+v", a, b)
	}
	// GET /v1/calls shows them live.
	calls := e.gw.Calls("acme")
	if len(calls) != 1 || calls[0].Media == nil || calls[0].Media.Caller.Packets != 1 || calls[0].Media.Callee.Packets != 1 ||
		calls[0].Media.Caller.FirstPacket.IsZero() {
		t.Fatalf("call view %+v, want the media meters", calls)
	}

	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.idle(t)
	eventually(t, 2*time.Second, func() bool { return e.gw.media.FreePairs() == free }, "ports not released: %d of %d free", e.gw.media.FreePairs(), free)
	// The CDR carries the meters.
	ended := e.waitEvent(t, admission.EventCallEnded, 1, 2*time.Second)
	if c := ended.Call; c.Cause != "bye_caller" || c.End.HungUp != "caller" || c.End.Media == nil ||
		c.End.Media.Caller.Packets != 1 || c.End.Media.Callee.Packets != 1 || c.End.Media.Caller.FirstPacket.IsZero() {
		t.Fatalf("call.ended %+v, end %+v", c, c.End)
	}
}

func TestUnanchorableSDPGets488AndCountsNothing(t *testing.T) {
	e := newEnv(t, withMedia(31100, 31199))
	free := e.gw.media.FreePairs()
	bad := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 pbx.example\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	if _, code, _ := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, bad); code != 488 {
		t.Fatalf("unanchorable SDP got %d, want 488", code)
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 0 {
		t.Fatalf("carrier got %d INVITEs", n)
	}
	if e.adm.Active("acme") != 0 || e.gw.media.FreePairs() != free {
		t.Fatalf("a refused call holds a slot (%d) or ports (%d of %d free)", e.adm.Active("acme"), e.gw.media.FreePairs(), free)
	}
	rej := e.waitEvent(t, admission.EventCallRejected, 1, time.Second)
	if rej.Tenant != "acme" || rej.Call.Cause != "sdp" || rej.Call.Code != 488 || len(e.eventsOf(admission.EventCallStarted)) != 0 {
		t.Fatalf("call.rejected %+v %+v", rej, rej.Call)
	}
}

func TestNoFreeMediaPortsGets503(t *testing.T) {
	e := newEnv(t, withMedia(31200, 31203)) // two pairs: one call
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	e.carrier.setOnCall(answerBody(0, callee.sdp()))
	sess, code, err := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp())
	if err != nil || code != 200 {
		t.Fatalf("first call: %d %v", code, err)
	}
	_, code, err = e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp())
	if code != 503 {
		t.Fatalf("second call got %d (%v), want 503", code, err)
	}
	if e.adm.Active("acme") != 1 {
		t.Fatalf("%d slots in use, want the first call's only", e.adm.Active("acme"))
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
	sess, code, _ = e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp())
	if code != 200 {
		t.Fatalf("after the first call ended the ports were not back: %d", code)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

func TestCloseReleasesMediaPorts(t *testing.T) {
	e := newEnv(t, withMedia(31500, 31503))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	e.carrier.setOnCall(answerBody(0, callee.sdp()))
	if _, code, err := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp()); code != 200 {
		t.Fatalf("call: %d %v", code, err)
	}
	e.gw.Close()
	for p := 31500; p <= 31503; p++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			t.Fatalf("port %d still bound after Close: %v", p, err)
		}
		c.Close()
	}
}

func TestCallWithoutRTPIsTornDownAfterTheTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	e := newEnv(t, withMedia(31300, 31399), withConfig(func(c *configs.Config) { c.Media.RTPTimeout = timeout; c.Media.HoldTimeout = time.Hour }))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	_, callID, gwA := anchoredCall(t, e, caller.sdp(), callee.sdp())
	answered := e.gw.Dialog(callID).Answered()
	// RTP flows for a while: the call stays up past the timeout.
	var lastSent time.Time
	for i := 0; i < 10; i++ {
		caller.send(t, gwA, uint16(i))
		lastSent = time.Now()
		time.Sleep(timeout / 4)
	}
	if d := e.gw.Dialog(callID); d == nil || d.State() != Confirmed {
		t.Fatal("a call with RTP flowing was torn down")
	}
	// Then it stops: BYE to both legs with Q.850 cause 41.
	bye := e.carrier.waitFor(sip.BYE, callID, 3*time.Second).req
	gone := time.Since(lastSent)
	// Not before the timeout; the upper bound only catches a watchdog that
	// never fires (the billing check below is the exact one).
	if gone < timeout || gone > timeout+2*time.Second {
		t.Fatalf("torn down %v after the last packet, want %v (+ one check interval)", gone, timeout)
	}
	if r := bye.GetHeaders("Reason"); len(r) != 1 || !strings.Contains(r[0].Value(), "cause=41") || !strings.Contains(r[0].Value(), "media timeout") {
		t.Fatalf("BYE Reason %v, want Q.850 cause 41 media timeout", r)
	}
	e.pbx.waitFor(sip.BYE, callID, time.Second)
	e.idle(t)
	// Billed to the last packet plus one packetisation interval (20 ms),
	// not to the teardown a timeout later.
	billed := e.adm.Usage(time.Now(), "acme").Seconds
	want := lastSent.Add(20 * time.Millisecond).Sub(answered)
	if d := billed - want; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("billed %v, want %v (answer to last RTP packet + 20 ms) within 50 ms", billed, want)
	}
}

func TestBillFromSignallingKeepsBillingToTheBye(t *testing.T) {
	e := newEnv(t, withMedia(31900, 31999), withConfig(func(c *configs.Config) { c.Media.BillFrom = configs.BillFromSignalling }))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	sess, callID, _ := anchoredCall(t, e, caller.sdp(), callee.sdp())
	answered := e.gw.Dialog(callID).Answered()
	time.Sleep(300 * time.Millisecond) // no RTP at all
	bye := time.Now()
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
	if billed, want := e.adm.Usage(time.Now(), "acme").Seconds, bye.Sub(answered); billed < want-50*time.Millisecond {
		t.Fatalf("billed %v with bill_from signalling, want about %v (to the BYE)", billed, want)
	}
}

func TestNoRTPAtAllBillsNothing(t *testing.T) {
	e := newEnv(t, withMedia(32000, 32099))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	sess, _, _ := anchoredCall(t, e, caller.sdp(), callee.sdp())
	time.Sleep(200 * time.Millisecond)
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
	if billed := e.adm.Usage(time.Now(), "acme").Seconds; billed != 0 {
		t.Fatalf("an answered call without one RTP packet billed %v, want 0 (bill_from media)", billed)
	}
}

func TestHoldUsesTheHoldTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, withMedia(31400, 31499), withConfig(func(c *configs.Config) { c.Media.RTPTimeout = timeout; c.Media.HoldTimeout = time.Hour }))
	caller, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	e.carrier.setOnCall(answerBody(0, strings.Replace(callee.sdp(), "a=sendrecv", "a=recvonly", 1)))
	sess, code, err := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, strings.Replace(caller.sdp(), "a=sendrecv", "a=sendonly", 1))
	if err != nil || code != 200 {
		t.Fatalf("call: %d %v", code, err)
	}
	if !strings.Contains(string(sess.InviteResponse.Body()), "a=recvonly\r\n") {
		t.Fatalf("hold direction not relayed: %q", sess.InviteResponse.Body())
	}
	time.Sleep(4 * timeout)
	if d := e.gw.Dialog(callIDOf(sess.InviteRequest)); d == nil || d.State() != Confirmed {
		t.Fatal("a call on hold was torn down by the RTP timeout")
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

func TestReInviteMovesTheCallersMedia(t *testing.T) {
	e := newEnv(t, withMedia(31800, 31899))
	caller, callee, moved := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP), newRTPEndpoint(t, tenantIP)
	sess, callID, gwA := anchoredCall(t, e, caller.sdp(), callee.sdp())
	gwB := mediaOf(t, "INVITE at the carrier", e.carrier.waitFor(sip.INVITE, callID, time.Second).req.Body())
	callee.send(t, gwB, 1)
	if src := caller.recv(t); src != gwA {
		t.Fatalf("caller got RTP from %v, want %v", src, gwA)
	}

	// The caller moves to another port with a re-INVITE.
	reinv := sip.NewRequest(sip.INVITE, sess.InviteResponse.Contact().Address)
	reinv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	reinv.SetBody([]byte(moved.sdp()))
	if res, err := sess.Do(ctxT(t, 5*time.Second), reinv); err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	sess.WriteRequest(sip.NewRequest(sip.ACK, sess.InviteResponse.Contact().Address))
	eventually(t, time.Second, func() bool { return len(e.carrier.received(sip.INVITE, callID)) == 2 }, "no re-INVITE at the carrier")
	if got := mediaOf(t, "re-INVITE at the carrier", e.carrier.received(sip.INVITE, callID)[1].req.Body()); got != gwB {
		t.Fatalf("re-INVITE offer points at %v, want the same gateway leg %v", got, gwB)
	}
	callee.send(t, gwB, 2)
	if src := moved.recv(t); src != gwA {
		t.Fatalf("moved caller got RTP from %v, want %v", src, gwA)
	}
	moved.send(t, gwA, 1) // the new source is accepted: the latch followed
	if src := callee.recv(t); src != gwB {
		t.Fatalf("callee got RTP from %v after the move", src)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

// TestMediaPortsNeverLeak: 1,000 anchored calls, ten at a time, ended by
// either side or refused by the callee, through a range that holds only 25
// calls: every one is answered (no pair is lost), and all ports are back at
// the end.
func TestMediaPortsNeverLeak(t *testing.T) {
	const lo, hi, calls, workers = 32200, 32299, 1000, 10
	e := newEnv(t, withMedia(lo, hi))
	callee := newRTPEndpoint(t, carrierIP)
	var n sync.Mutex
	count := 0
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		n.Lock()
		count++
		busy := count%5 == 0
		n.Unlock()
		if busy {
			reject(486, "Busy Here")(p, req, tx)
			return
		}
		answerBody(0, callee.sdp())(p, req, tx)
	})
	free := e.gw.media.FreePairs()
	var wg sync.WaitGroup
	errs := make(chan string, calls)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := newRTPEndpoint(t, tenantIP)
			for i := 0; i < calls/workers; i++ {
				sess, code, _ := e.pbx.inviteBody(ctxT(t, 5*time.Second), e.gw, outboundNumber, caller.sdp())
				switch code {
				case 200:
					if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
						errs <- "BYE: " + err.Error()
					}
				case 486:
				default:
					errs <- fmt.Sprintf("call got %d", code)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.idle(t)
	eventually(t, 2*time.Second, func() bool { return e.gw.media.FreePairs() == free }, "after %d calls %d of %d pairs free", calls, e.gw.media.FreePairs(), free)
	if used := e.gw.media.Totals().PortsUsed; used != 0 {
		t.Fatalf("%d ports counted in use", used)
	}
}

// An anchored INVITE too large for UDP goes to the carrier over TCP with
// its SDP still pointing at the gateway (the TCP copy is anchored too).
func TestLargeAnchoredInviteOverTCPKeepsTheGatewaysSDP(t *testing.T) {
	e := newEnv(t, withMedia(32400, 32499), func(s *envSpec) {
		s.carrierTransport = "both"
		s.edits = append(s.edits, func(c *configs.Config) {
			c.SIP.Listen = append(c.SIP.Listen, configs.Listen{Transport: "tcp", Address: "127.0.0.1:0"})
		})
	})
	callerRTP, callee := newRTPEndpoint(t, tenantIP), newRTPEndpoint(t, carrierIP)
	e.carrier.setOnCall(answerBody(0, callee.sdp()))
	big := callerRTP.sdp() + strings.Repeat("a=x-padding:"+strings.Repeat("z", 60)+"\r\n", 4096/74)
	gw := e.gw.Addr("udp")
	caller := newRawUA(t, tenantIP)
	cid := "large-sdp-" + sip.GenerateTagN(8)
	caller.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", big,
		"Via: SIP/2.0/UDP "+caller.addr()+";branch=z9hG4bKbigsdp1", "To: <sip:"+outboundNumber+"@"+gw+">",
		"Max-Forwards: 70", "From: <sip:a@"+tenantIP+">;tag=bigsdp", "Call-ID: "+cid,
		"CSeq: 1 INVITE", "Contact: <sip:a@"+caller.addr()+">", "Content-Type: application/sdp"))
	inv := e.carrier.waitFor(sip.INVITE, cid, 3*time.Second).req
	if inv.Transport() != "TCP" {
		t.Fatalf("carrier got the INVITE over %s, want TCP", inv.Transport())
	}
	if a := mediaOf(t, "INVITE over TCP", inv.Body()); a.Addr() != netip.MustParseAddr("127.0.0.1") || a.Port() < 32400 || a.Port() > 32499 {
		t.Fatalf("the TCP copy's SDP points at %v, not the gateway: media would bypass it", a)
	}
}
