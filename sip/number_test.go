package sip

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// parseInvite parses an INVITE whose Request-URI (and To) is ruri, as it
// arrives on the wire.
func parseInvite(t testing.TB, ruri string) *sip.Request {
	t.Helper()
	raw := "INVITE " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.10:5070;branch=z9hG4bK-number\r\n" +
		"From: <sip:100@127.0.0.10>;tag=a1\r\n" +
		"To: <" + ruri + ">\r\n" +
		"Call-ID: number-test\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Max-Forwards: 70\r\n" +
		"Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		t.Fatalf("parse %q: %v", ruri, err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		t.Fatalf("%q: not a request", ruri)
	}
	return req
}

func TestDialledNumber(t *testing.T) {
	cases := []struct{ name, ruri, want string }{
		{"plain sip user", "sip:4930123456@10.0.0.1:5060", "4930123456"},
		{"leading + kept", "sip:+15550100@10.0.0.1", "+15550100"},
		{"no + is a different number", "sip:15550100@10.0.0.1", "15550100"},
		{"user parameter without user=phone", "sip:911;phone-context=+1@10.0.0.1:5060", "911"},
		{"visual separators without user=phone", "sip:1-900-555-0100@10.0.0.1", "19005550100"},
		{"user=phone with separators and isub", "sip:+1-555-0100;isub=12@example.com;user=phone", "+15550100"},
		{"user=phone with npdi and rn", "sip:+1.555.010.0100;npdi;rn=+15559990000@example.com;user=phone", "+15550100100"},
		{"other URI parameters do not matter", "sip:+1(555)0100@example.com;transport=tcp;user=phone", "+15550100"},
		{"escaped separators and digits", "sip:%2B1%20555%2D0100@10.0.0.1", "+15550100"},
		{"sips", "sips:+1-555-0100@example.com", "+15550100"},
		{"tel with phone-context", "tel:+1-555-0100;phone-context=example.com", "+15550100"},
		{"tel local number", "tel:911;phone-context=+1", "911"},
		{"tel scheme in capitals", "TEL:+1-900-555-0100", "+19005550100"},
		{"no user part", "sip:10.0.0.1:5060", ""},
		{"other scheme", "urn:service:sos", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := parseInvite(t, tc.ruri)
			if got := DialledNumber(&req.Recipient); got != tc.want {
				t.Fatalf("DialledNumber(%s) = %q (user %q, raw %q), want %q", tc.ruri, got, req.Recipient.User, req.Recipient.Raw(), tc.want)
			}
		})
	}
	if got := DialledNumber(nil); got != "" {
		t.Fatalf("DialledNumber(nil) = %q", got)
	}
}

// The common case, a number already normal, costs no allocation.
func TestDialledNumberNormalDoesNotAllocate(t *testing.T) {
	for _, ruri := range []string{"sip:+15550100@10.0.0.1;user=phone", "tel:+15550100;phone-context=example.com"} {
		u := parseInvite(t, ruri).Recipient
		if n := testing.AllocsPerRun(100, func() { DialledNumber(&u) }); n != 0 {
			t.Errorf("%s: %v allocs, want 0", ruri, n)
		}
	}
}

// The number classification and the engine see for a tel: Request-URI is
// the one the same number gets as a sip: URI with user=phone.
func TestDialledNumberTelAndUserPhoneAgree(t *testing.T) {
	c := NewClassifier(classifierConfig())
	for _, ruri := range []string{"tel:+1-555-1234;phone-context=example.com", "sip:+1-555-1234;isub=1@127.0.0.1;user=phone"} {
		req := parseInvite(t, ruri)
		r, err := c.Classify(netip.MustParseAddr(carrierIP), DialledNumber(&req.Recipient))
		if err != nil || r.Tenant != "acme" {
			t.Errorf("%s: %+v %v, want tenant acme", ruri, r, err)
		}
	}
}
