// Package meter anchors a call's media: the RTP port pool, one socket pair
// per leg, the relay between the legs with symmetric latching, and per-leg
// meters read with pion/rtp (packets, bytes, loss, jitter, SSRC changes,
// first and last packet). Nothing per packet allocates, logs or takes a
// lock across I/O. On Linux a few reader goroutines (pollers, one epoll set
// each) serve every call's sockets, so a call costs its sockets and its
// meters, not goroutines or buffers of its own (poll_linux.go).
package meter

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoPorts is returned by Relay.Open when no port pair is free; the call
// is refused with 503 (Reason media_ports).
var ErrNoPorts = errors.New("meter: no free media ports")

// ErrClosed is returned by Relay.Open after Relay.Close.
var ErrClosed = errors.New("meter: relay closed")

// Config sets up a Relay.
type Config struct {
	// Bind is the local IP the media sockets listen on.
	Bind netip.Addr
	// Advertise is the address put in the rewritten SDP.
	Advertise netip.Addr
	// PortMin and PortMax bound the ports used: an even RTP port and the
	// odd RTCP port above it, two per leg. PortMin is rounded up to even.
	PortMin, PortMax int
	// Readers is how many goroutines read the media sockets, every call's
	// sockets served by one of them (round-robin); 0 is twice GOMAXPROCS.
	// A reader spends most of its time in the kernel (a send on loopback
	// also delivers the packet), holding no P, and one the OS does not run
	// on a busy machine stalls only its share of the calls: with as many
	// readers as Ps, 1,000 calls lost 8–22 % on 2 cores shared with other
	// load, with twice as many none (BENCHMARKS.md).
	Readers int
}

// Relay owns the port pool and the sockets of every anchored call.
type Relay struct {
	cfg Config

	mu   sync.Mutex
	free []int // even RTP ports, least recently released first
	// open are the legs with sockets; their relayed counts are summed with
	// those of the legs closed before (relayedClosed) when read, so the
	// packet path increments nothing shared between legs.
	open          map[*Leg]struct{}
	relayedClosed counts
	sessions      map[*Session]struct{} // open, for Close
	pollers       []*poller             // started by the first Open
	next          int                   // the poller of the next session
	closed        bool

	dropped atomic.Uint64 // rare path: shared
}

// counts are packets and bytes relayed.
type counts struct{ packets, bytes uint64 }

// Totals are the relay's counters since start (/metrics).
type Totals struct {
	Packets   uint64 // relayed, RTP and RTCP
	Bytes     uint64
	Dropped   uint64 // from a source other than the latched one, not RTP, or with nowhere to go
	PortsUsed int64  // ports held (two per leg)
}

// New checks cfg and makes a relay; it opens no socket yet.
func New(cfg Config) (*Relay, error) {
	if cfg.PortMin%2 == 1 {
		cfg.PortMin++
	}
	if cfg.PortMin < 1024 || cfg.PortMax > 65535 || cfg.PortMax < cfg.PortMin+3 {
		return nil, fmt.Errorf("meter: port range %d-%d must lie in 1024-65535 and hold two pairs", cfg.PortMin, cfg.PortMax)
	}
	if !cfg.Bind.IsValid() || !cfg.Advertise.IsValid() {
		return nil, errors.New("meter: bind and advertise addresses are needed")
	}
	if cfg.Readers <= 0 {
		cfg.Readers = 2 * runtime.GOMAXPROCS(0)
	}
	r := &Relay{cfg: cfg, open: map[*Leg]struct{}{}, sessions: map[*Session]struct{}{}}
	for p := cfg.PortMin; p+1 <= cfg.PortMax; p += 2 {
		r.free = append(r.free, p)
	}
	return r, nil
}

// Advertise is the address the rewritten SDP carries.
func (r *Relay) Advertise() netip.Addr { return r.cfg.Advertise }

// Totals returns the relay's counters.
func (r *Relay) Totals() Totals {
	r.mu.Lock()
	legs := make([]*Leg, 0, len(r.open))
	for l := range r.open {
		legs = append(legs, l)
	}
	c := r.relayedClosed
	t := Totals{PortsUsed: 2 * int64(len(r.open)), Dropped: r.dropped.Load()}
	r.mu.Unlock()
	for _, l := range legs {
		c.packets += l.relayedPackets.Load()
		c.bytes += l.relayedBytes.Load()
	}
	t.Packets, t.Bytes = c.packets, c.bytes
	return t
}

// FreePairs is the number of port pairs not in use.
func (r *Relay) FreePairs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.free)
}

