package meter

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// Media is the audio stream of an SDP body as a party offered or answered
// it: where it wants to receive RTP and RTCP.
type Media struct {
	// Addr is the stream's connection address (its own c= line, else the
	// session's). Unspecified (0.0.0.0, ::) is the RFC 2543 hold.
	Addr netip.Addr
	// Port is the m= port; 0 is a rejected or disabled stream.
	Port int
	// RTCP is the a=rtcp port, or Port+1 (Port with rtcp-mux).
	RTCP int
	// Mux is a=rtcp-mux (RFC 5761): RTCP on the RTP port.
	Mux bool
	// PTime is a=ptime, 20 ms when absent: one packetisation interval.
	PTime time.Duration
	// Formats are the m= payload types in order of preference.
	Formats []uint8
	// ClockRate is the RTP clock rate of the first format (8000 for the
	// G.711 static types and when the rtpmap does not say).
	ClockRate uint32
	// Direction is the stream's a=sendrecv|sendonly|recvonly|inactive
	// (its own, else the session's; sendrecv when absent).
	Direction string
}

// Hold reports whether the stream is on hold by the RFC 2543 address.
func (m Media) Hold() bool { return m.Addr.IsUnspecified() }

// OnHold reports whether the party expects silence: a hold address, or a
// direction other than sendrecv (RFC 3264 §8.4).
func (m Media) OnHold() bool { return m.Hold() || m.Direction != "sendrecv" }

// ErrNoAudio is an SDP body without an audio stream.
var ErrNoAudio = errors.New("sdp: no audio stream")

// ParseSDP validates body with pion/sdp and returns its first audio stream.
// An error is an SDP the gateway cannot anchor: the request gets 488.
func ParseSDP(body []byte) (Media, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return Media{}, fmt.Errorf("sdp: %w", err)
	}
	// The lines the rewrite replaces must be exactly what RFC 4566 says,
	// or replacing them could change how the rest parses.
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "c=") && len(strings.Fields(line[2:])) != 3 {
			return Media{}, fmt.Errorf("sdp: %q: a c= line has three fields", line)
		}
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		m := Media{Port: md.MediaName.Port.Value, PTime: 20 * time.Millisecond, ClockRate: 8000}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return Media{}, errors.New("sdp: audio stream without a connection address")
		}
		a, err := netip.ParseAddr(strings.TrimSpace(strings.SplitN(ci.Address.Address, "/", 2)[0]))
		if err != nil {
			return Media{}, fmt.Errorf("sdp: connection address %q: not an IP address", ci.Address.Address)
		}
		m.Addr = a.Unmap()
		if m.Port < 0 || m.Port > 65535 {
			return Media{}, fmt.Errorf("sdp: audio port %d out of range", m.Port)
		}
		for _, f := range md.MediaName.Formats {
			pt, err := strconv.ParseUint(f, 10, 7)
			if err != nil {
				return Media{}, fmt.Errorf("sdp: audio format %q is not an RTP payload type", f)
			}
			m.Formats = append(m.Formats, uint8(pt))
		}
		m.Direction = "sendrecv"
		for _, attrs := range [][]sdp.Attribute{sd.Attributes, md.Attributes} {
			for _, a := range attrs {
				switch a.Key {
				case "sendrecv", "sendonly", "recvonly", "inactive":
					m.Direction = a.Key
				}
			}
		}
		_, m.Mux = md.Attribute("rtcp-mux")
		m.RTCP = m.Port + 1
		if m.Mux {
			m.RTCP = m.Port
		}
		if v, ok := md.Attribute("rtcp"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return Media{}, errors.New("sdp: a=rtcp without a port")
			}
			p, err := strconv.Atoi(f[0])
			if err != nil || p < 0 || p > 65535 {
				return Media{}, fmt.Errorf("sdp: a=rtcp:%s: bad port", v)
			}
			m.RTCP = p
		}
		if v, ok := md.Attribute("ptime"); ok {
			if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 && ms <= 1000 {
				m.PTime = time.Duration(ms * float64(time.Millisecond))
			}
		}
		if len(m.Formats) > 0 {
			for _, a := range md.Attributes {
				if a.Key != "rtpmap" {
					continue
				}
				pt, rest, _ := strings.Cut(a.Value, " ")
				if pt != strconv.Itoa(int(m.Formats[0])) {
					continue
				}
				_, rate, _ := strings.Cut(rest, "/")
				rate, _, _ = strings.Cut(rate, "/")
				if r, err := strconv.ParseUint(rate, 10, 32); err == nil && r > 0 {
					m.ClockRate = uint32(r)
				}
			}
		}
		return m, nil
	}
	return Media{}, ErrNoAudio
}

// RewriteSDP points body's first audio stream at addr:port (RTCP at
// port+1, or port with rtcp-mux) and disables every other stream (port 0):
// the gateway anchors one audio stream per call. Only the c= lines, the m=
// ports and a=rtcp change; every other byte stays as it was, line endings
// included. A hold address (0.0.0.0) and a 0 port stay as they are. body
// must have passed ParseSDP.
func RewriteSDP(body []byte, addr netip.Addr, port int) []byte {
	ipver := "IP4"
	if addr.Is6() {
		ipver = "IP6"
	}
	conn := "c=IN " + ipver + " " + addr.String()
	out := make([]byte, 0, len(body)+32)
	section := -1 // -1: session level; else the index of the m= section
	audio := -1   // the section anchored
	mux := bytes.Contains(body, []byte("a=rtcp-mux"))
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line = body[:i+1]
		}
		body = body[len(line):]
		text := bytes.TrimRight(line, "\r\n")
		eol := line[len(text):]
		switch {
		case bytes.HasPrefix(text, []byte("m=")):
			section++
			fields := bytes.Fields(text[2:])
			if len(fields) < 2 {
				break
			}
			if audio < 0 && string(fields[0]) == "audio" {
				audio = section
				if string(fields[1]) != "0" {
					text = replaceField(text, 1, strconv.Itoa(port))
				}
			} else {
				text = replaceField(text, 1, "0")
			}
		case bytes.HasPrefix(text, []byte("c=")):
			if (section == -1 || section == audio) && !holdAddr(text) {
				text = []byte(conn)
			}
		case bytes.HasPrefix(text, []byte("a=rtcp:")) && section == audio && audio >= 0:
			rtcp := port + 1
			if mux {
				rtcp = port
			}
			v := "a=rtcp:" + strconv.Itoa(rtcp)
			if f := bytes.Fields(text[len("a=rtcp:"):]); len(f) == 4 {
				v += " IN " + ipver + " " + addr.String()
			}
			text = []byte(v)
		}
		out = append(out, text...)
		out = append(out, eol...)
	}
	return out
}

// replaceField replaces the n-th field (counted from 0, fields separated by
// runs of spaces or tabs, as pion/sdp splits them) after "m=" in an m=
// line, keeping every other byte of the line.
func replaceField(line []byte, n int, v string) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' }
	i, field := 2, -1
	for i < len(line) {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		if field++; field == n {
			out := make([]byte, 0, len(line)+len(v))
			out = append(out, line[:start]...)
			out = append(out, v...)
			return append(out, line[i:]...)
		}
	}
	return line
}

// holdAddr reports a c= line with an unspecified address (RFC 2543 hold).
func holdAddr(c []byte) bool {
	f := bytes.Fields(c[2:])
	if len(f) < 3 {
		return false
	}
	a, err := netip.ParseAddr(string(bytes.SplitN(f[2], []byte("/"), 2)[0]))
	return err == nil && a.IsUnspecified()
}
