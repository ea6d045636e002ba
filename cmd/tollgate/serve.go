package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/console"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/pike"
	"github.com/tollgate/tollgate/sip"
	"github.com/tollgate/tollgate/store"
)

// serve runs the gateway until SIGTERM/SIGINT: runtime settings, the
// profiling endpoint (debug.listen), store, NATS (the embedded server or
// an external one, the events stream, the outbox publisher), control
// service (engine rebuilt from the store), SIP edge, admin API. SIGHUP
// reloads the TLS certificates.
func serve(cfg *configs.Config, logOut io.Writer) error { return serveUntil(cfg, logOut, nil) }

// serveUntil is serve; a non-nil stop channel replaces SIGTERM/SIGINT and
// SIGHUP (a SIGHUP sent on it reloads, any other value stops).
func serveUntil(cfg *configs.Config, logOut io.Writer, stop chan os.Signal) error {
	log := newLogger(cfg.Log, logOut)
	gogc, memoryLimit := applyRuntime(cfg.Runtime)
	logRuntime(log, gogc, memoryLimit)
	if cfg.Debug.Listen != "" {
		dbg, err := startDebug(cfg.Debug.Listen, log)
		if err != nil {
			return err
		}
		defer dbg.Close()
	}
	st, err := openStore(cfg.Store, events.Wire(cfg.Node), log)
	if err != nil {
		return err
	}
	defer st.Close()
	metrics := api.NewMetrics(prometheus.NewRegistry(), *cfg.API.MaxTenantSeries)
	// NATS before the service, stopped after it (defers run in reverse):
	// the events of the last commits at shutdown are published before the
	// store closes.
	nb, err := startBus(cfg, st, metrics, log)
	if err != nil {
		return err
	}
	defer nb.stop()
	svc, err := control.Open(cfg, st, control.Options{
		Logger: log.With().Str("component", "control").Logger(), OnCommit: metrics.CommitLatency,
		OnEvents: nb.notify,
	})
	if err != nil {
		return err
	}
	defer svc.Close()
	// The cluster ledger after the restore (the calls of an earlier life
	// are settled, so the engine holds no call the ledger does not know),
	// closed before the service (its last writes return the leases).
	ledger, err := startLedger(cfg, nb, svc.Runner(), metrics, log)
	if err != nil {
		return err
	}
	var leaser sip.Leaser
	if ledger != nil {
		defer ledger.Close()
		svc.SetCluster(ledger)
		leaser = ledger
	}
	// Flood protection (sip.flood): one request limiter and one connection
	// limiter for the whole edge, owned here and shared by the gateway
	// (which feeds them), the admin API (GET/DELETE /v1/blocked) and
	// /metrics.
	flood, conns := pike.New(cfg.SIP.Flood.PikeConfig()), cfg.SIP.Flood.ConnLimiter()
	gw, err := sip.New(svc.Config(), svc.Runner(), sip.Options{
		Logger: log, Metrics: metrics,
		Flood: flood, Conns: conns, FloodAnswer503: cfg.SIP.Flood.Answer503(),
		Leaser: leaser,
	})
	if err != nil {
		return err
	}
	svc.SetEdge(gw)
	if ledger != nil {
		ledger.SetOnReady(gw.Effects) // cuts of calls that exhausted a budget shared by the cluster
	}
	// Configuration replication once the edge takes routing changes.
	defer startReplication(cfg, nb, svc, log)()
	svc.SetFlood(flood)
	metrics.SetFloodSource(func() api.FloodStats { return floodStats(flood, conns, time.Now()) })
	metrics.SetActiveSource(svc.ActiveByTenant)
	if r := gw.Media(); r != nil {
		metrics.SetMediaSource(func() api.MediaStats {
			t := r.Totals()
			return api.MediaStats{Packets: t.Packets, Bytes: t.Bytes, Dropped: t.Dropped,
				PortsInUse: t.PortsUsed, PortsFree: int64(2 * r.FreePairs())}
		})
	}
	metrics.SetOutboxDepth(func() int { n, _ := st.OutboxDepth(); return n })
	if err := gw.Start(); err != nil {
		return err
	}
	for _, rd := range svc.RestoreOutput() {
		gw.Effects(rd)
	}
	if restored := svc.Restored(); len(restored) > 0 {
		n := gw.TeardownRestored(restored)
		log.Warn().Int("calls", len(restored)).Int("torn_down", n).Time("billed_up_to", svc.RestoredAt()).
			Msg("calls active at the last stop were billed up to the last checkpoint and torn down")
	}
	var httpSrv *http.Server
	if cfg.API.Listen != "off" {
		ln, err := net.Listen("tcp", cfg.API.Listen)
		if err != nil {
			return &sip.ListenError{Field: "api.listen", Transport: "tcp", Address: cfg.API.Listen, Err: err}
		}
		// The events feed of GET /v1/events (the console's live page):
		// the JetStream stream, or the outbox without NATS.
		var feed api.EventSource
		if nb.js != nil {
			feed = &natsEvents{js: nb.js, stream: cfg.NATS.Stream.Name}
		} else {
			ob := startOutboxEvents(st, cfg.Node, log.With().Str("component", "api").Logger())
			defer ob.Close()
			feed = ob
		}
		// Shutdown does not cancel the requests it waits for: the event
		// streams end with this context instead.
		base, cancelBase := context.WithCancel(context.Background())
		defer cancelBase()
		httpSrv = &http.Server{
			Handler: api.NewServer(svc, metrics, api.ServerOptions{
				Logger: log.With().Str("component", "api").Logger(),
				Events: feed, Console: console.Handler(),
			}),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return base },
		}
		httpSrv.RegisterOnShutdown(cancelBase)
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("admin API stopped")
			}
		}()
		log.Info().Str("listen", ln.Addr().String()).Msg("admin API listening")
	}
	log.Info().Str("version", buildVersion()).Int("tenants", len(svc.Config().Tenants)).Str("data_dir", cfg.Store.DataDir).Msg("tollgate started")
	return waitAndStop(cfg, log, gw, httpSrv, stop)
}

