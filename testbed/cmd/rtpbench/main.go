// Command rtpbench loads a media relay with RTP calls and measures what it
// costs: it sets up calls through the relay's NG control port (offer and
// answer, as a SIP proxy would), then every call's caller and callee each
// send one 20 ms G.711 packet per 1/pps through the relay, and it counts
// what arrives. It reports the relay process's CPU per million packets
// relayed (utime+stime from /proc/PID/stat over the steady window), loss,
// the receivers' interarrival jitter (RFC 3550) and how much of it the
// relay added (receivers' minus the senders' own pacing), and the relay's RSS per
// call. Run by testbed/media-bench.sh against rtpengine and against
// testbed/cmd/relayd (tollgate's meter/).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/meter"
	"github.com/tollgate/tollgate/testbed/ng"
)

type stream struct {
	conn   *net.UDPConn
	to     netip.AddrPort // the relay's port for this party
	seq    uint16
	ts     uint32
	ssrc   uint32
	sent   atomic.Uint64
	recv   atomic.Uint64
	jitter atomic.Uint64 // receive side: float64 bits, timestamp units
	paced  jitterMeter   // send side: the generator's own pacing
}

func main() {
	ngAddr := flag.String("ng", "127.0.0.1:2223", "relay NG control address")
	pid := flag.Int("pid", 0, "relay process id (CPU and memory)")
	calls := flag.Int("calls", 500, "concurrent calls")
	pps := flag.Int("pps", 50, "packets per second per direction")
	warmup := flag.Duration("warmup", 3*time.Second, "time before the window")
	window := flag.Duration("window", 20*time.Second, "measured window")
	callerIP := flag.String("caller-ip", "127.0.0.10", "caller media address")
	calleeIP := flag.String("callee-ip", "127.0.0.2", "callee media address")
	label := flag.String("label", "relay", "name in the result line")
	flag.Parse()

	ctl, err := net.Dial("udp", *ngAddr)
	if err != nil {
		log.Fatal(err)
	}
	rssIdle := rssKiB(*pid)
	var all []*stream
	pairs := make([][2]*stream, 0, *calls)
	for i := 0; i < *calls; i++ {
		a, b := newStream(*callerIP), newStream(*calleeIP)
		id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		toB := command(ctl, map[string]any{"command": "offer", "call-id": id, "from-tag": "a" + strconv.Itoa(i), "sdp": sdpFor(a)})
		toA := command(ctl, map[string]any{"command": "answer", "call-id": id, "from-tag": "a" + strconv.Itoa(i), "to-tag": "b" + strconv.Itoa(i), "sdp": sdpFor(b)})
		b.to, a.to = toB, toA // what the callee is told is where the callee sends
		pairs = append(pairs, [2]*stream{a, b})
		all = append(all, a, b)
	}
	for _, s := range all {
		go s.receive()
	}
	// Senders: four goroutines, each a quarter of the streams, one packet
	// per stream per tick.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const senders = 4
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(part []*stream) {
			defer wg.Done()
			buf := make([]byte, 12+160)
			t := time.NewTicker(time.Second / time.Duration(*pps))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				for _, s := range part {
					s.send(buf)
				}
			}
		}(all[g*len(all)/senders : (g+1)*len(all)/senders])
	}
	time.Sleep(*warmup)
	_, recv0, cpu0, t0 := totals(all, *pid)
	time.Sleep(*window)
	_, recv1, cpu1, t1 := totals(all, *pid)
	rss := rssKiB(*pid)
	close(stop)
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // in flight
	var jit, sendJit float64
	for _, s := range all {
		jit += float64FromBits(s.jitter.Load())
		sendJit += s.paced.j
	}
	jit = jit / float64(len(all)) / 8 // ms at 8 kHz
	sendJit = sendJit / float64(len(all)) / 8
	relayed := recv1 - recv0
	// Loss over the whole run, once the senders have stopped and what was
	// in flight has arrived (the window's edges cut packets in flight).
	sentAll, recvAll, _, _ := totals(all, *pid)
	loss := 100 * (1 - float64(recvAll)/float64(sentAll))
	secs := t1.Sub(t0).Seconds()
	cpuSec := cpu1 - cpu0
	fmt.Printf("%s\t%d\t%.0f\t%.3f\t%.2f\t%.3f\t%.3f\t%.3f\t%.1f\n", *label, *calls, float64(relayed)/secs, cpuSec/secs,
		cpuSec/(float64(relayed)/1e6), loss, jit, jit-sendJit, float64(rss-rssIdle)/float64(*calls))
	for i, p := range pairs {
		id := fmt.Sprintf("bench-%d-%d", os.Getpid(), i)
		command(ctl, map[string]any{"command": "delete", "call-id": id, "from-tag": "a" + strconv.Itoa(i)})
		p[0].conn.Close()
		p[1].conn.Close()
	}
}

