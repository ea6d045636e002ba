package sip

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/internal/pike"
)

// The edge as a pipeline: the order of the stages, in one place.
//
// Raw input, on the transport's read goroutine, before parsing (readFilter):
//   - responses from a source that is neither a carrier nor a tenant are
//     dropped and counted;
//   - flood limits per source (sip.flood, internal/pike): a source over its
//     rate is blocked for a while and its requests dropped (or, with
//     blocked_response 503, answered 503 once a second); a blocked source's
//     TCP/TLS connections are closed and new ones refused, within the
//     connection caps.
//
// A request, still on the read goroutine, in arrival order (dispatch):
//  1. front door (frontdoor.go): well formed, or a stateless answer naming
//     the problem;
//  2. source: an unknown source gets a stateless 403, never a transaction
//     (so nothing is retransmitted to a spoofable address);
//  3. the Call-ID's serial queue (serial.go): a dialog's requests run one
//     at a time in arrival order, so an ACK is never overtaken by its BYE;
//     an idle Call-ID's request runs right here on the read goroutine, and
//     work that may open a connection leaves it (offRead, proxy.go);
//  4. party (party.go): a CANCEL or in-dialog request comes from that
//     dialog's party, or it is refused statelessly;
//  5. sipgo's transaction layer, then the handlers: onInvite (classify →
//     admit → forward, proxy.go) or onInDialog (forward to the other party
//     only). Handlers return quickly; the waits for responses run in their
//     own goroutines.
//
// A response: sipgo matches it to a client transaction on the read
// goroutine (patched sipgo), and the branch goroutine relays it to the
// server transaction's real source (symmetric, patched sipgo), its SDP
// anchored (media.go); one that matches none goes to onStrayResponse,
// which relays a 2xx
// retransmission of a known dialog from its callee to its caller and drops
// everything else.

// dispatch is the transaction layer's request dispatcher (patched sipgo).
func (g *Gateway) dispatch(req *sip.Request, handle func()) {
	if r := frontDoor(req, req.Transport() == "TLS"); r != nil {
		g.refuse(req, r)
		return
	}
	src, ok := sourceIP(req)
	if r := g.floodRefusal(src); r != nil {
		g.refuse(req, r)
		return
	}
	if !ok || !g.classifier.Load().KnownSource(src) {
		g.refuse(req, &refusal{Code: 403, Phrase: "Forbidden", Cause: "unknown_source"})
		return
	}
	g.serial.submit(callIDOf(req), func() {
		if r := g.partyCheck(req); r != nil {
			g.refuse(req, r)
			return
		}
		handle()
	})
}

// refuse answers req statelessly (no transaction, so no retransmission),
// to its real source only, and counts it. An ACK is never answered.
func (g *Gateway) refuse(req *sip.Request, r *refusal) {
	if g.metrics != nil {
		g.metrics.Refused(r.Cause)
	}
	if r.Code == 0 || req.IsAck() {
		return
	}
	res := sip.NewResponseFromRequest(req, r.Code, r.Phrase, nil)
	res.SipVersion = "SIP/2.0" // the only version spoken, whatever the request said
	if r.Header != nil {
		res.AppendHeader(r.Header)
	}
	if r.Code == 403 && r.Cause == "unknown_source" {
		res.AppendHeader(sip.NewHeader("Reason", "SIP;cause=403;text=\"unknown_source\""))
	}
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	if err := g.srv.WriteResponse(res); err != nil {
		g.log.Debug().Err(err).Str("source", req.Source()).Int("code", r.Code).Msg("stateless answer failed")
	}
}

// readFilter sees every datagram and TCP read before sipgo parses it.
func (g *Gateway) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	ip := addrIP(p.RemoteAddr)
	known := ip.IsValid() && g.classifier.Load().KnownSource(ip)
	if isResponse(data) {
		if !known {
			g.drop("response_unknown_source")
			return nil, nil
		}
		return data, nil // responses are not counted against a source's rate
	}
	if g.flood == nil || g.flood.Allow(ip, known, g.now()) == pike.Allow {
		return data, nil
	}
	if g.flood503 && g.flood.AnswerBlocked(ip, g.now()) {
		return data, nil // dispatch answers it 503
	}
	g.drop("flood")
	if p.Transport != "UDP" {
		return nil, errFloodBlocked // closes the connection
	}
	return nil, nil
}

var errFloodBlocked = errors.New("sip: source blocked by flood protection")

// floodRefusal is the answer to a blocked source let through for its one
// 503 per second, or nil.
func (g *Gateway) floodRefusal(src netip.Addr) *refusal {
	if g.flood == nil || !g.flood503 || !g.flood.IsBlocked(src, g.now()) {
		return nil
	}
	retry := int(g.flood.Config().Block / time.Second)
	return &refusal{Code: 503, Phrase: "Service Unavailable (flood)", Cause: "flood_blocked",
		Header: sip.NewHeader("Retry-After", strconv.Itoa(retry))}
}

