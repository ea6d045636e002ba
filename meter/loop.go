package meter

import (
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// maxPacket is the largest datagram relayed; larger ones are truncated by
// the read and dropped as malformed.
const maxPacket = 1500

// relayRTP handles one datagram the leg's party sent to its RTP port:
// latched, checked and metered, then sent on from the other leg to the
// other party. The caller owns pkt and h (a reader's reused buffer and
// header): nothing here allocates.
func (l *Leg) relayRTP(pkt []byte, src netip.AddrPort, now time.Time, h *rtp.Header) {
	if l.ingestRTP(pkt, src, now, h) {
		l.peer.send(l.peer.rtp, pkt, false)
	}
}

// ingestRTP latches, checks and meters one datagram from the leg's party
// on its RTP port; it reports whether to relay it. A datagram longer than
// maxPacket (truncated by the read), or not RTP version 2, is dropped.
func (l *Leg) ingestRTP(pkt []byte, src netip.AddrPort, now time.Time, h *rtp.Header) bool {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.accept(src, &l.remote, &l.latched) {
		l.r.dropped.Add(1)
		return false
	}
	if len(pkt) > maxPacket {
		l.stats.Malformed++
		l.r.dropped.Add(1)
		return false
	}
	if isRTCP(pkt) { // rtcp-mux (RFC 5761): passed through, not metered as RTP
		l.stats.RTCPPackets++
		return true
	}
	if _, err := h.Unmarshal(pkt); err != nil || h.Version != 2 {
		l.stats.Malformed++
		l.r.dropped.Add(1)
		return false
	}
	l.observe(h, len(pkt), now)
	return true
}

// relayRTCP passes one datagram from the party's RTCP port through the
// same way, unmetered; one longer than maxPacket is cut to maxPacket.
func (l *Leg) relayRTCP(pkt []byte, src netip.AddrPort) {
	pkt = pkt[:min(len(pkt), maxPacket)]
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	l.mu.Lock()
	ok := l.accept(src, &l.remoteRTCP, &l.latchedRTCP)
	if ok {
		l.stats.RTCPPackets++
	}
	l.mu.Unlock()
	if !ok {
		l.r.dropped.Add(1)
		return
	}
	l.peer.send(l.peer.rtcp, pkt, true)
}

// accept latches *remote to src on the first packet and then accepts only
// src; a packet from any other source is counted and dropped. l.mu held.
func (l *Leg) accept(src netip.AddrPort, remote *netip.AddrPort, latched *bool) bool {
	if !*latched {
		*remote, *latched = src, true
		return true
	}
	if src != *remote {
		l.stats.Dropped++
		return false
	}
	return true
}

// send writes a packet from this leg's socket c (its RTP or RTCP socket)
// to its party.
func (l *Leg) send(c sock, pkt []byte, rtcp bool) {
	l.mu.Lock()
	dst := l.remote
	if rtcp {
		dst = l.remoteRTCP
	}
	l.mu.Unlock()
	if !dst.IsValid() || dst.Port() == 0 {
		l.r.dropped.Add(1) // the party has not said where yet
		return
	}
	if err := c.writeTo(pkt, dst); err != nil {
		l.r.dropped.Add(1)
		return
	}
	l.relayedPackets.Add(1)
	l.relayedBytes.Add(uint64(len(pkt)))
}

// isRTCP tells RTCP from RTP on a muxed port (RFC 5761 §4: packet types
// 192-223 in the second byte).
func isRTCP(p []byte) bool {
	return len(p) >= 2 && p[1] >= 192 && p[1] <= 223
}

// observe meters one RTP packet from the party. l.mu held.
func (l *Leg) observe(h *rtp.Header, n int, now time.Time) {
	st := &l.stats
	if st.Packets == 0 {
		st.FirstPacket = now
		l.seq.init(h.SequenceNumber, h.SSRC)
	} else if h.SSRC != l.seq.ssrc {
		st.SSRCChanges++
		l.seq.init(h.SequenceNumber, h.SSRC)
		l.jitterReset = true // a new source's timestamps start anywhere
	} else {
		l.seq.update(h.SequenceNumber)
	}
	st.Packets++
	st.Bytes += uint64(n)
	st.LastPacket = now
	rate := l.rate()
	// RFC 3550 6.4.1: D = (Rj - Ri) - (Sj - Si) in timestamp units,
	// J += (|D| - J) / 16. Arrival counts from the first packet, timestamp
	// differences wrap as uint32.
	arrival := int64(now.Sub(st.FirstPacket)) * int64(rate) / int64(time.Second)
	if st.Packets > 1 && !l.jitterReset {
		d := (arrival - l.lastArrival) - int64(int32(h.Timestamp-l.lastTS))
		if d < 0 {
			d = -d
		}
		l.jitter += (float64(d) - l.jitter) / 16
	}
	l.jitterReset = false
	l.lastArrival, l.lastTS = arrival, h.Timestamp
}

// seqTracker counts the packets expected from sequence numbers, with
// wrap-around (RFC 3550 A.1, simplified: no probation).
type seqTracker struct {
	ssrc    uint32
	base    uint32 // first extended sequence number of the current SSRC
	max     uint16
	cycles  uint32
	offset  int64 // packets expected by earlier SSRCs
	started bool
}

func (s *seqTracker) init(seq uint16, ssrc uint32) {
	if s.started {
		s.offset += int64(s.extended()) - int64(s.base) + 1
	}
	s.ssrc, s.base, s.max, s.cycles, s.started = ssrc, uint32(seq), seq, 0, true
}

func (s *seqTracker) update(seq uint16) {
	delta := seq - s.max
	if delta < 0x8000 { // in order, possibly with a gap or a wrap
		if seq < s.max {
			s.cycles += 1 << 16
		}
		s.max = seq
	}
	// late or duplicate packets do not move max
}

func (s *seqTracker) extended() uint32 { return s.cycles + uint32(s.max) }

// lost is expected minus received.
func (s *seqTracker) lost(received uint64) int64 {
	if !s.started {
		return 0
	}
	expected := s.offset + int64(s.extended()) - int64(s.base) + 1
	return expected - int64(received)
}
