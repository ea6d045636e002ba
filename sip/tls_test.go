package sip

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/testutil"
)

// tlsSetup is the TLS side of a test environment: a throwaway CA, the
// gateway's certificate files in t.TempDir(), and the peers' TLS settings.
type tlsSetup struct {
	t           *testing.T
	dir         string
	ca          *testutil.CA
	caFile      string
	cert, key   string // the gateway's listener certificate and key files
	clientCA    string // the listener's client_ca ("" for none)
	handshake   time.Duration
	idleTimeout time.Duration
	pbx         peerTLS
	carrier     peerTLS
	pbxCert     *testutil.Cert
	carrierCert *testutil.Cert
}

const (
	carrierServerName = "sbc.carrier.test"
	pbxServerName     = "pbx.acme.test"
)

// newTLSSetup issues the certificates: the gateway's for 127.0.0.1 (the
// dialled IP the peers verify), the carrier's for sbc.carrier.test, the
// PBX's for pbx.acme.test. The carrier's listener demands a client
// certificate from the CA, so every call to it is mutual TLS.
func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	s := &tlsSetup{t: t, dir: t.TempDir(), ca: testutil.NewCA(t, "tollgate test CA"), handshake: 5 * time.Second, idleTimeout: 5 * time.Minute}
	s.caFile = s.ca.WriteCA(t, s.dir, "ca")
	s.cert, s.key = s.ca.Issue(t, "gateway", "127.0.0.1").Write(t, s.dir, "gateway")
	s.carrierCert = s.ca.Issue(t, "carrier", carrierServerName)
	s.pbxCert = s.ca.Issue(t, "pbx", pbxServerName)
	s.carrier = peerTLS{
		server: &tls.Config{Certificates: []tls.Certificate{s.carrierCert.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: s.ca.Pool()},
		client: &tls.Config{RootCAs: s.ca.Pool(), Certificates: []tls.Certificate{s.carrierCert.TLS}},
	}
	s.pbx = peerTLS{
		server: &tls.Config{Certificates: []tls.Certificate{s.pbxCert.TLS}},
		client: &tls.Config{RootCAs: s.ca.Pool(), Certificates: []tls.Certificate{s.pbxCert.TLS}},
	}
	return s
}

// withTLS runs the PBX and the carrier over TLS (each when asked) with s.
func withTLS(s *tlsSetup, pbx, carrier bool) envOption {
	return func(spec *envSpec) {
		spec.tls = s
		if pbx {
			spec.pbxTransport = "tls"
		}
		if carrier {
			spec.carrierTransport = "tls"
		}
	}
}

// configure adds the tls listener and the TLS settings of the hops.
func (s *tlsSetup) configure(cfg *configs.Config) {
	cfg.SIP.Listen = append(cfg.SIP.Listen, configs.Listen{Transport: "tls", Address: "127.0.0.1:0", Cert: s.cert, Key: s.key, ClientCA: s.clientCA})
	cfg.SIP.TLS = configs.TLS{HandshakeTimeout: s.handshake, IdleTimeout: s.idleTimeout}
	if h := &cfg.Carriers[0].Hop; h.Transport == "tls" {
		h.ServerName, h.CA = carrierServerName, s.caFile
	}
	if h := &cfg.Tenants[0].PBX; h.Transport == "tls" {
		h.ServerName, h.CA = pbxServerName, s.caFile
	}
}

