package sip

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/meter"
)

// announcer plays the service-interrupted announcement to inbound callers
// whose call is refused for one of announcement.causes.
type announcer struct {
	audio  *meter.Announcement // encoded once at start
	causes map[admission.Cause]bool
}

// newAnnouncer loads announcement.prompt (or the built-in prompt) and
// encodes the audio once. Without a relay there is no announcement.
func newAnnouncer(r *meter.Relay, prompt string, causes []string) (*announcer, error) {
	if r == nil || len(causes) == 0 {
		return nil, nil
	}
	var pcm []int16
	if prompt != "" {
		b, err := os.ReadFile(prompt)
		if err != nil {
			return nil, fmt.Errorf("announcement.prompt: %w", err)
		}
		if pcm, err = meter.ParseWAV(b); err != nil {
			return nil, fmt.Errorf("announcement.prompt: %s: %w", prompt, err)
		}
	}
	audio, err := meter.NewAnnouncement(pcm)
	if err != nil {
		return nil, fmt.Errorf("announcement: %w", err)
	}
	a := &announcer{audio: audio, causes: map[admission.Cause]bool{}}
	for _, c := range causes {
		cause, err := admission.ParseCause(c)
		if err != nil {
			return nil, fmt.Errorf("announcement.causes: %w", err)
		}
		a.causes[cause] = true
	}
	return a, nil
}

// announce answers a refused inbound INVITE with 183 and the announcement
// as early media, then the refusal's final response (never 200, never
// billed, counted against nothing: the engine has already refused it). It
// reports false, having sent nothing, when the call cannot hear it: no
// announcement for this cause, no G.711 in the offer, 100rel required, or
// no free port; the caller then gets the plain final response.
func (g *Gateway) announce(req *sip.Request, tx sip.ServerTransaction, dir admission.Direction, offer meter.Media, hasSDP bool,
	rej admission.Rejection, extra []sip.Header) (async bool) {
	a := g.announcer
	if a == nil || dir != admission.Inbound || !a.causes[rej.Cause] || !hasSDP || offer.Hold() || offer.Port == 0 {
		return false
	}
	pt, ok := meter.PickG711(offer)
	if !ok || requires100rel(req) {
		return false
	}
	leg, err := g.media.OpenPlayer()
	if err != nil {
		return false
	}
	tag := sip.GenerateTagN(16)
	progress := sip.NewResponseFromRequest(req, 183, "Session Progress", g.media.AnswerSDP(leg.Port(), pt))
	progress.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	progress.To().Params.Add("tag", tag)
	stop := make(chan struct{})
	var cancelled sync.Once // a CANCEL may come more than once
	if !tx.OnCancel(func(*sip.Request) { cancelled.Do(func() { close(stop) }) }) {
		leg.ClosePlayer()
		return false
	}
	if err := tx.Respond(progress); err != nil {
		leg.ClosePlayer()
		return false
	}
	done := g.track()
	go func() {
		defer done()
		defer endServerTx(tx)
		defer leg.ClosePlayer() // ports back when the announcement ends
		code, phrase, text := rej.Code, rej.Reason, rej.Text()
		if !leg.Play(a.audio, pt, netip.AddrPortFrom(offer.Addr, uint16(offer.Port)), stop) {
			code, phrase, text = 487, "Request Terminated", "" // the caller hung up (CANCEL)
		}
		final := sip.NewResponseFromRequest(req, code, phrase, nil)
		final.To().Params.Add("tag", tag)
		if text != "" {
			final.AppendHeader(sip.NewHeader("Reason", fmt.Sprintf("SIP;cause=%d;text=%q", code, text)))
		}
		for _, h := range extra {
			final.AppendHeader(h)
		}
		if err := tx.Respond(final); err != nil {
			g.log.Debug().Err(err).Str("call_id", callIDOf(req)).Msg("final response after the announcement failed")
		}
	}()
	return true
}

// requires100rel reports a Require: 100rel (RFC 3262), which the
// announcement's unreliable 183 cannot honour.
func requires100rel(req *sip.Request) bool {
	for _, h := range req.GetHeaders("Require") {
		for _, opt := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(opt), "100rel") {
				return true
			}
		}
	}
	return false
}
