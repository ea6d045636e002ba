package sip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/pike"
)

// The edge's adversarial tests: relay, reflection and the powers of
// strangers. The whole package runs in a network namespace of its own with
// only loopback (TestMain), so a bug that follows an attacker's Via or URI
// fails a test but cannot send anything off the machine.

// internetIP stands for any host on the Internet: never a party.
const internetIP = "127.0.1.50"

// catchAll listens on internetIP over UDP and TCP and counts whatever
// reaches it: datagrams, connections, bytes.
type catchAll struct {
	udp   net.PacketConn
	tcp   net.Listener
	port  int // the UDP port; TCP listens on tcpPort
	tport int
	hits  atomic.Int64
	mu    sync.Mutex
	seen  []string
}

func newCatchAll(t *testing.T) *catchAll {
	t.Helper()
	c := &catchAll{}
	var err error
	if c.udp, err = net.ListenPacket("udp", internetIP+":0"); err != nil {
		t.Fatal(err)
	}
	if c.tcp, err = net.Listen("tcp", internetIP+":0"); err != nil {
		t.Fatal(err)
	}
	c.port = c.udp.LocalAddr().(*net.UDPAddr).Port
	c.tport = c.tcp.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { c.udp.Close(); c.tcp.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, _, err := c.udp.ReadFrom(buf)
			if err != nil {
				return
			}
			c.hit("udp: " + firstLine(buf[:n]))
		}
	}()
	go func() {
		for {
			conn, err := c.tcp.Accept()
			if err != nil {
				return
			}
			c.hit("tcp connection from " + conn.RemoteAddr().String())
			conn.Close()
		}
	}()
	return c
}

func (c *catchAll) hit(what string) {
	c.hits.Add(1)
	c.mu.Lock()
	c.seen = append(c.seen, what)
	c.mu.Unlock()
}

func (c *catchAll) udpAddr() string { return internetIP + ":" + strconv.Itoa(c.port) }
func (c *catchAll) tcpAddr() string { return internetIP + ":" + strconv.Itoa(c.tport) }

// assertNothing waits a little (retransmissions included) and fails if
// anything reached the catch-all.
func (c *catchAll) assertNothing(t *testing.T, within time.Duration) {
	t.Helper()
	time.Sleep(within)
	if c.hits.Load() != 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Fatalf("the gateway sent to a stranger's address: %q", c.seen)
	}
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\r'); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// rawUA is a UDP socket on a loopback address that sends hand-written SIP
// and records every datagram it gets back.
type rawUA struct {
	t    *testing.T
	conn *net.UDPConn
	mu   sync.Mutex
	got  []string
}

func newRawUA(t *testing.T, ip string) *rawUA {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUA{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			u.mu.Lock()
			u.got = append(u.got, string(buf[:n]))
			u.mu.Unlock()
		}
	}()
	return u
}

func (u *rawUA) addr() string { return u.conn.LocalAddr().String() }

func (u *rawUA) send(to, msg string) {
	u.t.Helper()
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		u.t.Fatal(err)
	}
	if _, err := u.conn.WriteToUDP([]byte(msg), addr); err != nil {
		u.t.Fatal(err)
	}
}

// responses returns the status lines received so far that contain match.
func (u *rawUA) responses(match string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, m := range u.got {
		// On the status line only: a port or tag elsewhere may hold "503".
		if line := firstLine([]byte(m)); strings.HasPrefix(m, "SIP/2.0 ") && strings.Contains(line, match) {
			out = append(out, line)
		}
	}
	return out
}