// streamListener applies the connection caps (sip.flood) to a TCP or TLS
// listener: a blocked source cannot open connections.
func (g *Gateway) streamListener(ln net.Listener) net.Listener {
	if g.conns == nil {
		return ln
	}
	return g.conns.Listener(ln, func(ip netip.Addr) bool {
		return g.flood == nil || !g.flood.IsBlocked(ip, g.now())
	})
}

// isResponse reports whether data starts a SIP response.
func isResponse(data []byte) bool {
	return len(data) >= 8 && string(data[:8]) == "SIP/2.0 "
}

// addrIP is the IP of a UDP or TCP address (invalid for anything else).
func addrIP(a net.Addr) netip.Addr {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	}
	return ip.Unmap()
}

// drop counts a message dropped without an answer.
func (g *Gateway) drop(reason string) {
	if g.metrics != nil {
		g.metrics.Dropped(reason)
	}
}

// parseError counts input sipgo could not parse and logs it at a bounded
// rate (one line per second at most, with the number suppressed since).
func (g *Gateway) parseError(transport, source string, data []byte, err error) (reply []byte) {
	g.drop("unparsable")
	status := "400 Bad Request (unparsable)"
	if errors.Is(err, sip.ErrMessageTooLarge) {
		status = "513 Message Too Large"
	}
	reply = g.unparsableAnswer(source, data, status)
	if !g.parseLog.allow(g.now()) {
		return reply
	}
	head := data
	if len(head) > 64 {
		head = head[:64]
	}
	g.log.Warn().Err(err).Str("transport", transport).Str("source", source).Int("bytes", len(data)).
		Str("head", strconv.Quote(string(head))).Uint64("suppressed", g.parseLog.suppressed.Swap(0)).
		Msg("unparsable SIP input dropped")
	return reply
}

// logLimiter lets one line through per interval and counts the rest.
type logLimiter struct {
	interval   time.Duration
	next       atomic.Int64 // unix nanos of the next allowed line
	suppressed atomic.Uint64
}

func (l *logLimiter) allow(now time.Time) bool {
	n := now.UnixNano()
	next := l.next.Load()
	if n >= next && l.next.CompareAndSwap(next, n+int64(l.interval)) {
		return true
	}
	l.suppressed.Add(1)
	return false
}

// onRequest runs the handler of req's method (stage 5 of the pipeline). A
// handler returns async when a goroutine of its own still uses tx; that
// goroutine ends tx. Otherwise tx ends here, gracefully: a final response
// over UDP is kept for its retransmission timers.
func (g *Gateway) onRequest(req *sip.Request, tx *sip.ServerTx) {
	var h func(*sip.Request, sip.ServerTransaction) bool
	switch req.Method {
	case sip.INVITE:
		h = g.absorb.wrap(g.onInvite)
	case sip.BYE:
		h = g.absorb.wrap(g.onInDialog)
	case sip.ACK:
		h = g.onInDialog
	case sip.CANCEL:
		h = g.onStrayCancel
	case sip.OPTIONS:
		h = g.onOptions
	default:
		h = g.onOther
	}
	if !h(req, tx) && tx != nil {
		tx.TerminateGracefully()
	}
}

// unparsableAnswer is the 400 (513 when too large) for a request sipgo
// could not parse, built
// from its raw Via, From, To, Call-ID and CSeq lines (RFC 3261 §8.2.6 copies
// them), so that a known peer learns its request was refused instead of
// retransmitting it. It goes only to the input's source (patched sipgo),
// only to a carrier or tenant source (the flood limits already ran), and
// only if the input looks like a request with a Via; nil otherwise.
func (g *Gateway) unparsableAnswer(source string, data []byte, status string) []byte {
	ap, err := netip.ParseAddrPort(source)
	if err != nil || isResponse(data) || !g.classifier.Load().KnownSource(ap.Addr().Unmap()) {
		return nil
	}
	head := data
	if i := bytes.Index(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	}
	var b bytes.Buffer
	b.WriteString("SIP/2.0 " + status + "\r\n")
	vias := 0
	for i, line := range bytes.Split(head, []byte("\r\n")) {
		name, _, ok := bytes.Cut(line, []byte(":"))
		if i == 0 || !ok {
			continue
		}
		switch strings.ToLower(string(bytes.TrimSpace(name))) {
		case "via", "v":
			vias++
		case "from", "f", "to", "t", "call-id", "i", "cseq":
		default:
			continue
		}
		if hasCtl(string(line)) {
			return nil
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	if vias == 0 {
		return nil
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}
