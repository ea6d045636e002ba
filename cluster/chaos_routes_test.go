//go:build !race

package cluster

import (
	"testing"

	"github.com/tollgate/tollgate/bus/bustest"
)

// TestChaosRoutes is TestChaosPartitions with partitions made by cutting
// a server's routes while it keeps running (its node stays connected to
// it, and it loses the others): the partition the issue names. It cannot
// run under -race: nats-server v2.15.2 reads its options unlocked in
// direct gets, and the route reloads race with them inside the server
// (bustest.Cluster.Isolate), so `make test` runs it in a build without
// the race detector.
func TestChaosRoutes(t *testing.T) {
	t.Parallel()
	chaos(t, 3, partition{cut: (*bustest.Cluster).Isolate, heal: (*bustest.Cluster).Heal})
}