// sipMsg joins a start line and headers into a message with a body and a
// correct Content-Length.
func sipMsg(start string, body string, headers ...string) string {
	var b strings.Builder
	b.WriteString(start + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// inDialog builds a request inside the call cid, sent by the party whose tag
// is fromTag to the one whose tag is toTag, with extra headers.
func inDialog(method, ruri, via, cid, fromTag, toTag string, cseq int, extra ...string) string {
	h := append([]string{
		"Via: SIP/2.0/UDP " + via + ";branch=z9hG4bK" + sip.GenerateTagN(10),
		"Max-Forwards: 70",
		"From: <sip:a@" + tenantIP + ">;tag=" + fromTag,
		"To: <sip:b@" + carrierIP + ">;tag=" + toTag,
		"Call-ID: " + cid,
		"CSeq: " + strconv.Itoa(cseq) + " " + method,
	}, extra...)
	return sipMsg(method+" "+ruri+" SIP/2.0", "", h...)
}

// liveCall places an answered outbound call and returns its Call-ID and
// the caller's and callee's tags.
func liveCall(t *testing.T, e *env) (cid, callerTag, calleeTag string) {
	t.Helper()
	sess, cid := e.answeredCall(t)
	callerTag = tagOf(sess.InviteRequest.From().Params)
	calleeTag = tagOf(sess.InviteResponse.To().Params)
	e.carrier.waitFor(sip.ACK, cid, 2*time.Second)
	return cid, callerTag, calleeTag
}

// A party to a live call cannot make the gateway send in-dialog requests to
// any other host: not by Request-URI, not by a further Route.
func TestInDialogRequestsGoOnlyToTheOtherParty(t *testing.T) {
	e := newEnv(t)
	ca := newCatchAll(t)
	cid, callerTag, calleeTag := liveCall(t, e)
	gw := e.gw.Addr("udp")
	pbx := newRawUA(t, tenantIP)
	cases := []struct {
		name, msg string
	}{
		{"MESSAGE to a stranger's Request-URI", inDialog("MESSAGE", "sip:x@"+ca.udpAddr(), pbx.addr(), cid, callerTag, calleeTag, 10)},
		{"INFO with a Route beyond the gateway", inDialog("INFO", "sip:x@"+e.carrier.addr(), pbx.addr(), cid, callerTag, calleeTag, 11,
			"Route: <sip:"+gw+";lr>, <sip:"+ca.udpAddr()+";lr>")},
		{"INFO to a stranger over TCP", inDialog("INFO", "sip:x@"+ca.tcpAddr()+";transport=tcp", pbx.addr(), cid, callerTag, calleeTag, 12)},
	}
	for _, c := range cases {
		pbx.send(gw, c.msg)
	}
	eventually(t, 2*time.Second, func() bool { return len(pbx.responses("403")) == len(cases) },
		"want 403 for each probe, got %q", pbx.responses(""))
	ca.assertNothing(t, 600*time.Millisecond)
	if n := len(e.carrier.received(sip.MESSAGE, cid)) + len(e.carrier.received(sip.INFO, cid)); n != 0 {
		t.Fatalf("%d probes forwarded", n)
	}
	// The call itself still works: an INFO to the party goes through.
	pbx.send(gw, inDialog("INFO", "sip:x@"+e.carrier.addr(), pbx.addr(), cid, callerTag, calleeTag, 13))
	e.carrier.waitFor(sip.INFO, cid, 2*time.Second)
}

// A response that matches no transaction of the gateway is dropped, from a
// stranger or from a party, whatever its second Via names: never relayed to
// a third party, never injected into a peer the gateway talks to.
func TestStrayResponsesAreDropped(t *testing.T) {
	e := newEnv(t)
	ca := newCatchAll(t)
	gw := e.gw.Addr("udp")
	pbxProbe := newRawUA(t, tenantIP) // stands in for the PBX's address as a target
	forged := func(second string) string {
		return sipMsg("SIP/2.0 200 OK", "v=0\r\nc=IN IP4 "+internetIP+"\r\n",
			"Via: SIP/2.0/UDP "+gw+";branch=z9hG4bKforged"+sip.GenerateTagN(6),
			"Via: SIP/2.0/UDP "+second+";branch=z9hG4bKvictim",
			"From: <sip:a@x>;tag=1", "To: <sip:b@y>;tag=2", "Call-ID: forged-"+sip.GenerateTagN(6), "CSeq: 1 INVITE",
			"Contact: <sip:"+internetIP+">", "Content-Type: application/sdp")
	}
	for _, from := range []string{strangeIP, carrierIP} {
		src := newRawUA(t, from)
		src.send(gw, forged(ca.udpAddr()))      // reflection
		src.send(gw, forged(pbxProbe.addr()))   // injection into a peer
		src.send(gw, forged(e.pbx.addr()))      // injection into the real PBX
		src.send(gw, forged("127.0.0.10:5060")) // the PBX's well-known port
	}
	ca.assertNothing(t, 600*time.Millisecond)
	if got := pbxProbe.responses(""); len(got) != 0 {
		t.Fatalf("forged 200 OK injected into a peer: %q", got)
	}
	eventually(t, time.Second, func() bool {
		return e.obs.get(&e.obs.dropped, "stray_response")+e.obs.get(&e.obs.dropped, "response_unknown_source") == 8
	}, "stray responses not counted")
}

// A stranger's CANCEL (copying the caller's branch) or BYE changes
// nothing, and neither does a known source that is not the call's party.
func TestStrangersCannotEndCalls(t *testing.T) {
	e := newEnv(t)
	e.carrier.setOnCall(ringForever)
	gw := e.gw.Addr("udp")
	caller := newRawUA(t, tenantIP)
	cid := "ringing-" + sip.GenerateTagN(8)
	branch := "z9hG4bK" + sip.GenerateTagN(12)
	common := []string{
		"Via: SIP/2.0/UDP " + caller.addr() + ";branch=" + branch,
		"Max-Forwards: 70",
		"From: <sip:a@" + tenantIP + ">;tag=caller1",
		"To: <sip:" + outboundNumber + "@" + gw + ">",
		"Call-ID: " + cid,
	}
	caller.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "v=0\r\n",
		append(common, "CSeq: 1 INVITE", "Contact: <sip:a@"+caller.addr()+">", "Content-Type: application/sdp")...))
	eventually(t, 2*time.Second, func() bool { return len(caller.responses("180")) > 0 }, "no 180")

	cancel := sipMsg("CANCEL sip:"+outboundNumber+"@"+gw+" SIP/2.0", "", append(common, "CSeq: 1 CANCEL")...)
	stranger := newRawUA(t, strangeIP)
	stranger.send(gw, cancel)
	carrier := newRawUA(t, carrierIP) // a known source, not the caller
	carrier.send(gw, cancel)
	eventually(t, 2*time.Second, func() bool {
		return len(stranger.responses("403")) == 1 && len(carrier.responses("481")) == 1
	}, "stranger got %q, carrier got %q", stranger.responses(""), carrier.responses(""))
	time.Sleep(300 * time.Millisecond)
	if got := caller.responses("487"); len(got) != 0 {
		t.Fatalf("caller's call cancelled by someone else: %q", got)
	}
	if e.gw.Dialog(cid) == nil {
		t.Fatal("the call is gone")
	}
	if n := len(e.carrier.received(sip.CANCEL, cid)); n != 0 {
		t.Fatalf("stranger's CANCEL forwarded %d times", n)
	}
	// The caller itself still can.
	caller.send(gw, cancel)
	eventually(t, 2*time.Second, func() bool { return len(caller.responses("487")) == 1 }, "caller's own CANCEL: %q", caller.responses(""))
	e.idle(t)
}

