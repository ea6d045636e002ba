package sip

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// noBuild tells sipgo to send a request exactly as we built it.
func noBuild(*sipgo.Client, *sip.Request) error { return nil }

// cancelWait bounds how long a cancelled branch may take to send its final
// response before the gateway drops the client transaction.
const cancelWait = 32 * time.Second

func tagOf(params sip.HeaderParams) string {
	t, _ := params.Get("tag")
	return t
}

func callIDOf(m interface{ CallID() *sip.CallIDHeader }) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func sourceIP(req *sip.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

// reply sends a response built from req; reasonText adds a Reason header
// (RFC 3326) naming why.
func (g *Gateway) reply(tx sip.ServerTransaction, req *sip.Request, code int, phrase, reasonText string, extra ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, phrase, nil)
	if reasonText != "" {
		res.AppendHeader(sip.NewHeader("Reason", "SIP;cause="+strconv.Itoa(code)+";text=\""+reasonText+"\""))
	}
	for _, h := range extra {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug().Err(err).Str("call_id", callIDOf(req)).Int("code", code).Msg("respond failed")
	}
}

func (g *Gateway) logDecision(callID, tenant string, dir admission.Direction, decision, cause string, code int) {
	e := g.log.Info().Str("call_id", callID).Str("tenant", tenant)
	if dir != 0 {
		e = e.Str("direction", dir.String())
	}
	e = e.Str("decision", decision)
	if cause != "" {
		e = e.Str("cause", cause).Int("code", code)
	}
	e.Msg("call decision")
	if g.metrics != nil {
		if cause == "" {
			g.metrics.Admitted(dir.String())
		} else {
			g.metrics.Rejected(cause)
		}
	}
}

// maxForwards checks Max-Forwards before forwarding (RFC 3261 §16.3 step 3):
// 483 at zero, the header added when missing, decremented otherwise.
func (g *Gateway) maxForwards(fwd *sip.Request) bool {
	mf := fwd.MaxForwards()
	if mf == nil {
		h := sip.MaxForwardsHeader(70)
		fwd.AppendHeader(&h)
		return true
	}
	if mf.Val() == 0 {
		return false
	}
	v := sip.MaxForwardsHeader(mf.Val() - 1)
	fwd.ReplaceHeader(&v)
	return true
}

// stripSelfRoutes removes the Route entries at the top that address the
// gateway (RFC 3261 §16.4).
func (g *Gateway) stripSelfRoutes(r *sip.Request) {
	for {
		rt := r.Route()
		if rt == nil || !g.isSelf(&rt.Address) {
			return
		}
		r.RemoveHeader("Route")
	}
}

// addVia stamps the received parameter on the previous hop's Via (RFC 3261
// §18.2.1) and prepends the gateway's own Via for transport.
func (g *Gateway) addVia(r *sip.Request, transport string, src netip.Addr) {
	if v := r.Via(); v != nil && src.IsValid() && v.Host != src.String() {
		nv := v.Clone()
		nv.Params.Remove("received")
		nv.Params.Add("received", src.String())
		r.ReplaceHeader(nv)
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport, Host: g.advertise, Params: sip.NewParams()}
	if li := g.listeners[transport]; li != nil {
		via.Port = li.port
	}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	r.PrependHeader(via)
}

// recordRoute inserts the gateway's Record-Route entries (RFC 3261 §16.6
// step 4): one, or two when the call changes transport, so that each side's
// route set names the gateway on the transport it uses.
func (g *Gateway) recordRoute(r *sip.Request, inTransport, outTransport string) {
	r.PrependHeader(g.rrHeader(inTransport))
	if outTransport != inTransport {
		r.PrependHeader(g.rrHeader(outTransport))
	}
}

func (g *Gateway) rrHeader(transport string) *sip.RecordRouteHeader {
	u := sip.Uri{Host: g.advertise, UriParams: sip.NewParams()}
	if li := g.listeners[transport]; li != nil {
		u.Port = li.port
	}
	u.UriParams.Add("transport", strings.ToLower(transport))
	u.UriParams.Add("lr", "")
	return &sip.RecordRouteHeader{Address: u}
}

// send sets where a request goes and, for UDP, makes it leave from the
// listening socket so the peer sees the gateway's signalling address.
func (g *Gateway) send(r *sip.Request, dest, transport string) {
	r.SetDestination(dest)
	r.SetTransport(transport)
	r.Laddr = sip.Addr{}
	li := g.listeners[transport]
	switch {
	case li == nil:
	case transport == "UDP":
		r.Laddr = li.laddr
	case !li.laddr.IP.IsUnspecified():
		// Connections leave from the listen address (port chosen by the
		// kernel), not from whatever address the route picks.
		r.Laddr = sip.Addr{IP: li.laddr.IP}
	}
}

