package pike

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// ConnLimiter caps the stream (TCP, TLS) connections open at once, per
// source address and in total. Set the caps, then wrap listeners with
// Listener; several listeners may share one ConnLimiter (the total is
// then across them). A cap of 0 is no cap. It is safe for concurrent use;
// do not change the caps while listeners use it.
type ConnLimiter struct {
	// MaxPerSource is the most connections open at once from one source
	// address.
	MaxPerSource int
	// MaxTotal is the most connections open at once in all.
	MaxTotal int

	mu    sync.Mutex
	open  map[netip.Addr]int // sources with connections open; no zero counts
	total int

	accepted, refusedSource, refusedTotal, refusedGate atomic.Uint64
}

// ConnStats are a ConnLimiter's counts.
type ConnStats struct {
	Open             int    // connections open now
	Sources          int    // sources with connections open now
	Accepted         uint64 // connections handed to the server
	Refused          uint64 // connections closed at accept, all causes
	RefusedPerSource uint64 // ... because the source had MaxPerSource open
	RefusedTotal     uint64 // ... because MaxTotal were open
	RefusedGate      uint64 // ... because the gate refused the source
}

// Stats returns the counts since the ConnLimiter was created.
func (c *ConnLimiter) Stats() ConnStats {
	c.mu.Lock()
	st := ConnStats{Open: c.total, Sources: len(c.open)}
	c.mu.Unlock()
	st.Accepted = c.accepted.Load()
	st.RefusedPerSource = c.refusedSource.Load()
	st.RefusedTotal = c.refusedTotal.Load()
	st.RefusedGate = c.refusedGate.Load()
	st.Refused = st.RefusedPerSource + st.RefusedTotal + st.RefusedGate
	return st
}

// acquire counts a new connection from ip, or reports which cap it is
// over.
func (c *ConnLimiter) acquire(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.MaxTotal > 0 && c.total >= c.MaxTotal {
		c.refusedTotal.Add(1)
		return false
	}
	n := c.open[ip]
	if c.MaxPerSource > 0 && n >= c.MaxPerSource {
		c.refusedSource.Add(1)
		return false
	}
	if c.open == nil {
		c.open = make(map[netip.Addr]int)
	}
	c.open[ip] = n + 1
	c.total++
	c.accepted.Add(1)
	return true
}

func (c *ConnLimiter) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.open[ip]; n > 1 {
		c.open[ip] = n - 1
	} else {
		delete(c.open, ip)
	}
	c.total--
}

// Listener wraps ln: its Accept closes, without returning them, the
// connections refused by gate (nil: none; e.g. blocked or unknown
// sources) or over the caps, and returns the others. A returned
// connection counts against the caps until it is closed (its Close, once,
// releases it). Refused TCP connections are reset (SO_LINGER 0), so they
// leave no TIME_WAIT behind. gate runs on the accepting goroutine and
// should be quick.
func (c *ConnLimiter) Listener(ln net.Listener, gate func(ip netip.Addr) bool) net.Listener {
	return &listener{Listener: ln, c: c, gate: gate}
}

type listener struct {
	net.Listener
	c    *ConnLimiter
	gate func(netip.Addr) bool
}

// Accept waits for the next connection the gate and the caps let in.
func (l *listener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(conn)
		if l.gate != nil && !l.gate(ip) {
			l.c.refusedGate.Add(1)
			refuse(conn)
			continue
		}
		if !l.c.acquire(ip) {
			refuse(conn)
			continue
		}
		return &limitedConn{Conn: conn, c: l.c, ip: ip}, nil
	}
}

// remoteIP is the connection's source address (the zero Addr for a
// non-IP network: all such connections count as one source).
func remoteIP(conn net.Conn) netip.Addr {
	switch a := conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return canon(a.AddrPort().Addr())
	case interface{ AddrPort() netip.AddrPort }:
		return canon(a.AddrPort().Addr())
	}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return canon(ap.Addr())
	}
	return netip.Addr{}
}

func refuse(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// limitedConn releases its count on the first Close.
type limitedConn struct {
	net.Conn
	c      *ConnLimiter
	ip     netip.Addr
	closed atomic.Bool
}

// Close closes the connection and releases its count (once).
func (lc *limitedConn) Close() error {
	err := lc.Conn.Close()
	if lc.closed.CompareAndSwap(false, true) {
		lc.c.release(lc.ip)
	}
	return err
}

// NetConn returns the wrapped connection (e.g. the *net.TCPConn).
func (lc *limitedConn) NetConn() net.Conn { return lc.Conn }