// The carrier cannot end a call as the caller: a BYE carrying the caller's
// tags from the carrier's address is refused, and the call stays up.
func TestByeOnlyFromItsParty(t *testing.T) {
	e := newEnv(t)
	cid, callerTag, calleeTag := liveCall(t, e)
	gw := e.gw.Addr("udp")
	carrier := newRawUA(t, carrierIP)
	carrier.send(gw, inDialog("BYE", "sip:x@"+e.carrier.addr(), carrier.addr(), cid, callerTag, calleeTag, 50))
	eventually(t, 2*time.Second, func() bool { return len(carrier.responses("403")) == 1 }, "carrier's forged BYE: %q", carrier.responses(""))
	if d := e.gw.Dialog(cid); d == nil || d.State() != Confirmed {
		t.Fatal("the forged BYE ended the call")
	}
	if n := len(e.pbx.received(sip.BYE, cid)) + len(e.carrier.received(sip.BYE, cid)); n != 0 {
		t.Fatalf("forged BYE forwarded")
	}
}

// Unknown sources are answered once per request, statelessly: no
// retransmission of the 403 (no amplification toward a spoofed address).
func TestUnknownSourceAnsweredOnce(t *testing.T) {
	e := newEnv(t)
	gw := e.gw.Addr("udp")
	stranger := newRawUA(t, strangeIP)
	const n = 20
	for i := 0; i < n; i++ {
		stranger.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
			"Via: SIP/2.0/UDP "+stranger.addr()+";branch=z9hG4bKflood"+strconv.Itoa(i),
			"Max-Forwards: 70", "From: <sip:a@x>;tag=f"+strconv.Itoa(i), "To: <sip:b@y>",
			"Call-ID: flood-"+strconv.Itoa(i), "CSeq: 1 INVITE"))
	}
	time.Sleep(1700 * time.Millisecond) // Timer G would have retransmitted at 0.5 s and 1.5 s
	if got := stranger.responses(""); len(got) != n {
		t.Fatalf("%d requests drew %d responses, want exactly %d", n, len(got), n)
	}
	if len(stranger.responses("403")) != n {
		t.Fatalf("responses: %q", stranger.responses(""))
	}
}