// relay sends res upstream on tx. res is the branch's own once read from
// its client transaction (sipgo only reads the responses it keeps, and a
// retransmission is a new message), so the gateway's top Via is removed in
// place instead of in a copy.
func (g *Gateway) relay(tx sip.ServerTransaction, res *sip.Response, upstream *sip.Request) error {
	res.RemoveHeader("Via")
	res.SetTransport(upstream.Transport())
	res.SetDestination(upstream.Source())
	return tx.Respond(res)
}

// relayRetransmission relays a 2xx retransmission: it may outlive the
// server transaction (RFC 6026), so it goes statelessly to the same source.
func (g *Gateway) relayRetransmission(tx sip.ServerTransaction, res *sip.Response, upstream *sip.Request) {
	if err := g.relay(tx, res, upstream); err != nil {
		if err := g.srv.WriteResponse(res); err != nil {
			g.log.Debug().Err(err).Str("call_id", callIDOf(res)).Msg("2xx retransmission not relayed")
		}
	}
}

// onInvite handles every INVITE: re-INVITEs go the in-dialog path, new calls
// are classified, admitted and proxied.
func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) (async bool) {
	if to := req.To(); to != nil && tagOf(to.Params) != "" {
		return g.onInDialog(req, tx)
	}
	callID := callIDOf(req)
	src, ok := sourceIP(req)
	if !ok {
		g.reply(tx, req, 400, "Bad Request", "unparsable source")
		return false
	}
	callee := DialledNumber(&req.Recipient) // one normal form for classification and the engine
	route, cerr := g.classifier.Load().Classify(src, callee)
	if cerr != nil {
		g.reply(tx, req, cerr.Code, cerr.Reason, cerr.Cause)
		g.logDecision(callID, "", 0, "reject", cerr.Cause, cerr.Code)
		return false
	}
	from := req.From()
	fromTag := tagOf(from.Params) // the front door made sure there is one
	key := dialogKey(callID, fromTag)
	if g.draining.Load() {
		g.reply(tx, req, 503, "Service Unavailable", "gateway draining", sip.NewHeader("Retry-After", "30"))
		g.rejectEarly(g.now(), callID, key, route, from.Address.User, callee, "draining", 503)
		return false
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		g.reply(tx, req, 483, "Too Many Hops", "")
		g.rejectEarly(g.now(), callID, key, route, from.Address.User, callee, "max_forwards", 483)
		return false
	}

	offer, hasSDP, sdpOK := g.parseOffer(req)
	if !sdpOK {
		g.reply(tx, req, 488, "Not Acceptable Here", "sdp")
		g.rejectEarly(g.now(), callID, key, route, from.Address.User, callee, "sdp", 488)
		return false
	}

	// The dialog is in the table before the engine admits the call, so a
	// cut of the early call (a suspension in another goroutine right after
	// Admit) always finds it.
	now := g.now()
	d := &Dialog{
		Key: key, CallID: callID, Tenant: route.Tenant, Direction: route.Direction, Created: now,
		Caller: from.Address.User, Callee: callee,
		early:         make(chan earlyEvent, 1),
		state:         Early,
		nextHop:       route.Next.Addr,
		nextTransport: route.Next.Transport,
		from:          sip.HeaderClone(from).(*sip.FromHeader),
		to:            sip.HeaderClone(req.To()).(*sip.ToHeader),
		caller: Leg{
			Tag: fromTag, Source: req.Source(), Transport: req.Transport(), CSeq: req.CSeq().SeqNo,
			RouteSet: recordRouteSet(req.GetHeaders("Record-Route"), false),
		},
	}
	if c := req.Contact(); c != nil {
		d.caller.Contact = *c.Address.Clone()
	}
	if !g.dialogs.Insert(d) {
		// Same Call-ID and tag as a live call: a loop or a broken UA. The
		// live call keeps its single slot.
		g.reply(tx, req, 482, "Loop Detected", "")
		g.rejectEarly(now, callID, key, route, from.Address.User, callee, "loop", 482)
		return false
	}
	creq := admission.CallRequest{
		CallID: key, Tenant: route.Tenant, Direction: route.Direction,
		Caller: from.Address.User, Callee: callee,
	}
	dec := g.admit(now, &creq)
	if g.metrics != nil {
		g.metrics.AdmissionLatency(g.now().Sub(now))
	}
	if !dec.Admitted {
		if _, first := d.terminate(now, "rejected"); first {
			g.dialogs.Remove(d)
		}
		g.apply(dec)
		rej := dec.Rejection
		var extra []sip.Header
		if rej.RetryAfter > 0 {
			extra = append(extra, sip.NewHeader("Retry-After", retryAfter(rej.RetryAfter)))
		}
		if g.announce(req, tx, route.Direction, offer, hasSDP, rej, extra) {
			g.logDecision(callID, route.Tenant, route.Direction, "announce", rej.Cause.String(), rej.Code)
			return true
		}
		g.reply(tx, req, rej.Code, rej.Reason, rej.Text(), extra...)
		g.logDecision(callID, route.Tenant, route.Direction, "reject", rej.Cause.String(), rej.Code)
		return false
	}
	g.apply(dec)
	// Cloned only once admitted: a rejected flood costs no copy.
	fwd := g.initialCopy(req)
	if g.media != nil {
		s, err := g.media.Open()
		if err != nil {
			g.endCall(d, "media_ports") // the slot is free before the caller hears of it
			g.reply(tx, req, 503, "Service Unavailable", "media_ports")
			g.logDecision(callID, route.Tenant, route.Direction, "reject", "media_ports", 503)
			return false
		}
		d.mu.Lock()
		d.media = s
		d.mu.Unlock()
		if hasSDP {
			g.anchorParsed(s, true, fwd, sdpBody(fwd), offer)
		}
	}
	decision := "admit"
	if dec.Emergency {
		decision = "admit_emergency"
	}
	g.logDecision(callID, route.Tenant, route.Direction, decision, "", 0)
	return g.proxyInvite(req, tx, fwd, d, route.Next, src)
}

