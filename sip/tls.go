package sip

// TLS transport (issue 9, part 4): the tls listener, TLS next hops, the
// handshake and idle timeouts, and certificate reload.
//
// sipgo serves a net.Listener of ready connections (ServeTLS) and dials
// TLS with one tls.Config per user agent, whose ServerName it sets to the
// dialled IP. tollgate needs a server name and a CA per next hop, a bounded
// handshake and connections that leave from the listen address, so it
// dials TLS next hops itself: a client transaction to a TLS destination
// first makes sure the transport's pool holds a connection to it (dialled
// here, verified against that hop's settings) and only then hands the
// request to sipgo, which finds and reuses that connection. Dialled
// connections enter sipgo through the same listener as accepted ones, so
// sipgo reads both and they get the same idle timeout.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
)

// ArrivedOverTLS reports whether req came in over a TLS connection: the
// tls listener, or a TLS connection the gateway dialled to a next hop.
func ArrivedOverTLS(req *sip.Request) bool { return sip.NetworkToLower(req.Transport()) == "tls" }

// tlsEdge is the TLS state of a gateway with a tls listener.
type tlsEdge struct {
	log      zerolog.Logger
	listen   configs.Listen // the tls listener's entry
	timeouts configs.TLS
	localIP  net.IP // dialled connections leave from it (nil: any)
	ln       *tlsListener
	busy     func(remote string) bool // a call in progress signals over remote

	files atomic.Pointer[tlsFiles] // the listener's certificate and client CAs
	hops  atomic.Pointer[hopIndex] // per next hop: server name and CA

	mu      sync.Mutex
	routing []hopSpec            // the TLS hops of the last routing config (for reload)
	dialing map[string]*dialWait // dials in progress, by destination

	failMu     sync.Mutex
	failLogged time.Time // last handshake failure logged (at most one a second)
	failQuiet  int       // failures not logged since
}

// tlsFiles is one loaded generation of the listener's files.
type tlsFiles struct {
	cert   *tls.Certificate
	server *tls.Config // returned by GetConfigForClient: client auth and CAs of this generation
}

// hopSpec is the TLS setting of a next hop as configured.
type hopSpec struct {
	addr       netip.AddrPort
	serverName string
	ca         string
}

// hopTLS is a next hop's TLS setting, loaded.
type hopTLS struct {
	serverName string         // "" verifies the dialled IP
	roots      *x509.CertPool // nil: the system roots
}

// hopIndex finds the TLS setting of a destination: the hop with that
// address, else a hop on that IP, else the default (system roots,
// verified against the IP).
type hopIndex struct {
	byAddr map[netip.AddrPort]*hopTLS
	byIP   map[netip.Addr]*hopTLS
}

var defaultHopTLS = &hopTLS{}

func (x *hopIndex) lookup(ap netip.AddrPort) *hopTLS {
	if h := x.byAddr[ap]; h != nil {
		return h
	}
	if h := x.byIP[ap.Addr()]; h != nil {
		return h
	}
	return defaultHopTLS
}

// tlsHops lists the TLS next hops of cfg: carriers and tenant PBXs.
func tlsHops(cfg *configs.Config) []hopSpec {
	var out []hopSpec
	add := func(h configs.Hop) {
		if !strings.EqualFold(h.Transport, "tls") {
			return
		}
		ap, err := netip.ParseAddrPort(h.Address)
		if err != nil {
			return // Validate rejects it
		}
		out = append(out, hopSpec{addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), serverName: h.ServerName, ca: h.CA})
	}
	for _, c := range cfg.Carriers {
		add(c.Hop)
	}
	for _, t := range cfg.Tenants {
		add(t.PBX)
	}
	return out
}

// loadHops loads the CAs of specs. A hop whose CA fails to load is left
// out (dials to it verify against the system roots and fail for a private
// CA), and the first error is returned.
func loadHops(specs []hopSpec) (*hopIndex, error) {
	x := &hopIndex{byAddr: map[netip.AddrPort]*hopTLS{}, byIP: map[netip.Addr]*hopTLS{}}
	pools := map[string]*x509.CertPool{}
	var first error
	for _, s := range specs {
		h := &hopTLS{serverName: s.serverName}
		if s.ca != "" {
			pool, ok := pools[s.ca]
			if !ok {
				var err error
				if pool, err = configs.LoadCertPool(s.ca); err != nil {
					if first == nil {
						first = fmt.Errorf("sip: tls next hop %s: ca: %w", s.addr, err)
					}
					continue
				}
				pools[s.ca] = pool
			}
			h.roots = pool
		}
		if _, dup := x.byAddr[s.addr]; !dup {
			x.byAddr[s.addr] = h
		}
		if _, dup := x.byIP[s.addr.Addr()]; !dup {
			x.byIP[s.addr.Addr()] = h
		}
	}
	return x, first
}

