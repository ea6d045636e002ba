package sip

import (
	"io"
	"log/slog"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/internal/netns"
)

// The edge's tests send torture messages, fuzzed input and relay probes
// whose Vias and URIs name hosts of an attacker's choosing. They run in a
// network namespace of their own with only loopback: a bug that follows
// such an address fails a test but cannot send anything off the machine.
//
// sipgo's default logger is process-wide, and the first gateway sets it;
// the tests' peers, started before their gateway, read it. It is set here
// once, before any of them, so a test run alone has no race on it.
func TestMain(m *testing.M) {
	setSipgoLogger.Do(func() { sip.SetDefaultLogger(slog.New(slog.NewTextHandler(io.Discard, nil))) })
	netns.Enter(m)
}
