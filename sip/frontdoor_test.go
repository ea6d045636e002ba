package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

const goodInvite = "INVITE sip:+15551234@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.10:5060;branch=z9hG4bKfd1\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:a@127.0.0.10>;tag=f1\r\n" +
	"To: <sip:+15551234@127.0.0.1>\r\n" +
	"Call-ID: fd-1\r\n" +
	"CSeq: 1 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

// edit returns goodInvite with old replaced by new.
func edit(old, new string) string { return strings.Replace(goodInvite, old, new, 1) }

func TestFrontDoor(t *testing.T) {
	cases := []struct {
		name, msg string
		overTLS   bool
		code      int
		cause     string
	}{
		{"well formed", goodInvite, false, 0, ""},
		{"lower-case method", edit("INVITE sip:", "invite sip:"), false, 501, "unknown_method"},
		{"extension method", strings.NewReplacer("INVITE sip:", "FOO sip:", "1 INVITE", "1 FOO").Replace(goodInvite), false, 501, "unknown_method"},
		{"no To", edit("To: <sip:+15551234@127.0.0.1>\r\n", ""), false, 400, "bad_to"},
		{"two To", edit("To: <sip:+15551234@127.0.0.1>\r\n", "To: <sip:a@b>\r\nTo: <sip:c@d>\r\n"), false, 400, "bad_to"},
		{"no Call-ID", edit("Call-ID: fd-1\r\n", ""), false, 400, "bad_call_id"},
		{"two Call-ID", edit("Call-ID: fd-1\r\n", "Call-ID: a\r\ni: b\r\n"), false, 400, "bad_call_id"},
		{"From without tag", edit(";tag=f1", ""), false, 400, "bad_from"},
		{"CSeq method mismatch", edit("1 INVITE", "1 BYE"), false, 400, "bad_cseq"},
		{"CSeq too large", edit("CSeq: 1 INVITE", "CSeq: 2147483648 INVITE"), false, 400, "bad_cseq"},
		{"Max-Forwards above 255", edit("Max-Forwards: 70", "Max-Forwards: 300"), false, 400, "bad_max_forwards"},
		{"two Max-Forwards", edit("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"), false, 400, "bad_max_forwards"},
		{"no Max-Forwards (RFC 2543)", edit("Max-Forwards: 70\r\n", ""), false, 0, ""},
		{"two Content-Length", edit("Content-Length: 0", "Content-Length: 0\r\nl: 0"), false, 400, "bad_content_length"},
		{"NUL in a header", edit("Call-ID: fd-1\r\n", "Call-ID: fd-1\r\nSubject: a\x00b\r\n"), false, 400, "control_character"},
		{"control character in Request-URI user", edit("sip:+15551234@", "sip:+1555\x01@"), false, 400, "control_character"},
		{"sips over UDP", edit("INVITE sip:", "INVITE sips:"), false, 416, "sips_not_tls"},
		{"sips over TLS", edit("INVITE sip:", "INVITE sips:"), true, 0, ""},
		{"tel URI", edit("sip:+15551234@127.0.0.1 SIP", "tel:+15551234 SIP"), false, 0, ""},
		{"unknown scheme", edit("sip:+15551234@127.0.0.1 SIP", "xmpp:a@b SIP"), false, 416, "unsupported_scheme"},
		{"URI headers", edit("@127.0.0.1 SIP", "@127.0.0.1?Route=%3Csip:x%3E SIP"), false, 400, "request_uri_headers"},
		{"Proxy-Require", edit("Call-ID: fd-1\r\n", "Call-ID: fd-1\r\nProxy-Require: foo\r\n"), false, 420, "proxy_require"},
		{"bad Via protocol", edit("SIP/2.0/UDP", "SIP/3.0/UDP"), false, 400, "bad_via"},
		{"Via transport not a token", edit("SIP/2.0/UDP", "SIP/2.0/U@P"), false, 400, "bad_via"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := sip.NewParser().ParseSIP([]byte(c.msg))
			if err != nil {
				t.Skipf("the parser refuses it already (dropped, counted): %v", err)
			}
			r := frontDoor(msg.(*sip.Request), c.overTLS)
			switch {
			case c.code == 0 && r != nil:
				t.Fatalf("refused %d %q, want it accepted", r.Code, r.Phrase)
			case c.code != 0 && r == nil:
				t.Fatalf("accepted, want %d (%s)", c.code, c.cause)
			case c.code != 0 && (r.Code != c.code || r.Cause != c.cause):
				t.Fatalf("got %d %s (%q), want %d %s", r.Code, r.Cause, r.Phrase, c.code, c.cause)
			}
			if r != nil && r.Code == 400 && !strings.HasPrefix(r.Phrase, "Bad Request (") {
				t.Errorf("reason phrase %q does not name the problem", r.Phrase)
			}
			if r != nil && r.Code == 420 && (r.Header == nil || r.Header.Name() != "Unsupported" || r.Header.Value() != "foo") {
				t.Errorf("420 without Unsupported: foo: %v", r.Header)
			}
		})
	}
}

