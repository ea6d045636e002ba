package sip

import (
	"testing"

	"github.com/tollgate/tollgate/internal/netns"
)

// The edge's tests send torture messages, fuzzed input and relay probes
// whose Vias and URIs name hosts of an attacker's choosing. They run in a
// network namespace of their own with only loopback: a bug that follows
// such an address fails a test but cannot send anything off the machine.
func TestMain(m *testing.M) { netns.Enter(m) }
