package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// Replicator carries the operator's changes to the other gateways of a
// cluster (a *cluster.Replicator): Publish writes the new state of the
// objects a change touched. Set after construction (SetReplicator);
// without one nothing is replicated.
type Replicator interface {
	Publish(ctx context.Context, cs []cluster.Change) error
}

// replicateTimeout bounds one Publish; a change is never refused for it.
const replicateTimeout = 2 * time.Second

// resyncEvery is how often objects whose publication failed are tried
// again (their state at that moment).
const resyncEvery = time.Second

// The kinds of replicated objects.
const (
	kindPlan   = "plan"
	kindTenant = "tenant"
	kindToken  = "token"
	kindStatus = "status" // an operator's suspension of a tenant
)

// replicatedStatus is the value of a status change.
type replicatedStatus struct {
	Suspended bool   `json:"suspended"`
	Reason    string `json:"reason,omitempty"`
}

// ExpectReplicator tells the service a replicator is coming (cluster
// mode, NATS not reached yet): until SetReplicator, changes are applied
// here and kept as pending, for the replicator to publish first when it
// starts (Pending), so the bucket's older state does not undo them.
// Pending changes are marked in the store with the change itself, so a
// restart before NATS is back keeps them pending.
func (s *Service) ExpectReplicator(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replNode, s.replWanted = node, true
	if s.unsynced == nil {
		s.unsynced = map[[2]string]store.Unreplicated{}
	}
}

// SetReplicator connects the cluster's configuration replication and
// starts the retry of failed publications (stopped by Close).
func (s *Service) SetReplicator(r Replicator, node string) {
	s.mu.Lock()
	s.repl, s.replNode = r, node
	if s.unsynced == nil {
		s.unsynced = map[[2]string]store.Unreplicated{}
	}
	s.replStop = make(chan struct{})
	stop := s.replStop
	s.mu.Unlock()
	go s.resync(stop)
}

// Pending is the current state of the objects changed here and not yet
// published, each at the instant of its change (implements
// cluster.ConfigTarget). They stay pending until a publication succeeds
// or a newer change from another node is applied (ApplyChange).
func (s *Service) Pending() []cluster.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingChanges()
}

// pendingChanges is Pending with mu held.
func (s *Service) pendingChanges() []cluster.Change {
	var cs []cluster.Change
	for k, m := range s.unsynced {
		c := s.current(k[0], k[1], m.Actor)
		c.Origin, c.At = s.replNode, m.At
		cs = append(cs, c)
	}
	return cs
}

// replicating reports whether a change made now is to be published (or
// kept pending): in cluster mode, unless it came from another node.
// Called with mu held.
func (s *Service) replicating() bool {
	return (s.repl != nil || s.replWanted) && !s.applying
}

// publish marks cs (changes made at) as pending and writes them to the
// replicator; once it has them, the marks are removed (replicated). It
// does nothing unless replicating. Called with mu held: an operator's
// change waits for its one round trip (bounded by replicateTimeout),
// never an INVITE. A failure is logged and the objects are published
// again by resync.
func (s *Service) publish(at time.Time, cs ...cluster.Change) {
	if !s.replicating() || len(cs) == 0 {
		return
	}
	for i, c := range cs {
		cs[i].Origin, cs[i].At = s.replNode, at
		s.unsynced[[2]string{c.Kind, c.Name}] = store.Unreplicated{Kind: c.Kind, Name: c.Name, Actor: c.Actor, At: at}
	}
	s.send(cs)
}

// send writes cs (Origin and At set) to the replicator, if started, and
// on success removes their marks. Called with mu held.
func (s *Service) send(cs []cluster.Change) bool {
	if s.repl == nil { // expected, not started yet
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicateTimeout)
	defer cancel()
	if err := s.repl.Publish(ctx, cs); err != nil {
		s.log.Warn().Err(err).Int("objects", len(cs)).
			Msg("cluster: change applied here, not yet replicated to the other gateways; retrying")
		return false
	}
	for _, c := range cs {
		s.unmark(c.Kind, c.Name, c.At)
	}
	return true
}

