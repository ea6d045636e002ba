package bus_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/configs"
)

// embedded is the nats section of a config with nats.listen listen.
func embedded(listen string) configs.NATS {
	c := configs.Config{NATS: configs.NATS{Listen: listen}}
	c.ApplyDefaults()
	return c.NATS
}

// listen 127.0.0.1:0 picks a free port; other clients connect there;
// JetStream keeps its files under data_dir/nats.
func TestStartServerListens(t *testing.T) {
	data := t.TempDir()
	srv, err := bus.StartServer(embedded("127.0.0.1:0"), "gw1", data, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	u := srv.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") || strings.HasSuffix(u, ":4222") {
		t.Fatalf("ClientURL %q", u)
	}
	if w := bus.Where(configs.NATS{}, srv); w != "embedded "+u {
		t.Errorf("Where = %q", w)
	}
	if srv.Name() != "gw1" {
		t.Errorf("server name %q", srv.Name())
	}
	_, js := connect(t, u)
	ensure(t, js, streamCfg())
	if _, err := os.Stat(filepath.Join(data, "nats", "jetstream")); err != nil {
		t.Errorf("JetStream store: %v", err)
	}
	// The gateway's own connection is in process.
	nc, err := bus.Connect(embedded("127.0.0.1:0"), "gw1", srv, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	usable(t, nc)
}

// listen off: no socket, the in-process connection works; ":memory:"
// keeps the store in a temporary directory, removed at Shutdown.
func TestStartServerInProcessMemory(t *testing.T) {
	srv, err := bus.StartServer(embedded("off"), "gw1", configs.MemoryDataDir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if srv.ClientURL() != "" || srv.Addr() != nil {
		t.Errorf("listening at %q with listen off", srv.ClientURL())
	}
	if w := bus.Where(configs.NATS{}, srv); w != "embedded, in process" {
		t.Errorf("Where = %q", w)
	}
	nc, err := bus.Connect(embedded("off"), "gw1", srv, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	usable(t, nc)
	nc.Close()
	dir := srv.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store dir: %v", err)
	}
	srv.Shutdown()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary store %s left behind: %v", dir, err)
	}
}

// A port in use fails the start at once with the server's reason.
func TestStartServerPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs bytes.Buffer
	_, err = bus.StartServer(embedded(ln.Addr().String()), "gw1", t.TempDir(), zerolog.New(&logs))
	if !errors.Is(err, bus.ErrNotReady) || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error %v", err)
	}
	if !strings.Contains(logs.String(), `"level":"error"`) {
		t.Errorf("server error not logged: %s", logs.String())
	}
}