// A response to a request goes to the request's real source: the Via's
// sent-by never decides it (no reflection through a forged Via).
func TestResponsesGoToTheRealSource(t *testing.T) {
	e := newEnv(t)
	ca := newCatchAll(t)
	gw := e.gw.Addr("udp")
	pbx := newRawUA(t, tenantIP)
	pbx.send(gw, sipMsg("OPTIONS sip:"+gw+" SIP/2.0", "",
		"Via: SIP/2.0/UDP "+ca.udpAddr()+";branch=z9hG4bKopt1", "Max-Forwards: 70",
		"From: <sip:a@x>;tag=o1", "To: <sip:"+gw+">", "Call-ID: opt-1", "CSeq: 1 OPTIONS"))
	stranger := newRawUA(t, strangeIP)
	stranger.send(gw, sipMsg("INVITE sip:1@"+gw+" SIP/2.0", "",
		"Via: SIP/2.0/UDP "+ca.udpAddr()+";branch=z9hG4bKinv1", "Max-Forwards: 70",
		"From: <sip:a@x>;tag=s1", "To: <sip:1@"+gw+">", "Call-ID: inv-1", "CSeq: 1 INVITE"))
	eventually(t, 2*time.Second, func() bool {
		return len(pbx.responses("200")) == 1 && len(stranger.responses("403")) == 1
	}, "pbx got %q, stranger got %q", pbx.responses(""), stranger.responses(""))
	ca.assertNothing(t, 300*time.Millisecond)
}

// Over TCP, a response whose connection is gone is dropped: the gateway
// never dials the Via host to deliver it.
func TestTCPResponseNeverDialsVia(t *testing.T) {
	e := newEnv(t, withTCPPBX())
	ca := newCatchAll(t)
	gw := e.gw.Addr("tcp")
	conn := dialTCPFrom(t, tenantIP, gw)
	cid := "tcpvia-" + sip.GenerateTagN(6)
	fmt.Fprint(conn, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+";transport=tcp SIP/2.0", "v=0\r\n",
		"Via: SIP/2.0/TCP "+ca.tcpAddr()+";branch=z9hG4bKtcp1", "Max-Forwards: 70",
		"From: <sip:a@"+tenantIP+">;tag=t1", "To: <sip:"+outboundNumber+"@"+gw+">", "Call-ID: "+cid,
		"CSeq: 1 INVITE", "Contact: <sip:a@"+ca.tcpAddr()+";transport=tcp>", "Content-Type: application/sdp"))
	conn.Close() // gone before the gateway can answer on it
	ca.assertNothing(t, time.Second)
}

