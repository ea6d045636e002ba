package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// The front door is the first stage of every request (see pipeline.go): a
// request the gateway would forward must be well formed. It is a pure check
// of the parsed request; its tests need no sockets.

// refusal is a request the edge answers itself, before any transaction. Code
// 0 means drop without an answer.
type refusal struct {
	Code   int
	Phrase string // reason phrase, naming the problem
	Cause  string // metric label
	Header sip.Header
}

// knownMethods are the methods the gateway handles, case-sensitive (RFC 3261
// §7.1).
var knownMethods = map[sip.RequestMethod]bool{
	sip.INVITE: true, sip.ACK: true, sip.BYE: true, sip.CANCEL: true, sip.OPTIONS: true,
	sip.UPDATE: true, sip.INFO: true, sip.PRACK: true, sip.NOTIFY: true, sip.REFER: true,
	sip.MESSAGE: true, sip.SUBSCRIBE: true, sip.REGISTER: true, sip.PUBLISH: true,
}

// maxCSeq bounds the CSeq number (RFC 3261 §8.1.1.5: less than 2^31).
const maxCSeq = 1<<31 - 1

func badRequest(cause, what string) *refusal {
	return &refusal{Code: 400, Phrase: "Bad Request (" + what + ")", Cause: cause}
}

// frontDoor checks req; nil means it may go on. overTLS says whether it
// arrived over TLS (sips: is served only there).
func frontDoor(req *sip.Request, overTLS bool) *refusal {
	if !knownMethods[req.Method] {
		if !isToken(string(req.Method)) {
			return badRequest("bad_method", "malformed method")
		}
		// An extension method (RFC 4475 intmeth) or a known one in the
		// wrong case: well formed, not implemented (RFC 3261 §8.2.1).
		return &refusal{Code: 501, Phrase: "Not Implemented", Cause: "unknown_method", Header: allowHeader()}
	}
	if req.SipVersion != "SIP/2.0" {
		return &refusal{Code: 505, Phrase: "Version Not Supported", Cause: "bad_version"}
	}
	var to, from, callID, cseq, maxFwd, contentLength, via int
	for _, h := range req.Headers() {
		switch h := h.(type) {
		case *sip.ToHeader:
			to++
			if hasCtl(h.DisplayName) || uriHasCtl(&h.Address) {
				return badRequest("control_character", "control character in To")
			}
		case *sip.FromHeader:
			from++
			if hasCtl(h.DisplayName) || uriHasCtl(&h.Address) {
				return badRequest("control_character", "control character in From")
			}
		case *sip.CallIDHeader:
			callID++
			if v := string(*h); v == "" || hasCtl(v) {
				return badRequest("bad_call_id", "malformed Call-ID")
			}
		case *sip.CSeqHeader:
			cseq++
		case *sip.MaxForwardsHeader:
			maxFwd++
			if *h > 255 {
				return badRequest("bad_max_forwards", "Max-Forwards above 255")
			}
		case *sip.ContentLengthHeader:
			contentLength++
		case *sip.ViaHeader:
			via++
			if !wellFormedVia(h) {
				return badRequest("bad_via", "malformed Via")
			}
		default:
			if hasCtl(h.Value()) {
				return badRequest("control_character", "control character in "+h.Name())
			}
			if strings.EqualFold(h.Name(), "Proxy-Require") && !req.IsAck() && !req.IsCancel() {
				return &refusal{Code: 420, Phrase: "Bad Extension", Cause: "proxy_require",
					Header: sip.NewHeader("Unsupported", h.Value())}
			}
		}
	}
	switch {
	case via == 0:
		return badRequest("bad_via", "missing Via")
	case to != 1:
		return badRequest("bad_to", countProblem("To", to))
	case from != 1:
		return badRequest("bad_from", countProblem("From", from))
	case callID != 1:
		return badRequest("bad_call_id", countProblem("Call-ID", callID))
	case cseq != 1:
		return badRequest("bad_cseq", countProblem("CSeq", cseq))
	case maxFwd > 1: // absent is tolerated (RFC 2543 peers): the gateway adds it
		return badRequest("bad_max_forwards", countProblem("Max-Forwards", maxFwd))
	case contentLength > 1:
		return badRequest("bad_content_length", countProblem("Content-Length", contentLength))
	}
	if tagOf(req.From().Params) == "" && rfc3261Branch(req.Via()) {
		// An RFC 2543 peer (no magic cookie, RFC 4475 inv2543) may send no
		// tag; from an RFC 3261 one it is mandatory (§8.1.1.3).
		return badRequest("bad_from", "From without tag")
	}
	if !addressScheme(&req.From().Address) || !addressScheme(&req.To().Address) {
		return badRequest("bad_address_scheme", "To and From must be sip, sips or tel URIs")
	}
	cs := req.CSeq()
	if cs.MethodName != req.Method {
		return badRequest("bad_cseq", "CSeq method does not match")
	}
	if cs.SeqNo > maxCSeq {
		return badRequest("bad_cseq", "CSeq number too large")
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(req.Body()) {
		return badRequest("bad_content_length", "Content-Length does not match the body")
	}
	return requestURIProblem(&req.Recipient, overTLS)
}

// requestURIProblem checks the Request-URI: sip, sips (over TLS only) or
// tel, without URI headers and control characters.
func requestURIProblem(u *sip.Uri, overTLS bool) *refusal {
	switch u.Scheme {
	case "sip":
	case "sips":
		if !overTLS {
			return &refusal{Code: 416, Phrase: "Unsupported URI Scheme (sips needs TLS)", Cause: "sips_not_tls"}
		}
	case "tel":
		if hasCtl(u.Raw()) {
			return badRequest("control_character", "control character in Request-URI")
		}
		return nil
	default:
		return &refusal{Code: 416, Phrase: "Unsupported URI Scheme", Cause: "unsupported_scheme"}
	}
	if u.Host == "" || u.Wildcard {
		return badRequest("bad_request_uri", "malformed Request-URI")
	}
	if u.Headers != nil && u.Headers.Length() > 0 {
		return badRequest("request_uri_headers", "Request-URI carries headers")
	}
	if uriHasCtl(u) {
		return badRequest("control_character", "control character in Request-URI")
	}
	return nil
}

// magicCookie starts every RFC 3261 branch (§8.1.1.7).
const magicCookie = "z9hG4bK"

func rfc3261Branch(v *sip.ViaHeader) bool {
	b, _ := v.Params.Get("branch")
	return strings.HasPrefix(b, magicCookie)
}

func addressScheme(u *sip.Uri) bool {
	return u.Scheme == "sip" || u.Scheme == "sips" || u.Scheme == "tel"
}

func countProblem(name string, n int) string {
	if n == 0 {
		return "missing " + name
	}
	return "more than one " + name
}

func wellFormedVia(v *sip.ViaHeader) bool {
	if v.ProtocolName != "SIP" || v.ProtocolVersion != "2.0" || v.Host == "" || hasCtl(v.Host) {
		return false
	}
	if !isToken(v.Transport) { // other-transport is any token (RFC 4475 transports)
		return false
	}
	if b, ok := v.Params.Get("branch"); ok && (b == "" || b == magicCookie) {
		return false // RFC 4475 badbranch: the cookie alone is no branch
	}
	return v.Port >= 0 && v.Port <= 65535
}

// hasCtl reports a control character (RFC 3261 allows none outside the
// body except HTAB in whitespace).
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

func uriHasCtl(u *sip.Uri) bool {
	return hasCtl(u.User) || hasCtl(u.Host) || hasCtl(u.Password)
}

// isToken reports whether s is an RFC 3261 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-.!%*_+`'~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