// unmark removes the pending mark of an object if it is not newer than
// at: the change it marks is in the bucket, or a newer one from another
// node was applied here. Called with mu held.
func (s *Service) unmark(kind, name string, at time.Time) {
	k := [2]string{kind, name}
	m, ok := s.unsynced[k]
	if !ok || m.At.After(at) {
		return
	}
	delete(s.unsynced, k)
	m.Done = true
	if err := s.commit.Submit(&store.Batch{Unreplicated: []store.Unreplicated{m}}); err != nil {
		// Left in the store: published once more after a restart, as
		// the object's state then, unless the bucket has a newer one.
		s.log.Warn().Err(err).Str("kind", kind).Str("name", name).Msg("cluster: replication mark not removed")
	}
}

// resync publishes again, every resyncEvery, the current state of the
// objects whose publication failed.
func (s *Service) resync(stop chan struct{}) {
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if cs := s.pendingChanges(); len(cs) > 0 && s.send(cs) {
			s.log.Info().Int("objects", len(cs)).Msg("cluster: pending changes replicated")
		}
		s.mu.Unlock()
	}
}

// current is the local state of one object as a change (Deleted when it
// does not exist). Called with mu held.
func (s *Service) current(kind, name, actor string) cluster.Change {
	c := cluster.Change{Kind: kind, Name: name, Actor: actor}
	var v any
	switch kind {
	case kindPlan:
		if p, ok := s.plans[name]; ok {
			v = p
		}
	case kindTenant:
		if t, ok := s.tenants[name]; ok {
			v = t
		}
	case kindToken:
		s.tokMu.RLock()
		if t, ok := s.tokens[name]; ok {
			v = t
		}
		s.tokMu.RUnlock()
	case kindStatus:
		if st := s.status(name); st.Suspended && st.SuspendCap == "" {
			v = replicatedStatus{Suspended: true, Reason: st.SuspendReason}
		} else if _, ok := s.tenants[name]; ok {
			v = replicatedStatus{}
		}
	}
	if v == nil {
		c.Deleted = true
	} else {
		c.Value = mustJSON(v)
	}
	return c
}

// batchChanges are the replicated objects a committed batch wrote.
func batchChanges(b *store.Batch) []cluster.Change {
	actor := ""
	if len(b.Audit) > 0 {
		actor = b.Audit[0].Actor
	}
	var cs []cluster.Change
	put := func(kind, name string, v any) {
		cs = append(cs, cluster.Change{Kind: kind, Name: name, Actor: actor, Value: mustJSON(v)})
	}
	del := func(kind, name string) {
		cs = append(cs, cluster.Change{Kind: kind, Name: name, Actor: actor, Deleted: true})
	}
	for _, p := range b.PutPlans {
		put(kindPlan, p.Name, p)
	}
	for _, t := range b.PutTenants {
		put(kindTenant, t.Name, t)
	}
	for _, t := range b.PutTokens {
		put(kindToken, t.Name, t)
	}
	for _, n := range b.DeleteTenants {
		del(kindTenant, n)
		del(kindStatus, n)
	}
	for _, n := range b.DeletePlans {
		del(kindPlan, n)
	}
	for _, n := range b.DeleteTokens {
		del(kindToken, n)
	}
	return cs
}

// statusChange is an operator's suspension or resumption as a change.
func statusChange(tenant string, st api.TenantStatus, actor string) cluster.Change {
	return cluster.Change{Kind: kindStatus, Name: tenant, Actor: actor,
		Value: mustJSON(replicatedStatus{Suspended: st.Suspended, Reason: st.SuspendReason})}
}

// Snapshot is every replicated object of this node: plans, tenants,
// tokens, and the tenants suspended by an operator (implements
// cluster.ConfigTarget).
func (s *Service) Snapshot() []cluster.Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []cluster.Change
	for name := range s.plans {
		cs = append(cs, s.current(kindPlan, name, "config"))
	}
	for name := range s.tenants {
		cs = append(cs, s.current(kindTenant, name, "config"))
		if st := s.status(name); st.Suspended && st.SuspendCap == "" {
			cs = append(cs, s.current(kindStatus, name, "config"))
		}
	}
	s.tokMu.RLock()
	names := make([]string, 0, len(s.tokens))
	for name := range s.tokens {
		names = append(names, name)
	}
	s.tokMu.RUnlock()
	for _, name := range names {
		cs = append(cs, s.current(kindToken, name, "config"))
	}
	return cs
}