// floodStats are the flood limiters' counts for /metrics.
func floodStats(flood *pike.Limiter, conns *pike.ConnLimiter, now time.Time) api.FloodStats {
	st, cs := flood.Stats(now), conns.Stats()
	return api.FloodStats{
		Allowed: st.Allowed, Limited: st.Limited, Dropped: st.Dropped, ConnectionsRefused: cs.Refused,
		BlockedSources: st.BlockedSources, TrackedSources: st.TrackedSources,
	}
}

// openStore opens the Badger store in data_dir, or the in-memory twin for
// data_dir ":memory:" (nothing survives the process: benchmarks, demos).
// Events are stored in their published form (enc), made once.
func openStore(c configs.Store, enc store.EventEncoder, log zerolog.Logger) (store.Store, error) {
	if c.DataDir == configs.MemoryDataDir {
		log.Warn().Msg("store.data_dir is :memory: — nothing survives a restart")
		return store.NewMem().WithEventEncoder(enc), nil
	}
	return store.Open(c.DataDir, store.Options{
		Sync: *c.Sync, Logger: log.With().Str("component", "store").Logger(),
		MemTableSize: int64(c.MemtableMiB) << 20, EncodeEvent: enc,
		Retention: store.Retention{Usage: c.Retention.Usage, Audit: c.Retention.Audit, Outbox: c.Retention.Outbox},
	})
}

// waitAndStop blocks until SIGTERM/SIGINT (or a value on sigs, when not
// nil), then drains the SIP edge within shutdown_grace (a second signal
// skips the grace) and stops the admin API. The deferred closes flush the
// store. SIGHUP, at any time, reloads the TLS certificates.
func waitAndStop(cfg *configs.Config, log zerolog.Logger, gw *sip.Gateway, httpSrv *http.Server, sigs chan os.Signal) error {
	if sigs == nil {
		sigs = make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	}
	sig := <-sigs
	for sig == syscall.SIGHUP {
		reloadCertificates(log, gw)
		sig = <-sigs
	}
	log.Info().Str("signal", sig.String()).Dur("grace", cfg.SIP.ShutdownGrace).Msg("shutting down: new calls get 503")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SIP.ShutdownGrace)
	defer cancel()
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				cancel()
				return
			}
			reloadCertificates(log, gw)
		}
	}()
	err := gw.Shutdown(ctx)
	if httpSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		httpSrv.Shutdown(hctx)
		hcancel()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info().Msg("tollgate stopped")
	return nil
}

// reloadCertificates runs on SIGHUP. A failure is logged by the gateway,
// which keeps the certificates it has.
func reloadCertificates(log zerolog.Logger, gw *sip.Gateway) {
	log.Info().Msg("SIGHUP: reloading TLS certificates")
	gw.ReloadCertificates()
}
