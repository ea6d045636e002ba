package sip

import (
	"context"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Cause is why the gateway ends a call itself.
type Cause struct {
	Name      string // short name for logs, e.g. "max_duration"
	Q850      int    // Q.850 cause in the BYE's Reason header
	Text      string // text of the Reason header
	SIPCode   int    // final response to the caller when the call is still early
	SIPReason string // reason phrase of that response
}

// Causes used by the gateway itself.
var (
	CauseShutdown    = Cause{Name: "shutdown", Q850: 41, Text: "gateway shutting down", SIPCode: 503, SIPReason: "Service Unavailable"}
	CauseMaxDuration = Cause{Name: "max_duration", Q850: 102, Text: "maximum call duration reached", SIPCode: 408, SIPReason: "Request Timeout"}
)

// byeTimeout bounds a gateway-originated BYE transaction.
const byeTimeout = 32 * time.Second

// Teardown ends a call from the gateway. A confirmed call gets a BYE on both
// legs, each with that leg's route set, its next CSeq and a Reason header; an
// early call gets CANCEL toward the callee and cause.SIPCode toward the
// caller. The call's slot is released once. It returns false if the call had
// already ended.
func (g *Gateway) Teardown(d *Dialog, c Cause) bool {
	ok := g.teardown(d, c)
	if ok && g.metrics != nil {
		g.metrics.Teardown(c.Name)
	}
	return ok
}

func (g *Gateway) teardown(d *Dialog, c Cause) bool {
	switch state, first := d.requestTeardown(c); state {
	case Early:
		if !first {
			return false // already being torn down
		}
		d.postEarly(earlyEvent{kind: evTeardown})
		return true
	case Confirmed:
		hold := g.track() // no drain between the end of the call and its BYEs
		defer hold()
		if !g.endCall(d, c.Name) {
			return false
		}
		caller, callee := d.Legs()
		g.bye(d, caller, true, c)
		g.bye(d, callee, false, c)
		return true
	}
	return false
}

// TeardownCall ends the call with the given Call-ID; see Teardown.
func (g *Gateway) TeardownCall(callID string, c Cause) bool {
	d := g.Dialog(callID)
	if d == nil {
		return false
	}
	return g.Teardown(d, c)
}

// bye sends a BYE to one leg in the background. toCaller selects which side
// the gateway speaks for: toward the caller it acts as the callee, and the
// other way round.
func (g *Gateway) bye(d *Dialog, leg Leg, toCaller bool, c Cause) {
	req := g.byeRequest(d, leg, toCaller, c)
	done := g.track()
	go func() {
		defer done()
		ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
		defer cancel()
		res, err := g.client.Do(ctx, req, noBuild)
		e := g.log.Debug().Str("call_id", d.CallID).Bool("to_caller", toCaller)
		if err != nil || res == nil { // sipgo returns neither when the UA closes under it
			e.Err(err).Msg("teardown BYE failed")
			return
		}
		e.Int("code", res.StatusCode).Msg("teardown BYE answered")
	}()
}

// byeRequest builds an in-dialog BYE toward leg.
func (g *Gateway) byeRequest(d *Dialog, leg Leg, toCaller bool, c Cause) *sip.Request {
	d.mu.Lock()
	var from *sip.FromHeader
	var to *sip.ToHeader
	var seq uint32
	if toCaller {
		from = &sip.FromHeader{DisplayName: d.to.DisplayName, Address: *d.to.Address.Clone(), Params: d.to.Params.Clone()}
		to = &sip.ToHeader{DisplayName: d.from.DisplayName, Address: *d.from.Address.Clone(), Params: d.from.Params.Clone()}
		d.callee.CSeq++
		seq = d.callee.CSeq
	} else {
		from = sip.HeaderClone(d.from).(*sip.FromHeader)
		to = sip.HeaderClone(d.to).(*sip.ToHeader)
		d.caller.CSeq++
		seq = d.caller.CSeq
	}
	d.mu.Unlock()

	req := g.legRequest(sip.BYE, leg, from, to, d.CallID, seq)
	req.AppendHeader(sip.NewHeader("Reason", "Q.850;cause="+strconv.Itoa(c.Q850)+";text=\""+c.Text+"\""))
	return req
}

// legRequest builds a request the gateway originates inside a dialog,
// addressed to leg: its Contact (or signalling source when it gave none) as
// Request-URI, its route set, sent to the party's learnt address.
func (g *Gateway) legRequest(method sip.RequestMethod, leg Leg, from *sip.FromHeader, to *sip.ToHeader, callID string, seq uint32) *sip.Request {
	ruri := leg.Contact
	if ruri.Host == "" {
		host, port, _ := sip.ParseAddr(leg.Source)
		ruri = sip.Uri{Host: host, Port: port}
	}
	req := sip.NewRequest(method, *ruri.Clone())
	for _, r := range leg.RouteSet {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Content-Length", "0"))

	g.addVia(req, leg.Transport, netip.Addr{})
	g.send(req, g.partyAddr(&leg), leg.Transport) // never a host the party named (party.go)
	return req
}

// ackAndBye closes a callee dialog that answered after the caller's side had
// ended: ACK the 2xx, then BYE.
func (g *Gateway) ackAndBye(d *Dialog, inv *sip.Request, res *sip.Response) {
	leg := legFromResponse(res, inv, inv.Transport())
	ack := g.legRequest(sip.ACK, leg, sip.HeaderClone(inv.From()).(*sip.FromHeader),
		sip.HeaderClone(res.To()).(*sip.ToHeader), d.CallID, inv.CSeq().SeqNo)
	if err := g.client.WriteRequest(ack, noBuild); err != nil {
		g.log.Debug().Err(err).Str("call_id", d.CallID).Msg("ACK for late 2xx failed")
	}
	d.mu.Lock()
	d.callee = leg
	d.to = sip.HeaderClone(res.To()).(*sip.ToHeader)
	d.mu.Unlock()
	g.bye(d, leg, false, Cause{Name: "cancel", Q850: 31, Text: "call cancelled"})
}
