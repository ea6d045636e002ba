package meter

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// freeRange finds n consecutive free UDP ports (even start) on loopback.
func freeRange(t testing.TB, n int) (lo, hi int) {
	t.Helper()
	for try := 0; try < 50; try++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 == 1 {
			p++
		}
		if p+n-1 > 65535 || p < 1024 {
			continue
		}
		ok := true
		var held []*net.UDPConn
		for q := p; q < p+n; q++ {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: q})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return p, p + n - 1
		}
	}
	t.Fatal("no free port range")
	return
}

func newRelay(t testing.TB, pairs int) *Relay {
	t.Helper()
	lo, hi := freeRange(t, 2*pairs)
	r, err := New(Config{Bind: loopback, Advertise: loopback, PortMin: lo, PortMax: hi})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// party is a test endpoint: one UDP socket.
type party struct {
	t testing.TB
	c *net.UDPConn
}

func newParty(t testing.TB) *party {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &party{t: t, c: c}
}

func (p *party) addr() netip.AddrPort { return p.c.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *party) media() Media {
	a := p.addr()
	return Media{Addr: a.Addr(), Port: int(a.Port()), RTCP: int(a.Port()) + 1, ClockRate: 8000}
}

func (p *party) sendRTP(to int, seq uint16, ts uint32, ssrc uint32) {
	p.t.Helper()
	pkt := rtpPacket(seq, ts, ssrc)
	if _, err := p.c.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(loopback, uint16(to))); err != nil {
		p.t.Fatal(err)
	}
}

func rtpPacket(seq uint16, ts uint32, ssrc uint32) []byte {
	pkt, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 8, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: make([]byte, 160)}).Marshal()
	if err != nil {
		panic(err)
	}
	return pkt
}

// recv waits for one datagram and returns it with its source.
func (p *party) recv(within time.Duration) ([]byte, netip.AddrPort, error) {
	buf := make([]byte, 2048)
	p.c.SetReadDeadline(time.Now().Add(within))
	n, src, err := p.c.ReadFromUDPAddrPort(buf)
	return buf[:n], src, err
}

func TestRelayCarriesRTPBothWaysFromTheGatewaysPorts(t *testing.T) {
	r := newRelay(t, 2)
	s, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	caller, callee := newParty(t), newParty(t)
	s.A.SetRemote(caller.media()) // the caller's offer
	s.B.SetRemote(callee.media()) // the callee's answer

	caller.sendRTP(s.A.Port(), 1, 160, 0xCA11E4)
	pkt, src, err := callee.recv(2 * time.Second)
	if err != nil {
		t.Fatalf("callee got nothing: %v", err)
	}
	if src != netip.AddrPortFrom(loopback, uint16(s.B.Port())) {
		t.Fatalf("callee got RTP from %v, want the gateway's leg B %d", src, s.B.Port())
	}
	var h rtp.Header
	if _, err := h.Unmarshal(pkt); err != nil || h.SSRC != 0xCA11E4 || h.SequenceNumber != 1 {
		t.Fatalf("relayed packet %+v %v", h, err)
	}
	callee.sendRTP(s.B.Port(), 7, 160, 0xCA11EE)
	if _, src, err := caller.recv(2 * time.Second); err != nil || src != netip.AddrPortFrom(loopback, uint16(s.A.Port())) {
		t.Fatalf("caller got %v %v, want RTP from leg A", src, err)
	}
	a, b := s.A.Stats(), s.B.Stats()
	if a.Packets != 1 || a.Bytes != uint64(len(pkt)) || a.FirstPacket.IsZero() || b.Packets != 1 {
		t.Fatalf("meters: caller %+v callee %+v", a, b)
	}
	// A relayed packet is counted once its write returns, which may be
	// just after the party has read it.
	deadline := time.Now().Add(2 * time.Second)
	for r.Totals().Packets != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := r.Totals().Packets; got != 2 {
		t.Fatalf("relay totals: %d packets, want 2", got)
	}
}

