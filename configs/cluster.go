package configs

import (
	"regexp"
	"time"
)

// Defaults and bounds of the cluster section.
const (
	// DefaultLeaseTTL is how long a node's leases stay valid after its
	// last heartbeat: a node cut off from NATS admits within its leases
	// for this long, and a silent node's unused reserve returns to the
	// ledger this long after its last heartbeat.
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL is the shortest cluster.lease_ttl accepted.
	MinLeaseTTL = time.Second
	// DefaultLedgerBucket is the JetStream KV bucket of the shared ledger.
	DefaultLedgerBucket = "TOLLGATE_LEDGER"
	// DefaultConfigBucket is the JetStream KV bucket the configuration is
	// replicated through.
	DefaultConfigBucket = "TOLLGATE_CONFIG"
	// DefaultClusterReplicas is the ledger bucket's replica count (R3:
	// needs 3 JetStream servers).
	DefaultClusterReplicas = 3
)

// cluster.budget_failure values: what a node cut off from the ledger past
// lease_ttl does with the calls of a tenant that has a minutes or spend
// budget and no parallel cap (RFC 4006's credit-control failure handling).
const (
	// BudgetFailureTerminate cuts them and refuses new ones until the
	// ledger is back: the others' calls may have grown without bound,
	// so the budget cannot be shown to have any left.
	BudgetFailureTerminate = "terminate"
	// BudgetFailureContinue keeps them up within the leases: the
	// tenant's calls go on, and the budget may be overrun by the
	// others' growth the node cannot see.
	BudgetFailureContinue = "continue"
)

// Cluster makes several gateways share every leased cap of a tenant
// through a ledger in NATS JetStream KV (package cluster). The gateways
// must use the same NATS (nats.url) and the same plans and tenants. Every
// field is in docs/CONFIG.md, section cluster.
type Cluster struct {
	// Enabled turns the shared ledger on: the parallel and CPS caps hold
	// across all gateways of the cluster. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Node is this gateway's name in the cluster, unique among the
	// gateways; default: the top-level node.
	Node string `yaml:"node" json:"node"`
	// LeaseTTL: a node cut off from NATS admits within its leases for this
	// long after its last heartbeat, then answers 503 with Retry-After;
	// the unused reserve of a silent node returns after it. Default 10s,
	// at least 1s.
	LeaseTTL time.Duration `yaml:"lease_ttl" json:"lease_ttl"`
	// Bucket is the JetStream KV bucket of the ledger; default
	// TOLLGATE_LEDGER.
	Bucket string `yaml:"bucket" json:"bucket"`
	// ConfigBucket is the JetStream KV bucket of the replicated
	// configuration (plans, tenants, tokens, suspensions); default
	// TOLLGATE_CONFIG.
	ConfigBucket string `yaml:"config_bucket" json:"config_bucket"`
	// Replicas is the bucket's replica count: 3 (the default) needs a NATS
	// cluster of at least 3 JetStream servers and survives the loss of
	// one; 1 works with a single server, whose loss stops the ledger (the
	// gateways then run fail-static) and whose disk holds the only copy.
	Replicas int `yaml:"replicas" json:"replicas"`
	// BudgetFailure is what a node cut off from the ledger past lease_ttl
	// does with the calls of a tenant with a minutes or spend budget and
	// no parallel cap: terminate (the default) or continue. A tenant with
	// a parallel cap is bounded by it and never cut for this.
	BudgetFailure string `yaml:"budget_failure" json:"budget_failure"`
}

var bucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *Cluster) applyDefaults(node string) {
	if c.Node == "" {
		c.Node = node
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Bucket == "" {
		c.Bucket = DefaultLedgerBucket
	}
	if c.ConfigBucket == "" {
		c.ConfigBucket = DefaultConfigBucket
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultClusterReplicas
	}
	if c.BudgetFailure == "" {
		c.BudgetFailure = BudgetFailureTerminate
	}
}

func (c *Cluster) validate(n *NATS) error {
	if !c.Enabled {
		return nil
	}
	if err := validateNode(c.Node); err != nil {
		return errf("cluster.node", "%v", err)
	}
	if c.LeaseTTL < MinLeaseTTL {
		return errf("cluster.lease_ttl", "must be >= %s, got %s", MinLeaseTTL, c.LeaseTTL)
	}
	if !bucketRe.MatchString(c.Bucket) {
		return errf("cluster.bucket", "must be 1..64 letters, digits, '-' or '_', got %q", c.Bucket)
	}
	if !bucketRe.MatchString(c.ConfigBucket) || c.ConfigBucket == c.Bucket {
		return errf("cluster.config_bucket", "must be 1..64 letters, digits, '-' or '_', other than cluster.bucket, got %q", c.ConfigBucket)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return errf("cluster.replicas", "must be 1..5, got %d", c.Replicas)
	}
	if c.BudgetFailure != BudgetFailureTerminate && c.BudgetFailure != BudgetFailureContinue {
		return errf("cluster.budget_failure", "must be %s or %s, got %q", BudgetFailureTerminate, BudgetFailureContinue, c.BudgetFailure)
	}
	if !n.On() {
		return errf("cluster.enabled", "needs NATS: nats.enabled is false")
	}
	if n.Embedded() && c.Replicas > 1 {
		return errf("cluster.replicas", "%d needs a NATS cluster in nats.url; the embedded server is one server (use replicas: 1)", c.Replicas)
	}
	return nil
}