// The front door takes no allocation on a well-formed request.
func TestFrontDoorAllocates(t *testing.T) {
	msg, err := sip.NewParser().ParseSIP([]byte(goodInvite))
	if err != nil {
		t.Fatal(err)
	}
	req := msg.(*sip.Request)
	if n := testing.AllocsPerRun(100, func() { frontDoor(req, false) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// FuzzFrontDoor feeds raw datagrams to the parser and the front door: no
// input may panic, and a request the front door passes has what the rest
// of the edge relies on.
func FuzzFrontDoor(f *testing.F) {
	f.Add([]byte(goodInvite))
	f.Add([]byte(edit("INVITE sip:", "invite sip:")))
	f.Add([]byte(edit("Call-ID: fd-1\r\n", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.NewParser().ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		if frontDoor(req, false) != nil {
			return
		}
		if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil {
			t.Fatalf("passed without a mandatory header: %q", data)
		}
		if (tagOf(req.From().Params) == "" && rfc3261Branch(req.Via())) || req.CSeq().MethodName != req.Method || !knownMethods[req.Method] {
			t.Fatalf("passed a malformed request: %q", data)
		}
		_ = DialledNumber(&req.Recipient) // classification input must not panic
	})
}

// Unparsable input is counted every time and logged at most once a second.
func TestLogLimiter(t *testing.T) {
	l := logLimiter{interval: time.Second}
	t0 := time.Unix(100, 0)
	n := 0
	for i := 0; i < 1000; i++ {
		if l.allow(t0.Add(time.Duration(i) * time.Millisecond)) { // one second of input
			n++
		}
	}
	if n != 1 || l.suppressed.Load() != 999 {
		t.Fatalf("%d lines, %d suppressed; want 1 and 999", n, l.suppressed.Load())
	}
	if !l.allow(t0.Add(time.Second)) {
		t.Fatal("no line after the interval")
	}
}

// BenchmarkFrontDoor is the front door's cost per request (the parse is
// sipgo's and is not included).
func BenchmarkFrontDoor(b *testing.B) {
	msg, err := sip.NewParser().ParseSIP([]byte(goodInvite))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	b.ReportAllocs()
	for b.Loop() {
		frontDoor(req, false)
	}
}

// BenchmarkParseAndFrontDoor is what every INVITE costs before any
// transaction: sipgo's parse plus the front door.
func BenchmarkParseAndFrontDoor(b *testing.B) {
	data := []byte(goodInvite)
	p := sip.NewParser()
	b.ReportAllocs()
	for b.Loop() {
		msg, err := p.ParseSIP(data)
		if err != nil {
			b.Fatal(err)
		}
		frontDoor(msg.(*sip.Request), false)
	}
}
