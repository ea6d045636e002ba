package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Change is one replicated configuration object: its whole new state, or
// its deletion. Kind and Name say which (the control service's kinds:
// plan, tenant, token, status); Origin is the node that made the change
// and Actor who made it there.
type Change struct {
	Kind    string          `json:"kind"`
	Name    string          `json:"name"`
	Origin  string          `json:"origin"`
	Actor   string          `json:"actor"`
	At      time.Time       `json:"at"`
	Deleted bool            `json:"deleted,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	// Initial marks a change read at start, not seen as it happened.
	Initial bool `json:"-"`
}

// ConfigTarget is the node's configuration as the replicator sees it
// (the control service).
type ConfigTarget interface {
	// ApplyChange makes the local object what c says; a no-op when it
	// already is.
	ApplyChange(c Change) error
	// Snapshot is every local object, as changes.
	Snapshot() []Change
	// Pending is the objects changed locally and not yet published (their
	// current state), published first at start.
	Pending() []Change
}

// ReplicatorOptions configure a Replicator.
type ReplicatorOptions struct {
	Node     string
	Bucket   string
	Replicas int
	JS       jetstream.JetStream
	Target   ConfigTarget
	Log      zerolog.Logger
}

// Replicator keeps the configuration of every node of the cluster the
// same through a JetStream KV bucket: one key per object (<kind>.<name>),
// the object's last state, written by the node where an operator changed
// it and applied by every other node from its watcher. The bucket is the
// source of truth; the local store is its cache.
type Replicator struct {
	o    ReplicatorOptions
	kv   jetstream.KeyValue
	w    jetstream.KeyWatcher
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// kindOrder is the order objects read at start are applied in: a tenant
// needs its plan.
var kindOrder = []string{"plan", "tenant", "token", "status"}

// StartReplicator opens (or creates) the bucket and brings this node in
// line with it: first the objects changed here while it was not running
// are published (Pending), then every object in the bucket is applied locally (plans
// first), and local objects the bucket has never heard of are published
// (the first node seeds an empty bucket from its store). Then every
// change another node publishes is applied as it comes.
func StartReplicator(ctx context.Context, o ReplicatorOptions) (*Replicator, error) {
	kv, err := o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: o.Bucket, History: 1, Replicas: o.Replicas,
		Description: "tollgate configuration: plans, tenants, tokens and suspensions of the cluster",
	})
	if err != nil {
		return nil, fmt.Errorf("config bucket %s: %w", o.Bucket, err)
	}
	r0 := &Replicator{o: o, kv: kv}
	pending, err := r0.fresh(ctx, o.Target.Pending())
	if err != nil {
		return nil, err
	}
	if err := r0.Publish(ctx, pending); err != nil {
		return nil, err
	}
	// The watcher lives as long as the replicator (a watcher ends with
	// its context); ctx bounds only the start.
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("config bucket %s: watch: %w", o.Bucket, err)
	}
	r := &Replicator{o: o, kv: kv, w: w, stop: make(chan struct{}), done: make(chan struct{})}
	var initial []Change
	known := map[string]bool{}
initialValues:
	for {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, fmt.Errorf("config bucket %s: reading it: %w", o.Bucket, ctx.Err())
		case e := <-w.Updates():
			if e == nil {
				break initialValues // the initial values are in
			}
			known[e.Key()] = true
			if c, ok := r.decode(e); ok {
				c.Initial = true
				initial = append(initial, c)
			}
		}
	}
	for _, kind := range kindOrder {
		for _, c := range initial {
			if c.Kind == kind {
				r.apply(c)
			}
		}
	}
	var seed []Change
	for _, c := range o.Target.Snapshot() {
		if !known[changeKey(c.Kind, c.Name)] {
			c.Origin = o.Node
			c.At = time.Now().UTC()
			seed = append(seed, c)
		}
	}
	if err := r.Publish(ctx, seed); err != nil {
		w.Stop()
		return nil, err
	}
	o.Log.Info().Int("applied", len(initial)).Int("published", len(seed)).Str("bucket", o.Bucket).
		Msg("cluster configuration in line with the bucket")
	go r.run()
	return r, nil
}

// fresh is the pending changes that are newer than the bucket's state
// of their object: last writer wins, by the instant of the change (the
// nodes' clocks). A pending change older than the bucket's is dropped
// here; the bucket's is then applied, which clears its mark.
func (r *Replicator) fresh(ctx context.Context, pending []Change) ([]Change, error) {
	var out []Change
	for _, c := range pending {
		c.Origin = r.o.Node
		if c.At.IsZero() {
			c.At = time.Now().UTC()
		}
		e, err := r.kv.Get(ctx, changeKey(c.Kind, c.Name))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("config bucket %s: %w", r.o.Bucket, err)
		default:
			if cur, ok := r.decode(e); ok && cur.At.After(c.At) {
				r.o.Log.Warn().Str("kind", c.Kind).Str("name", c.Name).Str("by", cur.Origin).
					Time("theirs", cur.At).Time("ours", c.At).
					Msg("cluster configuration: a change made here while away is older than the cluster's; the cluster's wins")
				continue
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func changeKey(kind, name string) string { return kind + "." + token(name) }

func (r *Replicator) decode(e jetstream.KeyValueEntry) (Change, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		kind, name, ok := strings.Cut(e.Key(), ".")
		if n, ok2 := untoken(name); ok && ok2 {
			return Change{Kind: kind, Name: n, Deleted: true, Origin: "?", Actor: "cluster"}, true
		}
		return Change{}, false
	}
	var c Change
	if err := json.Unmarshal(e.Value(), &c); err != nil || c.Kind == "" {
		r.o.Log.Warn().Str("key", e.Key()).Msg("cluster configuration: unreadable object ignored")
		return Change{}, false
	}
	return c, true
}

func (r *Replicator) apply(c Change) {
	if err := r.o.Target.ApplyChange(c); err != nil {
		r.o.Log.Warn().Err(err).Str("kind", c.Kind).Str("name", c.Name).Str("origin", c.Origin).
			Msg("cluster configuration: change from another node not applied here")
	}
}

// run applies the changes published after the start.
func (r *Replicator) run() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			_ = r.w.Stop()
			return
		case e, ok := <-r.w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			if c, ok := r.decode(e); ok {
				r.apply(c)
			}
		}
	}
}

// Publish writes the changes, in order. A deletion is the object with
// Deleted set (the other nodes then delete it); the key is kept so a
// node that was away learns of the deletion.
func (r *Replicator) Publish(ctx context.Context, cs []Change) error {
	for _, c := range cs {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if _, err := r.kv.Put(ctx, changeKey(c.Kind, c.Name), b); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			return err
		}
	}
	return nil
}

// Close stops the watcher.
func (r *Replicator) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
	})
}