// loadFiles loads the listener's certificate, key and client CA.
func (e *tlsEdge) loadFiles() (*tlsFiles, error) {
	cert, err := configs.LoadKeyPair(e.listen.Cert, e.listen.Key)
	if err != nil {
		return nil, fmt.Errorf("sip: tls listener %s: %w", e.listen.Address, err)
	}
	f := &tlsFiles{cert: &cert}
	f.server = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: e.getCertificate,
	}
	if e.listen.ClientCA != "" {
		pool, err := configs.LoadCertPool(e.listen.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("sip: tls listener %s: client_ca: %w", e.listen.Address, err)
		}
		f.server.ClientAuth = tls.RequireAndVerifyClientCert
		f.server.ClientCAs = pool
	}
	return f, nil
}

func (e *tlsEdge) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return e.files.Load().cert, nil
}

func (e *tlsEdge) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return e.files.Load().server, nil
}

// clientCertificate is presented to next hops that ask for one (mutual
// TLS): the listener's certificate.
func (e *tlsEdge) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return e.files.Load().cert, nil
}

// serverConfig is the listener's tls.Config: every handshake takes the
// generation current at its ClientHello.
func (e *tlsEdge) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetCertificate:     e.getCertificate,
		GetConfigForClient: e.configForClient,
	}
}

// fallbackTLSConfig is the user agent's client tls.Config, used only when
// sipgo dials TLS itself (a destination given by host name, or a
// connection that closed between the gateway's dial and its use): sipgo
// sets ServerName to the dialled host, verified against the system roots;
// the listener's certificate is the client certificate.
func (g *Gateway) fallbackTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if e := g.tls; e != nil {
				return e.files.Load().cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
}

// listenTLS binds the tls listener of entry l and loads its files.
func (g *Gateway) listenTLS(l configs.Listen) (*listener, error) {
	e := &tlsEdge{
		log:      g.log.With().Str("transport", "TLS").Logger(),
		listen:   l,
		timeouts: g.cfg.SIP.TLS,
		busy:     g.tlsBusy,
		dialing:  map[string]*dialWait{},
	}
	if e.timeouts.HandshakeTimeout <= 0 {
		e.timeouts.HandshakeTimeout = configs.DefaultTLSHandshakeTimeout
	}
	if e.timeouts.IdleTimeout <= 0 {
		e.timeouts.IdleTimeout = configs.DefaultTLSIdleTimeout
	}
	files, err := e.loadFiles()
	if err != nil {
		return nil, err
	}
	e.files.Store(files)
	e.routing = tlsHops(g.cfg)
	hops, err := loadHops(e.routing)
	if err != nil {
		return nil, err
	}
	e.hops.Store(hops)
	raw, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, &ListenError{Field: "sip.listen", Transport: "tls", Address: l.Address, Err: err}
	}
	a := raw.Addr().(*net.TCPAddr)
	if !a.IP.IsUnspecified() {
		e.localIP = a.IP
	}
	e.ln = newTLSListener(g.streamListener(raw), e) // connection caps before the handshake
	g.tls = e
	return &listener{transport: "TLS", host: a.IP.String(), port: a.Port, ln: e.ln}, nil
}

// installTLSRequester makes the gateway's client dial TLS next hops
// before sipgo sends to them. Called before any listener is served.
func (g *Gateway) installTLSRequester() {
	if g.tls != nil {
		g.client.TxRequester = &tlsRequester{g: g, e: g.tls}
	}
}

