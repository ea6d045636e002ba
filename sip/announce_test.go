package sip

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// silenceWAV writes a WAV of d of 8 kHz silence: a short prompt for tests.
func silenceWAV(t *testing.T, d time.Duration) string {
	n := int(d.Seconds() * 8000)
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 16000)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	p := filepath.Join(t.TempDir(), "prompt.wav")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// goertzel is the power of frequency hz in samples at 8 kHz.
func goertzel(samples []int16, hz float64) float64 {
	k := 2 * math.Cos(2*math.Pi*hz/8000)
	var s1, s2 float64
	for _, x := range samples {
		s := float64(x) + k*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - k*s1*s2
}

// inboundCall places a call from the carrier to the tenant's DID with an
// SDP naming media, and returns the provisional and final responses.
func inboundCall(t *testing.T, e *env, sdp string, extra ...sip.Header) (progress []*sip.Response, final *sip.Response) {
	t.Helper()
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	sess, err := e.carrier.calls.Invite(ctxT(t, 10*time.Second), sip.Uri{User: "+15551234", Host: host, Port: port}, []byte(sdp),
		append([]sip.Header{sip.NewHeader("Content-Type", "application/sdp")}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	sess.WaitAnswer(ctxT(t, 15*time.Second), sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.IsProvisional() {
			progress = append(progress, res)
		}
		return nil
	}})
	return progress, sess.InviteResponse
}

func TestSuspendedTenantsInboundCallerHearsTheSIT(t *testing.T) {
	e := newEnv(t, withMedia(31600, 31699), withConfig(func(c *configs.Config) {
		c.Announcement.Prompt = silenceWAV(t, 200*time.Millisecond)
	}))
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "unpaid") })
	caller := newRTPEndpoint(t, carrierIP) // the inbound caller comes from the carrier side
	free := e.gw.media.FreePairs()

	var mu sync.Mutex
	var pcm []int16
	var pts []uint8
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 2048)
		var h rtp.Header
		for {
			caller.c.SetReadDeadline(time.Now().Add(time.Second))
			n, _, err := caller.c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			off, err := h.Unmarshal(buf[:n])
			if err != nil {
				continue
			}
			mu.Lock()
			pts = append(pts, h.PayloadType)
			for _, b := range buf[off:n] {
				pcm = append(pcm, g711.DecodeAlawFrame(b))
			}
			mu.Unlock()
		}
	}()
	progress, final := inboundCall(t, e, caller.sdp()) // offers PCMA (8) first
	if len(progress) == 0 || progress[0].StatusCode != 183 {
		t.Fatalf("provisional responses %v, want 183 first", progress)
	}
	if a := mediaOf(t, "183", progress[0].Body()); a.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("183 SDP points at %v, want the gateway", a)
	}
	if final == nil || final.StatusCode != 480 {
		t.Fatalf("final response %v, want 480 after the announcement", final)
	}
	if r := final.GetHeaders("Reason"); len(r) != 1 {
		t.Fatalf("final response without a Reason: %v", final)
	}
	<-recvDone
	mu.Lock()
	defer mu.Unlock()
	for _, pt := range pts {
		if pt != 8 {
			t.Fatalf("payload type %d, want PCMA (8) as the caller offered first", pt)
		}
	}
	// Which SIT tone each 10 ms window holds, then the runs in order.
	tones := []float64{913.8, 1370.6, 1776.7}
	type run struct{ tone, windows int }
	var runs []run
	for i := 0; i+80 <= len(pcm); i += 80 {
		w := pcm[i : i+80]
		best, bestP, total := -1, 0.0, 0.0
		for _, x := range w {
			total += float64(x) * float64(x)
		}
		for j, hz := range tones {
			if p := goertzel(w, hz); p > bestP {
				best, bestP = j, p
			}
		}
		// A tone window: the tone carries most of the window's energy.
		if total == 0 || bestP/(total*float64(len(w))/2) < 0.5 {
			best = -1
		}
		if len(runs) > 0 && runs[len(runs)-1].tone == best {
			runs[len(runs)-1].windows++
		} else {
			runs = append(runs, run{best, 1})
		}
	}
	var seen []run
	for _, r := range runs {
		if r.tone >= 0 && r.windows >= 3 {
			seen = append(seen, r)
		}
	}
	if len(seen) != 3 || seen[0].tone != 0 || seen[1].tone != 1 || seen[2].tone != 2 {
		t.Fatalf("tone runs %v, want 913.8, 1370.6, 1776.7 Hz in order", runs)
	}
	for i, want := range []time.Duration{274, 274, 380} {
		got := time.Duration(seen[i].windows) * 10 * time.Millisecond
		if d := got - want*time.Millisecond; d < -20*time.Millisecond || d > 20*time.Millisecond {
			t.Errorf("tone %d lasted %v, want %v ms", i, got, want)
		}
	}
	if e.adm.Active("acme") != 0 {
		t.Fatal("the announced call holds a slot")
	}
	eventually(t, 2*time.Second, func() bool { return e.gw.media.FreePairs() == free }, "announcement ports not released")
}

