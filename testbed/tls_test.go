package testbed

// SIPp over TLS through the gateway. SIPp speaks TLS itself (-t l1) when
// the sipp found is built with OpenSSL: $TOLLGATE_SIPP_TLS, else sipp on
// PATH. Debian's sip-tester is built without it; then SIPp runs over TCP
// (-t t1) and a TLS proxy in the test terminates TLS beside it, so the
// gateway's TLS listener and its TLS dialling are exercised either way.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testutil"
)

// gatewayTLS is the TLS part of a testbed gateway's config.
type gatewayTLS struct {
	Cert, Key, ClientCA string // the tls listener's files
	CarrierCA           string // the carrier hop's ca
	CarrierServerName   string // the carrier hop's server_name
}

// yaml returns the tls listener's entry in sip.listen and the carrier's
// hop fields.
func (c *gatewayTLS) yaml(addr string) (listen, carrier string) {
	listen = fmt.Sprintf("    - {transport: tls, address: %q, cert: %q, key: %q, client_ca: %q}\n", addr, c.Cert, c.Key, c.ClientCA)
	carrier = fmt.Sprintf("    transport: tls\n    server_name: %s\n    ca: %q\n", c.CarrierServerName, c.CarrierCA)
	return listen, carrier
}

// sippTLS returns a sipp executable built with TLS, or "".
func sippTLS(t *testing.T) string {
	t.Helper()
	candidates := []string{}
	if p := os.Getenv("TOLLGATE_SIPP_TLS"); p != "" {
		candidates = append(candidates, p)
	}
	if p, err := exec.LookPath("sipp"); err == nil {
		candidates = append(candidates, p)
	}
	for _, bin := range candidates {
		out, _ := exec.Command(bin, "-h").CombinedOutput()
		if strings.Contains(string(out), "l1: TLS") {
			return bin
		}
	}
	if p := os.Getenv("TOLLGATE_SIPP_TLS"); p != "" {
		t.Fatalf("TOLLGATE_SIPP_TLS=%s is not a sipp built with TLS", p)
	}
	return ""
}

// tcpBound reports whether something is bound to ip:port (TCP). It
// binds rather than connects: SIPp's TLS server exits on a connection
// that does not handshake.
func tcpBound(ip string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	ln.Close()
	return false
}

// tlsProxy accepts on ln and pipes each connection to a new one from dial:
// the TLS end SIPp lacks when built without OpenSSL.
func tlsProxy(t *testing.T, ln net.Listener, dial func() (net.Conn, error)) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				out, err := dial()
				if err != nil {
					t.Logf("tls proxy: %v", err)
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); done <- struct{}{} }()
				go func() { io.Copy(in, out); done <- struct{}{} }()
				<-done
			}()
		}
	}()
}

