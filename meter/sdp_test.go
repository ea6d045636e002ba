package meter

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// An offer as SIPp and most PBXs send it, CRLF line ends.
const offer = "v=0\r\n" +
	"o=user1 53655765 2353687637 IN IP4 10.0.0.5\r\n" +
	"s=-\r\n" +
	"c=IN IP4 10.0.0.5\r\n" +
	"t=0 0\r\n" +
	"m=audio 6000 RTP/AVP 8 0 101\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-15\r\n" +
	"a=rtcp:6001\r\n" +
	"a=ptime:30\r\n" +
	"a=sendrecv\r\n" +
	"m=video 6002 RTP/AVP 96\r\n" +
	"c=IN IP4 10.0.0.6\r\n" +
	"a=rtpmap:96 H264/90000\r\n"

func TestParseSDPReadsTheAudioStream(t *testing.T) {
	m, err := ParseSDP([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("10.0.0.5")
	if m.Addr != want || m.Port != 6000 || m.RTCP != 6001 || m.Mux || m.PTime != 30*time.Millisecond ||
		m.ClockRate != 8000 || len(m.Formats) != 3 || m.Formats[0] != 8 || m.Hold() {
		t.Fatalf("media = %+v", m)
	}
}

func TestRewriteSDPChangesOnlyAddressesAndPorts(t *testing.T) {
	gw := netip.MustParseAddr("192.0.2.1")
	got := string(RewriteSDP([]byte(offer), gw, 30000))
	want := strings.NewReplacer(
		"c=IN IP4 10.0.0.5\r\n", "c=IN IP4 192.0.2.1\r\n",
		"m=audio 6000 ", "m=audio 30000 ",
		"a=rtcp:6001\r\n", "a=rtcp:30001\r\n",
		"m=video 6002 ", "m=video 0 ", // one anchored stream per call
		"c=IN IP4 10.0.0.6\r\n", "c=IN IP4 10.0.0.6\r\n", // a disabled stream's address does not matter
	).Replace(offer)
	if got != want {
		t.Fatalf("rewritten:\n%q\nwant:\n%q", got, want)
	}
	if _, err := ParseSDP([]byte(got)); err != nil {
		t.Fatalf("the rewrite does not parse: %v", err)
	}
	// LF-only bodies keep their line ends.
	lf := strings.ReplaceAll(offer, "\r\n", "\n")
	if got := string(RewriteSDP([]byte(lf), gw, 30000)); strings.Contains(got, "\r") || !strings.Contains(got, "m=audio 30000 RTP/AVP 8 0 101\n") {
		t.Fatalf("LF body rewritten as %q", got)
	}
}

func TestRewriteSDPKeepsHold(t *testing.T) {
	hold := strings.NewReplacer("c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0", "a=sendrecv", "a=inactive").Replace(offer)
	m, err := ParseSDP([]byte(hold))
	if err != nil || !m.Hold() {
		t.Fatalf("hold offer: %+v %v", m, err)
	}
	got := string(RewriteSDP([]byte(hold), netip.MustParseAddr("192.0.2.1"), 30000))
	if !strings.Contains(got, "c=IN IP4 0.0.0.0\r\n") || !strings.Contains(got, "a=inactive\r\n") || !strings.Contains(got, "m=audio 30000 ") {
		t.Fatalf("hold rewritten as %q", got)
	}
	sendonly := strings.Replace(offer, "a=sendrecv", "a=sendonly", 1)
	if got := string(RewriteSDP([]byte(sendonly), netip.MustParseAddr("192.0.2.1"), 30000)); !strings.Contains(got, "a=sendonly\r\n") {
		t.Fatalf("sendonly lost: %q", got)
	}
}

func TestRewriteSDPMuxAndIPv6(t *testing.T) {
	mux := strings.Replace(offer, "a=rtcp:6001\r\n", "a=rtcp:6000 IN IP4 10.0.0.5\r\na=rtcp-mux\r\n", 1)
	m, err := ParseSDP([]byte(mux))
	if err != nil || !m.Mux || m.RTCP != 6000 {
		t.Fatalf("mux offer: %+v %v", m, err)
	}
	got := string(RewriteSDP([]byte(mux), netip.MustParseAddr("2001:db8::1"), 30000))
	for _, line := range []string{"c=IN IP6 2001:db8::1\r\n", "a=rtcp:30000 IN IP6 2001:db8::1\r\n", "a=rtcp-mux\r\n"} {
		if !strings.Contains(got, line) {
			t.Fatalf("missing %q in %q", line, got)
		}
	}
}

func TestParseSDPRejectsWhatCannotBeAnchored(t *testing.T) {
	for name, body := range map[string]string{
		"not sdp":         "hello",
		"no audio":        "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=video 6000 RTP/AVP 96\r\n",
		"no address":      "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n",
		"host name":       strings.Replace(offer, "c=IN IP4 10.0.0.5", "c=IN IP4 pbx.example", 1),
		"bad rtcp":        strings.Replace(offer, "a=rtcp:6001", "a=rtcp:x", 1),
		"format not a PT": strings.Replace(offer, "RTP/AVP 8 0 101", "RTP/AVP 8 abc", 1),
		"truncated":       offer[:40],
	} {
		if _, err := ParseSDP([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzRewriteSDP: whatever ParseSDP accepts, the rewrite never panics,
// parses again and points the audio stream at the gateway.
func FuzzRewriteSDP(f *testing.F) {
	f.Add([]byte(offer))
	f.Add([]byte(strings.ReplaceAll(offer, "\r\n", "\n")))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"))
	gw := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseSDP(body)
		if err != nil {
			return
		}
		out := RewriteSDP(body, gw, 30000)
		m2, err := ParseSDP(out)
		if err != nil {
			t.Fatalf("rewrite of an accepted SDP does not parse: %v\n%q", err, out)
		}
		if m.Port != 0 && m2.Port != 30000 {
			t.Fatalf("audio port %d after the rewrite", m2.Port)
		}
		if !m.Hold() && m2.Addr != gw && m2.Port != 0 {
			t.Fatalf("audio address %v after the rewrite", m2.Addr)
		}
	})
}