func newStream(ip string) *stream {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		log.Fatal(err)
	}
	c.SetReadBuffer(1 << 20)
	return &stream{conn: c, seq: uint16(rand.Uint32()), ts: rand.Uint32(), ssrc: rand.Uint32()}
}

func sdpFor(s *stream) string {
	a := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n", a.Addr(), a.Port())
}

// command sends an NG command and returns the audio address of the SDP in
// the reply (none for delete).
func command(c net.Conn, msg map[string]any) netip.AddrPort {
	cookie := strconv.Itoa(rand.Int())
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append([]byte(cookie+" "), ng.Encode(msg)...)); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		log.Fatalf("%s: %v", msg["command"], err)
	}
	_, reply, err := ng.Split(buf[:n])
	if err != nil || (reply["result"] != "ok" && reply["result"] != "pong") {
		log.Fatalf("%s: %v %v", msg["command"], reply, err)
	}
	sdp, _ := reply["sdp"].(string)
	if sdp == "" {
		return netip.AddrPort{}
	}
	m, err := meter.ParseSDP([]byte(sdp))
	if err != nil {
		log.Fatalf("%s: reply SDP: %v", msg["command"], err)
	}
	return netip.AddrPortFrom(m.Addr, uint16(m.Port))
}

func (s *stream) send(buf []byte) {
	buf[0], buf[1] = 0x80, 8
	binary.BigEndian.PutUint16(buf[2:], s.seq)
	binary.BigEndian.PutUint32(buf[4:], s.ts)
	binary.BigEndian.PutUint32(buf[8:], s.ssrc)
	if _, err := s.conn.WriteToUDPAddrPort(buf, s.to); err == nil {
		s.sent.Add(1)
		s.paced.observe(time.Now(), s.ts)
	}
	s.seq++
	s.ts += 160
}

// receive counts what arrives and keeps the RFC 3550 jitter.
func (s *stream) receive() {
	buf := make([]byte, 2048)
	var m jitterMeter
	for {
		n, _, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		m.observe(time.Now(), binary.BigEndian.Uint32(buf[4:]))
		s.jitter.Store(float64Bits(m.j))
		s.recv.Add(1)
	}
}

// jitterMeter is RFC 3550's interarrival jitter of a stream of RTP
// timestamps at 8 kHz, observed at the instants given: at the receiver
// what the path (relay included) added to the sender's pacing, at the
// sender the pacing itself.
type jitterMeter struct {
	start   time.Time
	lastArr int64
	lastTS  uint32
	j       float64 // timestamp units
}

func (m *jitterMeter) observe(at time.Time, ts uint32) {
	if m.start.IsZero() {
		m.start, m.lastTS = at, ts
		return
	}
	arr := int64(at.Sub(m.start)) * 8000 / int64(time.Second)
	d := (arr - m.lastArr) - int64(int32(ts-m.lastTS))
	if d < 0 {
		d = -d
	}
	m.j += (float64(d) - m.j) / 16
	m.lastArr, m.lastTS = arr, ts
}

func totals(all []*stream, pid int) (sent, recv uint64, cpu float64, at time.Time) {
	for _, s := range all {
		sent += s.sent.Load()
		recv += s.recv.Load()
	}
	return sent, recv, cpuSeconds(pid), time.Now()
}

// cpuSeconds is utime+stime of pid (all its threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // CLK_TCK
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func float64Bits(f float64) uint64     { return math.Float64bits(f) }
func float64FromBits(b uint64) float64 { return math.Float64frombits(b) }
