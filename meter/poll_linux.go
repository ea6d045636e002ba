package meter

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

// On Linux the media sockets are non-blocking file descriptors of the
// relay's own, outside Go's netpoller, served by a few pollers: each an
// epoll set and one goroutine with its own buffers. A call's four sockets
// (two legs, RTP and RTCP each) belong to one poller, picked round-robin,
// so everything that reads or writes them runs on that goroutine and a
// call costs no goroutine and no buffer of its own.

const (
	// batch is how many datagrams one readiness of a socket reads
	// (recvmmsg); more are left for the next round (level-triggered), so
	// one busy socket cannot starve the others.
	batch = 8
	// maxEvents is how many ready sockets one epoll_wait returns.
	maxEvents = 128
	// sockaddrLen fits either family's address.
	sockaddrLen = unix.SizeofSockaddrInet6
	wakeToken   = -1 // the eventfd's epoll data
)

// sock is a non-blocking UDP socket the relay owns. It is a value: a leg
// holds two, and sending allocates nothing.
type sock struct {
	fd int
	v6 bool // AF_INET6 (dual-stack when bound to the unspecified address)
}

// listenUDP binds a non-blocking UDP socket to ap, as net.ListenUDP("udp")
// would: an unspecified IPv4 address binds dual-stack [::].
func listenUDP(ap netip.AddrPort) (sock, error) {
	a := ap.Addr().Unmap()
	s := sock{v6: a.Is6() || a.IsUnspecified()}
	family := unix.AF_INET
	if s.v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return sock{fd: -1}, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	if s.v6 {
		if a.Is4() {
			a = netip.IPv6Unspecified()
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			unix.Close(fd)
			return sock{fd: -1}, err
		}
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return sock{fd: -1}, err
	}
	s.fd = fd
	return s, nil
}

// writeTo sends one datagram to dst without blocking: a full send buffer
// is an error (the packet is dropped and counted, as rtpengine does).
func (s sock) writeTo(pkt []byte, dst netip.AddrPort) error {
	var sa [sockaddrLen]byte
	n := putSockaddr(&sa, dst, s.v6)
	if n == 0 {
		return unix.EAFNOSUPPORT
	}
	var p unsafe.Pointer
	if len(pkt) > 0 {
		p = unsafe.Pointer(&pkt[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(p), uintptr(len(pkt)), 0, uintptr(unsafe.Pointer(&sa[0])), uintptr(n))
	if e != 0 {
		return e
	}
	return nil
}

func (s sock) close() { unix.Close(s.fd) }

// putSockaddr writes dst as a struct sockaddr_in (v4 socket) or
// sockaddr_in6 (v6 socket, IPv4 as mapped) and returns its length; 0 when
// the socket cannot reach it.
func putSockaddr(sa *[sockaddrLen]byte, dst netip.AddrPort, v6 bool) int {
	a := dst.Addr()
	binary.BigEndian.PutUint16(sa[2:4], dst.Port())
	if !v6 {
		if a = a.Unmap(); !a.Is4() {
			return 0
		}
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		ip := a.As4()
		copy(sa[4:8], ip[:])
		return unix.SizeofSockaddrInet4
	}
	binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET6)
	ip := a.As16() // IPv4 comes out as ::ffff:a.b.c.d
	copy(sa[8:24], ip[:])
	return unix.SizeofSockaddrInet6
}

// parseSockaddr reads the source address recvmmsg wrote.
func parseSockaddr(sa *[sockaddrLen]byte) netip.AddrPort {
	port := binary.BigEndian.Uint16(sa[2:4])
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])), port)
	}
	return netip.AddrPort{}
}

// session states, kept by the session's poller (see poller.mu).
const (
	sessionNew        = iota // not yet in the poller's epoll set
	sessionRegistered        // its sockets are in the epoll set
	sessionClosed            // its sockets are closed
)

// legPoll is a leg's part of its poller's state: the slots of its RTP and
// RTCP sockets (-1: none). Only the poller's goroutine uses it.
type legPoll struct{ slots [2]int32 }

// slot is what an epoll event's data points at: a leg's socket.
type slot struct {
	leg  *Leg
	rtcp bool
}

// request is work for the poller's goroutine, between two rounds.
type request struct {
	s    *Session
	done chan struct{} // nil: register s; else close s's sockets, then close done
}

// poller serves the sockets of the sessions registered with it. Only its
// goroutine reads or writes those sockets, and only it closes them, after
// removing them from the epoll set and between two rounds of events, so a
// socket is never used after its descriptor is closed (and maybe reused).
type poller struct {
	epfd, evfd int
	done       chan struct{} // closed when the goroutine has returned

	mu       sync.Mutex
	queue    []request
	stopping bool // Relay.Close: finish the queue, close what is left, return
	stopped  bool // the goroutine has returned; set under mu

	// The goroutine's own from here on.
	slots  []slot
	free   []int32 // unused slots
	events [maxEvents]unix.EpollEvent
	msgs   [batch]unix.Mmsghdr
	iovs   [batch]unix.Iovec
	names  [batch][sockaddrLen]byte
	bufs   [batch][maxPacket + 1]byte // one more than relayed: a longer datagram shows as truncated
	h      rtp.Header
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	p := &poller{epfd: epfd, evfd: evfd, done: make(chan struct{})}
	for i := range p.msgs {
		p.iovs[i].Base = &p.bufs[i][0]
		p.iovs[i].SetLen(len(p.bufs[i]))
		p.msgs[i].Hdr.Iov = &p.iovs[i]
		p.msgs[i].Hdr.SetIovlen(1)
		p.msgs[i].Hdr.Name = &p.names[i][0]
	}
	go p.run()
	return p, nil
}