// changer is the engine steps a configuration change takes: the runner's
// own, or its Replica's for a change another node made.
type changer interface {
	UpsertPlan(time.Time, admission.Plan) (admission.Ready, error)
	UpsertTenant(time.Time, admission.Tenant) (admission.Ready, error)
}

// changes is the runner for a change made here, its Replica for one
// being applied from another node (which reported it). Called with mu
// held.
func (s *Service) changes() changer {
	if s.applying {
		return s.runner.Replica()
	}
	return s.runner
}

// ApplyChange makes this node's state of one object what another node
// published (implements cluster.ConfigTarget); nothing happens when it
// already is. The change is audited here too, by actor "<actor>@<node>".
// A status change seen at start (c.Initial) only suspends: an old
// resumption must not lift a suspension this node made since.
func (s *Service) ApplyChange(c cluster.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.unsynced[[2]string{c.Kind, c.Name}]; ok {
		if m.At.After(c.At) {
			return nil // changed here since: the local change is published and wins
		}
		s.unmark(c.Kind, c.Name, c.At)
	}
	if cur := s.current(c.Kind, c.Name, ""); cur.Deleted == c.Deleted && bytes.Equal(cur.Value, c.Value) {
		return nil
	}
	s.applying = true
	defer func() { s.applying = false }()
	now := s.now()
	actor := c.Actor + "@" + c.Origin
	switch c.Kind {
	case kindPlan:
		if c.Deleted {
			return s.deletePlan(now, actor, c.Name)
		}
		var p configs.Plan
		if err := json.Unmarshal(c.Value, &p); err != nil {
			return fmt.Errorf("control: replicated plan %q: %w", c.Name, err)
		}
		p = normalisePlan(p)
		if err := s.checkPlan(p); err != nil {
			return err
		}
		old, exists := s.plans[p.Name]
		action, before := "plan.create", any(nil)
		if exists {
			action, before = "plan.update", old
		}
		return s.setPlan(now, p, audit(now, actor, action, "plans/"+p.Name, "", before, p))
	case kindTenant:
		if c.Deleted {
			return s.deleteTenant(now, actor, c.Name)
		}
		var t configs.Tenant
		if err := json.Unmarshal(c.Value, &t); err != nil {
			return fmt.Errorf("control: replicated tenant %q: %w", c.Name, err)
		}
		t = normaliseTenant(t)
		if err := s.checkTenant(t, ""); err != nil {
			return err
		}
		old, exists := s.tenants[t.Name]
		action, before := "tenant.create", any(nil)
		if exists {
			action, before = "tenant.update", old
		}
		if err := s.setTenant(now, t, audit(now, actor, action, "tenants/"+t.Name, t.Name, before, t)); err != nil {
			return err
		}
		if !exists || routingChanged(old, t) {
			s.routing()
		}
		return nil
	case kindToken:
		if c.Deleted {
			return s.deleteToken(now, actor, c.Name)
		}
		var tok store.Token
		if err := json.Unmarshal(c.Value, &tok); err != nil {
			return fmt.Errorf("control: replicated token %q: %w", c.Name, err)
		}
		return s.putToken(now, tok, audit(now, actor, "token.create", "tokens/"+tok.Name, "", nil, tokenView(tok)))
	case kindStatus:
		var st replicatedStatus
		if !c.Deleted {
			if err := json.Unmarshal(c.Value, &st); err != nil {
				return fmt.Errorf("control: replicated status %q: %w", c.Name, err)
			}
		}
		if _, ok := s.tenants[c.Name]; !ok {
			return nil
		}
		local := s.status(c.Name)
		switch {
		case st.Suspended && !local.Suspended:
			_, err := s.suspendLocked(actor, c.Name, st.Reason, "tenant.suspend", s.runner.Replica().Suspend)
			return err
		case !st.Suspended && local.Suspended && !c.Initial && !c.Deleted:
			_, err := s.suspendLocked(actor, c.Name, "resumed on "+c.Origin, "tenant.resume", s.runner.Replica().Resume)
			return err
		}
		return nil
	}
	return fmt.Errorf("control: replicated object of unknown kind %q", c.Kind)
}