// Large messages over UDP: an INVITE too large for UDP goes to the carrier
// over TCP (RFC 3261 §18.1.1), a 4 KB 200 OK is relayed over UDP, and the
// call completes and bills.
func TestLargeMessagesOverUDP(t *testing.T) {
	e := newEnv(t, func(s *envSpec) {
		s.carrierTransport = "both"
		s.edits = append(s.edits, func(c *configs.Config) {
			c.SIP.Listen = append(c.SIP.Listen, configs.Listen{Transport: "tcp", Address: "127.0.0.1:0"})
		})
	})
	big := "v=0\r\n" + strings.Repeat("a=x-padding:"+strings.Repeat("z", 60)+"\r\n", 4096/74)
	e.carrier.setOnCall(answerBody(0, big))
	// The caller sends its 4 KB INVITE as one (fragmented) UDP datagram.
	gw := e.gw.Addr("udp")
	caller := newRawUA(t, tenantIP)
	cid := "large-" + sip.GenerateTagN(8)
	common := []string{"Max-Forwards: 70", "From: <sip:a@" + tenantIP + ">;tag=big1", "Call-ID: " + cid}
	caller.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", big,
		append([]string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKbig1", "To: <sip:" + outboundNumber + "@" + gw + ">"},
			append(common, "CSeq: 1 INVITE", "Contact: <sip:a@"+caller.addr()+">", "Content-Type: application/sdp")...)...))
	eventually(t, 3*time.Second, func() bool { return len(caller.allOf("200 OK")) > 0 }, "no 200 OK: %q", caller.responses(""))
	ok, err := sip.NewParser().ParseSIP([]byte(caller.allOf("200 OK")[0]))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ok.Body()); n != len(big) {
		t.Fatalf("caller got a %d-byte answer, want %d", n, len(big))
	}
	inv := e.carrier.waitFor(sip.INVITE, cid, time.Second).req
	if inv.Transport() != "TCP" || len(inv.Body()) != len(big) {
		t.Fatalf("carrier got the INVITE over %s with %d bytes", inv.Transport(), len(inv.Body()))
	}
	to := "To: <sip:" + outboundNumber + "@" + gw + ">;tag=" + tagOf(ok.(*sip.Response).To().Params)
	caller.send(gw, sipMsg("ACK sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
		append([]string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKbig2", to}, append(common, "CSeq: 1 ACK")...)...))
	e.carrier.waitFor(sip.ACK, cid, 2*time.Second)
	time.Sleep(1100 * time.Millisecond) // a billable second
	caller.send(gw, sipMsg("BYE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
		append([]string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKbig3", to}, append(common, "CSeq: 2 BYE")...)...))
	e.carrier.waitFor(sip.BYE, cid, 2*time.Second)
	e.idle(t)
	if u := e.adm.Usage(time.Now(), "acme"); u.Seconds < time.Second || u.Seconds > 3*time.Second {
		t.Fatalf("billed %v for a call of about 1.1 s", u.Seconds)
	}
}

// Many UAs hang up right after the ACK: the BYE must never overtake it.
func TestAckThenByeKeepsOrder(t *testing.T) {
	e := newEnv(t)
	const calls = 200
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var failed atomic.Int64
	for i := 0; i < calls; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber) // sends the ACK
			if err != nil || code != 200 {
				failed.Add(1)
				return
			}
			if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil { // at once
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d calls failed", n)
	}
	missing := 0
	for _, inv := range e.carrier.received(sip.INVITE, "") {
		if len(e.carrier.received(sip.ACK, callIDOf(inv.req))) == 0 {
			missing++
		}
	}
	if missing != 0 {
		t.Fatalf("%d of %d callees never got their ACK", missing, calls)
	}
	e.idle(t)
}

// A CANCEL that crosses the 200 OK: the caller gets exactly one final
// response for its INVITE, and a call whose 200 lost the race is closed
// toward the callee.
func TestCancelCrossing200GivesOneFinalResponse(t *testing.T) {
	e := newEnv(t)
	gw := e.gw.Addr("udp")
	release := make(chan chan struct{}, 1)
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := p.answers.ReadInvite(req, tx)
		if err != nil {
			return
		}
		dlg.Respond(180, "Ringing", nil)
		go1 := make(chan struct{})
		release <- go1
		<-go1
		dlg.Respond(200, "OK", []byte("v=0\r\n"))
	})
	const rounds = 60
	double := 0
	for i := 0; i < rounds; i++ {
		caller := newRawUA(t, tenantIP)
		cid := fmt.Sprintf("cross-%d-%s", i, sip.GenerateTagN(6))
		common := []string{
			"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKcross" + strconv.Itoa(i),
			"Max-Forwards: 70", "From: <sip:a@" + tenantIP + ">;tag=c" + strconv.Itoa(i),
			"To: <sip:" + outboundNumber + "@" + gw + ">", "Call-ID: " + cid,
		}
		caller.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "v=0\r\n",
			append(common, "CSeq: 1 INVITE", "Contact: <sip:a@"+caller.addr()+">", "Content-Type: application/sdp")...))
		go1 := <-release
		close(go1)                                                                                                       // the callee answers…
		caller.send(gw, sipMsg("CANCEL sip:"+outboundNumber+"@"+gw+" SIP/2.0", "", append(common, "CSeq: 1 CANCEL")...)) // …as the caller cancels
		finals := func() map[string]string {
			out := map[string]string{}
			for _, m := range caller.allOf("CSeq: 1 INVITE") {
				if code := m[8:11]; code[0] >= '2' {
					out[code] = m
				}
			}
			return out
		}
		eventually(t, 3*time.Second, func() bool { return len(finals()) > 0 }, "round %d: no final response: %q", i, caller.responses(""))
		time.Sleep(50 * time.Millisecond)
		got := finals()
		if len(got) > 1 {
			double++
		}
		if ok, answered := got["200"]; answered {
			// The caller's side of a call that was answered: ACK, then BYE.
			msg, err := sip.NewParser().ParseSIP([]byte(ok))
			if err != nil {
				t.Fatal(err)
			}
			toTag := tagOf(msg.(*sip.Response).To().Params)
			to := "To: <sip:" + outboundNumber + "@" + gw + ">;tag=" + toTag
			ack := []string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKack" + strconv.Itoa(i), common[1], common[2], to, "Call-ID: " + cid, "CSeq: 1 ACK"}
			caller.send(gw, sipMsg("ACK sip:"+outboundNumber+"@"+gw+" SIP/2.0", "", ack...))
			bye := []string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKbye" + strconv.Itoa(i), common[1], common[2], to, "Call-ID: " + cid, "CSeq: 2 BYE"}
			caller.send(gw, sipMsg("BYE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "", bye...))
		}
	}
	if double != 0 {
		t.Fatalf("%d of %d INVITEs got two different final responses", double, rounds)
	}
	e.idle(t)
}

// allOf returns the raw responses received that contain match.
func (u *rawUA) allOf(match string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, m := range u.got {
		if strings.HasPrefix(m, "SIP/2.0 ") && strings.Contains(m, match) {
			out = append(out, m)
		}
	}
	return out
}

// strangerInvite is an INVITE from a raw UA with a distinct branch.
func strangerInvite(u *rawUA, gw string, i int) string {
	return sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
		"Via: SIP/2.0/UDP "+u.addr()+";branch=z9hG4bKfl"+strconv.Itoa(i), "Max-Forwards: 70",
		"From: <sip:a@x>;tag=f"+strconv.Itoa(i), "To: <sip:b@y>", "Call-ID: fl-"+strconv.Itoa(i), "CSeq: 1 INVITE")
}

// A flooding unknown source is blocked after its small burst: it gets at
// most one answer per request (here: only its burst's 403s), the rest is
// dropped, the operator sees the block, and the tenant's calls go on.
func TestFloodFromUnknownSourceIsBlocked(t *testing.T) {
	e := newEnv(t, func(s *envSpec) {
		s.flood = true
		s.edits = append(s.edits, func(c *configs.Config) { c.SIP.Flood.UnknownRate, c.SIP.Flood.UnknownBurst = 5, 10 })
	})
	gw := e.gw.Addr("udp")
	stranger := newRawUA(t, strangeIP)
	const n = 500
	for i := 0; i < n; i++ {
		stranger.send(gw, strangerInvite(stranger, gw, i))
	}
	_, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("tenant call during the flood: %d %v", code, err)
	}
	time.Sleep(300 * time.Millisecond)
	got := len(stranger.responses(""))
	if got < 10 || got > 12 { // the burst, and what refilled meanwhile
		t.Fatalf("%d of %d flood requests answered, want the burst of 10", got, n)
	}
	blocked := e.flood.Blocked(time.Now())
	if len(blocked) != 1 || blocked[0].IP.String() != strangeIP {
		t.Fatalf("blocked: %+v", blocked)
	}
	if d := e.obs.get(&e.obs.dropped, "flood"); d < n-12 {
		t.Fatalf("%d flood requests counted dropped", d)
	}
	// Unblocked, it is answered again.
	if _, ok := e.flood.Unblock(netip.MustParseAddr(strangeIP), time.Now()); !ok {
		t.Fatal("unblock failed")
	}
	stranger.send(gw, strangerInvite(stranger, gw, n))
	eventually(t, 2*time.Second, func() bool { return len(stranger.responses("")) == got+1 }, "no answer after unblock")
}

