package sip

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestAbsorberRemembersForTheWindow(t *testing.T) {
	clk := newFakeClock(time.Unix(1_700_000_000, 0))
	a := newAbsorber(clk)
	req := func(method sip.RequestMethod, branch string) *sip.Request {
		r := sip.NewRequest(method, sip.Uri{Host: "127.0.0.1"})
		v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.10", Port: 5060, Params: sip.NewParams()}
		if branch != "" {
			v.Params.Add("branch", branch)
		}
		r.AppendHeader(v)
		return r
	}
	bye, ok := a.key(req(sip.BYE, "z9hG4bK-1"))
	if !ok {
		t.Fatal("no key for an RFC 3261 branch")
	}
	inv, _ := a.key(req(sip.INVITE, "z9hG4bK-1"))
	if bye == inv {
		t.Fatal("INVITE and BYE of one branch share a key")
	}
	if _, ok := a.key(req(sip.BYE, "old-style")); ok {
		t.Fatal("key for a branch without the magic cookie")
	}
	if _, ok := a.key(req(sip.BYE, "")); ok {
		t.Fatal("key without a branch")
	}
	a.add(bye, 200)
	clk.Advance(absorbWindow / 2)
	a.add(inv, 202)
	if got := a.lookup(bye); got != 200 {
		t.Fatalf("BYE: %d, want 200", got)
	}
	clk.Advance(absorbWindow / 2)
	if got := a.lookup(bye); got != 0 {
		t.Fatalf("BYE after the window: %d, want forgotten", got)
	}
	if got := a.lookup(inv); got != 202 {
		t.Fatalf("INVITE: %d, want 202", got)
	}
	// Many entries: the ring compacts and every live one is still found.
	for i := 0; i < 1000; i++ {
		k, _ := a.key(req(sip.BYE, "z9hG4bK-n"+strconv.Itoa(i)))
		a.add(k, 200+i%3)
		if i%10 == 0 {
			clk.Advance(absorbWindow / 50)
		}
	}
	for i := 800; i < 1000; i++ {
		k, _ := a.key(req(sip.BYE, "z9hG4bK-n"+strconv.Itoa(i)))
		if got := a.lookup(k); got != 200+i%3 {
			t.Fatalf("entry %d: %d", i, got)
		}
	}
	clk.Advance(absorbWindow)
	a.lookup(0)
	if n := a.len(); n != 0 {
		t.Fatalf("%d entries after the window", n)
	}
}

// rawCaller is a UDP socket on the tenant's address that speaks SIP by
// hand, so a test controls every retransmission.
type rawCaller struct {
	t    *testing.T
	conn *net.UDPConn
	port int
	gw   string
}

func newRawCaller(t *testing.T, gw *Gateway) *rawCaller {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(tenantIP)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawCaller{t: t, conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, gw: gw.Addr("udp")}
}

func (c *rawCaller) send(msg string) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP([]byte(msg), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c.gw))); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message's first line and To tag, or "" after within.
func (c *rawCaller) read(within time.Duration) (first, toTag string) {
	buf := make([]byte, 65535)
	c.conn.SetReadDeadline(time.Now().Add(within))
	n, _, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		return "", ""
	}
	msg, err := sip.ParseMessage(buf[:n])
	if err != nil {
		c.t.Fatalf("unparsable message from the gateway: %v", err)
	}
	if to := msg.To(); to != nil {
		toTag = tagOf(to.Params)
	}
	return strings.SplitN(string(buf[:n]), "\r\n", 2)[0], toTag
}

// waitFor reads until a message whose first line starts with prefix.
func (c *rawCaller) waitFor(prefix string, within time.Duration) (toTag string) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		first, tag := c.read(time.Until(deadline))
		if strings.HasPrefix(first, prefix) {
			return tag
		}
	}
	c.t.Fatalf("no %q within %s", prefix, within)
	return ""
}

// quiet fails if a message other than a provisional response arrives
// within d.
func (c *rawCaller) quiet(d time.Duration, what string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		first, _ := c.read(time.Until(deadline))
		if first != "" && !strings.HasPrefix(first, "SIP/2.0 1") {
			c.t.Fatalf("%s: got %q, want nothing", what, first)
		}
	}
}