// A call end to end over TLS: the PBX calls in on the tls listener, the
// gateway dials the carrier over TLS (verifying sbc.carrier.test against
// the hop's CA, presenting its certificate to the carrier, which requires
// one), the call is answered, the PBX hangs up, billing stops.
func TestTLSCallEndToEnd(t *testing.T) {
	s := newTLSSetup(t)
	e := newEnv(t, withTLS(s, true, true))
	tlsAddr := e.gw.Addr("tls")
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	sess, callID := e.answeredCall(t)

	inv := e.carrier.waitFor(sip.INVITE, callID, time.Second).req
	if !ArrivedOverTLS(inv) {
		t.Errorf("carrier got the INVITE over %s, want TLS", inv.Transport())
	}
	if host, _, _ := net.SplitHostPort(inv.Source()); host != "127.0.0.1" {
		t.Errorf("the gateway's TLS connection to the carrier comes from %s, want the listen address 127.0.0.1", inv.Source())
	}
	via := inv.Via()
	if via == nil || via.Transport != "TLS" || via.Host != "127.0.0.1" || via.Port != atoi(t, tlsPort) {
		t.Errorf("top Via = %v, want SIP/2.0/TLS %s", via, tlsAddr)
	}
	rr := inv.RecordRoute()
	if rr == nil || rr.Address.Port != atoi(t, tlsPort) || !rr.Address.UriParams.Has("lr") {
		t.Errorf("Record-Route = %v, want the gateway's tls listener", rr)
	} else if tr, _ := rr.Address.UriParams.Get("transport"); tr != "tls" {
		t.Errorf("Record-Route transport = %q, want tls", tr)
	}
	d := e.gw.Dialog(callID)
	if d == nil || d.State() != Confirmed {
		t.Fatalf("dialog = %+v", d)
	}
	caller, callee := d.Legs()
	if caller.Transport != "TLS" || callee.Transport != "TLS" {
		t.Errorf("leg transports %s / %s, want TLS / TLS", caller.Transport, callee.Transport)
	}
	e.carrier.waitFor(sip.ACK, callID, time.Second)
	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	if bye := e.carrier.waitFor(sip.BYE, callID, time.Second).req; !ArrivedOverTLS(bye) {
		t.Errorf("carrier got the BYE over %s, want TLS", bye.Transport())
	}
	e.idle(t)
	now := time.Now()
	billed, later := e.adm.Usage(now, "acme").Seconds, e.adm.Usage(now.Add(time.Hour), "acme").Seconds
	if billed <= 0 || later != billed {
		t.Errorf("billed %v now and %v an hour later: want a positive amount that no longer grows", billed, later)
	}
}

// Inbound over TLS: the carrier calls in on the tls listener (its
// certificate is not asked for: no client_ca), the gateway dials the PBX
// with the PBX hop's server name and CA.
func TestTLSInboundCall(t *testing.T) {
	s := newTLSSetup(t)
	e := newEnv(t, withTLS(s, true, true))
	sess, code, err := e.carrier.invite(ctxT(t, 5*time.Second), e.gw, "+15550001")
	if err != nil || code != 200 {
		t.Fatalf("call: code %d err %v", code, err)
	}
	callID := callIDOf(sess.InviteRequest)
	if inv := e.pbx.waitFor(sip.INVITE, callID, time.Second).req; !ArrivedOverTLS(inv) {
		t.Errorf("PBX got the INVITE over %s, want TLS", inv.Transport())
	}
	if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	e.pbx.waitFor(sip.BYE, callID, time.Second)
	e.idle(t)
}

