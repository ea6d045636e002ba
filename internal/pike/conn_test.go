package pike

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// acceptor accepts from a wrapped listener into a channel.
type acceptor struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan error
}

func newAcceptor(t *testing.T, c *ConnLimiter, gate func(netip.Addr) bool) *acceptor {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptor{ln: c.Listener(raw, gate), conns: make(chan net.Conn, 64), done: make(chan error, 1)}
	go func() {
		for {
			conn, err := a.ln.Accept()
			if err != nil {
				a.done <- err
				return
			}
			a.conns <- conn
		}
	}()
	t.Cleanup(func() {
		a.ln.Close()
		<-a.done
		for {
			select {
			case c := <-a.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return a
}

func dial(t *testing.T, a *acceptor) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", a.ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// accepted waits for the server side of the next accepted connection and
// checks it is client's: a byte written by client arrives on it.
func (a *acceptor) accepted(t *testing.T, client net.Conn) net.Conn {
	t.Helper()
	select {
	case s := <-a.conns:
		if _, err := client.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			t.Fatalf("accepted connection is not the client's: %v", err)
		}
		if s.RemoteAddr().String() != client.LocalAddr().String() {
			t.Fatalf("accepted %s, dialled from %s", s.RemoteAddr(), client.LocalAddr())
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("connection not accepted")
		return nil
	}
}

// refused dials a connection and checks that the server closed it
// without handing it to the acceptor: the dial is reset, or a read ends
// (EOF or reset), not by the deadline.
func (a *acceptor) refused(t *testing.T) {
	t.Helper()
	client, err := net.DialTimeout("tcp", a.ln.Addr().String(), 5*time.Second)
	if err == nil {
		defer client.Close()
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = client.Read(b[:])
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("refused connection: read %v, want EOF or reset", err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial: %v", err)
	}
	select {
	case s := <-a.conns:
		t.Fatalf("refused connection %s was handed to the server", s.RemoteAddr())
	default:
	}
}

// waitStats polls until cond holds on the stats (the server side of a
// refusal runs on the accepting goroutine).
func waitStats(t *testing.T, c *ConnLimiter, cond func(ConnStats) bool) ConnStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := c.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnPerSource: over real TCP sockets, the connection beyond
// MaxPerSource is closed at accept and never returned; closing an
// accepted one makes room again.
func TestConnPerSource(t *testing.T) {
	c := &ConnLimiter{MaxPerSource: 2, MaxTotal: 10}
	a := newAcceptor(t, c, nil)
	c1 := dial(t, a)
	s1 := a.accepted(t, c1)
	c2 := dial(t, a)
	a.accepted(t, c2)
	a.refused(t)
	st := waitStats(t, c, func(st ConnStats) bool { return st.RefusedPerSource == 1 })
	if st.Open != 2 || st.Sources != 1 || st.Accepted != 2 || st.Refused != 1 || st.RefusedTotal != 0 || st.RefusedGate != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Closing the server side releases it (twice counts once).
	s1.Close()
	s1.Close()
	if st := c.Stats(); st.Open != 1 {
		t.Fatalf("after close: %+v", st)
	}
	c4 := dial(t, a)
	a.accepted(t, c4)
	a.refused(t)
	waitStats(t, c, func(st ConnStats) bool { return st.RefusedPerSource == 2 && st.Open == 2 && st.Accepted == 3 })
}

// TestConnTotal: MaxTotal across listeners sharing one ConnLimiter.
func TestConnTotal(t *testing.T) {
	c := &ConnLimiter{MaxTotal: 2}
	a, b := newAcceptor(t, c, nil), newAcceptor(t, c, nil)
	ca := dial(t, a)
	sa := a.accepted(t, ca)
	cb := dial(t, b)
	b.accepted(t, cb)
	a.refused(t)
	b.refused(t)
	waitStats(t, c, func(st ConnStats) bool { return st.RefusedTotal == 2 && st.Refused == 2 && st.Open == 2 })
	sa.Close()
	b.accepted(t, dial(t, b))
	waitStats(t, c, func(st ConnStats) bool { return st.Open == 2 && st.Accepted == 3 })
}

// TestConnGate: a gate refusing the source closes every connection from
// it; the gate sees the source address.
func TestConnGate(t *testing.T) {
	c := &ConnLimiter{MaxPerSource: 5}
	var mu sync.Mutex
	var seen []netip.Addr
	allow := true
	a := newAcceptor(t, c, func(ip netip.Addr) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ip)
		return allow
	})
	a.accepted(t, dial(t, a))
	mu.Lock()
	allow = false
	mu.Unlock()
	a.refused(t)
	a.refused(t)
	st := waitStats(t, c, func(st ConnStats) bool { return st.RefusedGate == 2 })
	if st.Open != 1 || st.Refused != 2 || st.RefusedPerSource != 0 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("gate saw %v", seen)
	}
}

// TestConnNoCaps: the zero ConnLimiter caps nothing and still counts.
func TestConnNoCaps(t *testing.T) {
	c := &ConnLimiter{}
	a := newAcceptor(t, c, nil)
	var servers []net.Conn
	for range 20 {
		servers = append(servers, a.accepted(t, dial(t, a)))
	}
	if st := c.Stats(); st.Open != 20 || st.Accepted != 20 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range servers {
		s.Close()
	}
	if st := c.Stats(); st.Open != 0 || st.Sources != 0 {
		t.Fatalf("after closing all: %+v", st)
	}
	// The wrapped connection exposes the TCP connection.
	s := a.accepted(t, dial(t, a))
	if _, ok := s.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn); !ok {
		t.Fatal("NetConn is not the *net.TCPConn")
	}
}

// TestConnListenerClose: closing the wrapped listener ends Accept.
func TestConnListenerClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := (&ConnLimiter{}).Listener(raw, nil)
	done := make(chan error)
	go func() { _, err := ln.Accept(); done <- err }()
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

// fakeConn is a connection from any address, for the counting logic with
// many sources (the real-socket tests only have 127.0.0.1).
type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (f *fakeConn) RemoteAddr() net.Addr { return f.remote }
func (f *fakeConn) Close() error         { f.closed = true; return nil }

type fakeListener struct {
	net.Listener
	next chan net.Conn
}

func (f *fakeListener) Accept() (net.Conn, error) {
	c, ok := <-f.next
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

// TestConnManySources: per-source counts are independent, IPv4-mapped
// addresses count as IPv4, and a source's entry goes when its last
// connection closes.
func TestConnManySources(t *testing.T) {
	c := &ConnLimiter{MaxPerSource: 2, MaxTotal: 5}
	fl := &fakeListener{next: make(chan net.Conn, 100)}
	ln := c.Listener(fl, nil)
	mk := func(addr string) *fakeConn {
		return &fakeConn{remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))}
	}
	var all []*fakeConn
	for _, addr := range []string{"192.0.2.1:1", "[::ffff:192.0.2.1]:2", "192.0.2.1:3", "192.0.2.2:1", "[2001:db8::1]:5", "192.0.2.2:2", "192.0.2.3:1", "192.0.2.4:1"} {
		fc := mk(addr)
		all = append(all, fc)
		fl.next <- fc
	}
	close(fl.next)
	var got []net.Conn
	for {
		conn, err := ln.Accept()
		if err != nil {
			break
		}
		got = append(got, conn)
	}
	// Accepted: .1 twice, .2 twice, 2001:db8::1 (total 5); refused: the
	// third .1 (per source), .3 and .4 (total).
	if len(got) != 5 {
		t.Fatalf("accepted %d", len(got))
	}
	for i, want := range []bool{false, false, true, false, false, false, true, true} {
		if all[i].closed != want {
			t.Errorf("conn %d (%s): closed %v, want %v", i, all[i].remote, all[i].closed, want)
		}
	}
	st := c.Stats()
	if st.Open != 5 || st.Sources != 3 || st.RefusedPerSource != 1 || st.RefusedTotal != 2 {
		t.Fatalf("stats %+v", st)
	}
	for _, conn := range got {
		conn.Close()
	}
	if st := c.Stats(); st.Open != 0 || st.Sources != 0 {
		t.Fatalf("after close: %+v", st)
	}
}