// proxyInvite forwards an admitted INVITE and starts its client transaction;
// the wait for its responses (relay, Timer C, CANCEL, early teardown) runs
// in its own goroutine, so the Call-ID's queue moves on to the next request.
// A forward that may open a connection (TCP, TLS) runs off the read
// goroutine (offRead).
func (g *Gateway) proxyInvite(req *sip.Request, tx sip.ServerTransaction, fwd *sip.Request, d *Dialog, next Hop, src netip.Addr) (async bool) {
	if !tx.OnCancel(func(*sip.Request) { d.postEarly(earlyEvent{kind: evCancel}) }) {
		g.endCall(d, "cancel")
		return false
	}
	if next.Transport != "UDP" {
		return g.offRead(d.CallID, tx, func() bool { return g.forwardInvite(req, tx, fwd, d, next, src) })
	}
	return g.forwardInvite(req, tx, fwd, d, next, src)
}

// initialCopy is the copy of an initial INVITE that is forwarded:
// Max-Forwards decremented (the caller checked it is above 0) and no Route
// headers (initial requests are routed by classification only: a tenant
// cannot steer its calls with pre-loaded Route headers).
func (g *Gateway) initialCopy(req *sip.Request) *sip.Request {
	fwd := req.Clone()
	g.maxForwards(fwd)
	for fwd.RemoveHeader("Route") {
	}
	return fwd
}

// forwardInvite sends fwd (initialCopy, its SDP anchored) to next in a
// client transaction of its own, with the gateway's Via and Record-Route
// added here. A switch to TCP, the rare path, starts again from a second
// copy.
func (g *Gateway) forwardInvite(req *sip.Request, tx sip.ServerTransaction, fwd *sip.Request, d *Dialog, next Hop, src netip.Addr) (async bool) {
	g.prepareInvite(fwd, req.Transport(), next, src)
	clTx, err := g.client.TransactionRequest(context.Background(), fwd, noBuild)
	if errors.Is(err, sip.ErrUDPMTUCongestion) {
		// RFC 3261 §18.1.1: too large for UDP, so TCP to the same hop.
		if g.listeners["TCP"] == nil {
			g.reply(tx, req, 513, "Message Too Large", "request too large for UDP and no TCP listener")
			g.endCall(d, "too_large")
			return false
		}
		return g.offRead(d.CallID, tx, func() bool {
			next.Transport = "TCP"
			d.nextTransport = next.Transport
			out := g.initialCopy(req)
			if err := g.anchor(d, true, out); err != nil { // parsed before admission: not expected
				g.reply(tx, req, 488, "Not Acceptable Here", "sdp")
				g.endCall(d, "sdp")
				return false
			}
			g.prepareInvite(out, req.Transport(), next, src)
			clTx, err := g.client.TransactionRequest(context.Background(), out, noBuild)
			if err != nil {
				g.reply(tx, req, 513, "Message Too Large", "request too large for UDP and TCP to the next hop failed")
				g.endCall(d, "too_large")
				return false
			}
			return g.startInviteBranch(req, tx, out, clTx, d, next)
		})
	}
	if err != nil {
		g.log.Warn().Err(err).Str("call_id", d.CallID).Str("next_hop", next.Addr).Msg("forward failed")
		g.reply(tx, req, 503, "Service Unavailable", "next hop unreachable")
		g.endCall(d, "forward_failed")
		return false
	}
	return g.startInviteBranch(req, tx, fwd, clTx, d, next)
}