// A next hop whose certificate does not verify is never sent the call:
// wrong name, unknown CA, or a peer that accepts TCP and never completes
// the handshake (bounded by handshake_timeout). The caller gets 503.
func TestTLSNextHopVerified(t *testing.T) {
	other := testutil.NewCA(t, "some other CA")
	for _, tc := range []struct {
		name  string
		setup func(s *tlsSetup, cfg *configs.Config)
	}{
		{"wrong server name", func(s *tlsSetup, cfg *configs.Config) { cfg.Carriers[0].ServerName = "other.carrier.test" }},
		{"default name is the IP", func(s *tlsSetup, cfg *configs.Config) { cfg.Carriers[0].ServerName = "" }},
		{"untrusted CA", func(s *tlsSetup, cfg *configs.Config) { cfg.Carriers[0].CA = other.WriteCA(t, s.dir, "other") }},
		{"system roots", func(s *tlsSetup, cfg *configs.Config) { cfg.Carriers[0].CA = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTLSSetup(t)
			e := newEnv(t, withTLS(s, false, true), withConfig(func(cfg *configs.Config) { tc.setup(s, cfg) }))
			_, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
			if code != 503 {
				t.Errorf("INVITE answered %d, want 503 (next hop unreachable)", code)
			}
			if got := e.carrier.received(sip.INVITE, ""); len(got) != 0 {
				t.Errorf("the carrier got %d INVITEs over an unverified connection", len(got))
			}
			e.idle(t)
		})
	}

	t.Run("silent peer", func(t *testing.T) {
		s := newTLSSetup(t)
		s.handshake = 300 * time.Millisecond
		silent, err := net.Listen("tcp", carrierIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		go func() { // accept and never answer
			for {
				c, err := silent.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		e := newEnv(t, withTLS(s, false, true), withConfig(func(cfg *configs.Config) {
			cfg.Carriers[0].Address = silent.Addr().String()
		}))
		start := time.Now()
		_, code, _ := e.pbx.invite(ctxT(t, 10*time.Second), e.gw, outboundNumber)
		if took := time.Since(start); code != 503 || took > 3*time.Second {
			t.Errorf("INVITE answered %d after %s, want 503 within the 300ms handshake timeout (plus slack)", code, took)
		}
		e.idle(t)
	})
}

// dialGateway opens a TLS connection from ip to the gateway's tls listener.
func dialGateway(t *testing.T, e *env, ip string, conf *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conf = conf.Clone()
	conf.ServerName = "127.0.0.1"
	return tls.DialWithDialer(d, "tcp", e.gw.Addr("tls"), conf)
}

// options sends an out-of-dialog OPTIONS to the gateway over c and returns
// the status line of the answer.
func options(t *testing.T, c net.Conn) (string, error) {
	t.Helper()
	local := c.LocalAddr().String()
	msg := "OPTIONS sip:" + c.RemoteAddr().String() + ";transport=tls SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS " + local + ";branch=z9hG4bK-" + sip.GenerateTagN(10) + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@" + local + ">;tag=" + sip.GenerateTagN(8) + "\r\n" +
		"To: <sip:" + c.RemoteAddr().String() + ">\r\n" +
		"Call-ID: " + sip.GenerateTagN(16) + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Content-Length: 0\r\n\r\n"
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// Mutual TLS: with client_ca set, a client without a certificate, or with
// one from another CA, fails the handshake; one with a certificate from
// client_ca is served.
func TestTLSMutualAuth(t *testing.T) {
	s := newTLSSetup(t)
	clientCA := testutil.NewCA(t, "carriers CA")
	s.clientCA = clientCA.WriteCA(t, s.dir, "clients")
	e := newEnv(t, withTLS(s, false, false))
	roots := &tls.Config{RootCAs: s.ca.Pool()}

	good := roots.Clone()
	good.Certificates = []tls.Certificate{clientCA.Issue(t, "pbx", pbxServerName).TLS}
	c, err := dialGateway(t, e, tenantIP, good)
	if err != nil {
		t.Fatalf("client with a certificate from client_ca: %v", err)
	}
	if line, err := options(t, c); err != nil || line != "SIP/2.0 200 OK" {
		t.Errorf("OPTIONS over mutual TLS: %q, %v; want 200", line, err)
	}
	c.Close()

	wrong := roots.Clone()
	wrong.Certificates = []tls.Certificate{s.pbxCert.TLS} // issued by the listener's CA, not client_ca
	for name, conf := range map[string]*tls.Config{"no certificate": roots, "certificate of another CA": wrong} {
		c, err := dialGateway(t, e, tenantIP, conf)
		if err == nil {
			// TLS 1.3: the client's handshake ends before the server has
			// checked its certificate; the refusal is the first read.
			_, err = options(t, c)
			c.Close()
		}
		if err == nil {
			t.Errorf("%s: served, want the handshake refused", name)
			continue
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: %v, want a certificate alert", name, err)
		}
	}
}

// A client that connects and never completes the handshake is dropped
// after handshake_timeout.
func TestTLSHandshakeTimeout(t *testing.T) {
	s := newTLSSetup(t)
	s.handshake = 300 * time.Millisecond
	e := newEnv(t, withTLS(s, false, false))
	for _, partial := range []string{"", "\x16\x03\x01\x02\x00\x01"} { // nothing; the start of a ClientHello
		c, err := net.Dial("tcp", e.gw.Addr("tls"))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		io.WriteString(c, partial)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		took := time.Since(start)
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("sent %q: connection still open after 5s", partial)
		}
		if took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("sent %q: closed after %s, want about the 300ms handshake timeout", partial, took)
		}
	}
	// A handshake within the timeout is served.
	c, err := dialGateway(t, e, tenantIP, &tls.Config{RootCAs: s.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, err := options(t, c); err != nil || line != "SIP/2.0 200 OK" {
		t.Errorf("OPTIONS: %q, %v", line, err)
	}
}

// readClosed waits for the server to close c and returns how long it took.
func readClosed(t *testing.T, c net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	for {
		_, err := c.Read(make([]byte, 512))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", within)
		}
		return time.Since(start)
	}
}

// A TLS connection idle for idle_timeout is closed; keep-alives and a
// call in progress keep it open.
func TestTLSIdleTimeout(t *testing.T) {
	s := newTLSSetup(t)
	s.idleTimeout = 300 * time.Millisecond
	e := newEnv(t, withTLS(s, true, true))

	t.Run("idle", func(t *testing.T) {
		c, err := dialGateway(t, e, tenantIP, &tls.Config{RootCAs: s.ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if took := readClosed(t, c, 5*time.Second); took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("idle connection closed after %s, want about 300ms", took)
		}
	})

	t.Run("keep-alives", func(t *testing.T) {
		c, err := dialGateway(t, e, tenantIP, &tls.Config{RootCAs: s.ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 10 { // 1s of double-CRLF pings (RFC 5626), each answered with a pong
			if _, err := io.WriteString(c, "\r\n\r\n"); err != nil {
				t.Fatalf("ping: %v", err)
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
				t.Fatalf("pong: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if took := readClosed(t, c, 5*time.Second); took > 3*time.Second {
			t.Errorf("closed %s after the last ping", took)
		}
	})

	t.Run("call in progress", func(t *testing.T) {
		sess, callID := e.answeredCall(t)
		e.carrier.waitFor(sip.ACK, callID, time.Second)
		gwTP, pbxTP := e.gw.ua.TransportLayer(), e.pbx.ua.TransportLayer()
		conn := func(tp *sip.TransportLayer, addr string) sip.Connection {
			c, err := tp.GetConnection("tls", addr)
			if err != nil {
				return nil
			}
			c.TryClose()
			return c
		}
		toCarrier, fromPBX := conn(gwTP, e.carrier.addr()), conn(pbxTP, e.gw.Addr("tls"))
		if toCarrier == nil || fromPBX == nil {
			t.Fatalf("connections: to the carrier %v, from the PBX %v", toCarrier, fromPBX)
		}
		time.Sleep(4 * s.idleTimeout) // no SIP on either connection
		if c := conn(gwTP, e.carrier.addr()); c != toCarrier {
			t.Errorf("the connection to the carrier was closed during the call")
		}
		if c := conn(pbxTP, e.gw.Addr("tls")); c != fromPBX {
			t.Errorf("the PBX's connection was closed during the call")
		}
		if err := sess.Bye(ctxT(t, 5*time.Second)); err != nil {
			t.Fatalf("BYE: %v", err)
		}
		e.carrier.waitFor(sip.BYE, callID, time.Second)
		e.idle(t)
		// Idle once the call is over.
		eventually(t, 3*time.Second, func() bool { return conn(gwTP, e.carrier.addr()) == nil && conn(pbxTP, e.gw.Addr("tls")) == nil },
			"connections still open after the call ended and idle_timeout passed")
	})
}

// ReloadCertificates swaps the listener's certificate for new handshakes;
// a bad new one keeps the old.
func TestTLSReloadCertificates(t *testing.T) {
	s := newTLSSetup(t)
	e := newEnv(t, withTLS(s, false, false))
	served := func() string {
		t.Helper()
		c, err := dialGateway(t, e, tenantIP, &tls.Config{RootCAs: s.ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "gateway" {
		t.Fatalf("served %q, want the first certificate", cn)
	}
	// An established connection keeps working across the reload.
	old, err := dialGateway(t, e, tenantIP, &tls.Config{RootCAs: s.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	next := s.ca.Issue(t, "gateway-renewed", "127.0.0.1")
	if err := os.WriteFile(s.cert, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.key, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.ReloadCertificates(); err != nil {
		t.Fatal(err)
	}
	if cn := served(); cn != "gateway-renewed" {
		t.Errorf("after reload served %q, want gateway-renewed", cn)
	}
	if line, err := options(t, old); err != nil || line != "SIP/2.0 200 OK" {
		t.Errorf("connection from before the reload: %q, %v", line, err)
	}

	// Bad files: a key that does not match, a truncated certificate, a
	// missing file. Each reload fails and the renewed certificate stays.
	other := s.ca.Issue(t, "other", "127.0.0.1")
	for name, write := range map[string]func(){
		"mismatched key": func() { os.WriteFile(s.key, other.KeyPEM, 0o600) },
		"truncated cert": func() {
			os.WriteFile(s.key, next.KeyPEM, 0o600)
			os.WriteFile(s.cert, next.CertPEM[:len(next.CertPEM)/2], 0o600)
		},
		"missing cert": func() { os.Remove(s.cert) },
	} {
		write()
		if err := e.gw.ReloadCertificates(); err == nil {
			t.Errorf("%s: reload succeeded", name)
		}
		if cn := served(); cn != "gateway-renewed" {
			t.Errorf("%s: served %q after a failed reload, want gateway-renewed kept", name, cn)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("not a port: %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return n
}
