package bus_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/testutil"
)

// external is the nats section of a config for an external server at url
// with extra fields set by mod, defaults applied.
func external(url string, mod func(*configs.NATS)) configs.NATS {
	c := configs.Config{NATS: configs.NATS{URL: url}}
	if mod != nil {
		mod(&c.NATS)
	}
	c.ApplyDefaults()
	return c.NATS
}

// usable checks the connection is up and JetStream answers on it.
func usable(t *testing.T, nc *nats.Conn) {
	t.Helper()
	if !nc.IsConnected() {
		t.Fatalf("not connected: %v", nc.LastError())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bus.EnsureStream(ctx, js, streamCfg(), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
}

func env(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

func TestConnectUserPassword(t *testing.T) {
	srv := bustest.StartOpts(t, &server.Options{Username: "tollgate", Password: "s3cret-pw"})
	cfg := external(srv.ClientURL(), func(n *configs.NATS) { n.User, n.PasswordEnv = "tollgate", "NATS_PASSWORD" })
	nc, err := bus.Connect(cfg, "gw1", nil, zerolog.Nop(), env(map[string]string{"NATS_PASSWORD": "s3cret-pw"}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	usable(t, nc)
	if nc.Opts.Name != "tollgate gw1" || nc.Opts.MaxReconnect != -1 || nc.Opts.ReconnectBufSize != -1 || !nc.Opts.IgnoreAuthErrorAbort {
		t.Errorf("options: name %q max reconnect %d buf %d", nc.Opts.Name, nc.Opts.MaxReconnect, nc.Opts.ReconnectBufSize)
	}

	// A wrong password is refused at start: a config error.
	_, err = bus.Connect(cfg, "gw1", nil, zerolog.Nop(), env(map[string]string{"NATS_PASSWORD": "wrong"}))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Errorf("wrong password: %v", err)
	}
	// No password in the environment: an error naming the variable.
	_, err = bus.Connect(cfg, "gw1", nil, zerolog.Nop(), env(nil))
	if !errors.Is(err, bus.ErrEnv) || !strings.Contains(err.Error(), "NATS_PASSWORD") {
		t.Errorf("without the variable: %v", err)
	}
}

func TestConnectToken(t *testing.T) {
	srv := bustest.StartOpts(t, &server.Options{Authorization: "tok-0123456789"})
	cfg := external(srv.ClientURL(), func(n *configs.NATS) { n.TokenEnv = "NATS_TOKEN" })
	nc, err := bus.Connect(cfg, "gw1", nil, zerolog.Nop(), env(map[string]string{"NATS_TOKEN": "tok-0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	usable(t, nc)
}

func TestConnectNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := bustest.StartOpts(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	nc, err := bus.Connect(external(srv.ClientURL(), func(n *configs.NATS) { n.NKeyFile = seedFile }), "gw1", nil, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	usable(t, nc)
}

// TLS with a server that verifies the client's certificate: a
// certificate of the test CA (crypto/x509, internal/testutil).
func TestConnectTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "nats test CA")
	caFile := ca.WriteCA(t, dir, "ca")
	srvCert, srvKey := ca.Issue(t, "nats.test", "nats.test", "127.0.0.1").Write(t, dir, "server")
	cliCert, cliKey := ca.Issue(t, "tollgate", "127.0.0.1").Write(t, dir, "client")
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := bustest.StartOpts(t, &server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	cfg := external(url, func(n *configs.NATS) {
		n.TLS = configs.NATSTLS{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey, ServerName: "nats.test"}
	})
	nc, err := bus.Connect(cfg, "gw1", nil, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	usable(t, nc)
	if !strings.HasPrefix(nc.ConnectedUrl(), "tls://") {
		t.Errorf("connected to %s", nc.ConnectedUrl())
	}

	// A server certificate that does not verify is refused at start.
	other := testutil.NewCA(t, "other CA")
	bad := cfg
	bad.TLS.CAFile = other.WriteCA(t, dir, "other")
	if _, err := bus.Connect(bad, "gw1", nil, zerolog.Nop(), nil); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("unknown CA: %v", err)
	}
	// Without the client certificate the server refuses (after the TLS
	// 1.3 handshake: the connection never comes up).
	bad = cfg
	bad.TLS.CertFile, bad.TLS.KeyFile = "", ""
	if nc, err := bus.Connect(bad, "gw1", nil, zerolog.Nop(), nil); err == nil {
		defer nc.Close()
		if nc.IsConnected() {
			if err := nc.Flush(); err == nil {
				t.Error("connected without a client certificate")
			}
		}
	}
}

// A server down at start is not an error: the connection comes up when
// the server does.
func TestConnectRetriesAtStart(t *testing.T) {
	dir := t.TempDir()
	srv, url := bustest.Start(t, dir)
	port := bustest.Port(srv)
	bustest.Stop(srv)
	nc, err := bus.Connect(external(url, nil), "gw1", nil, zerolog.Nop(), nil)
	if err != nil {
		t.Fatalf("Connect with the server down: %v", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		t.Fatal("connected to a stopped server")
	}
	bustest.Restart(t, dir, port)
	waitFor(t, 10*time.Second, "the connection", nc.IsConnected)
	usable(t, nc)
}