// ReloadCertificates reads the TLS files again: the listener's certificate
// and key, its client CA and the next hops' CAs. New handshakes use them;
// established connections keep theirs. If any file is bad, nothing changes
// and the error is logged and returned. Without a tls listener it does
// nothing. The serve command calls it on SIGHUP.
func (g *Gateway) ReloadCertificates() error {
	e := g.tls
	if e == nil {
		g.log.Info().Msg("no tls listener: no certificate to reload")
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	files, err := e.loadFiles()
	var hops *hopIndex
	if err == nil {
		hops, err = loadHops(e.routing)
	}
	if err != nil {
		e.log.Error().Err(err).Msg("tls reload failed: keeping the current certificates")
		return err
	}
	e.files.Store(files)
	e.hops.Store(hops)
	leaf := files.cert.Leaf
	ev := e.log.Info()
	if leaf != nil {
		ev = ev.Str("subject", leaf.Subject.String()).Time("not_after", leaf.NotAfter)
	}
	ev.Msg("tls certificates reloaded")
	return nil
}

// setTLSRouting takes the TLS next hops of a new routing config. A hop
// whose CA cannot be loaded is reported; the others take effect.
func (g *Gateway) setTLSRouting(cfg *configs.Config) error {
	e := g.tls
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.routing = tlsHops(cfg)
	hops, err := loadHops(e.routing)
	e.hops.Store(hops)
	return err
}

// tlsBusy reports whether a call in progress has a party signalling from
// remote over TLS: its connection is not idle, however quiet.
func (g *Gateway) tlsBusy(remote string) bool {
	for _, d := range g.dialogs.All() {
		caller, callee := d.Legs()
		for _, l := range []Leg{caller, callee} {
			if l.Source == remote && sip.NetworkToLower(l.Transport) == "tls" {
				return true
			}
		}
	}
	return false
}

// logHandshakeFailure logs a failed inbound handshake, at most one line a
// second (a scan of the port must not flood the log).
func (e *tlsEdge) logHandshakeFailure(remote string, err error) {
	e.failMu.Lock()
	now := time.Now()
	if now.Sub(e.failLogged) < time.Second {
		e.failQuiet++
		e.failMu.Unlock()
		return
	}
	quiet := e.failQuiet
	e.failLogged, e.failQuiet = now, 0
	e.failMu.Unlock()
	e.log.Warn().Err(err).Str("remote", remote).Int("not_logged_since", quiet).Msg("tls handshake failed")
}

// ---------------------------------------------------------------------------
// The listener sipgo serves: accepted connections once their handshake is
// done, and connections the gateway dialled.

type tlsConnItem struct {
	conn  net.Conn
	added chan struct{} // closed once sipgo has taken the connection (dialled ones)
}

type tlsListener struct {
	raw    net.Listener
	e      *tlsEdge
	conf   *tls.Config
	ready  chan tlsConnItem
	closed chan struct{}
	once   sync.Once

	pending chan struct{} // the last dialled connection handed out; Accept's goroutine only
}

func newTLSListener(raw net.Listener, e *tlsEdge) *tlsListener {
	l := &tlsListener{raw: raw, e: e, conf: e.serverConfig(), ready: make(chan tlsConnItem), closed: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// Accept returns the next connection ready for SIP. sipgo calls it in one
// loop and registers each connection in its pool before the next call, so
// the next call means the previous dialled connection is in the pool.
func (l *tlsListener) Accept() (net.Conn, error) {
	if l.pending != nil {
		close(l.pending)
		l.pending = nil
	}
	select {
	case it := <-l.ready:
		l.pending = it.added
		return it.conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.closed)
		err = l.raw.Close()
	})
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.raw.Addr() }

// acceptLoop accepts TCP connections and runs each handshake in its own
// goroutine, bounded by the handshake timeout.
func (l *tlsListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.raw.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.Close()
				return
			}
			// EMFILE and the like: wait and retry, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.e.log.Warn().Err(err).Dur("retry_in", backoff).Msg("tls accept failed")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(raw net.Conn) {
	tc := tls.Server(raw, l.conf)
	raw.SetDeadline(time.Now().Add(l.e.timeouts.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		l.e.logHandshakeFailure(raw.RemoteAddr().String(), err)
		return
	}
	raw.SetDeadline(time.Time{})
	c := l.e.idle(tc)
	select {
	case l.ready <- tlsConnItem{conn: c}:
	case <-l.closed:
		c.Close()
	}
}

// inject hands a dialled connection to sipgo and waits until it is in the
// pool.
func (l *tlsListener) inject(ctx context.Context, c net.Conn) error {
	added := make(chan struct{})
	select {
	case l.ready <- tlsConnItem{conn: c, added: added}:
	case <-l.closed:
		c.Close()
		return net.ErrClosed
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
	select {
	case <-added:
		return nil
	case <-l.closed:
		return net.ErrClosed
	case <-ctx.Done():
		// sipgo has the connection and will register it; the request
		// finds it or dials its own.
		return nil
	}
}

// ---------------------------------------------------------------------------
// Idle timeout.

// idleConn closes a connection (its Read ends with io.EOF, which sipgo
// takes as a clean close) when nothing was read or written for the idle
// timeout and no call in progress uses it. The read deadline is moved only
// when it passes, not at every read.
type idleConn struct {
	net.Conn
	e      *tlsEdge
	remote string
	last   atomic.Int64 // UnixNano of the last read or write
}

func (e *tlsEdge) idle(c net.Conn) *idleConn {
	ic := &idleConn{Conn: c, e: e, remote: c.RemoteAddr().String()}
	now := time.Now()
	ic.last.Store(now.UnixNano())
	c.SetReadDeadline(now.Add(e.timeouts.IdleTimeout))
	return ic
}

func (c *idleConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if n > 0 {
			c.last.Store(time.Now().UnixNano())
		}
		if err == nil || n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		now := time.Now()
		next := time.Unix(0, c.last.Load()).Add(c.e.timeouts.IdleTimeout)
		if !next.After(now) {
			if c.e.busy == nil || !c.e.busy(c.remote) {
				c.e.log.Debug().Str("remote", c.remote).Dur("idle", c.e.timeouts.IdleTimeout).Msg("tls connection idle: closed")
				return 0, io.EOF
			}
			next = now.Add(c.e.timeouts.IdleTimeout)
		}
		if err := c.Conn.SetReadDeadline(next); err != nil {
			return 0, err
		}
	}
}

func (c *idleConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// ---------------------------------------------------------------------------
// Dialling next hops.

// tlsRequester is the gateway client's transaction requester: a request
// to a TLS destination first gets its connection (dialled here with the
// hop's settings, within the handshake timeout); every request then goes
// to sipgo's transaction layer (or, for ACK, its transport) as without it.
type tlsRequester struct {
	g *Gateway
	e *tlsEdge
}

var _ sipgo.ClientTransactionRequester = (*tlsRequester)(nil)

func (r *tlsRequester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	tp := r.g.ua.TransportLayer()
	if !ArrivedOverTLS(req) { // the request's transport: it leaves over TLS
		if req.IsAck() {
			return nil, tp.WriteMsg(req)
		}
		return r.g.ua.TransactionLayer().Request(ctx, req)
	}
	// The context bounds connecting only: sipgo uses it to get the
	// connection, not for the transaction.
	ctx, cancel := context.WithTimeout(ctx, r.e.timeouts.HandshakeTimeout)
	defer cancel()
	if err := r.e.ensureConn(ctx, tp, req.Destination()); err != nil {
		return nil, err
	}
	if req.IsAck() {
		c, err := tp.ClientRequestConnection(ctx, req)
		if err != nil {
			return nil, err
		}
		defer c.TryClose()
		return nil, c.WriteMsg(req)
	}
	return r.g.ua.TransactionLayer().Request(ctx, req)
}

type dialWait struct {
	done chan struct{}
	err  error
}

// ensureConn makes sure sipgo's TLS pool holds a connection to dest
// (ip:port), dialling it once however many requests wait for it. A
// destination given by host name is left to sipgo.
func (e *tlsEdge) ensureConn(ctx context.Context, tp *sip.TransportLayer, dest string) error {
	ap, err := netip.ParseAddrPort(dest)
	if err != nil {
		return nil
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	key := ap.String()
	if c, err := tp.GetConnection("tls", key); err == nil && c != nil {
		c.TryClose() // GetConnection took a reference
		return nil
	}
	e.mu.Lock()
	if w, ok := e.dialing[key]; ok {
		e.mu.Unlock()
		select {
		case <-w.done:
			return w.err
		case <-ctx.Done():
			return fmt.Errorf("sip: tls connect to %s: %w", key, ctx.Err())
		}
	}
	w := &dialWait{done: make(chan struct{})}
	e.dialing[key] = w
	e.mu.Unlock()

	w.err = e.dial(ctx, ap)
	e.mu.Lock()
	delete(e.dialing, key)
	e.mu.Unlock()
	close(w.done)
	return w.err
}

// dial connects to ap from the listener's IP, runs the handshake with the
// hop's server name and CA, and hands the connection to sipgo.
func (e *tlsEdge) dial(ctx context.Context, ap netip.AddrPort) error {
	h := e.hops.Load().lookup(ap)
	d := net.Dialer{}
	if e.localIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: e.localIP}
	}
	raw, err := d.DialContext(ctx, "tcp", ap.String())
	if err != nil {
		return fmt.Errorf("sip: tls connect to %s: %w", ap, err)
	}
	name := h.serverName
	if name == "" {
		name = ap.Addr().String()
	}
	tc := tls.Client(raw, &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           name,
		RootCAs:              h.roots,
		GetClientCertificate: e.clientCertificate,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return fmt.Errorf("sip: tls handshake with %s (server name %s): %w", ap, name, err)
	}
	e.log.Debug().Str("remote", ap.String()).Str("server_name", name).Msg("tls connection to next hop")
	return e.ln.inject(ctx, e.idle(tc))
}