// With blocked_response 503, a blocked source gets one 503 per second and
// nothing else.
func TestBlockedSourceGets503OncePerSecond(t *testing.T) {
	e := newEnv(t, func(s *envSpec) {
		s.flood = true
		s.edits = append(s.edits, func(c *configs.Config) {
			c.SIP.Flood.UnknownRate, c.SIP.Flood.UnknownBurst = 1, 2
			c.SIP.Flood.BlockedResponse = configs.BlockedResponse503
		})
	})
	gw := e.gw.Addr("udp")
	stranger := newRawUA(t, strangeIP)
	for i := 0; i < 100; i++ {
		stranger.send(gw, strangerInvite(stranger, gw, i))
	}
	time.Sleep(300 * time.Millisecond)
	if got := stranger.responses("503"); len(got) != 1 {
		t.Fatalf("%d 503s to a blocked source within 0.3 s, want 1: %q", len(got), stranger.responses(""))
	}
	if got := len(stranger.responses("")); got > 3 {
		t.Fatalf("%d answers to 100 requests", got)
	}
}

// Connections the gateway opens leave from its listen address, not from
// whatever address the kernel would pick (carriers filter on it).
func TestOutgoingTCPFromListenAddress(t *testing.T) {
	e := newEnv(t, func(s *envSpec) {
		s.carrierTransport = "tcp"
		s.edits = append(s.edits, func(c *configs.Config) {
			c.SIP.Listen = append(c.SIP.Listen, configs.Listen{Transport: "tcp", Address: "127.0.0.3:0"})
		})
	})
	_, cid := e.answeredCall(t)
	inv := e.carrier.waitFor(sip.INVITE, cid, time.Second).req
	if host, _, _ := net.SplitHostPort(inv.Source()); host != "127.0.0.3" {
		t.Fatalf("the gateway's TCP connection came from %s, want its listen address 127.0.0.3", inv.Source())
	}
}

