package sip

import (
	"net"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
)

// A listener that fails to bind leaves nothing bound behind it (issue 8,
// 3g): the UDP socket Start bound before the failing TCP one is closed, so
// the port is free again.
func TestStartFailureClosesEarlierListeners(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	probe, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := probe.LocalAddr().String()
	probe.Close()

	cfg, err := configs.Parse("start.yaml", []byte(`
sip:
  listen: [{transport: udp, address: 127.0.0.1:5060}, {transport: tcp, address: 127.0.0.1:5060}]
carriers:
  - {name: carrier, address: 127.0.0.2:5060, sources: [127.0.0.2/32]}
plans: [{name: p}]
tenants:
  - {name: acme, plan: p, carrier: carrier, sources: [127.0.0.10/32]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, second := range []configs.Listen{
		{Transport: "tcp", Address: busy.Addr().String()}, // bind fails
		{Transport: "sctp", Address: "127.0.0.1:0"},       // unsupported transport
	} {
		cfg.SIP.Listen = []configs.Listen{{Transport: "udp", Address: udpAddr}, second}
		adm, err := cfg.AdmissionRunner(realClock{}.Now())
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg, adm, Options{Logger: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(); err == nil {
			t.Fatalf("Start succeeded with %+v", second)
		}
		again, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			t.Fatalf("after a failed Start with %+v, UDP %s is still bound: %v", second, udpAddr, err)
		}
		again.Close()
		g.Close()
	}
}
