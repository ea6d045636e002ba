package control

import (
	"context"
	"errors"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/store"
)

// Cluster is the cluster ledger as the control service sees it: a
// *cluster.Ledger, set after construction (SetCluster); without one
// (cluster.enabled false) GET /v1/cluster shows the cluster disabled.
type Cluster interface {
	Status(tenant string) cluster.Status
	Usage(tenant string) cluster.TenantUsage
	Release(ctx context.Context, node string) (cluster.Released, error)
}

var _ Cluster = (*cluster.Ledger)(nil)

// SetCluster connects the cluster ledger.
func (s *Service) SetCluster(c Cluster) {
	s.edgeMu.Lock()
	s.cluster = c
	s.edgeMu.Unlock()
}

func (s *Service) getCluster() Cluster {
	s.edgeMu.RLock()
	defer s.edgeMu.RUnlock()
	return s.cluster
}

// Cluster is the ledger as this node's copy has it (tenant "" = all).
func (s *Service) Cluster(_ context.Context, tenant string) (api.ClusterStatus, error) {
	c := s.getCluster()
	if c == nil {
		return api.ClusterStatus{Node: s.base.Node, Nodes: []cluster.Node{}, Entries: []cluster.Entry{}}, nil
	}
	return c.Status(tenant), nil
}

// ReleaseNode gives back everything node holds in the ledger, with an
// audit entry (action cluster.release, resource cluster/nodes/<node>,
// after: what was released). The ledger refuses a node whose heartbeat
// is fresh (409).
func (s *Service) ReleaseNode(ctx context.Context, actor, node string) (api.ClusterReleased, error) {
	c := s.getCluster()
	if c == nil {
		return api.ClusterReleased{}, opErr(api.ErrNotFound, "no node %q: cluster.enabled is false", node)
	}
	// The ledger writes go to NATS: not under s.mu.
	out, err := c.Release(ctx, node)
	switch {
	case errors.Is(err, cluster.ErrAlive):
		return out, rephrase(api.ErrConflict, err)
	case errors.Is(err, cluster.ErrUnknownNode):
		return out, rephrase(api.ErrNotFound, err)
	case errors.Is(err, cluster.ErrUnavailable):
		return out, rephrase(api.ErrNotReady, err)
	case err != nil:
		return out, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.log.Warn().Str("node", node).Str("actor", actor).Int("entries", out.Entries).Int64("capacity", out.Calls).
		Msg("cluster node released: its leases are back in the ledger")
	entry := audit(now, actor, "cluster.release", "cluster/nodes/"+node, "", nil, out)
	return out, s.submit(&store.Batch{Audit: []store.AuditEntry{entry}}, now)
}