// startInviteBranch runs the INVITE's branch in a goroutine that owns tx.
func (g *Gateway) startInviteBranch(req *sip.Request, tx sip.ServerTransaction, out *sip.Request, clTx sip.ClientTransaction, d *Dialog, next Hop) (async bool) {
	done := g.track()
	go func() {
		defer done()
		defer endServerTx(tx)
		g.inviteBranch(req, tx, out, clTx, d, next)
	}()
	return true
}

// offRead runs f, a handler's remaining work that may block on opening a
// connection, as the Call-ID's next work in a goroutine of its own
// (serializer.detach), so that a transport's read goroutine never waits on
// the network; the transaction is ended if f does not take it over. Outside
// the Call-ID's queued work it runs f where it is.
func (g *Gateway) offRead(callID string, tx sip.ServerTransaction, f func() (async bool)) (async bool) {
	if g.serial.detach(callID, func() {
		if !f() {
			endServerTx(tx)
		}
	}) {
		return true
	}
	return f()
}

// prepareInvite adds the gateway's Record-Route and Via to an INVITE bound
// for next, and where it goes.
func (g *Gateway) prepareInvite(out *sip.Request, inTransport string, next Hop, src netip.Addr) {
	g.recordRoute(out, inTransport, next.Transport)
	g.addVia(out, next.Transport, src)
	g.send(out, next.Addr, next.Transport)
}

// inviteBranch runs an INVITE's client transaction to its end. It alone
// decides the caller's final response (sipgo leaves a CANCEL's 487 to it),
// so the caller never gets two.
func (g *Gateway) inviteBranch(req *sip.Request, tx sip.ServerTransaction, fwd *sip.Request, clTx sip.ClientTransaction, d *Dialog, next Hop) {
	timerC := newChanTimer(g.clock, g.cfg.SIP.TimerC)
	defer timerC.Stop()
	var (
		provisional bool // CANCEL may only follow a provisional (RFC 3261 §9.1)
		cancelling  bool // the caller's side is over; the branch is being cancelled
		cancelSent  bool
		cancelGive  <-chan struct{}
		give        chanTimer
	)
	defer func() {
		if give.Timer != nil {
			give.Stop()
		}
	}()
	cancelBranch := func() {
		if cancelSent || !provisional {
			return
		}
		cancelSent = true
		g.sendCancel(fwd)
		give = newChanTimer(g.clock, cancelWait)
		cancelGive = give.C
	}
	// endEarly ends the call for the caller and cancels the branch.
	endEarly := func(kind earlyKind) {
		if cancelling {
			return
		}
		cancelling = true
		switch kind {
		case evCancel: // sipgo answered 200 to the CANCEL; the 487 is ours
			g.reply(tx, req, 487, "Request Terminated", "")
			g.endCall(d, "cancel")
		case evTimerC:
			g.reply(tx, req, 408, "Request Timeout", "timer C expired")
			g.endCall(d, "timer_c")
		case evTeardown:
			c := d.pendingCause()
			g.reply(tx, req, c.SIPCode, c.SIPReason, c.Text)
			g.endCall(d, c.Name)
		}
		cancelBranch()
	}

	for {
		select {
		case res := <-clTx.Responses():
			// An end of the call asked for before this response was read
			// (CANCEL, teardown) comes first: the caller's outcome is
			// decided by what happened first, not by select's choice.
			select {
			case ev := <-d.early:
				endEarly(ev.kind)
			default:
			}
			switch {
			case res.IsProvisional():
				provisional = true
				if cancelling {
					cancelBranch()
					continue
				}
				if res.StatusCode == 100 { // hop by hop, never relayed
					continue
				}
				timerC.Reset(g.cfg.SIP.TimerC)
				if err := g.anchor(d, false, res); err != nil {
					stripBody(res) // no early media the gateway cannot anchor
				}
				g.relay(tx, res, req)
			case res.IsSuccess():
				if cancelling {
					// Answered after the caller's side ended: close the
					// callee's dialog ourselves.
					g.ackAndBye(d, fwd, res)
					g.drainBranch(clTx)
					return
				}
				if err := g.anchor(d, false, res); err != nil {
					// An answer whose media the gateway cannot anchor: the
					// call ends unbilled, the caller gets 502 and the callee
					// is hung up.
					g.reply(tx, req, 502, "Bad Gateway", "answer sdp not acceptable")
					g.endCall(d, "answer_sdp")
					g.ackAndBye(d, fwd, res)
					g.drainBranch(clTx)
					return
				}
				callee := legFromResponse(res, fwd, next.Transport)
				now := g.now()
				pending := d.confirm(now, callee, sip.HeaderClone(res.To()).(*sip.ToHeader))
				if err := g.relay(tx, res, req); err != nil {
					// The caller never got its answer: the call ends here,
					// before billing starts, and the callee is hung up.
					g.log.Warn().Err(err).Str("call_id", d.CallID).Msg("2xx not relayed: call torn down unbilled")
					g.endCall(d, "answer_not_relayed")
					g.ackAndBye(d, fwd, res)
					g.drainBranch(clTx)
					return
				}
				g.apply(g.adm.AnswerWith(now, d.Key, d.record())) // billing starts at the 200 OK
				clTx.OnRetransmission(func(r *sip.Response) {
					if g.anchor(d, false, r) == nil {
						g.relayRetransmission(tx, r, req)
					}
				})
				d.armMaxDuration(g.clock, g.cfg.SIP.MaxCallDuration, func() { g.Teardown(d, CauseMaxDuration) })
				if pending != nil {
					g.teardown(d, *pending) // counted when it was requested
				}
				return
			default:
				if !cancelling {
					g.relay(tx, res, req)
					g.endCall(d, "rejected_"+strconv.Itoa(res.StatusCode))
				}
				return
			}
		case <-doneOf(clTx):
			if len(clTx.Responses()) > 0 {
				continue // passed up before the end: read it first
			}
			if !cancelling {
				code, phrase := 408, "Request Timeout"
				if err := clTx.Err(); err != nil && errors.Is(err, sip.ErrTransactionTransport) {
					code, phrase = 503, "Service Unavailable"
				}
				g.reply(tx, req, code, phrase, "next hop did not answer")
				g.endCall(d, "timeout")
			}
			return
		case ev := <-d.early:
			endEarly(ev.kind)
		case <-timerC.C:
			endEarly(evTimerC)
		case <-cancelGive:
			clTx.Terminate()
			return
		}
	}
}