// A retransmitted BYE that arrives while the first is still on its way to
// the far end gets the far end's answer, never a 481 of its own.
func TestRetransmittedByeGetsTheRealAnswer(t *testing.T) {
	e := newEnv(t)
	cid, callerTag, calleeTag := liveCall(t, e)
	gw := e.gw.Addr("udp")
	pbx := newRawUA(t, tenantIP)
	bye := inDialog("BYE", "sip:x@"+e.carrier.addr(), pbx.addr(), cid, callerTag, calleeTag, 60)
	pbx.send(gw, bye)
	pbx.send(gw, bye) // same branch: a retransmission
	eventually(t, 2*time.Second, func() bool { return len(pbx.responses("200")) > 0 }, "no 200 for the BYE: %q", pbx.responses(""))
	time.Sleep(100 * time.Millisecond)
	if got := pbx.responses("481"); len(got) != 0 {
		t.Fatalf("the retransmission got %q", got)
	}
	e.idle(t)
}

// A CANCEL that arrives after the 200 OK was relayed changes nothing: the
// caller's ACK for the 200 still reaches the callee.
func TestLateCancelKeepsTheAck(t *testing.T) {
	e := newEnv(t)
	gw := e.gw.Addr("udp")
	for i := 0; i < 20; i++ {
		caller := newRawUA(t, tenantIP)
		cid := fmt.Sprintf("late-%d-%s", i, sip.GenerateTagN(6))
		common := []string{"Max-Forwards: 70", "From: <sip:a@" + tenantIP + ">;tag=l" + strconv.Itoa(i), "Call-ID: " + cid}
		invVia := "Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKlate" + strconv.Itoa(i)
		to := "To: <sip:" + outboundNumber + "@" + gw + ">"
		caller.send(gw, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "v=0\r\n",
			append([]string{invVia, to}, append(common, "CSeq: 1 INVITE", "Contact: <sip:a@"+caller.addr()+">", "Content-Type: application/sdp")...)...))
		eventually(t, 3*time.Second, func() bool { return len(caller.allOf("200 OK")) > 0 }, "no 200")
		ok, err := sip.NewParser().ParseSIP([]byte(caller.allOf("200 OK")[0]))
		if err != nil {
			t.Fatal(err)
		}
		toTagged := to + ";tag=" + tagOf(ok.(*sip.Response).To().Params)
		// The CANCEL (same branch as the INVITE, no To tag), then the ACK.
		caller.send(gw, sipMsg("CANCEL sip:"+outboundNumber+"@"+gw+" SIP/2.0", "", append([]string{invVia, to}, append(common, "CSeq: 1 CANCEL")...)...))
		caller.send(gw, sipMsg("ACK sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
			append([]string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKlateack" + strconv.Itoa(i), toTagged}, append(common, "CSeq: 1 ACK")...)...))
		e.carrier.waitFor(sip.ACK, cid, 2*time.Second)
		if d := e.gw.Dialog(cid); d == nil || d.State() != Confirmed {
			t.Fatalf("call %d ended by a CANCEL after its 200", i)
		}
		caller.send(gw, sipMsg("BYE sip:"+outboundNumber+"@"+gw+" SIP/2.0", "",
			append([]string{"Via: SIP/2.0/UDP " + caller.addr() + ";branch=z9hG4bKlatebye" + strconv.Itoa(i), toTagged}, append(common, "CSeq: 2 BYE")...)...))
		e.carrier.waitFor(sip.BYE, cid, 2*time.Second)
	}
	e.idle(t)
}

// A 2xx that cannot reach the caller (its TCP connection is gone, and the
// gateway never dials one) ends the call unbilled: the callee is ACKed and
// hung up, and the tenant is charged nothing.
func TestUnrelayable2xxEndsTheCallUnbilled(t *testing.T) {
	e := newEnv(t, withTCPPBX())
	e.carrier.setOnCall(answer(300 * time.Millisecond))
	gw := e.gw.Addr("tcp")
	conn := dialTCPFrom(t, tenantIP, gw)
	cid := "unrelayable-" + sip.GenerateTagN(6)
	fmt.Fprint(conn, sipMsg("INVITE sip:"+outboundNumber+"@"+gw+";transport=tcp SIP/2.0", "v=0\r\n",
		"Via: SIP/2.0/TCP "+conn.LocalAddr().String()+";branch=z9hG4bKunrel1", "Max-Forwards: 70",
		"From: <sip:a@"+tenantIP+">;tag=u1", "To: <sip:"+outboundNumber+"@"+gw+">", "Call-ID: "+cid,
		"CSeq: 1 INVITE", "Contact: <sip:a@"+conn.LocalAddr().String()+";transport=tcp>", "Content-Type: application/sdp"))
	e.carrier.waitFor(sip.INVITE, cid, 2*time.Second)
	conn.Close() // gone before the callee answers
	e.carrier.waitFor(sip.ACK, cid, 3*time.Second)
	e.carrier.waitFor(sip.BYE, cid, 3*time.Second)
	e.idle(t)
	if u := e.adm.Usage(time.Now(), "acme"); u.Seconds != 0 || u.Spend != 0 {
		t.Fatalf("billed %v / %d for a call whose answer never reached the caller", u.Seconds, u.Spend)
	}
}

// dialTCPFrom opens a TCP connection from ip to addr.
func dialTCPFrom(t *testing.T, ip, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// The connection caps (sip.flood) apply to the gateway's TCP listener: a
// source past its cap gets its connection closed at once, and the calls
// on its accepted connections go on.
func TestTCPConnectionCapPerSource(t *testing.T) {
	conns := &pike.ConnLimiter{MaxPerSource: 2, MaxTotal: 100}
	e := newEnv(t, withTCPPBX(), func(s *envSpec) { s.conns = conns })
	gw := e.gw.Addr("tcp")
	a, b := dialTCPFrom(t, strangeIP, gw), dialTCPFrom(t, strangeIP, gw)
	defer a.Close()
	defer b.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(strangeIP)}}
	if c, err := d.Dial("tcp", gw); err == nil { // else reset while connecting: refused too
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("third connection from one source not closed: %v", err)
		}
	}
	eventually(t, time.Second, func() bool { return conns.Stats().RefusedPerSource == 1 }, "refusal not counted: %+v", conns.Stats())
	if _, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber); err != nil || code != 200 {
		t.Fatalf("tenant call over TCP beside the capped source: %d %v", code, err)
	}
}
