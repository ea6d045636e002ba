package sip

import (
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/meter"
)

// Media anchoring (media.mode relay): every SDP body the gateway passes is
// rewritten so that RTP and RTCP flow through the call's two legs in
// meter/, leg A facing the caller and leg B the callee. An SDP from the
// caller's side tells leg A where the caller wants media and leaves
// pointing at leg B; an SDP from the callee's side the reverse. That one
// rule covers the offer and answer in INVITE, 18x, 2xx, ACK, re-INVITE,
// UPDATE and PRACK, whichever side offers.

// errBadSDP wraps an SDP the gateway cannot anchor: 488.
var errBadSDP = errors.New("sip: SDP not acceptable")

// sdpBody returns m's body if it is SDP (Content-Type application/sdp, or
// no Content-Type with a body that starts like one).
func sdpBody(m sip.Message) []byte {
	body := m.Body()
	if len(body) == 0 {
		return nil
	}
	if cts := m.GetHeaders("Content-Type"); len(cts) > 0 {
		v, _, _ := strings.Cut(cts[0].Value(), ";")
		if !strings.EqualFold(strings.TrimSpace(v), "application/sdp") {
			return nil
		}
	} else if !strings.HasPrefix(string(body[:min(len(body), 2)]), "v=") {
		return nil
	}
	return body
}

// parseOffer validates the SDP of a new call's INVITE before admission,
// so that a call the gateway could not anchor is refused 488 and counts
// against nothing. ok is false for an unacceptable SDP; md.Port is 0 when
// there is no SDP (a late offer).
func (g *Gateway) parseOffer(req *sip.Request) (md meter.Media, hasSDP, ok bool) {
	if g.media == nil {
		return meter.Media{}, false, true
	}
	body := sdpBody(req)
	if body == nil {
		return meter.Media{}, false, true
	}
	md, err := meter.ParseSDP(body)
	if err != nil {
		return meter.Media{}, true, false
	}
	return md, true, true
}

// anchor rewrites m's SDP for d's media session, m having come from the
// caller's side or not. Without a session or an SDP body it does nothing.
func (g *Gateway) anchor(d *Dialog, fromCaller bool, m sip.Message) error {
	s := d.mediaSession()
	if s == nil {
		return nil
	}
	body := sdpBody(m)
	if body == nil {
		return nil
	}
	md, err := meter.ParseSDP(body)
	if err != nil {
		return errBadSDP
	}
	g.anchorParsed(s, fromCaller, m, body, md)
	return nil
}

func (g *Gateway) anchorParsed(s *meter.Session, fromCaller bool, m sip.Message, body []byte, md meter.Media) {
	in, out := s.A, s.B
	if !fromCaller {
		in, out = s.B, s.A
	}
	in.SetRemote(md)
	m.SetBody(meter.RewriteSDP(body, g.media.Advertise(), out.Port()))
}

// stripBody removes a body the gateway cannot anchor, with its type.
func stripBody(m sip.Message) {
	m.SetBody(nil)
	if r, ok := m.(interface{ RemoveHeader(string) bool }); ok {
		r.RemoveHeader("Content-Type")
	}
}

// Media is the gateway's media relay, nil with media.mode off.
func (g *Gateway) Media() *meter.Relay { return g.media }

// closeMedia releases d's media ports, once.
func (g *Gateway) closeMedia(d *Dialog) {
	if s := d.mediaSession(); s != nil {
		s.Close()
	}
}

// MediaStats returns the meters of d's legs: what the caller sent (leg A)
// and what the callee sent (leg B); ok is false for a call not anchored.
func (d *Dialog) MediaStats() (caller, callee meter.Stats, ok bool) {
	s := d.mediaSession()
	if s == nil {
		return meter.Stats{}, meter.Stats{}, false
	}
	return s.A.Stats(), s.B.Stats(), true
}

func (d *Dialog) mediaSession() *meter.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.media
}

// CauseMediaTimeout ends an answered call whose media stopped: no RTP in
// either direction for media.rtp_timeout (media.hold_timeout on hold).
var CauseMediaTimeout = Cause{Name: "media_timeout", Q850: 41, Text: "media timeout", SIPCode: 408, SIPReason: "Request Timeout"}

// mediaCheckInterval is how often the media watchdog looks at the calls:
// a tenth of the RTP timeout, at most a second, so a call is torn down at
// most that late.
func mediaCheckInterval(rtpTimeout time.Duration) time.Duration {
	return min(max(rtpTimeout/10, 10*time.Millisecond), time.Second)
}

// watchMedia starts the media watchdog: one timer for the gateway, not one
// per call. Packet times are the wall clock (meter/), so it needs the real
// clock.
func (g *Gateway) watchMedia() {
	every := mediaCheckInterval(g.cfg.Media.RTPTimeout)
	var tick func()
	tick = func() {
		if g.closed.Load() {
			return
		}
		g.checkMedia(g.now())
		g.clock.AfterFunc(every, tick)
	}
	g.clock.AfterFunc(every, tick)
}

// checkMedia tears down every answered call whose last RTP packet, either
// way, is older than its timeout (counted from the answer when none came).
func (g *Gateway) checkMedia(now time.Time) {
	for _, d := range g.dialogs.All() {
		s := d.mediaSession()
		if s == nil || d.State() != Confirmed {
			continue
		}
		last, hold := s.LastMedia(d.Answered())
		limit := g.cfg.Media.RTPTimeout
		if hold {
			limit = g.cfg.Media.HoldTimeout
		}
		if now.Sub(last) >= limit {
			g.Teardown(d, CauseMediaTimeout)
		}
	}
}

// billedEnd is where billing of an ending call stops with media.bill_from
// media: its media end (last RTP packet plus one packetisation interval)
// if before now, its answer if no RTP came at all; zero (bill to now) for
// a call without anchored media or with bill_from signalling.
func (g *Gateway) billedEnd(d *Dialog, now time.Time) time.Time {
	if g.cfg.Media.BillFrom != configs.BillFromMedia {
		return time.Time{}
	}
	s := d.mediaSession()
	a := d.Answered()
	if s == nil || a.IsZero() {
		return time.Time{}
	}
	end, ok := s.MediaEnd()
	if !ok {
		return a // answered, and not one RTP packet: nothing to bill
	}
	if end.After(now) {
		return now
	}
	return end
}