// Open anchors a call: two legs, A facing the caller and B the callee,
// their sockets served by one of the relay's readers. Close releases them,
// exactly once.
func (r *Relay) Open() (*Session, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if r.pollers == nil {
		ps := make([]*poller, r.cfg.Readers)
		for i := range ps {
			p, err := newPoller()
			if err != nil {
				for _, p := range ps[:i] {
					p.stop()
				}
				r.mu.Unlock()
				return nil, fmt.Errorf("meter: media readers: %w", err)
			}
			ps[i] = p
		}
		r.pollers = ps
	}
	a, err := r.openLeg()
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	b, err := r.openLeg()
	if err != nil {
		r.mu.Unlock()
		a.close()
		return nil, err
	}
	p := r.pollers[r.next%len(r.pollers)]
	r.next++
	s := &Session{A: a, B: b, opened: time.Now(), r: r, p: p}
	a.peer, b.peer = b, a
	a.session, b.session = s, s
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	if !p.add(s) { // Relay.Close came first, and has closed s
		return nil, ErrClosed
	}
	return s, nil
}

// Close closes every session still open and stops the readers; Open
// fails afterwards with ErrClosed. Players are closed by whoever plays
// them (ClosePlayer).
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	open := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		open = append(open, s)
	}
	ps := r.pollers
	r.mu.Unlock()
	for _, s := range open {
		s.Close()
	}
	for _, p := range ps {
		p.stop()
	}
}

// openLeg binds the next free pair; a pair another process holds is put
// back at the end of the list and the next one tried. r.mu held.
func (r *Relay) openLeg() (*Leg, error) {
	for tries := len(r.free); tries > 0; tries-- {
		p := r.free[0]
		r.free = r.free[1:]
		rtp, err := listenUDP(netip.AddrPortFrom(r.cfg.Bind, uint16(p)))
		if err != nil {
			r.free = append(r.free, p)
			continue
		}
		rtcp, err := listenUDP(netip.AddrPortFrom(r.cfg.Bind, uint16(p+1)))
		if err != nil {
			rtp.close()
			r.free = append(r.free, p)
			continue
		}
		l := &Leg{r: r, port: p, rtp: rtp, rtcp: rtcp}
		r.open[l] = struct{}{}
		return l, nil
	}
	return nil, ErrNoPorts
}

func (r *Relay) release(l *Leg) {
	c := counts{l.relayedPackets.Load(), l.relayedBytes.Load()}
	r.mu.Lock()
	r.free = append(r.free, l.port)
	delete(r.open, l)
	if l.session != nil {
		delete(r.sessions, l.session)
	}
	r.relayedClosed.packets += c.packets
	r.relayedClosed.bytes += c.bytes
	r.mu.Unlock()
}

// Session is one anchored call.
type Session struct {
	A, B   *Leg // A faces the caller, B the callee
	once   sync.Once
	opened time.Time
	r      *Relay
	p      *poller // the reader serving its sockets
	state  int     // the poller's: sessionNew, sessionRegistered, sessionClosed
}

// MediaEnd is when the call's media ended for billing: the last RTP
// packet either party sent plus one packetisation interval of that party's
// stream; ok is false when no RTP came at all.
func (s *Session) MediaEnd() (end time.Time, ok bool) {
	for _, l := range []*Leg{s.A, s.B} {
		l.mu.Lock()
		if last := l.stats.LastPacket; !last.IsZero() {
			if e := last.Add(l.ptime()); e.After(end) {
				end, ok = e, true
			}
		}
		l.mu.Unlock()
	}
	return end, ok
}

// LastMedia is the last RTP packet either party sent (RTCP does not
// count: it goes on when the audio stops), or since
// when the session was anchored, whichever is later than since; hold is
// true while either party's last SDP put the stream on hold.
func (s *Session) LastMedia(since time.Time) (last time.Time, hold bool) {
	last = since
	if s.opened.After(last) {
		last = s.opened
	}
	for _, l := range []*Leg{s.A, s.B} {
		l.mu.Lock()
		if l.stats.LastPacket.After(last) {
			last = l.stats.LastPacket
		}
		hold = hold || l.onHold
		l.mu.Unlock()
	}
	return last, hold
}

// Close stops the relay and releases both legs' ports; later calls do
// nothing. It reports whether this call released them.
func (s *Session) Close() (first bool) {
	s.once.Do(func() {
		first = true
		s.p.close(s) // returns once nothing reads or sends for s
		s.r.release(s.A)
		s.r.release(s.B)
	})
	return first
}

