package meter

import (
	"errors"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// call is one session with its two parties, each pointed at its leg.
type call struct {
	s              *Session
	caller, callee *party
}

func openCall(t testing.TB, r *Relay) call {
	t.Helper()
	return openCallWith(t, r, newParty(t), newParty(t))
}

// openCallWith opens a call between parties made before the relay's port
// range was picked: a party's ephemeral port may otherwise fall in it.
func openCallWith(t testing.TB, r *Relay, caller, callee *party) call {
	t.Helper()
	s, err := r.Open()
	if err != nil {
		t.Fatal(err)
	}
	s.A.SetRemote(caller.media())
	s.B.SetRemote(callee.media())
	return call{s: s, caller: caller, callee: callee}
}

// readersRelay is a relay with ports for n calls served by readers
// readers, and the calls' parties, made before its port range is picked.
func readersRelay(t *testing.T, n, readers int) (*Relay, []*party) {
	t.Helper()
	ps := make([]*party, 2*n)
	for i := range ps {
		ps[i] = newParty(t)
	}
	lo, hi := freeRange(t, 4*n)
	r, err := New(Config{Bind: loopback, Advertise: loopback, PortMin: lo, PortMax: hi, Readers: readers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, ps
}

// openCalls opens a call for each two parties.
func openCalls(t *testing.T, r *Relay, ps []*party) []call {
	t.Helper()
	cs := make([]call, len(ps)/2)
	for i := range cs {
		cs[i] = openCallWith(t, r, ps[2*i], ps[2*i+1])
	}
	return cs
}

// expect reads n datagrams at p and checks each came from the gateway's
// port from with the SSRC ssrc.
func (p *party) expect(n int, from int, ssrc uint32) {
	p.t.Helper()
	var h rtp.Header
	for i := 0; i < n; i++ {
		pkt, src, err := p.recv(2 * time.Second)
		if err != nil {
			p.t.Fatalf("packet %d of %d: %v", i+1, n, err)
		}
		if src != netip.AddrPortFrom(loopback, uint16(from)) {
			p.t.Fatalf("packet from %v, want the gateway's port %d", src, from)
		}
		if _, err := h.Unmarshal(pkt); err != nil || h.SSRC != ssrc {
			p.t.Fatalf("got SSRC %#x (%v), want %#x: another call's packet", h.SSRC, err, ssrc)
		}
	}
}

func TestManyCallsAcrossReadersRelayTheirOwnMedia(t *testing.T) {
	const calls, packets = 24, 20
	r, ps := readersRelay(t, calls, 3)
	cs := openCalls(t, r, ps)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for seq := range packets {
				c.caller.sendRTP(c.s.A.Port(), uint16(seq), uint32(160*seq), uint32(0x1000+i))
			}
		}()
		go func() {
			defer wg.Done()
			for seq := range packets {
				c.callee.sendRTP(c.s.B.Port(), uint16(seq), uint32(160*seq), uint32(0x2000+i))
			}
		}()
	}
	for i, c := range cs {
		c.callee.expect(packets, c.s.B.Port(), uint32(0x1000+i))
		c.caller.expect(packets, c.s.A.Port(), uint32(0x2000+i))
	}
	wg.Wait()
	for i, c := range cs {
		if a, b := c.s.A.Stats(), c.s.B.Stats(); a.Packets != packets || b.Packets != packets || a.Lost != 0 || a.Dropped != 0 {
			t.Fatalf("call %d meters: caller %+v callee %+v", i, a, b)
		}
	}
	// RTCP on Port+1 passes through, unmetered as RTP, from the other
	// leg's RTCP port.
	c := cs[calls-1]
	rtcpIn, rtcpOut := newParty(t), newParty(t)
	c.s.B.SetRemote(Media{Addr: loopback, Port: 9999, RTCP: int(rtcpOut.addr().Port())})
	sr := []byte{0x80, 200, 0, 1, 0, 0, 0, 1}
	if _, err := rtcpIn.c.WriteToUDPAddrPort(sr, netip.AddrPortFrom(loopback, uint16(c.s.A.Port()+1))); err != nil {
		t.Fatal(err)
	}
	pkt, src, err := rtcpOut.recv(2 * time.Second)
	if err != nil || string(pkt) != string(sr) || src.Port() != uint16(c.s.B.Port()+1) {
		t.Fatalf("RTCP: %x from %v (%v), want %x from port %d", pkt, src, err, sr, c.s.B.Port()+1)
	}
	if st := c.s.A.Stats(); st.RTCPPackets != 1 || st.Packets != packets {
		t.Fatalf("after RTCP: %+v", st)
	}
	// A datagram longer than maxPacket is not relayed.
	big := append(rtpPacket(99, 0, 0x1000+calls-1), make([]byte, maxPacket)...)
	if _, err := c.caller.c.WriteToUDPAddrPort(big, netip.AddrPortFrom(loopback, uint16(c.s.A.Port()))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for c.s.A.Stats().Malformed != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if c.s.A.Stats().Malformed != 1 {
		t.Fatal("an oversized datagram was not counted as malformed")
	}
	if want := uint64(2*calls*packets + 1); r.Totals().Packets < want-1 {
		t.Fatalf("relay totals %d packets, want %d", r.Totals().Packets, want)
	}
}

// Calls close while both parties send as fast as they can: every Close
// returns, ports come back exactly once, and the calls opened next, on the
// same ports and most likely the same descriptors, carry their own media
// only: a party never gets another call's packet.
func TestCloseUnderTraffic(t *testing.T) {
	const calls = 8
	r, ps := readersRelay(t, calls, 2)
	total := r.FreePairs()
	var foreign atomic.Int64
	for round := 0; round < 12; round++ {
		cs := openCalls(t, r, ps)
		stop := make(chan struct{})
		var traffic sync.WaitGroup
		for i, c := range cs {
			id := uint32(i) // the same in every round: a party may still hold the last round's packets
			send := func(from *party, to int, ssrc uint32) {
				defer traffic.Done()
				pkt := rtpPacket(1, 160, ssrc)
				dst := netip.AddrPortFrom(loopback, uint16(to))
				for {
					select {
					case <-stop:
						return
					default:
						from.c.WriteToUDPAddrPort(pkt, dst)
					}
				}
			}
			recv := func(at *party, ssrc uint32) {
				defer traffic.Done()
				buf := make([]byte, 2048)
				var h rtp.Header
				for {
					at.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					n, _, err := at.c.ReadFromUDPAddrPort(buf)
					if err != nil {
						select {
						case <-stop:
							return
						default:
							continue
						}
					}
					if _, err := h.Unmarshal(buf[:n]); err != nil || h.SSRC != ssrc {
						foreign.Add(1)
					}
				}
			}
			traffic.Add(4)
			go send(c.caller, c.s.A.Port(), 0xA0000+id)
			go send(c.callee, c.s.B.Port(), 0xB0000+id)
			go recv(c.callee, 0xA0000+id)
			go recv(c.caller, 0xB0000+id)
		}
		time.Sleep(5 * time.Millisecond)
		var closers sync.WaitGroup
		var released atomic.Int32
		for _, c := range cs {
			for range 2 { // two closers race for each call
				closers.Add(1)
				go func() {
					defer closers.Done()
					if c.s.Close() {
						released.Add(1)
					}
				}()
			}
		}
		closers.Wait()
		// Closed means closed: with the parties still sending, nothing
		// more is read, metered or sent for these calls.
		before := make([]Stats, 0, 2*calls)
		for _, c := range cs {
			before = append(before, c.s.A.Stats(), c.s.B.Stats())
		}
		time.Sleep(5 * time.Millisecond)
		for i, c := range cs {
			if a, b := c.s.A.Stats(), c.s.B.Stats(); a != before[2*i] || b != before[2*i+1] {
				t.Fatalf("round %d call %d metered after Close: %+v, then %+v", round, i, before[2*i], a)
			}
		}
		close(stop)
		traffic.Wait()
		if released.Load() != calls {
			t.Fatalf("round %d: closes reported the release of %d calls, want %d", round, released.Load(), calls)
		}
		if got, used := r.FreePairs(), r.Totals().PortsUsed; got != total || used != 0 {
			t.Fatalf("round %d: %d pairs free (want %d), %d ports in use", round, got, total, used)
		}
	}
	if n := foreign.Load(); n != 0 {
		t.Fatalf("parties got %d packets of another call", n)
	}
	if r.Totals().Packets == 0 {
		t.Fatal("nothing was relayed")
	}
}

func TestRelayCloseEndsOpenCallsAndRefusesNew(t *testing.T) {
	r := newRelay(t, 4)
	total := r.FreePairs()
	c := openCall(t, r)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // traffic while the relay closes
		defer close(done)
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			default:
				c.caller.sendRTP(c.s.A.Port(), seq, 160*uint32(seq), 1)
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	close(stop)
	<-done
	if c.s.Close() {
		t.Fatal("a session Relay.Close closed was released again")
	}
	if got := r.FreePairs(); got != total {
		t.Fatalf("%d pairs free after Relay.Close, want %d", got, total)
	}
	if _, err := r.Open(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Close: %v, want ErrClosed", err)
	}
	r.Close() // again: nothing
	// The ports are free for anyone again.
	for p := r.cfg.PortMin; p <= r.cfg.PortMax; p++ {
		s, err := listenUDP(netip.AddrPortFrom(loopback, uint16(p)))
		if err != nil {
			t.Fatalf("port %d still bound after Relay.Close: %v", p, err)
		}
		s.close()
	}
}

// relayedPacket opens a call and returns a function that sends one RTP
// packet from the caller and reads it at the callee, through the relay's
// sockets and a reader.
func relayedPacket(tb testing.TB) func() {
	r := newRelay(tb, 2)
	tb.Cleanup(r.Close)
	c := openCall(tb, r)
	pkt := rtpPacket(1, 160, 5)
	to := netip.AddrPortFrom(loopback, uint16(c.s.A.Port()))
	buf := make([]byte, 2048)
	c.callee.c.SetReadDeadline(time.Now().Add(time.Minute))
	return func() {
		if _, err := c.caller.c.WriteToUDPAddrPort(pkt, to); err != nil {
			tb.Fatal(err)
		}
		if _, _, err := c.callee.c.ReadFromUDPAddrPort(buf); err != nil {
			tb.Fatal(err)
		}
	}
}

// One packet through the relay, read, metered and sent by a reader,
// allocates nothing (the parties' own reads and writes included).
func TestRelayedPacketDoesNotAllocate(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the shared readers are Linux's")
	}
	roundTrip := relayedPacket(t)
	roundTrip() // latch
	if allocs := testing.AllocsPerRun(500, roundTrip); allocs != 0 {
		t.Fatalf("%.2f allocations per relayed packet, want 0", allocs)
	}
}

// BenchmarkRelayedPacket is one RTP packet caller to callee through the
// relay, one at a time.
func BenchmarkRelayedPacket(b *testing.B) {
	roundTrip := relayedPacket(b)
	b.ReportAllocs()
	for b.Loop() {
		roundTrip()
	}
}

// BenchmarkOpenClose is a call's set-up and tear-down: two port pairs
// bound, handed to a reader and closed through it.
func BenchmarkOpenClose(b *testing.B) {
	r := newRelay(b, 2)
	b.Cleanup(r.Close)
	b.ReportAllocs()
	for b.Loop() {
		s, err := r.Open()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
