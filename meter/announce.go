package meter

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// The G.711 payload types (RFC 3551).
const (
	PCMU uint8 = 0
	PCMA uint8 = 8
)

// frameSamples is one 20 ms frame at 8 kHz.
const frameSamples = 160

// defaultPrompt is the built-in prompt: "The number you have called is
// temporarily out of service. Please try again later." (espeak-ng en-us,
// resampled to 8 kHz mono 16-bit with sox; see meter/prompt/README.md).
//
//go:embed prompt/service-interrupted.wav
var defaultPrompt []byte

// The Telcordia (GR-506) intercept SIT: three tones, each at -13 dBm0.
var sitTones = []struct {
	hz float64
	d  time.Duration
}{{913.8, 274 * time.Millisecond}, {1370.6, 274 * time.Millisecond}, {1776.7, 380 * time.Millisecond}}

// sitGap is the silence after the SIT before the prompt (within 300 ms).
const sitGap = 100 * time.Millisecond

// SIT returns the intercept special information tones as 8 kHz linear
// PCM, with no gap between them (at most 4 ms allowed).
func SIT() []int16 {
	const amp = 0.22 * 32767 // about -13 dBm0
	var out []int16
	for _, t := range sitTones {
		n := int(t.d.Seconds() * 8000)
		for i := 0; i < n; i++ {
			out = append(out, int16(amp*math.Sin(2*math.Pi*t.hz*float64(i)/8000)))
		}
	}
	return out
}

// ParseWAV reads a RIFF WAV of 8 kHz mono 16-bit PCM into samples.
func ParseWAV(b []byte) ([]int16, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF WAVE file")
	}
	var fmtOK bool
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		if size > len(body) {
			size = len(body) // a truncated last chunk: take what is there
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("short fmt chunk")
			}
			format, ch := binary.LittleEndian.Uint16(body[0:2]), binary.LittleEndian.Uint16(body[2:4])
			rate, bits := binary.LittleEndian.Uint32(body[4:8]), binary.LittleEndian.Uint16(body[14:16])
			if format != 1 || ch != 1 || rate != 8000 || bits != 16 {
				return nil, fmt.Errorf("must be 8000 Hz mono 16-bit PCM, is format %d, %d channels, %d Hz, %d bits", format, ch, rate, bits)
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, errors.New("data before fmt chunk")
			}
			out := make([]int16, size/2)
			for i := range out {
				out[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			if len(out) == 0 {
				return nil, errors.New("no samples")
			}
			return out, nil
		}
		p += 8 + size + size%2
	}
	return nil, errors.New("no data chunk")
}

// Announcement is the service-interrupted audio, encoded once at start
// into 20 ms G.711 frames for both laws.
type Announcement struct {
	frames map[uint8][][]byte
}

// NewAnnouncement builds the SIT followed by prompt (8 kHz linear PCM; nil
// for the built-in prompt).
func NewAnnouncement(prompt []int16) (*Announcement, error) {
	if prompt == nil {
		p, err := ParseWAV(defaultPrompt)
		if err != nil {
			return nil, fmt.Errorf("built-in prompt: %w", err)
		}
		prompt = p
	}
	pcm := append(SIT(), make([]int16, int(sitGap.Seconds()*8000))...)
	pcm = append(pcm, prompt...)
	for len(pcm)%frameSamples != 0 {
		pcm = append(pcm, 0)
	}
	a := &Announcement{frames: map[uint8][][]byte{}}
	for _, pt := range []uint8{PCMU, PCMA} {
		for i := 0; i < len(pcm); i += frameSamples {
			f := make([]byte, frameSamples)
			for j, s := range pcm[i : i+frameSamples] {
				if pt == PCMU {
					f[j] = g711.EncodeUlawFrame(s)
				} else {
					f[j] = g711.EncodeAlawFrame(s)
				}
			}
			a.frames[pt] = append(a.frames[pt], f)
		}
	}
	return a, nil
}

// Duration is how long the announcement plays.
func (a *Announcement) Duration() time.Duration {
	return time.Duration(len(a.frames[PCMU])) * 20 * time.Millisecond
}

// PickG711 returns the first G.711 payload type of an offer.
func PickG711(m Media) (uint8, bool) {
	for _, f := range m.Formats {
		if f == PCMU || f == PCMA {
			return f, true
		}
	}
	return 0, false
}

// OpenPlayer binds a port pair for an announcement: a leg with no peer and
// no relay. Close it with ClosePlayer.
func (r *Relay) OpenPlayer() (*Leg, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.openLeg()
}

// ClosePlayer releases a player's ports; Play must have returned.
func (l *Leg) ClosePlayer() { l.close() }

// Play sends the announcement in payload type pt to dst, one 20 ms frame
// every 20 ms, until it ends or stop is closed; it reports whether it
// played to the end.
func (l *Leg) Play(a *Announcement, pt uint8, dst netip.AddrPort, stop <-chan struct{}) bool {
	frames := a.frames[pt]
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32(), SSRC: rand.Uint32(), Marker: true}
	buf := make([]byte, 12+frameSamples)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i, f := range frames {
		if i > 0 {
			select {
			case <-stop:
				return false
			case <-tick.C:
			}
		}
		n, err := h.MarshalTo(buf)
		if err == nil {
			copy(buf[n:], f)
			if err := l.rtp.writeTo(buf[:n+len(f)], dst); err == nil {
				l.relayedPackets.Add(1)
				l.relayedBytes.Add(uint64(n + len(f)))
			}
		}
		h.Marker = false
		h.SequenceNumber++
		h.Timestamp += frameSamples
	}
	return true
}

// AnswerSDP is the gateway's own SDP answer for an announcement: send-only
// audio in pt from port.
func (r *Relay) AnswerSDP(port int, pt uint8) []byte {
	ipver, name := "IP4", "PCMU"
	if r.cfg.Advertise.Is6() {
		ipver = "IP6"
	}
	if pt == PCMA {
		name = "PCMA"
	}
	a := r.cfg.Advertise.String()
	return fmt.Appendf(nil, "v=0\r\no=tollgate %d 1 IN %s %s\r\ns=tollgate\r\nc=IN %s %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %d\r\na=rtpmap:%d %s/8000\r\na=ptime:20\r\na=sendonly\r\n",
		rand.Uint32()>>1, ipver, a, ipver, a, port, pt, pt, name)
}