func TestLatchedLegDropsStrangers(t *testing.T) {
	r := newRelay(t, 2)
	s, _ := r.Open()
	defer s.Close()
	caller, callee, stranger := newParty(t), newParty(t), newParty(t)
	// The caller's SDP names another address (behind NAT): the leg latches
	// to where the first packet really comes from.
	s.A.SetRemote(Media{Addr: netip.MustParseAddr("127.0.0.99"), Port: 4000, RTCP: 4001})
	s.B.SetRemote(callee.media())
	caller.sendRTP(s.A.Port(), 1, 160, 1)
	if _, _, err := callee.recv(2 * time.Second); err != nil {
		t.Fatal("first packet not relayed")
	}
	stranger.sendRTP(s.A.Port(), 2, 320, 666)
	caller.sendRTP(s.A.Port(), 2, 320, 1)
	pkt, _, err := callee.recv(2 * time.Second)
	if err != nil {
		t.Fatal("caller's second packet not relayed")
	}
	var h rtp.Header
	h.Unmarshal(pkt)
	if h.SSRC != 1 {
		t.Fatalf("callee got the stranger's packet (SSRC %d)", h.SSRC)
	}
	if _, _, err := callee.recv(200 * time.Millisecond); err == nil {
		t.Fatal("a further packet reached the callee")
	}
	if st := s.A.Stats(); st.Dropped != 1 || st.Packets != 2 {
		t.Fatalf("leg A meters %+v, want 1 dropped and 2 packets", st)
	}
	// Back towards the caller: to its latched source, not the SDP address.
	callee.sendRTP(s.B.Port(), 1, 160, 2)
	if _, _, err := caller.recv(2 * time.Second); err != nil {
		t.Fatal("the caller behind NAT got nothing back")
	}
}

