package sip

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// The party stage: a request inside a dialog (or a CANCEL of a pending
// INVITE) is served only when it comes from that dialog's party, and the
// gateway sends inside a dialog only to the other party, at the address it
// learnt for that party when the dialog was created.

// partyCheck runs on the Call-ID's serial queue, after the front door and
// before sipgo's transaction layer: a stranger's CANCEL, BYE or re-INVITE
// never reaches a transaction.
func (g *Gateway) partyCheck(req *sip.Request) *refusal {
	toTag := tagOf(req.To().Params)
	if toTag == "" && !req.IsCancel() {
		return nil // a new request: classification decides
	}
	d := g.dialogs.Lookup(callIDOf(req), tagOf(req.From().Params), toTag)
	if d == nil {
		// No dialog (any more): the transaction layer decides. A
		// retransmission of a request still in progress (a BYE whose 200
		// is on its way back) matches its transaction and gets that
		// answer; anything else reaches the handler and gets 481 there.
		return nil
	}
	if !g.fromParty(d, d.sideOf(tagOf(req.From().Params)), req) {
		if req.IsCancel() {
			// Nothing of the call is revealed to whoever copied its branch.
			return &refusal{Code: 481, Phrase: "Call/Transaction Does Not Exist", Cause: "not_party"}
		}
		return &refusal{Code: 403, Phrase: "Forbidden (not a party of this dialog)", Cause: "not_party"}
	}
	return nil
}

// fromParty reports whether req was sent by the dialog's caller (or callee):
// the same transport and source IP the gateway learnt for that party. The
// port is not compared: a party may send over a new TCP connection.
func (g *Gateway) fromParty(d *Dialog, fromCaller bool, req *sip.Request) bool {
	src, ok := sourceIP(req)
	if !ok {
		return false
	}
	caller, callee := d.Legs()
	leg := callee
	if fromCaller {
		leg = caller
	}
	if leg.Source == "" {
		// The callee before its 2xx (an early-dialog request): the hop
		// the INVITE went to.
		leg.Source, leg.Transport = d.nextHop, d.nextTransport
	}
	ap, err := netip.ParseAddrPort(leg.Source)
	return err == nil && ap.Addr() == src && leg.Transport == req.Transport()
}

// partyAddr is where the gateway sends requests to a party. Over TCP or
// TLS: the connection its messages came on (its source address), which is
// the one that reaches a party behind NAT and the only one a TLS peer has
// verified. Over UDP: the first entry of its route set, or else its
// Contact, when that is a configured carrier or tenant address; otherwise
// the address its messages came from. A Contact or Record-Route naming any
// other host is never followed.
func (g *Gateway) partyAddr(l *Leg) string {
	if l.Transport != "UDP" && l.Source != "" {
		return l.Source
	}
	cand := &l.Contact
	if len(l.RouteSet) > 0 {
		cand = &l.RouteSet[0]
	}
	if ip, err := netip.ParseAddr(cand.Host); err == nil && g.classifier.Load().KnownSource(ip.Unmap()) {
		return uriHostPort(cand)
	}
	return l.Source
}

// targetsParty reports whether u, the next hop an in-dialog request asks
// for, is the party leg: its learnt address, its Contact or its first route.
func (g *Gateway) targetsParty(u *sip.Uri, l *Leg) bool {
	hp := uriHostPort(u)
	if hp == g.partyAddr(l) || (l.Contact.Host != "" && hp == uriHostPort(&l.Contact)) {
		return true
	}
	return len(l.RouteSet) > 0 && hp == uriHostPort(&l.RouteSet[0])
}
