// Package cluster shares a tenant's caps between gateways through a ledger
// in NATS JetStream KV, by leases (docs/ARCHITECTURE.md, "cluster/").
//
// One KV key per tenant and dimension (parallel calls in total, inbound
// and outbound; calls per second) holds the cap and the leases granted
// from it, and is only changed by compare-and-set. A node admits locally
// against what it holds (admission.Engine.SetLease, AddCPSTokens): the
// engine rejects a call beyond it with admission.CauseLease, the edge asks
// Acquire for more and asks the engine again. Blocks are sized to the free
// capacity, max(1, free/(2N)), so far from the cap a node writes once per
// block and near it once per call, which is still exact. Idle capacity
// goes back at the next maintenance round (lease_ttl/50, 20-200 ms).
//
// Liveness is one heartbeat key per node. A node that cannot renew admits
// within its leases until lease_ttl after its last heartbeat, then only
// answers 503 (fail-static). A node's unused reserve (n - use) may be
// taken by any node that finds a cap full; what a silent node may be
// using returns only max_call_duration after its lease_ttl (plus a grace
// for clock skew), or when an
// operator releases it (Release). A restarted node settles from its store
// and releases what its previous life held.
package cluster
