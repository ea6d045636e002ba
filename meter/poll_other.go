//go:build !linux

package meter

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// Elsewhere than Linux the relay keeps Go's sockets and one reader
// goroutine per socket, each with its own buffer (poll_linux.go has the
// shared pollers).

type sock struct{ c *net.UDPConn }

func listenUDP(ap netip.AddrPort) (sock, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	return sock{c}, err
}

func (s sock) writeTo(pkt []byte, dst netip.AddrPort) error {
	_, err := s.c.WriteToUDPAddrPort(pkt, dst)
	return err
}

func (s sock) close() { s.c.Close() }

type legPoll struct{}

// poller starts the readers of a session's sockets; closing a socket ends
// its reader.
type poller struct{}

func newPoller() (*poller, error) { return &poller{}, nil }

func (p *poller) add(s *Session) bool {
	for _, l := range []*Leg{s.A, s.B} {
		go l.read(l.rtp, false)
		go l.read(l.rtcp, true)
	}
	return true
}

func (p *poller) close(s *Session) { s.closeSockets() }

func (p *poller) stop() {}

func (l *Leg) read(s sock, rtcp bool) {
	buf := make([]byte, maxPacket+1)
	var h rtp.Header
	for {
		n, src, err := s.c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if rtcp {
			l.relayRTCP(buf[:n], src)
		} else {
			l.relayRTP(buf[:n], src, time.Now(), &h)
		}
	}
}
