package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/testutil"
)

// SIGHUP reloads the TLS listener's certificate: new handshakes get the
// new one; a bad file keeps the current one and logs an error; SIGHUP
// does not stop the process.
func TestServeSIGHUPReloadsCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "serve test CA")
	certFile, keyFile := ca.Issue(t, "first", "127.0.0.1").Write(t, dir, "gw")
	tlsAddr, apiAddr := freeTCPAddr(t), freeTCPAddr(t)
	cfg, err := configs.Parse("serve.yaml", []byte(fmt.Sprintf(`
log: {level: info}
sip:
  listen:
    - {transport: udp, address: "%s"}
    - {transport: tls, address: "%s", cert: "%s", key: "%s"}
  shutdown_grace: 0s
carriers: [{name: carrier, address: 127.0.0.2:5060}]
plans: [{name: p}]
tenants: [{name: demo, plan: p, carrier: carrier, sources: [127.0.0.10/32]}]
store: {data_dir: "%s"}
api: {listen: "%s"}
nats: {listen: "off"}
`, freeUDPAddr(t), tlsAddr, certFile, keyFile, filepath.Join(dir, "data"), apiAddr)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serveUntil(cfg, logs, sigs) }()
	defer func() {
		sigs <- syscall.SIGTERM
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop; log:\n%s", logs)
		}
	}()

	served := func() string {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", tlsAddr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			return "error: " + err.Error()
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("serve returned %v while waiting for %s; log:\n%s", err, what, logs)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; log:\n%s", what, logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the first certificate", func() bool { return served() == "first" })

	second := ca.Issue(t, "second", "127.0.0.1")
	second.Write(t, dir, "gw")
	sigs <- syscall.SIGHUP
	waitFor("the reloaded certificate", func() bool { return served() == "second" })
	if !strings.Contains(logs.String(), "tls certificates reloaded") {
		t.Errorf("no reload line in the log:\n%s", logs)
	}

	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor("the failed reload", func() bool { return strings.Contains(logs.String(), "tls reload failed") })
	if cn := served(); cn != "second" {
		t.Errorf("after a failed reload the listener serves %q, want second", cn)
	}
}