func TestAnnouncementNeedsG711AndNo100rel(t *testing.T) {
	e := newEnv(t, withMedia(31700, 31799), withConfig(func(c *configs.Config) {
		c.Announcement.Prompt = silenceWAV(t, 100*time.Millisecond)
	}))
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "unpaid") })
	caller := newRTPEndpoint(t, carrierIP)
	g722 := strings.NewReplacer("RTP/AVP 8 101", "RTP/AVP 9 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:9 G722/8000").Replace(caller.sdp())
	progress, final := inboundCall(t, e, g722)
	if len(progress) != 0 || final == nil || final.StatusCode != 480 {
		t.Fatalf("no G.711 offered: provisional %v final %v, want the plain 480", progress, final)
	}
	progress, final = inboundCall(t, e, caller.sdp(), sip.NewHeader("Require", "100rel"))
	if len(progress) != 0 || final == nil || final.StatusCode != 480 {
		t.Fatalf("100rel required: provisional %v final %v, want the plain 480", progress, final)
	}
}

// A caller that hangs up during the announcement (CANCEL) gets 487, and
// the announcement's ports are back at once, not when it would have ended.
func TestCancelDuringTheAnnouncement(t *testing.T) {
	e := newEnv(t, withMedia(32300, 32399)) // the built-in prompt: 6.5 s in all
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "unpaid") })
	caller := newRTPEndpoint(t, carrierIP)
	free := e.gw.media.FreePairs()
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	sess, err := e.carrier.calls.Invite(ctxT(t, 10*time.Second), sip.Uri{User: "+15551234", Host: host, Port: port}, []byte(caller.sdp()),
		sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	hangUp := ctxT(t, 700*time.Millisecond) // mid-SIT: sipgo sends CANCEL when it expires
	start := time.Now()
	sess.WaitAnswer(hangUp, sipgo.AnswerOptions{})
	eventually(t, 3*time.Second, func() bool { return e.gw.media.FreePairs() == free }, "announcement ports held after CANCEL")
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("ports came back after %v: the announcement played on", took)
	}
	if res := sess.InviteResponse; res == nil || res.StatusCode != 487 {
		t.Fatalf("final response %v, want 487 after CANCEL", res)
	}
}

// An inbound call refused for an exhausted minutes budget is announced
// when announcement.causes lists minutes (183, audio, then the
// rejection's own final response), and refused plainly when it does not.
func TestMinutesRejectionAnnouncedWhenListed(t *testing.T) {
	for _, listed := range []bool{true, false} {
		t.Run(fmt.Sprint("listed=", listed), func(t *testing.T) {
			lo := 31700
			if !listed {
				lo = 31800
			}
			zero := int64(0)
			e := newEnv(t, withMedia(lo, lo+99), withConfig(func(c *configs.Config) {
				c.Announcement.Prompt = silenceWAV(t, 100*time.Millisecond)
				c.Announcement.Causes = []string{"suspended_inbound"}
				if listed {
					c.Announcement.Causes = append(c.Announcement.Causes, "minutes")
				}
				c.Plans[0].Limits.MaxMonthlyMinutes = &zero // blocks every call: cause minutes
			}))
			caller := newRTPEndpoint(t, carrierIP)
			got := make(chan int, 1)
			go func() {
				buf := make([]byte, 2048)
				n := 0
				for {
					caller.c.SetReadDeadline(time.Now().Add(time.Second))
					if _, _, err := caller.c.ReadFromUDPAddrPort(buf); err != nil {
						got <- n
						return
					}
					n++
				}
			}()
			progress, final := inboundCall(t, e, caller.sdp())
			if final == nil || final.StatusCode != 403 {
				t.Fatalf("final response %v, want the minutes rejection's 403", final)
			}
			packets := <-got
			if listed {
				if len(progress) == 0 || progress[0].StatusCode != 183 || packets < 40 {
					t.Fatalf("listed: provisionals %v, %d RTP packets; want 183 and the announcement", progress, packets)
				}
			} else if len(progress) > 0 && progress[0].StatusCode == 183 || packets != 0 {
				t.Fatalf("not listed: provisionals %v, %d RTP packets; want a plain 403", progress, packets)
			}
			if e.adm.Active("acme") != 0 {
				t.Fatal("the refused call holds a slot")
			}
		})
	}
}