// TestSIPpTLSCall: SIPp's uac (the PBX) calls over TLS into the gateway's
// tls listener, which demands a client certificate (client_ca); the
// gateway calls SIPp's uas (the carrier) over TLS, verifying its
// certificate for sbc.carrier.test against the hop's CA and presenting
// its own (the carrier demands one). Every call is answered and hung up,
// admitted and ended once. Then the certificate is renewed on disk and
// SIGHUP makes new handshakes get it, and a client without a certificate
// is refused.
func TestSIPpTLSCall(t *testing.T) {
	requireSIPp(t)
	const calls = 20
	bin := sippTLS(t)
	native := bin != ""
	if native {
		t.Logf("SIPp speaks TLS itself (%s, -t l1)", bin)
	} else {
		t.Log("sipp is built without TLS: SIPp runs over TCP behind a TLS proxy (set TOLLGATE_SIPP_TLS to a sipp built with -DUSE_SSL=1 for -t l1)")
	}

	dir := t.TempDir()
	ca := testutil.NewCA(t, "testbed CA")
	caFile, crlFile := ca.WriteCA(t, dir, "ca"), ca.WriteCRL(t, dir, "ca")
	gwCert, gwKey := ca.Issue(t, "gateway", gatewayIP).Write(t, dir, "gateway")
	pbx, carrier := ca.Issue(t, "pbx", pbxIP), ca.Issue(t, "carrier", "sbc.carrier.test")
	pbxCert, pbxKey := pbx.Write(t, dir, "pbx")
	carrierCert, carrierKey := carrier.Write(t, dir, "carrier")

	gw := startGateway(t, gatewayConfig{MaxParallelCalls: -1, ShutdownGrace: 2 * time.Second, TLS: &gatewayTLS{
		Cert: gwCert, Key: gwKey, ClientCA: caFile, CarrierCA: caFile, CarrierServerName: "sbc.carrier.test",
	}})

	// The carrier.
	uasArgs := []string{"-sn", "uas", "-i", carrierIP, "-mi", carrierIP, "-mp", strconv.Itoa(freeMediaPort(t, carrierIP)), "-trace_err"}
	uasPort := gw.carrierPort
	if native {
		uasArgs = append(uasArgs, "-t", "l1", "-tls_cert", carrierCert, "-tls_key", carrierKey, "-tls_ca", caFile, "-tls_crl", crlFile)
	} else {
		uasPort = freeTCPPort(t, carrierIP)
		uasArgs = append(uasArgs, "-t", "t1")
		ln, err := tls.Listen("tcp", net.JoinHostPort(carrierIP, strconv.Itoa(gw.carrierPort)), &tls.Config{
			Certificates: []tls.Certificate{carrier.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(),
		})
		if err != nil {
			t.Fatal(err)
		}
		tlsProxy(t, ln, func() (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(carrierIP)}}
			return d.Dial("tcp", net.JoinHostPort(carrierIP, strconv.Itoa(uasPort)))
		})
	}
	uas := startSIPpBinary(t, orSIPp(bin), "uas", append(uasArgs, "-p", strconv.Itoa(uasPort))...)
	if !poll(10*time.Second, func() bool { return tcpBound(carrierIP, uasPort) }) {
		uas.dump()
		t.Fatalf("sipp uas not listening on %s:%d", carrierIP, uasPort)
	}

	// The PBX.
	uacArgs := []string{
		"-sn", "uac", "-i", pbxIP, "-p", strconv.Itoa(freeTCPPort(t, pbxIP)),
		"-mi", pbxIP, "-mp", strconv.Itoa(freeMediaPort(t, pbxIP)), "-s", callee,
		"-trace_stat", "-stf", "stats.csv", "-trace_err", "-recv_timeout", "10000",
		"-timeout", "40s", "-timeout_error",
		"-r", "10", "-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-d", "500",
	}
	if native {
		uacArgs = append(uacArgs, "-t", "l1", "-tls_cert", pbxCert, "-tls_key", pbxKey, "-tls_ca", caFile, "-tls_crl", crlFile)
	} else {
		uacArgs = append(uacArgs, "-t", "t1")
		ln, err := net.Listen("tcp", net.JoinHostPort(pbxIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		// SIPp sends to the proxy (-rsa) but addresses the gateway in its
		// Request-URIs, as it does over TLS.
		uacArgs = append(uacArgs, "-rsa", ln.Addr().String())
		tlsProxy(t, ln, func() (net.Conn, error) {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pbxIP)}, Timeout: 5 * time.Second}
			return tls.DialWithDialer(d, "tcp", gw.tlsAddr, &tls.Config{
				RootCAs: ca.Pool(), ServerName: gatewayIP, Certificates: []tls.Certificate{pbx.TLS},
			})
		})
	}
	uac := startSIPpBinary(t, orSIPp(bin), "uac", append(uacArgs, gw.tlsAddr)...)
	if code := uac.wait(50 * time.Second); code != 0 {
		t.Errorf("sipp uac exit code %d, want 0 (every call successful)", code)
	}
	if st := uac.stats(); st["SuccessfulCall(C)"] != calls || st["FailedCall(C)"] != 0 {
		t.Errorf("SIPp successful/failed calls = %d/%d, want %d/0", st["SuccessfulCall(C)"], st["FailedCall(C)"], calls)
	}
	gw.waitLog(10*time.Second, strconv.Itoa(calls)+` "call ended" lines`, func() bool {
		return gw.count(message("call ended")) >= calls
	})
	if got := gw.count(decision("admit", "")); got != calls {
		t.Errorf("admit decisions = %d, want %d", got, calls)
	}
	if got := gw.count(func(l logLine) bool {
		return l.str("message") == "call ended" && l.str("cause") == "bye_caller" && l.str("state") == "confirmed"
	}); got != calls {
		t.Errorf(`"call ended" with cause bye_caller after a confirmed call = %d, want %d`, got, calls)
	}

	// The certificate is renewed on disk; SIGHUP.
	handshake := func(certs ...tls.Certificate) (string, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(pbxIP)}, Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", gw.tlsAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: gatewayIP, Certificates: certs})
		if err != nil {
			return "", err
		}
		defer c.Close()
		// TLS 1.3: a refused client certificate shows on the first read.
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !os.IsTimeout(err) {
			return "", err
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := handshake(pbx.TLS); err != nil || cn != "gateway" {
		t.Fatalf("before the reload: %q, %v", cn, err)
	}
	renewed := ca.Issue(t, "gateway-renewed", gatewayIP)
	if err := os.WriteFile(gwCert, renewed.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gwKey, renewed.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	gw.signal(syscall.SIGHUP)
	gw.waitLog(5*time.Second, "the certificate reload", func() bool { return gw.count(message("tls certificates reloaded")) == 1 })
	if cn, err := handshake(pbx.TLS); err != nil || cn != "gateway-renewed" {
		t.Errorf("after SIGHUP: %q, %v; want gateway-renewed", cn, err)
	}
	// Mutual TLS: no client certificate, no service.
	if cn, err := handshake(); err == nil {
		t.Errorf("a client without a certificate was served (%q)", cn)
	}

	gw.signal(syscall.SIGTERM)
	if code := gw.waitExit(10 * time.Second); code != 0 {
		t.Errorf("tollgate exit code %d, want 0", code)
	}
	gw.noErrors()
}

func orSIPp(bin string) string {
	if bin == "" {
		return "sipp"
	}
	return bin
}