// submit queues r and wakes the goroutine; false once it has stopped.
func (p *poller) submit(r request) bool {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	p.wake()
	return true
}

func (p *poller) wake() {
	var one [8]byte // eventfd adds a native-endian uint64
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(p.evfd, one[:]) // EAGAIN only when the counter is full: it is already readable
}

// add registers s's sockets; their datagrams are read from the next round
// on (what arrived before waits in the socket's buffer).
func (p *poller) add(s *Session) bool { return p.submit(request{s: s}) }

// close closes s's sockets and returns once they are closed: nothing
// reads, meters or sends for s after it returns.
func (p *poller) close(s *Session) {
	done := make(chan struct{})
	if p.submit(request{s: s, done: done}) {
		<-done
		return
	}
	// The goroutine has returned (Relay.Close), having closed every
	// session it knew of; stopped was set under mu after that.
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.state != sessionClosed {
		s.closeSockets()
	}
}

// stop closes what is still registered and ends the goroutine.
func (p *poller) stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.wake()
	<-p.done
}

func (p *poller) run() {
	defer close(p.done)
	for {
		n, err := unix.EpollWait(p.epfd, p.events[:], -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			panic("meter: epoll_wait: " + err.Error()) // EBADF, EFAULT, EINVAL: a bug
		}
		woken := false
		for i := range p.events[:n] {
			ev := &p.events[i]
			if ev.Fd == wakeToken {
				woken = true
				continue
			}
			if sl := p.slots[ev.Fd]; sl.leg != nil {
				p.serve(sl)
			}
		}
		if woken && p.control() {
			return
		}
	}
}

// serve reads what one socket has (up to batch datagrams) and relays it.
func (p *poller) serve(sl slot) {
	l := sl.leg
	fd := l.rtp.fd
	if sl.rtcp {
		fd = l.rtcp.fd
	}
	for i := range p.msgs {
		p.msgs[i].Hdr.Namelen = sockaddrLen
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&p.msgs[0])), batch, 0, 0, 0)
	if e != 0 {
		return // EAGAIN: nothing after all; any other error is consumed by the read
	}
	now := time.Now()
	for i := range p.msgs[:n] {
		pkt := p.bufs[i][:p.msgs[i].Len]
		src := parseSockaddr(&p.names[i])
		if sl.rtcp {
			l.relayRTCP(pkt, src)
		} else {
			l.relayRTP(pkt, src, now, &p.h)
		}
	}
}

// control runs the queued requests; true when the poller is to return.
func (p *poller) control() bool {
	var b [8]byte
	unix.Read(p.evfd, b[:]) // reset the eventfd before taking the queue: a later submit wakes again
	p.mu.Lock()
	q := p.queue
	p.queue = nil
	stopping := p.stopping
	p.mu.Unlock()
	for _, r := range q {
		if r.done == nil {
			p.register(r.s)
			continue
		}
		p.unregister(r.s)
		close(r.done)
	}
	if !stopping {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.queue { // submitted since: closed, whatever was asked
		p.unregister(r.s)
		if r.done != nil {
			close(r.done)
		}
	}
	p.queue = nil
	for _, sl := range p.slots {
		if sl.leg != nil && sl.leg.session.state == sessionRegistered {
			p.unregister(sl.leg.session)
		}
	}
	p.stopped = true
	unix.Close(p.epfd)
	unix.Close(p.evfd)
	return true
}

func (p *poller) register(s *Session) {
	if s.state != sessionNew {
		return // closed before it was registered
	}
	s.state = sessionRegistered
	for _, l := range []*Leg{s.A, s.B} {
		for i, sk := range []sock{l.rtp, l.rtcp} {
			var idx int32
			if n := len(p.free); n > 0 {
				idx, p.free = p.free[n-1], p.free[:n-1]
			} else {
				idx = int32(len(p.slots))
				p.slots = append(p.slots, slot{})
			}
			p.slots[idx] = slot{leg: l, rtcp: i == 1}
			l.slots[i] = idx
			if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, sk.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: idx}); err != nil {
				// Cannot happen for a fresh socket (ENOMEM aside): the leg
				// just stays deaf, as a socket nobody reads.
				l.slots[i] = -1
				p.slots[idx] = slot{}
				p.free = append(p.free, idx)
			}
		}
	}
}

// unregister removes s's sockets from the epoll set, then closes them.
func (p *poller) unregister(s *Session) {
	if s.state == sessionClosed {
		return
	}
	for _, l := range []*Leg{s.A, s.B} {
		for i, sk := range []sock{l.rtp, l.rtcp} {
			if s.state == sessionRegistered && l.slots[i] >= 0 {
				unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, sk.fd, nil)
				p.slots[l.slots[i]] = slot{}
				p.free = append(p.free, l.slots[i])
				l.slots[i] = -1
			}
		}
	}
	s.closeSockets()
	s.state = sessionClosed
}
