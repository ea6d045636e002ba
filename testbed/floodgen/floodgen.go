// Package floodgen is the testbed's SIP flooder: it sends INVITEs over UDP
// at a fixed rate from one or more source addresses and counts every
// response that comes back, so a test or a benchmark can compare responses
// with requests (amplification) and see what a flooding source is told.
//
// Pacing: a ticker fires every Config.Tick; at each tick the flooder sends
// as many requests as the rate owes since the start (rate × elapsed, minus
// what it already sent), so a late tick is made up in the next batch and
// the average rate is exact over the run, whatever the scheduler does. A
// flooder that cannot keep up (a busy machine) sends fewer than owed and
// still stops at the end of Config.Duration: the Result says how many it
// sent, and when.
//
// Each request is a distinct, well-formed INVITE (its own Call-ID, branch
// and From tag), so a gateway that lets it through parses and answers it
// like any stranger's call. The sockets are plain connected UDP sockets
// bound to the source addresses (on loopback any 127.0.0.0/8 address can
// be bound), so the responses come back to them and are read by one
// goroutine per socket.
//
// Only loopback targets are accepted: this is a test tool.
package floodgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one flood.
type Config struct {
	// Target is the gateway's SIP UDP address, host:port (loopback only).
	Target string
	// Sources are the addresses the requests come from, round robin; one
	// socket (an ephemeral port) per address. Default 127.0.0.99.
	Sources []netip.Addr
	// Rate is the requests per second, all sources together. > 0.
	Rate float64
	// Duration is how long requests are sent.
	Duration time.Duration
	// Tick is the pacing interval (default 1ms): each tick sends a batch.
	Tick time.Duration
	// Linger is how long responses are still read after the last request
	// (a retransmitted answer arrives up to 32 s after its request; a
	// second or a few catch the early retransmissions of the last
	// requests). Default 1s.
	Linger time.Duration
	// User is the Request-URI user (the dialled number). Default 15550001.
	User string
	// NoRead leaves the responses unread: they pile up in the sockets'
	// receive buffers (4 MB each) and the kernel drops the rest, as at a
	// spoofed victim's address. Result then counts no responses. On
	// loopback a reader woken by every response competes for the CPU with
	// the gateway that sends them; NoRead takes the flooder's reading out
	// of a capacity measurement.
	NoRead bool
}

// Result is what a flood sent and got back.
type Result struct {
	Sent       uint64 // requests written
	SendErrors uint64 // writes that failed (e.g. ECONNREFUSED from an ICMP error)
	Responses  uint64 // SIP responses received, all sources
	// ByCode counts the responses per status code.
	ByCode map[int]uint64
	// Other counts datagrams received that are not SIP responses.
	Other uint64
	// Start and End bound the sending; Elapsed is End - Start.
	Start, End time.Time
	Elapsed    time.Duration
	// FirstResponse and LastResponse are the arrival instants of the first
	// and last response (zero if none).
	FirstResponse, LastResponse time.Time
	// SentPerSecond is how many requests went out in each second of the run.
	SentPerSecond []uint64
	// ResponsesPerSecond is how many responses arrived in each second since
	// Start (the linger's seconds included).
	ResponsesPerSecond []uint64
}

// AchievedRate is Sent over Elapsed.
func (r Result) AchievedRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