func TestReInviteToANewPortMovesTheLeg(t *testing.T) {
	r := newRelay(t, 2)
	s, _ := r.Open()
	defer s.Close()
	caller, callee, moved := newParty(t), newParty(t), newParty(t)
	s.A.SetRemote(caller.media())
	s.B.SetRemote(callee.media())
	callee.sendRTP(s.B.Port(), 1, 160, 2) // latches leg B to callee
	if _, _, err := caller.recv(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.B.SetRemote(callee.media()) // the same SDP again (a 2xx after 183) keeps the latch
	s.B.SetRemote(moved.media())  // re-INVITE: the callee moves
	caller.sendRTP(s.A.Port(), 1, 160, 1)
	if _, _, err := moved.recv(2 * time.Second); err != nil {
		t.Fatal("RTP did not follow the re-INVITE to the new port")
	}
	moved.sendRTP(s.B.Port(), 2, 320, 2) // the new source is accepted (latch reset)
	if _, _, err := caller.recv(2 * time.Second); err != nil {
		t.Fatal("the moved party's RTP was dropped")
	}
	// Hold keeps the target.
	s.B.SetRemote(Media{Addr: netip.IPv4Unspecified(), Port: 9, RTCP: 10})
	caller.sendRTP(s.A.Port(), 2, 320, 1)
	if _, _, err := moved.recv(2 * time.Second); err != nil {
		t.Fatal("hold moved the target")
	}
}

func TestMetersCountLossJitterAndSSRCChanges(t *testing.T) {
	r := newRelay(t, 2)
	s, _ := r.Open()
	defer s.Close()
	l := s.A
	var h rtp.Header
	src := netip.MustParseAddrPort("127.0.0.1:5000")
	start := time.Unix(1000, 0)
	// Packet v of a 20 ms stream: sequence number wrapping at 65535,
	// timestamp 160 per packet, arriving on time plus late.
	feed := func(v int, late time.Duration, ssrc uint32) {
		t.Helper()
		seq := uint16(65533 + v)
		at := start.Add(time.Duration(v)*20*time.Millisecond + late)
		if !l.ingestRTP(rtpPacket(seq, uint32(160*v), ssrc), src, at, &h) {
			t.Fatalf("packet %d refused", v)
		}
	}
	for _, v := range []int{0, 1, 2, 3, 6, 7} { // 65533..0, then 3 and 4: two lost
		feed(v, 0, 9)
	}
	st := l.Stats()
	if st.Packets != 6 || st.Lost != 2 || st.SSRCChanges != 0 {
		t.Fatalf("meters %+v, want 6 packets, 2 lost", st)
	}
	if st.Jitter > 0.01 {
		t.Fatalf("jitter %.3f ms on perfectly paced packets", st.Jitter)
	}
	feed(8, 40*time.Millisecond, 9) // 40 ms late: J = 320/16 units = 2.5 ms
	if st = l.Stats(); st.Jitter < 2.4 || st.Jitter > 2.6 {
		t.Fatalf("jitter %.3f ms after one packet 40 ms late, want 2.5", st.Jitter)
	}
	feed(100, 0, 10) // a new source
	if st = l.Stats(); st.SSRCChanges != 1 || st.Lost != 2 || st.Packets != 8 {
		t.Fatalf("after a new SSRC: %+v", st)
	}
	// Not RTP: counted, not relayed.
	if l.ingestRTP([]byte{0x00, 0x01, 0x02}, src, start, &h) {
		t.Fatal("a 3-byte datagram was accepted as RTP")
	}
	if l.Stats().Malformed != 1 {
		t.Fatal("malformed datagram not counted")
	}
}

func TestIngestDoesNotAllocate(t *testing.T) {
	r := newRelay(t, 2)
	s, _ := r.Open()
	defer s.Close()
	callee := newParty(t)
	s.B.SetRemote(callee.media())
	pkt := rtpPacket(1, 160, 5)
	src := netip.MustParseAddrPort("127.0.0.1:5000")
	var h rtp.Header
	now := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		if s.A.ingestRTP(pkt, src, now, &h) {
			s.B.send(s.B.rtp, pkt, false)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet, want 0", allocs)
	}
}

func TestPortsReleasedOnceAndExhaustion(t *testing.T) {
	r := newRelay(t, 4) // four pairs: two calls
	total := r.FreePairs()
	for i := 0; i < 1000; i++ {
		s, err := r.Open()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !s.Close() || s.Close() {
			t.Fatal("Close must release once and report it once")
		}
	}
	if got := r.FreePairs(); got != total {
		t.Fatalf("%d pairs free after 1,000 calls, want %d", got, total)
	}
	if got := r.Totals().PortsUsed; got != 0 {
		t.Fatalf("%d ports counted in use", got)
	}
	s1, _ := r.Open()
	s2, _ := r.Open()
	if _, err := r.Open(); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("third call with two pairs left for two: %v, want ErrNoPorts", err)
	}
	if got := r.FreePairs(); got != 0 {
		t.Fatalf("a failed Open leaked: %d free", got)
	}
	s1.Close()
	s2.Close()
	if got := r.FreePairs(); got != total {
		t.Fatalf("%d pairs free, want %d", got, total)
	}
}

// FuzzIngestRTP: any datagram on a leg's RTP port is metered or dropped,
// never a panic, and what is relayed as RTP parses as RTP version 2.
func FuzzIngestRTP(f *testing.F) {
	f.Add(rtpPacket(1, 160, 5))
	f.Add([]byte{0x80, 0xc8, 0, 6}) // RTCP SR on a muxed port
	f.Add([]byte{0x90, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0})
	r, err := New(Config{Bind: loopback, Advertise: loopback, PortMin: 40000, PortMax: 40003})
	if err != nil {
		f.Fatal(err)
	}
	l := &Leg{r: r}
	src := netip.MustParseAddrPort("127.0.0.1:5000")
	var h rtp.Header
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := l.Stats()
		ok := l.ingestRTP(pkt, src, time.Now(), &h)
		after := l.Stats()
		if ok && !isRTCP(pkt) {
			var check rtp.Header
			if _, err := check.Unmarshal(pkt); err != nil || check.Version != 2 {
				t.Fatalf("relayed a datagram that is not RTP v2: %v", err)
			}
			if after.Packets != before.Packets+1 {
				t.Fatal("relayed RTP not counted")
			}
		}
		if !ok && after.Malformed != before.Malformed+1 && after.Dropped == before.Dropped {
			t.Fatal("a dropped datagram was not counted")
		}
	})
}
