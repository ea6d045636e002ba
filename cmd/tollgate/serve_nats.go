package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/cluster"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// Bounds of the NATS steps of start and stop.
const (
	// streamTimeout bounds EnsureStream at start.
	streamTimeout = 10 * time.Second
	// publishOnStop bounds the publisher's last drain at shutdown.
	publishOnStop = 5 * time.Second
)

// natsBus is the gateway's NATS side (nil fields with nats.enabled
// false).
type natsBus struct {
	log zerolog.Logger
	srv *bus.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	pub *bus.Publisher
}

// startBus starts the embedded server (no nats.url) or connects to the
// external one, makes or updates the events stream, and starts the
// publisher of the store's outbox. A stream that exists with settings
// that cannot be changed, or that the server refuses, is an error; a
// server that cannot be reached is not: the connection and the publisher
// retry, events wait in the outbox.
func startBus(cfg *configs.Config, st store.Store, m *api.Metrics, log zerolog.Logger) (*natsBus, error) {
	b := &natsBus{log: log.With().Str("component", "nats").Logger()}
	if !cfg.NATS.On() {
		b.log.Warn().Msg("nats.enabled is false: no NATS; events stay in the outbox")
		return b, nil
	}
	if cfg.NATS.Embedded() {
		srv, err := bus.StartServer(cfg.NATS, cfg.Node, cfg.Store.DataDir, b.log)
		if err != nil {
			return nil, err
		}
		b.srv = srv
	}
	nc, err := bus.Connect(cfg.NATS, cfg.Node, b.srv, b.log, nil)
	if err != nil {
		b.stop()
		return nil, err
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.stop()
		return nil, err
	}
	b.js = js
	ensure := func(ctx context.Context) error {
		_, err := bus.EnsureStream(ctx, js, cfg.NATS.Stream, b.log)
		return err
	}
	if nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
		err := ensure(ctx)
		cancel()
		if err != nil && streamConfigError(err) {
			b.stop()
			return nil, err
		}
		if err != nil {
			b.log.Warn().Err(err).Msg("NATS stream not ready at start; the publisher retries")
		}
	} else {
		b.log.Warn().Str("url", bus.Where(cfg.NATS, nil)).
			Msg("NATS unreachable at start; events wait in the outbox and are published once it is up")
	}
	node := cfg.Node
	encode := func(e store.OutboxEntry) (events.Message, error) { return events.Encode(node, e) }
	if cfg.Cluster.Enabled {
		encode = events.ClusterEncode(node) // a fact the nodes share is published once
	}
	b.pub, err = bus.StartPublisher(bus.PublisherOptions{
		Conn: nc, Outbox: st, Config: cfg.NATS.Publisher, Prepare: ensure,
		Encode:   encode,
		OnPubAck: m.PubAckLatency, Logger: b.log,
	})
	if err != nil {
		b.stop()
		return nil, err
	}
	pub := b.pub
	m.SetPublisherSource(func() api.PublisherStats {
		s := pub.Stats()
		return api.PublisherStats{OldestAge: s.OldestAge, Published: s.Published, Duplicates: s.Duplicates,
			Errors: s.Errors, Skipped: s.Skipped, Connected: s.Connected}
	})
	b.log.Info().Str("nats", bus.Where(cfg.NATS, b.srv)).Str("stream", cfg.NATS.Stream.Name).
		Str("subjects", bus.Subjects).Str("node", cfg.Node).Bool("connected", nc.IsConnected()).
		Msg("publishing events to NATS")
	return b, nil
}

// streamConfigError reports EnsureStream errors a retry cannot cure: an
// existing stream tollgate cannot change, or a config the server refuses
// (e.g. subjects another stream already takes).
func streamConfigError(err error) bool {
	var ce *bus.StreamConflictError
	var ae *jetstream.APIError
	return errors.As(err, &ce) || errors.As(err, &ae) && ae.Code == 400
}

// notify wakes the publisher after a commit that wrote events.
func (b *natsBus) notify() {
	if b.pub != nil {
		b.pub.Notify()
	}
}

// stop publishes what the outbox holds (within publishOnStop, while NATS
// is up), then closes the connection and shuts the embedded server down.
func (b *natsBus) stop() {
	if b.pub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), publishOnStop)
		err := b.pub.Close(ctx)
		cancel()
		s := b.pub.Stats()
		ev := b.log.Info()
		if err != nil || s.Depth > 0 {
			ev = b.log.Warn().AnErr("error", err)
		}
		ev.Uint64("published", s.Published).Uint64("duplicates", s.Duplicates).Uint64("errors", s.Errors).
			Uint64("skipped", s.Skipped).Int("left_in_outbox", s.Depth).Msg("NATS publisher stopped")
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
	}
}

// ledgerStart bounds the cluster ledger's first open at start (a NATS
// that is not reachable is retried in the background).
const ledgerStart = 10 * time.Second

// startLedger starts the cluster ledger (cluster.enabled) on the bus's
// connection, for the engine of svc; nil without a cluster.
func startLedger(cfg *configs.Config, b *natsBus, eng cluster.Engine, m *api.Metrics, log zerolog.Logger) (*cluster.Ledger, error) {
	if !cfg.Cluster.Enabled {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ledgerStart)
	defer cancel()
	l, err := cluster.Start(ctx, cluster.Options{
		Node: cfg.Cluster.Node, TTL: cfg.Cluster.LeaseTTL, MaxCallDuration: cfg.SIP.MaxCallDuration,
		Bucket: cfg.Cluster.Bucket, Replicas: cfg.Cluster.Replicas, JS: b.js, Engine: eng,
		ContinueUnbounded: cfg.Cluster.BudgetFailure == configs.BudgetFailureContinue,
		Log:               log.With().Str("component", "cluster").Logger(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	m.SetClusterSource(l.Stats)
	log.Info().Str("node", cfg.Cluster.Node).Str("bucket", cfg.Cluster.Bucket).Int("replicas", cfg.Cluster.Replicas).
		Dur("lease_ttl", cfg.Cluster.LeaseTTL).Str("epoch", l.Epoch()).Msg("cluster ledger started")
	return l, nil
}

// startReplication replicates the configuration through the cluster's
// config bucket (cluster.enabled): it starts in the background, retrying
// while NATS cannot be reached; changes made meanwhile are kept pending
// and published first. The returned func stops it.
func startReplication(cfg *configs.Config, b *natsBus, svc *control.Service, log zerolog.Logger) func() {
	if !cfg.Cluster.Enabled {
		return func() {}
	}
	log = log.With().Str("component", "cluster").Logger()
	node := cfg.Cluster.Node
	svc.ExpectReplicator(node)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var repl *cluster.Replicator
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wait := time.Duration(0); ; wait = time.Second {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			sctx, scancel := context.WithTimeout(ctx, ledgerStart)
			r, err := cluster.StartReplicator(sctx, cluster.ReplicatorOptions{
				Node: node, Bucket: cfg.Cluster.ConfigBucket, Replicas: cfg.Cluster.Replicas,
				JS: b.js, Target: svc, Log: log,
			})
			scancel()
			if err != nil {
				log.Warn().Err(err).Msg("cluster configuration replication not started; retrying (changes here stay pending)")
				continue
			}
			mu.Lock()
			repl = r
			mu.Unlock()
			svc.SetReplicator(r, node)
			return
		}
	}()
	return func() {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if repl != nil {
			repl.Close()
		}
	}
}
