package meter

import (
	"testing"

	"github.com/tollgate/tollgate/internal/netns"
)

// The relay's tests send RTP from strangers and fuzzed datagrams to where
// SDP bodies point. They run in a network namespace of their own with
// only loopback, so a bug that follows an address in an SDP cannot send
// anything off the machine.
func TestMain(m *testing.M) { netns.Enter(m) }
