package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/testutil"
)

const natsTestToken = "serve-nats-admin-token-0123456789"

// natsConfig is a minimal config with an admin token, node gw-test and
// the nats section natsYAML, its store in dataDir.
func natsConfig(t *testing.T, apiAddr, dataDir, natsYAML string) *configs.Config {
	t.Helper()
	t.Setenv("TOLLGATE_NATS_TEST_TOKEN", natsTestToken)
	cfg, err := configs.Parse("serve-nats.yaml", []byte(fmt.Sprintf(`
node: gw-test
log: {level: info}
sip:
  listen: [{transport: udp, address: "%s"}]
  shutdown_grace: 0s
carriers: [{name: carrier, address: 127.0.0.2:5060}]
plans: [{name: p}]
tenants: [{name: demo, plan: p, carrier: carrier, sources: [127.0.0.10/32]}]
store: {data_dir: "%s"}
api:
  listen: "%s"
  tokens: [{name: ops, scope: admin, token_env: TOLLGATE_NATS_TEST_TOKEN}]
nats:
%s`, freeUDPAddr(t), dataDir, apiAddr, natsYAML)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serving is a serveUntil run that the test may stop before its end.
type serving struct {
	logs *testutil.SyncBuffer
	stop func() error
}

// serveNATS runs serveUntil with cfg and waits for the admin API.
func serveNATS(t *testing.T, cfg *configs.Config, apiAddr string) serving {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- serveUntil(cfg, logs, sigs) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			sigs <- syscall.SIGTERM
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("serve did not stop; log:\n%s", logs)
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve returned %v; log:\n%s", err, logs)
		default:
		}
		if code, _ := get(t, "http://"+apiAddr+"/healthz"); code == http.StatusOK {
			return serving{logs: logs, stop: stop}
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API not up; log:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logLine finds the first JSON log line with message msg.
func logLine(t *testing.T, logs *testutil.SyncBuffer, msg string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["message"] == msg {
			return l
		}
	}
	t.Fatalf("no log line %q in:\n%s", msg, logs)
	return nil
}

// post sends an authenticated admin API request.
func post(t *testing.T, url, body string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+natsTestToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// metric returns the sample line of name in /metrics.
func metric(t *testing.T, apiAddr, name string) string {
	t.Helper()
	_, body := get(t, "http://"+apiAddr+"/metrics")
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve with the embedded server on a free port (listen 127.0.0.1:0):
// the start log says where; a subscriber sees the tenant.suspended of a
// suspension through the admin API, with its Nats-Msg-Id; /metrics has
// the publisher's series; the stream outlives a restart in the data
// directory.
func TestServeEmbeddedNATSPublishes(t *testing.T) {
	apiAddr, data := freeTCPAddr(t), filepath.Join(t.TempDir(), "data")
	s := serveNATS(t, natsConfig(t, apiAddr, data, "  listen: 127.0.0.1:0\n"), apiAddr)
	l := logLine(t, s.logs, "publishing events to NATS")
	where, _ := l["nats"].(string)
	url, ok := strings.CutPrefix(where, "embedded ")
	if !ok || !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
		t.Fatalf("start log %v", l)
	}
	if l["stream"] != "TOLLGATE_EVENTS" || l["subjects"] != "tollgate.events.>" || l["component"] != "nats" {
		t.Errorf("start log %v", l)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe("tollgate.events.>", msgs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if code := post(t, "http://"+apiAddr+"/v1/tenants/demo/suspend", `{"reason":"serve test"}`); code != http.StatusOK {
		t.Fatalf("suspend: %d", code)
	}
	var got *nats.Msg
	for got == nil {
		select {
		case m := <-msgs:
			if m.Subject == "tollgate.events.demo.tenant.suspended" {
				got = m
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no tenant.suspended on NATS; log:\n%s", s.logs)
		}
	}
	var ev struct {
		ID, Type, Tenant, Node string
	}
	if err := json.Unmarshal(got.Data, &ev); err != nil {
		t.Fatalf("%v: %s", err, got.Data)
	}
	if ev.Type != "tenant.suspended" || ev.Tenant != "demo" || ev.Node != "gw-test" || ev.ID == "" || got.Header.Get("Nats-Msg-Id") != ev.ID {
		t.Errorf("event %s, Nats-Msg-Id %q", got.Data, got.Header.Get("Nats-Msg-Id"))
	}
	waitUntil(t, "the outbox to empty", func() bool { return metric(t, apiAddr, "tollgate_outbox_depth") == "tollgate_outbox_depth 0" })
	if m := metric(t, apiAddr, "tollgate_nats_connected"); m != "tollgate_nats_connected 1" {
		t.Errorf("%q", m)
	}
	if m := metric(t, apiAddr, "tollgate_events_published_total"); m == "" || m == "tollgate_events_published_total 0" {
		t.Errorf("%q", m)
	}
	if m := metric(t, apiAddr, "tollgate_events_puback_seconds_count"); m == "" || m == "tollgate_events_puback_seconds_count 0" {
		t.Errorf("%q", m)
	}
	nc.Close()
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if l := logLine(t, s.logs, "NATS publisher stopped"); l["left_in_outbox"] != 0.0 {
		t.Errorf("stop log %v", l)
	}

	// Restarted on the same data directory: the stream kept the event.
	s = serveNATS(t, natsConfig(t, apiAddr, data, "  listen: 127.0.0.1:0\n"), apiAddr)
	where, _ = logLine(t, s.logs, "publishing events to NATS")["nats"].(string)
	_, js := natsClient(t, strings.TrimPrefix(where, "embedded "))
	ctx := context.Background()
	stream, err := js.Stream(ctx, "TOLLGATE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, "tollgate.events.demo.tenant.suspended")
	if err != nil || m.Header.Get("Nats-Msg-Id") != ev.ID {
		t.Fatalf("after the restart: %v %v", m, err)
	}
}

func natsClient(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return bustest.Connect(t, url)
}

// nats.enabled false: no server, no socket; events stay in the outbox.
func TestServeNATSDisabled(t *testing.T) {
	before := listeningTCP(t)
	apiAddr := freeTCPAddr(t)
	s := serveNATS(t, natsConfig(t, apiAddr, filepath.Join(t.TempDir(), "data"), "  enabled: false\n"), apiAddr)
	opened := listeningTCP(t)
	for p := range before {
		delete(opened, p)
	}
	if len(opened) != 1 || !opened[portOf(t, apiAddr)] {
		t.Errorf("listening TCP ports opened: %v, want only the API's", opened)
	}
	if code := post(t, "http://"+apiAddr+"/v1/tenants/demo/suspend", `{"reason":"serve test"}`); code != http.StatusOK {
		t.Fatalf("suspend: %d", code)
	}
	waitUntil(t, "the event in the outbox", func() bool { return metric(t, apiAddr, "tollgate_outbox_depth") != "tollgate_outbox_depth 0" })
	if m := metric(t, apiAddr, "tollgate_nats_connected"); m != "tollgate_nats_connected 0" {
		t.Errorf("%q", m)
	}
	logLine(t, s.logs, "nats.enabled is false: no NATS; events stay in the outbox")
}

// An external server whose stream exists with a setting tollgate cannot
// change stops serve at start with the clear error.
func TestServeStreamConflictIsFatal(t *testing.T) {
	_, url := bustest.Start(t, t.TempDir())
	_, js := natsClient(t, url)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "TOLLGATE_EVENTS", Subjects: []string{"tollgate.events.>"}, Storage: jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	apiAddr := freeTCPAddr(t)
	err := serveUntil(natsConfig(t, apiAddr, filepath.Join(t.TempDir(), "data"), "  url: "+url+"\n"), &testutil.SyncBuffer{}, make(chan os.Signal))
	want := "nats: stream TOLLGATE_EVENTS exists with storage memory, config wants file (cannot be changed; delete the stream or set nats.stream.storage)"
	if err == nil || err.Error() != want {
		t.Fatalf("serve: %v\nwant   %s", err, want)
	}
}

// An external server down at start is not fatal: serve runs, the event
// waits in the outbox, and is published when the server comes up.
func TestServeExternalNATSDownAtStart(t *testing.T) {
	natsDir := t.TempDir()
	ns, url := bustest.Start(t, natsDir)
	port := bustest.Port(ns)
	bustest.Stop(ns)
	apiAddr := freeTCPAddr(t)
	s := serveNATS(t, natsConfig(t, apiAddr, filepath.Join(t.TempDir(), "data"), "  url: "+url+"\n  publisher: {max_backoff: 200ms}\n"), apiAddr)
	logLine(t, s.logs, "NATS unreachable at start; events wait in the outbox and are published once it is up")
	if code := post(t, "http://"+apiAddr+"/v1/tenants/demo/suspend", `{"reason":"serve test"}`); code != http.StatusOK {
		t.Fatalf("suspend: %d", code)
	}
	waitUntil(t, "the event in the outbox", func() bool { return metric(t, apiAddr, "tollgate_outbox_depth") == "tollgate_outbox_depth 1" })
	bustest.Restart(t, natsDir, port)
	waitUntil(t, "the outbox to empty", func() bool { return metric(t, apiAddr, "tollgate_outbox_depth") == "tollgate_outbox_depth 0" })
	_, js := natsClient(t, url)
	stream, err := js.Stream(context.Background(), "TOLLGATE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.GetLastMsgForSubject(context.Background(), "tollgate.events.demo.tenant.suspended"); err != nil {
		t.Fatalf("%v %v", m, err)
	}
}