func (c *rawCaller) request(method, callID, branch, toTag string, cseq int, body string) string {
	to := "<sip:" + outboundNumber + "@" + c.gw + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	return fmt.Sprintf("%s sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=%s\r\n"+
		"From: <sip:100@%s>;tag=raw-from\r\n"+
		"To: %s\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: %d %s\r\n"+
		"Contact: <sip:100@%s:%d>\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Type: application/sdp\r\n"+
		"Content-Length: %d\r\n\r\n%s",
		method, outboundNumber, c.gw, tenantIP, c.port, branch, tenantIP, to, callID, cseq, method, tenantIP, c.port, len(body), body)
}

// A retransmitted INVITE of a call that is up, arriving after sipgo has
// dropped the accepted transaction (Timer L), is absorbed: no 482, no
// second call.
func TestLateInviteRetransmissionAbsorbed(t *testing.T) {
	e := newEnv(t)
	c := newRawCaller(t, e.gw)
	inv := c.request("INVITE", "late-invite", "z9hG4bK-late-inv", "", 1, "v=0\r\n")
	c.send(inv)
	tag := c.waitFor("SIP/2.0 200", 5*time.Second)
	c.send(c.request("ACK", "late-invite", "z9hG4bK-late-ack", tag, 1, "")) // the callee stops retransmitting its 200
	time.Sleep(acceptedLinger + 300*time.Millisecond)                       // the transaction is gone
	c.send(inv)
	c.quiet(700*time.Millisecond, "INVITE retransmitted after Timer L")
	if n := len(e.carrier.received(sip.INVITE, "late-invite")); n != 1 {
		t.Fatalf("carrier got %d INVITEs, want 1", n)
	}
	if e.gw.ActiveCalls() != 1 {
		t.Fatalf("%d calls up, want 1", e.gw.ActiveCalls())
	}
	c.send(c.request("BYE", "late-invite", "z9hG4bK-late-bye", tag, 2, ""))
	c.waitFor("SIP/2.0 200", 5*time.Second)
	e.idle(t)
}

// A retransmitted BYE arriving after sipgo has dropped the completed
// transaction (Timer J) gets the same 200 again, not 481, and is not
// forwarded again.
func TestLateByeRetransmissionAnswered(t *testing.T) {
	e := newEnv(t)
	c := newRawCaller(t, e.gw)
	c.send(c.request("INVITE", "late-bye", "z9hG4bK-lb-inv", "", 1, "v=0\r\n"))
	tag := c.waitFor("SIP/2.0 200", 5*time.Second)
	c.send(c.request("ACK", "late-bye", "z9hG4bK-lb-ack", tag, 1, ""))
	bye := c.request("BYE", "late-bye", "z9hG4bK-lb-bye", tag, 2, "")
	c.send(bye)
	c.waitFor("SIP/2.0 200", 5*time.Second)
	e.idle(t)
	time.Sleep(acceptedLinger + 300*time.Millisecond)
	c.send(bye)
	c.waitFor("SIP/2.0 200", 2*time.Second)
	if n := len(e.carrier.received(sip.BYE, "late-bye")); n != 1 {
		t.Fatalf("carrier got %d BYEs, want 1", n)
	}
	// A BYE of another transaction for the ended call still gets 481.
	c.send(c.request("BYE", "late-bye", "z9hG4bK-lb-bye2", tag, 3, ""))
	c.waitFor("SIP/2.0 481", 2*time.Second)
}

// The callee's 2xx retransmissions (no ACK yet) reach the caller, also
// once the gateway's client transaction is gone (Timer M): through the
// stray-response path (RFC 6026; RFC 3261 §16.7 step 10).
func TestAnswerRetransmissionsRelayed(t *testing.T) {
	e := newEnv(t)
	// The callee retransmits by hand: sipgo's own UAS stops when its
	// server transaction ends, and the test's peers share the gateway's
	// sipgo timers.
	e.carrier.setOnCall(func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte("v=0\r\n"))
		res.AppendHeader(&p.contact)
		if tx.Respond(res) != nil {
			return
		}
		time.Sleep(acceptedLinger + 300*time.Millisecond)
		p.srv.WriteResponse(res)
	})
	c := newRawCaller(t, e.gw)
	c.send(c.request("INVITE", "retrans-2xx", "z9hG4bK-r2xx", "", 1, "v=0\r\n"))
	c.waitFor("SIP/2.0 200", 5*time.Second)
	// No ACK is sent; the callee's retransmission comes after every
	// transaction of the first 200 is gone.
	c.waitFor("SIP/2.0 200", 3*time.Second)
}
