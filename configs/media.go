package configs

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The values of media.bill_from.
const (
	// BillFromMedia: an anchored call is billed to its last RTP packet
	// plus one packetisation interval, or to the end of signalling if
	// that is earlier (the default).
	BillFromMedia = "media"
	// BillFromSignalling: from the 200 OK to the BYE (or whatever ends
	// the call), as without media.
	BillFromSignalling = "signalling"
)

// The values of media.mode.
const (
	// MediaRelay anchors RTP: the gateway rewrites SDP so that media flows
	// through its own ports, and meters it (the default).
	MediaRelay = "relay"
	// MediaOff is signalling only: SDP passes untouched, media flows
	// between the parties.
	MediaOff = "off"
)

// Defaults of the media section.
const (
	// DefaultMediaPorts is the port range of media.ports.
	DefaultMediaPorts = "30000-39999"
	// DefaultRTPTimeout: an answered call with no RTP either way for this
	// long is torn down (rtpengine's default timeout is 60 s; SBCs commonly
	// use 30 s).
	DefaultRTPTimeout = 30 * time.Second
	// DefaultHoldTimeout: the same for a call on hold, where silence is
	// expected.
	DefaultHoldTimeout = time.Hour
)

// Media configures the media anchor (meter/).
type Media struct {
	// Mode is relay (default) or off.
	Mode string `yaml:"mode" json:"mode"`
	// Ports is the UDP port range for RTP and RTCP, "min-max": an even RTP
	// port and the RTCP port above it per leg, two legs per call. Default
	// 30000-39999 (2,500 calls).
	Ports string `yaml:"ports" json:"ports"`
	// Address is the IP put in rewritten SDP (c= lines) and the one media
	// sockets are bound to. Default: sip.advertise, which must then be an
	// IP address.
	Address string `yaml:"address" json:"address"`
	// RTPTimeout: an answered call with no RTP in either direction for this
	// long is torn down, BYE to both legs with Reason Q.850 cause 41
	// "media timeout". Default 30s; > 0.
	RTPTimeout time.Duration `yaml:"rtp_timeout" json:"rtp_timeout"`
	// HoldTimeout replaces RTPTimeout while a party has put the call on
	// hold (a=sendonly, recvonly, inactive or c=0.0.0.0). Default 1h; > 0.
	HoldTimeout time.Duration `yaml:"hold_timeout" json:"hold_timeout"`
	// BillFrom is media (default: an anchored call is billed to its last
	// RTP packet, either way, plus one packetisation interval, if that is
	// before the end of signalling; no RTP at all bills nothing) or
	// signalling (200 OK to BYE).
	BillFrom string `yaml:"bill_from" json:"bill_from"`
}

func (m *Media) applyDefaults(advertise string) {
	m.Mode = strings.ToLower(m.Mode)
	if m.Mode == "" {
		m.Mode = MediaRelay
	}
	if m.Ports == "" {
		m.Ports = DefaultMediaPorts
	}
	if m.Address == "" {
		m.Address = advertise
	}
	if m.RTPTimeout == 0 {
		m.RTPTimeout = DefaultRTPTimeout
	}
	if m.HoldTimeout == 0 {
		m.HoldTimeout = DefaultHoldTimeout
	}
	m.BillFrom = strings.ToLower(m.BillFrom)
	if m.BillFrom == "" {
		m.BillFrom = BillFromMedia
	}
}

// PortRange returns media.ports as numbers (after Validate).
func (m *Media) PortRange() (lo, hi int) {
	lo, hi, _ = parsePortRange(m.Ports)
	return lo, hi
}

// IP returns media.address (after Validate).
func (m *Media) IP() netip.Addr {
	a, _ := netip.ParseAddr(m.Address)
	return a.Unmap()
}

func parsePortRange(s string) (lo, hi int, msg string) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, "must be a range min-max, e.g. 30000-39999"
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, "must be a range of two port numbers min-max, e.g. 30000-39999"
	case lo < 1024 || hi > 65535:
		return 0, 0, "must lie within 1024-65535"
	case hi-lo < 3:
		return 0, 0, "must hold at least four ports (two legs of one call)"
	}
	return lo, hi, ""
}

func (m *Media) validate() error {
	switch m.Mode {
	case MediaRelay, MediaOff:
	default:
		return errf("media.mode", "must be relay or off, got %q", m.Mode)
	}
	if _, _, msg := parsePortRange(m.Ports); msg != "" {
		return errf("media.ports", "%s, got %q", msg, m.Ports)
	}
	switch m.BillFrom {
	case BillFromMedia, BillFromSignalling:
	default:
		return errf("media.bill_from", "must be media or signalling, got %q", m.BillFrom)
	}
	if m.RTPTimeout <= 0 {
		return errf("media.rtp_timeout", "must be > 0, got %s", m.RTPTimeout)
	}
	if m.HoldTimeout <= 0 {
		return errf("media.hold_timeout", "must be > 0, got %s", m.HoldTimeout)
	}
	if m.Mode == MediaOff {
		return nil
	}
	a, err := netip.ParseAddr(m.Address)
	if err != nil {
		return errf("media.address", "must be an IP address (set it when sip.advertise is a host name), got %q", m.Address)
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return errf("media.address", "must be a unicast address parties can send RTP to, got %q", m.Address)
	}
	return nil
}

// DefaultAnnouncementCauses: the rejections an inbound caller hears the
// announcement for.
var DefaultAnnouncementCauses = []string{"suspended_inbound"}

// announcementCauses are the rejection causes announcement.causes may list.
var announcementCauses = map[string]bool{"suspended_inbound": true, "minutes": true, "spend": true}

// Announcement configures what an inbound caller hears before the final
// response when its call is refused (needs media.mode relay): 183 Session
// Progress with the gateway's SDP, the intercept SIT, the prompt, then the
// rejection's final response (admission.reject).
type Announcement struct {
	// Prompt is a WAV file of 8 kHz mono 16-bit PCM played after the SIT.
	// Default: the built-in "temporarily out of service" prompt.
	Prompt string `yaml:"prompt" json:"prompt"`
	// Causes are the rejections announced: suspended_inbound (default),
	// minutes, spend. An empty list [] turns the announcement off.
	Causes []string `yaml:"causes" json:"causes"`
}

func (a *Announcement) applyDefaults() {
	if a.Causes == nil {
		a.Causes = append([]string(nil), DefaultAnnouncementCauses...)
	}
}

func (a *Announcement) validate() error {
	seen := map[string]bool{}
	for i, c := range a.Causes {
		p := "announcement.causes[" + strconv.Itoa(i) + "]"
		if !announcementCauses[c] {
			return errf(p, "must be suspended_inbound, minutes or spend, got %q", c)
		}
		if seen[c] {
			return errf(p, "duplicate cause %q", c)
		}
		seen[c] = true
	}
	return nil
}