// doneOf is clTx's Done channel, or nil while a response it passed up is
// unread. The patched sipgo hands responses over through a buffer
// (WithTransactionLayerInlineResponses), so a final response and the end
// of its transaction can both be ready; it is read first, never lost to
// select's choice. A Done case still checks the buffer: the response may
// have come after doneOf was evaluated.
func doneOf(clTx sip.ClientTransaction) <-chan struct{} {
	if len(clTx.Responses()) > 0 {
		return nil
	}
	return clTx.Done()
}

// drainBranch consumes what is left of a client transaction so its state
// machine never blocks on an unread response.
func (g *Gateway) drainBranch(clTx sip.ClientTransaction) {
	go func() {
		for {
			select {
			case <-clTx.Responses():
			case <-clTx.Done():
				return
			}
		}
	}()
}

// sendCancel sends CANCEL for a forwarded INVITE (RFC 3261 §9.1: same
// Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE).
func (g *Gateway) sendCancel(inv *sip.Request) {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	c.AppendHeader(inv.Via().Clone())
	for _, h := range []sip.Header{inv.From(), inv.To(), inv.CallID()} {
		if h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(sip.NewHeader("Content-Length", "0"))
	g.send(c, inv.Destination(), inv.Transport())
	done := g.track()
	go func() {
		defer done()
		ctx, cancel := context.WithTimeout(context.Background(), cancelWait)
		defer cancel()
		if _, err := g.client.Do(ctx, c, noBuild); err != nil {
			g.log.Debug().Err(err).Str("call_id", callIDOf(inv)).Msg("CANCEL failed")
		}
	}()
}

// legFromResponse builds the callee's leg from its 2xx to the forwarded INVITE.
func legFromResponse(res *sip.Response, fwd *sip.Request, transport string) Leg {
	l := Leg{Source: res.Source(), Transport: transport}
	if to := res.To(); to != nil {
		l.Tag = tagOf(to.Params)
	}
	if c := res.Contact(); c != nil {
		l.Contact = *c.Address.Clone()
	}
	// Entries the callee side added sit above ours; the nearest is just above.
	rr := res.GetHeaders("Record-Route")
	own := len(fwd.GetHeaders("Record-Route"))
	if n := len(rr) - own; n > 0 {
		l.RouteSet = recordRouteSet(rr[:n], true)
	}
	return l
}

// recordRouteSet turns Record-Route headers into a route set, reversed for
// the callee side (RFC 3261 §12.1.2).
func recordRouteSet(hs []sip.Header, reverse bool) []sip.Uri {
	var out []sip.Uri
	for _, h := range hs {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
		}
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// onInDialog forwards a request inside an existing dialog to the dialog's
// other party only, at the address the gateway learnt for it (partyAddr).
// The party stage already made sure the sender is this dialog's party.
func (g *Gateway) onInDialog(req *sip.Request, tx sip.ServerTransaction) (async bool) {
	isAck := req.IsAck()
	refuse := func(code int, phrase, reason string) {
		if !isAck {
			g.reply(tx, req, code, phrase, reason)
		}
		if g.metrics != nil {
			g.metrics.Refused(reason)
		}
	}
	fromTag, toTag := tagOf(req.From().Params), tagOf(req.To().Params)
	d := g.dialogs.Lookup(callIDOf(req), fromTag, toTag)
	if d == nil || toTag == "" {
		refuse(481, "Call/Transaction Does Not Exist", "no_dialog")
		return false
	}
	src, _ := sourceIP(req)
	fromCaller := d.sideOf(fromTag)
	if !isAck {
		d.sawCSeq(fromCaller, req.CSeq().SeqNo)
	}
	fwd := req.Clone()
	if !g.maxForwards(fwd) {
		refuse(483, "Too Many Hops", "max_forwards")
		return false
	}
	caller, callee := d.Legs()
	target := callee
	if !fromCaller {
		target = caller
	}
	g.stripSelfRoutes(fwd)
	// The next hop the request asks for: its first remaining Route, or its
	// Request-URI. It must be the other party (or the gateway itself, for
	// UAs that ignore Record-Route); the request then goes to the address
	// learnt for that party, never to one the request names.
	asked := &fwd.Recipient
	if rt := fwd.Route(); rt != nil {
		asked = &rt.Address
	}
	switch {
	case g.isSelf(asked) && fwd.Route() == nil:
		fwd.Recipient = *target.Contact.Clone() // the UA ignored Record-Route
	case !g.targetsParty(asked, &target):
		refuse(403, "Forbidden (target is not the dialog's party)", "not_party_target")
		return false
	}
	if target.Transport != "UDP" {
		return g.offRead(d.CallID, tx, func() bool { return g.forwardInDialog(req, tx, fwd, d, target, src, fromCaller) })
	}
	return g.forwardInDialog(req, tx, fwd, d, target, src, fromCaller)
}

// forwardInDialog sends an in-dialog request to target, the dialog's other
// party, and relays its responses in a goroutine of its own. A switch to
// TCP for a request too large for UDP runs off the read goroutine.
func (g *Gateway) forwardInDialog(req *sip.Request, tx sip.ServerTransaction, fwd *sip.Request, d *Dialog, target Leg, src netip.Addr, fromCaller bool) (async bool) {
	if err := g.anchor(d, fromCaller, fwd); err != nil {
		if req.IsAck() {
			stripBody(fwd) // an ACK gets no answer; its media is not anchored
		} else {
			g.reply(tx, req, 488, "Not Acceptable Here", "sdp")
			return false
		}
	}
	dest := g.partyAddr(&target)
	g.addVia(fwd, target.Transport, src)
	g.send(fwd, dest, target.Transport)

	if req.IsAck() {
		if err := g.client.WriteRequest(fwd, noBuild); err != nil {
			g.log.Debug().Err(err).Str("call_id", d.CallID).Msg("ACK forward failed")
		}
		return false
	}
	// A BYE ends the call here, before its own transaction is counted in
	// flight: this hold keeps a draining gateway from seeing no call and
	// no transaction in between, and stopping before the BYE's 200 is
	// relayed. It is released once the branch counts itself (or the work
	// moved off the read goroutine, which then owns it).
	release := func() {}
	defer func() { release() }()
	if req.Method == sip.BYE {
		release = g.track()
		cause := "bye_callee"
		if fromCaller {
			cause = "bye_caller"
		}
		g.endCall(d, cause)
	}
	clTx, err := g.client.TransactionRequest(context.Background(), fwd, noBuild)
	if errors.Is(err, sip.ErrUDPMTUCongestion) {
		if g.listeners["TCP"] == nil {
			g.reply(tx, req, 513, "Message Too Large", "request too large for UDP")
			return false
		}
		held := release
		release = func() {}
		// RFC 3261 §18.1.1: TCP to the same party.
		return g.offRead(d.CallID, tx, func() bool {
			defer held()
			fwd.RemoveHeader("Via")
			g.addVia(fwd, "TCP", src)
			g.send(fwd, dest, "TCP")
			clTx, err := g.client.TransactionRequest(context.Background(), fwd, noBuild)
			if err != nil {
				g.reply(tx, req, 513, "Message Too Large", "request too large for UDP")
				return false
			}
			return g.startInDialogBranch(req, tx, fwd, clTx, d, fromCaller)
		})
	}
	if err != nil {
		g.reply(tx, req, 503, "Service Unavailable", "next hop unreachable")
		return false
	}
	return g.startInDialogBranch(req, tx, fwd, clTx, d, fromCaller)
}

// startInDialogBranch relays a forwarded in-dialog request's responses in a
// goroutine that owns tx.
func (g *Gateway) startInDialogBranch(req *sip.Request, tx sip.ServerTransaction, fwd *sip.Request, clTx sip.ClientTransaction, d *Dialog, fromCaller bool) (async bool) {
	if req.IsInvite() {
		tx.OnCancel(func(*sip.Request) { g.sendCancel(fwd) })
	}
	// Counted before it returns, so a draining gateway waits for the
	// response to be relayed (a BYE's 200 must reach its sender).
	done := g.track()
	go func() {
		defer done()
		defer endServerTx(tx)
		g.inDialogBranch(req, tx, clTx, d, fromCaller)
	}()
	return true
}

// endServerTx ends a server transaction once its handler goroutine is done
// (see onRequest).
func endServerTx(tx sip.ServerTransaction) {
	if t, ok := tx.(interface{ TerminateGracefully() }); ok {
		t.TerminateGracefully()
	}
}

var errTooLarge = errors.New("sip: request too large for UDP")

// inDialogBranch relays the responses of a forwarded in-dialog request.
func (g *Gateway) inDialogBranch(req *sip.Request, tx sip.ServerTransaction, clTx sip.ClientTransaction, d *Dialog, fromCaller bool) {
	for {
		select {
		case res := <-clTx.Responses():
			if res.StatusCode == 100 {
				continue
			}
			if err := g.anchor(d, !fromCaller, res); err != nil {
				stripBody(res)
			}
			g.relay(tx, res, req)
			if res.IsProvisional() {
				continue
			}
			if res.IsSuccess() && (req.IsInvite() || req.Method == sip.UPDATE) {
				d.refreshTarget(!fromCaller, res.Contact())
			}
			if res.IsSuccess() && req.IsInvite() {
				// Accepted (RFC 6026): retransmitted 2xx are relayed until
				// the client transaction ends itself after Timer M.
				clTx.OnRetransmission(func(r *sip.Response) {
					if g.anchor(d, !fromCaller, r) == nil {
						g.relayRetransmission(tx, r, req)
					}
				})
			}
			return
		case <-doneOf(clTx):
			if len(clTx.Responses()) > 0 {
				continue // passed up before the end: read it first
			}
			g.reply(tx, req, 408, "Request Timeout", "next hop did not answer")
			return
		}
	}
}

func uriHostPort(u *sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port))
}

