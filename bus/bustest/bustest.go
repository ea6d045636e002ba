// Package bustest runs real nats-servers with JetStream for tests of
// other packages (bus/, cmd/, testbed/): on 127.0.0.1, a random port,
// a store directory of the test's choosing, shut down when the test
// ends. Tests never use fixed ports.
package bustest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start starts a nats-server with JetStream on 127.0.0.1 and a free port,
// its store in dir, and returns it with its client URL. It is shut down
// at the end of the test (if still running).
func Start(t testing.TB, dir string) (*server.Server, string) {
	t.Helper()
	s := StartOpts(t, &server.Options{StoreDir: dir})
	return s, s.ClientURL()
}

// Restart starts a nats-server again on port with the store dir: the
// second half of an outage (Port tells the port of the first one).
func Restart(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	return StartOpts(t, &server.Options{StoreDir: dir, Port: port})
}

// StartOpts starts a nats-server with opts (e.g. users, TLS), filling in
// JetStream, host 127.0.0.1, a random port when opts.Port is 0, no
// signal handlers and no log; it waits until the server accepts clients.
func StartOpts(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	o.JetStream = true
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	o.NoSigs, o.NoLog = true, true
	o.DisableJetStreamBanner = true
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("nats-server on %s:%d not ready", o.Host, o.Port)
	}
	t.Cleanup(func() { Stop(s) })
	return s
}

// Stop shuts s down and waits until it has.
func Stop(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// Port is the client port s listens on.
func Port(s *server.Server) int {
	return s.Addr().(*net.TCPAddr).Port
}

// Connect is a plain client connection to url and its JetStream context,
// closed at the end of the test.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