func (c *Config) defaults() error {
	if len(c.Sources) == 0 {
		c.Sources = []netip.Addr{netip.MustParseAddr("127.0.0.99")}
	}
	if c.Tick <= 0 {
		c.Tick = time.Millisecond
	}
	if c.Linger <= 0 {
		c.Linger = time.Second
	}
	if c.User == "" {
		c.User = "15550001"
	}
	if !(c.Rate > 0) {
		return fmt.Errorf("floodgen: rate must be > 0, got %v", c.Rate)
	}
	if c.Duration <= 0 {
		return fmt.Errorf("floodgen: duration must be > 0, got %s", c.Duration)
	}
	ap, err := netip.ParseAddrPort(c.Target)
	if err != nil {
		return fmt.Errorf("floodgen: target %q: %w", c.Target, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("floodgen: target %s is not a loopback address", c.Target)
	}
	for _, s := range c.Sources {
		if !s.IsLoopback() {
			return fmt.Errorf("floodgen: source %s is not a loopback address", s)
		}
	}
	return nil
}

// source is one flooding socket and the template of its requests.
type source struct {
	conn *net.UDPConn
	tmpl []byte // the request, with counter fields to overwrite
	pos  []int  // offsets of the counter fields in tmpl
}

// counterWidth is the width of the decimal request counter written into
// each request's Call-ID, branch and tag.
const counterWidth = 12

// Run floods until cfg.Duration has passed (or ctx is done), reads the
// responses for cfg.Linger more, and returns what happened.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Target)
	if err != nil {
		return Result{}, err
	}
	var srcs []*source
	defer func() {
		for _, s := range srcs {
			s.conn.Close()
		}
	}()
	for _, ip := range cfg.Sources {
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: ip.AsSlice()}, raddr)
		if err != nil {
			return Result{}, fmt.Errorf("floodgen: socket on %s: %w", ip, err)
		}
		setBuffers(conn, 4<<20)
		s := &source{conn: conn}
		s.tmpl, s.pos = template(conn.LocalAddr().(*net.UDPAddr), cfg.Target, cfg.User)
		srcs = append(srcs, s)
	}

	var (
		res      Result
		mu       sync.Mutex // guards res.ByCode, res.Other, the response times and ResponsesPerSecond
		received atomic.Uint64
		wg       sync.WaitGroup
	)
	res.ByCode = make(map[int]uint64)
	res.Start = time.Now()
	for _, s := range srcs {
		if cfg.NoRead {
			break
		}
		wg.Add(1)
		go func(c *net.UDPConn) {
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				n, err := c.Read(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue // ECONNREFUSED and the like: keep reading
				}
				now := time.Now()
				code, ok := statusCode(buf[:n])
				mu.Lock()
				if ok {
					received.Add(1)
					res.ByCode[code]++
					if res.FirstResponse.IsZero() {
						res.FirstResponse = now
					}
					res.LastResponse = now
					sec := int(now.Sub(res.Start) / time.Second)
					for len(res.ResponsesPerSecond) <= sec {
						res.ResponsesPerSecond = append(res.ResponsesPerSecond, 0)
					}
					res.ResponsesPerSecond[sec]++
				} else {
					res.Other++
				}
				mu.Unlock()
			}
		}(s.conn)
	}

	// Pacing: at every tick, send what the rate owes since the start.
	var sent, sendErrs uint64
	perSecond := make([]uint64, int(cfg.Duration/time.Second)+1)
	ticker := time.NewTicker(cfg.Tick)
	deadline := res.Start.Add(cfg.Duration)
	total := uint64(cfg.Rate * cfg.Duration.Seconds())
	next := 0 // the source of the next request
	msg := make([]byte, 0, 2048)
loop:
	for sent < total {
		select {
		case <-ctx.Done():
			break loop
		case now := <-ticker.C:
			owed := min(total, uint64(cfg.Rate*now.Sub(res.Start).Seconds()))
			if !now.Before(deadline) {
				owed = total
			}
			sec := int(now.Sub(res.Start) / time.Second)
			if sec >= len(perSecond) {
				sec = len(perSecond) - 1
			}
			for ; sent < owed; sent++ {
				// A flooder that fell behind stops at the deadline (plus
				// a tick) instead of sending its backlog after it.
				if sent%256 == 0 && sent > 0 && time.Since(deadline) > cfg.Tick {
					break loop
				}
				s := srcs[next]
				next = (next + 1) % len(srcs)
				msg = s.request(msg, sent)
				if _, err := s.conn.Write(msg); err != nil {
					sendErrs++
				}
				perSecond[sec]++
			}
			if !now.Before(deadline) {
				break loop
			}
		}
	}
	ticker.Stop()
	res.End = time.Now()
	res.Elapsed = res.End.Sub(res.Start)
	res.Sent, res.SendErrors = sent, sendErrs
	for len(perSecond) > 0 && perSecond[len(perSecond)-1] == 0 {
		perSecond = perSecond[:len(perSecond)-1]
	}
	res.SentPerSecond = perSecond

	select {
	case <-ctx.Done():
	case <-time.After(cfg.Linger):
	}
	for _, s := range srcs {
		s.conn.Close()
	}
	wg.Wait()
	res.Responses = received.Load()
	return res, ctx.Err()
}

// template builds the INVITE sent from laddr to target, with counterWidth
// zeros at each place the request counter goes.
func template(laddr *net.UDPAddr, target, user string) ([]byte, []int) {
	const mark = "\x00"
	local := laddr.String()
	ruri := "sip:" + user + "@" + target
	s := "INVITE " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-flood-" + mark + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:flood@" + local + ">;tag=flood-" + mark + "\r\n" +
		"To: <" + ruri + ">\r\n" +
		"Call-ID: flood-" + mark + "@" + laddr.IP.String() + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:flood@" + local + ">\r\n" +
		"User-Agent: tollgate-testbed-floodgen\r\n" +
		"Content-Length: 0\r\n\r\n"
	var out []byte
	var pos []int
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			pos = append(pos, len(out))
			for range counterWidth {
				out = append(out, '0')
			}
			continue
		}
		out = append(out, s[i])
	}
	return out, pos
}

// request writes request number n into dst (reused) and returns it.
func (s *source) request(dst []byte, n uint64) []byte {
	dst = append(dst[:0], s.tmpl...)
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], n, 10)
	for _, p := range s.pos {
		field := dst[p : p+counterWidth]
		copy(field[counterWidth-len(d):], d)
	}
	return dst
}

// statusCode parses "SIP/2.0 NNN" at the start of a datagram.
func statusCode(b []byte) (int, bool) {
	if len(b) < 12 || string(b[:8]) != "SIP/2.0 " {
		return 0, false
	}
	code, err := strconv.Atoi(string(b[8:11]))
	if err != nil || b[11] != ' ' {
		return 0, false
	}
	return code, true
}