// onStrayCancel answers a CANCEL that matches no pending INVITE.
func (g *Gateway) onStrayCancel(req *sip.Request, tx sip.ServerTransaction) (async bool) {
	g.reply(tx, req, 481, "Call/Transaction Does Not Exist", "")
	return false
}

// onOptions answers OPTIONS addressed to the gateway; in-dialog OPTIONS are
// routed like any in-dialog request.
func (g *Gateway) onOptions(req *sip.Request, tx sip.ServerTransaction) (async bool) {
	if to := req.To(); to != nil && tagOf(to.Params) != "" {
		return g.onInDialog(req, tx)
	}
	if req.Recipient.User == "" || g.isSelf(&req.Recipient) {
		g.reply(tx, req, 200, "OK", "", allowHeader())
		return false
	}
	if g.hopsExhausted(req, tx) {
		return false
	}
	g.reply(tx, req, 405, "Method Not Allowed", "", allowHeader())
	return false
}

// onOther routes in-dialog requests; out of dialog, the gateway only
// forwards INVITE.
func (g *Gateway) onOther(req *sip.Request, tx sip.ServerTransaction) (async bool) {
	if to := req.To(); to != nil && tagOf(to.Params) != "" {
		return g.onInDialog(req, tx)
	}
	if req.IsAck() || g.hopsExhausted(req, tx) {
		return false
	}
	g.reply(tx, req, 405, "Method Not Allowed", "", allowHeader())
	return false
}