// closeSockets closes both legs' sockets. Only the session's poller calls
// it, or its closer once the poller has stopped.
func (s *Session) closeSockets() {
	for _, l := range []*Leg{s.A, s.B} {
		l.rtp.close()
		l.rtcp.close()
	}
}

// Leg is the gateway's socket pair facing one party: what the party sends
// arrives here and is metered; what the other party sends leaves from here
// to this party.
type Leg struct {
	r         *Relay
	port      int
	rtp, rtcp sock
	peer      *Leg
	session   *Session    // nil for a player
	closed    atomic.Bool // close has run (a player, or the first leg of a failed Open)
	legPoll
	// sent to the party from this leg: written only by the call's reader
	// (a player's by Play), so never contended.
	relayedPackets, relayedBytes atomic.Uint64

	mu sync.Mutex // guards what follows; never held across I/O
	// remote and remoteRTCP are where packets for the party go: its SDP
	// address until its first packet arrives, then that packet's source
	// (symmetric RTP latching).
	remote, remoteRTCP   netip.AddrPort
	sdpRemote            netip.AddrPort // the RTP address of the last SDP
	latched, latchedRTCP bool
	clockRate            uint32
	packetTime           time.Duration // a=ptime of the party's SDP
	stats                Stats
	seq                  seqTracker
	lastArrival          int64  // RFC 3550 jitter: previous arrival, timestamp units since the first packet
	lastTS               uint32 // and its RTP timestamp
	jitterReset          bool   // the next packet starts a new jitter baseline
	onHold               bool   // the party's last SDP put the stream on hold
	jitter               float64
}

// Port is the leg's RTP port (RTCP is Port+1).
func (l *Leg) Port() int { return l.port }

// SetRemote points the leg at where its party wants media, from an SDP
// offer or answer. A new address or port (re-INVITE, UPDATE) replaces the
// latch, which the party's next packet sets again. A hold (0.0.0.0) or a
// disabled stream keeps the current target.
func (l *Leg) SetRemote(m Media) {
	l.mu.Lock()
	l.onHold = m.OnHold() || m.Port == 0
	l.mu.Unlock()
	if m.Hold() || m.Port == 0 {
		return
	}
	rtp := netip.AddrPortFrom(m.Addr, uint16(m.Port))
	rtcp := netip.AddrPortFrom(m.Addr, uint16(m.RTCP))
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.ClockRate > 0 {
		l.clockRate = m.ClockRate
	}
	if m.PTime > 0 {
		l.packetTime = m.PTime
	}
	if l.sdpRemote == rtp {
		return // the same SDP again (a 2xx repeating the 183's answer): keep the latch
	}
	l.sdpRemote = rtp
	l.remote, l.remoteRTCP = rtp, rtcp
	l.latched, l.latchedRTCP = false, false
}

// close closes and releases a leg no poller serves (a player, or the
// first leg of an Open that failed), once.
func (l *Leg) close() {
	if l.closed.Swap(true) {
		return
	}
	l.rtp.close()
	l.rtcp.close()
	l.r.release(l)
}

// Stats are the meters of what one party sent, from RTP headers.
type Stats struct {
	Packets     uint64    `json:"packets"`
	Bytes       uint64    `json:"bytes"`
	Lost        int64     `json:"lost"`         // expected minus received (RFC 3550 A.3); negative with duplicates
	Jitter      float64   `json:"jitter_ms"`    // interarrival jitter (RFC 3550 6.4.1), milliseconds
	SSRCChanges uint64    `json:"ssrc_changes"` // new SSRC after the first
	Dropped     uint64    `json:"dropped"`      // from another source after the latch
	Malformed   uint64    `json:"malformed"`    // not RTP: not relayed
	RTCPPackets uint64    `json:"rtcp_packets"` // passed through
	FirstPacket time.Time `json:"first_packet"` // zero: none yet
	LastPacket  time.Time `json:"last_packet"`
}

// Stats returns a copy of the leg's meters.
func (l *Leg) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Lost = l.seq.lost(s.Packets)
	s.Jitter = l.jitter / float64(l.rate()) * 1000
	return s
}

// ptime is the packetisation interval of what the party sends: its SDP's
// a=ptime, else 20 ms. l.mu held.
func (l *Leg) ptime() time.Duration {
	if l.packetTime == 0 {
		return 20 * time.Millisecond
	}
	return l.packetTime
}

// rate is the leg's RTP clock rate: from its SDP, else G.711's 8000.
// l.mu held.
func (l *Leg) rate() uint32 {
	if l.clockRate == 0 {
		return 8000
	}
	return l.clockRate
}