// hopsExhausted answers 483 to a request with Max-Forwards 0 that is not
// for the gateway itself (RFC 3261 §16.3 step 3) before any other answer.
func (g *Gateway) hopsExhausted(req *sip.Request, tx sip.ServerTransaction) bool {
	if mf := req.MaxForwards(); mf == nil || *mf != 0 {
		return false
	}
	g.reply(tx, req, 483, "Too Many Hops", "")
	return true
}

func allowHeader() sip.Header {
	return sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK, NOTIFY, REFER")
}

// onStrayResponse handles a response that matches no client transaction.
// Only a 2xx retransmission to an INVITE of a confirmed dialog (RFC 6026),
// sent by that dialog's callee, is relayed, and only to the dialog's caller.
// Everything else is dropped and counted: the Vias below the gateway's own
// never decide where anything goes.
func (g *Gateway) onStrayResponse(res *sip.Response) {
	if d := g.strayDialog(res); d != nil {
		caller, _ := d.Legs()
		out := res.Clone()
		if g.anchor(d, false, out) != nil {
			g.drop("stray_response")
			return
		}
		out.RemoveHeader("Via")
		out.SetTransport(caller.Transport)
		out.SetDestination(caller.Source)
		write := func() {
			if err := g.srv.WriteResponse(out); err != nil {
				g.log.Debug().Err(err).Str("call_id", d.CallID).Msg("2xx retransmission not relayed")
			}
		}
		if caller.Transport != "UDP" {
			go write() // runs on a read goroutine: a stream write may wait
			return
		}
		write()
		return
	}
	g.drop("stray_response")
}

// strayDialog returns the confirmed dialog a stray 2xx retransmission belongs
// to, or nil.
func (g *Gateway) strayDialog(res *sip.Response) *Dialog {
	via, cs, from, to := res.Via(), res.CSeq(), res.From(), res.To()
	if !res.IsSuccess() || via == nil || cs == nil || from == nil || to == nil || cs.MethodName != sip.INVITE ||
		via.Host != g.advertise || !g.selfPorts[via.Port] {
		return nil
	}
	d := g.dialogs.Get(dialogKey(callIDOf(res), tagOf(from.Params)))
	if d == nil || d.State() != Confirmed {
		return nil
	}
	_, callee := d.Legs()
	src, err := netip.ParseAddrPort(res.Source())
	leg, lerr := netip.ParseAddrPort(callee.Source)
	if err != nil || lerr != nil || src.Addr() != leg.Addr() || tagOf(to.Params) != callee.Tag {
		return nil
	}
	return d
}

// endCall terminates d once and releases its admission slot exactly once.
func (g *Gateway) endCall(d *Dialog, cause string) bool {
	now := g.now()
	was, first := d.terminate(now, cause)
	if !first {
		return false
	}
	g.dialogs.Remove(d)
	g.closeMedia(d)
	billedEnd := g.billedEnd(d, now)
	end := callEnd(cause, billedEnd)
	end.Media = d.engineMedia()
	out, _ := g.adm.EndWith(now, d.Key, end)
	e := g.log.Info().Str("call_id", d.CallID).Str("tenant", d.Tenant).Str("direction", d.Direction.String()).
		Str("state", was.String()).Str("cause", cause)
	if a := d.Answered(); !a.IsZero() {
		if billedEnd.IsZero() {
			billedEnd = now
		}
		e = e.Dur("billed", max(billedEnd.Sub(a), 0).Round(time.Millisecond)) // "1.006s"
	}
	if m := end.Media; m != nil {
		caller, callee := &m.Caller, &m.Callee
		e = e.Uint64("caller_rtp_packets", caller.Packets).Uint64("caller_rtp_bytes", caller.Bytes).Int64("caller_rtp_lost", caller.Lost).
			Float64("caller_jitter_ms", round2(caller.JitterMs)).Uint64("caller_rtp_dropped", caller.Dropped).
			Uint64("callee_rtp_packets", callee.Packets).Uint64("callee_rtp_bytes", callee.Bytes).Int64("callee_rtp_lost", callee.Lost).
			Float64("callee_jitter_ms", round2(callee.JitterMs)).Uint64("callee_rtp_dropped", callee.Dropped)
	}
	e.Msg("call ended")
	g.apply(out)
	return true
}

// round2 rounds a logged figure to 2 decimals (jitter 10.5 ms, not
// 10.49902954098131).
func round2(v float64) float64 { return math.Round(v*100) / 100 }
