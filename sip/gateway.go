// Package sip is tollgate's SIP edge: listeners, tenant/direction
// classification, a dialog-stateful proxy (RFC 3261 §16) with its own dialog
// table, admission through the admission runner, and the both-legs teardown.
package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/meter"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/pike"
)

// Options are the gateway's settings beyond the config file.
type Options struct {
	Logger zerolog.Logger
	// Clock is the time source of every timer of the edge; nil means the
	// wall clock.
	Clock Clock
	// OnEvent receives every usage event (threshold, cap reached,
	// suspension, rollover, cut) after it is logged. Optional.
	OnEvent func(admission.Event)
	// Metrics observes decisions and teardowns. Optional.
	Metrics Observer
	// Flood limits requests per source (sip.flood); nil: no limit.
	Flood *pike.Limiter
	// Conns caps TCP/TLS connections per source and in total; nil: none.
	Conns *pike.ConnLimiter
	// FloodAnswer503 answers a blocked source with one 503 per second
	// (pike.Limiter.AnswerBlocked) instead of nothing.
	FloodAnswer503 bool
	// Leaser leases cluster capacity when the engine found the node's
	// leases used up (cluster.enabled); nil: a single gateway.
	Leaser Leaser
}

// Leaser is the cluster ledger as the edge uses it (cluster.Ledger).
type Leaser interface {
	// Acquire leases more of tenant's dimension dim; full: the cluster
	// has nothing left for one more call. An error means the ledger
	// cannot be asked: the call gets 503 with RetryAfter.
	Acquire(tenant, user string, dim admission.LeaseDim, now time.Time) (full bool, err error)
	RetryAfter() time.Duration
}

// Observer receives the gateway's countable facts (Prometheus metrics).
type Observer interface {
	Admitted(direction string)
	Rejected(cause string)
	AdmissionLatency(d time.Duration)
	Teardown(cause string)
	// Refused counts a request the edge answered (or, for an ACK,
	// dropped) before admission: front door, unknown source, party and
	// target checks. cause names the check.
	Refused(cause string)
	// Dropped counts a message dropped without an answer: stray or
	// unknown-source responses, unparsable input.
	Dropped(reason string)
}

type listener struct {
	transport string // UDP, TCP or TLS
	host      string // IP the socket is bound to
	port      int
	laddr     sip.Addr // UDP: the listener socket, so requests leave from it; TCP: its IP, for dialling
	pc        net.PacketConn
	ln        net.Listener // TCP, or TLS (a *tlsListener)
}

// now reads the gateway's clock.
func (g *Gateway) now() time.Time { return g.clock.Now() }

// Gateway is a running SIP edge.
type Gateway struct {
	cfg        *configs.Config
	log        zerolog.Logger
	clock      Clock
	classifier atomic.Pointer[Classifier]
	metrics    Observer
	adm        *admission.Runner
	dialogs    *DialogTable

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	advertise string
	listeners map[string]*listener // by transport
	tls       *tlsEdge             // nil without a tls listener (tls.go)
	selfHosts map[string]bool
	selfPorts map[int]bool

	onEvent func(admission.Event)
	leaser  Leaser
	sched   scheduler
	absorb  *absorber

	serial   *serializer // per-Call-ID order of requests (pipeline.go)
	flood    *pike.Limiter
	conns    *pike.ConnLimiter
	flood503 bool
	parseLog logLimiter

	media     *meter.Relay // nil with media.mode off
	announcer *announcer   // nil without media or announcement causes

	draining atomic.Bool
	inflight atomic.Int64 // transactions being proxied or sent by the gateway
	closed   atomic.Bool
}

// New builds a gateway from a validated config and an admission runner.
func New(cfg *configs.Config, adm *admission.Runner, opts Options) (*Gateway, error) {
	g := &Gateway{
		cfg:       cfg,
		log:       opts.Logger.With().Str("component", "sip").Logger(),
		clock:     opts.Clock,
		metrics:   opts.Metrics,
		adm:       adm,
		dialogs:   NewDialogTable(),
		listeners: make(map[string]*listener),
		selfHosts: make(map[string]bool),
		selfPorts: make(map[int]bool),
		advertise: cfg.SIP.Advertise,
		onEvent:   opts.OnEvent,
		leaser:    opts.Leaser,
		serial:    newSerializer(),
		flood:     opts.Flood,
		conns:     opts.Conns,
		flood503:  opts.FloodAnswer503,
		parseLog:  logLimiter{interval: time.Second},
	}
	if g.clock == nil {
		g.clock = realClock{}
	}
	if cfg.Media.Mode == configs.MediaRelay {
		lo, hi := cfg.Media.PortRange()
		r, err := meter.New(meter.Config{Bind: cfg.Media.IP(), Advertise: cfg.Media.IP(), PortMin: lo, PortMax: hi})
		if err != nil {
			return nil, fmt.Errorf("sip: media: %w", err)
		}
		g.media = r
		if g.announcer, err = newAnnouncer(r, cfg.Announcement.Prompt, cfg.Announcement.Causes); err != nil {
			return nil, fmt.Errorf("sip: %w", err)
		}
	}
	g.classifier.Store(NewClassifier(cfg))
	// sipgo logs through slog; keep only its errors, in our log stream,
	// rate-limited and counted (sipgolog.go).
	slogger := slog.New(newSipgoHandler(g.log, opts.Metrics))
	// sipgo's default logger is process-wide: the first gateway sets it.
	setSipgoLogger.Do(func() { sip.SetDefaultLogger(slogger) })
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("tollgate"),
		sipgo.WithUserAgenTLSConfig(g.fallbackTLSConfig()),
		// The edge's patches of sipgo (third_party/sipgo/PATCHES.md).
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(slogger),
			sip.WithTransactionLayerUnhandledResponseHandler(g.onStrayResponse),
			sip.WithTransactionLayerRequestDispatcher(g.dispatch),
			sip.WithTransactionLayerCancelToTU(),
			sip.WithTransactionLayerInlineResponses(),
		),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerSymmetricResponses(),
			sip.WithTransportLayerParseErrorHandler(g.parseError),
			sip.WithTransportLayerReadFilter(g.readFilter),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	g.ua = ua
	if g.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(slogger)); err != nil {
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	if g.client, err = sipgo.NewClient(ua, sipgo.WithClientLogger(slogger)); err != nil {
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	// Retransmissions that outlive sipgo's short transaction linger
	// (timers.go) are absorbed as the transaction would have (absorb.go).
	g.absorb = newAbsorber(g.clock)
	// The gateway is the transaction layer's request handler itself (in
	// place of sipgo.Server's, which ends a transaction when its handler
	// returns): handlers return quickly and a goroutine that still waits
	// for responses ends the transaction itself.
	ua.TransactionLayer().OnRequest(g.onRequest)
	return g, nil
}

var setSipgoLogger sync.Once

// Start binds every configured listener and serves them in the background.
// Listen ports of 0 pick free ports (see Addr).
func (g *Gateway) Start() (err error) {
	var opened []io.Closer // every socket bound so far: closed again if Start fails
	defer func() {
		if err != nil {
			for _, c := range opened {
				c.Close()
			}
			clear(g.listeners)
		}
	}()
	for _, l := range g.cfg.SIP.Listen {
		tr := strings.ToUpper(l.Transport)
		li := &listener{transport: tr}
		switch tr {
		case "UDP":
			pc, err := net.ListenPacket("udp", l.Address)
			if err != nil {
				return &ListenError{Field: "sip.listen", Transport: "udp", Address: l.Address, Err: err}
			}
			opened = append(opened, pc)
			a := pc.LocalAddr().(*net.UDPAddr)
			li.pc, li.host, li.port = pc, a.IP.String(), a.Port
			// Bursts of INVITEs overflow the kernel's default 208 KiB
			// receive buffer long before the CPU is busy.
			if got := setUDPBuffers(pc.(*net.UDPConn), udpBufferBytes); got < udpBufferBytes {
				g.log.Warn().Int("wanted", udpBufferBytes).Int("got", got).Msg("udp receive buffer smaller than wanted (raise net.core.rmem_max)")
			}
			li.laddr = sip.Addr{IP: a.IP, Port: a.Port}
		case "TCP":
			ln, err := net.Listen("tcp", l.Address)
			if err != nil {
				return &ListenError{Field: "sip.listen", Transport: "tcp", Address: l.Address, Err: err}
			}
			opened = append(opened, ln)
			a := ln.Addr().(*net.TCPAddr)
			li.ln, li.host, li.port = ln, a.IP.String(), a.Port
			li.laddr = sip.Addr{IP: a.IP, Port: a.Port} // connections are dialled from its IP
		case "TLS":
			if li, err = g.listenTLS(l); err != nil {
				return err
			}
			opened = append(opened, li.ln)
		default:
			return fmt.Errorf("sip: unsupported transport %q", l.Transport)
		}
		if _, dup := g.listeners[tr]; dup {
			return fmt.Errorf("sip: more than one %s listener", l.Transport)
		}
		g.listeners[tr] = li
		g.selfHosts[li.host] = true
		g.selfPorts[li.port] = true
	}
	if g.advertise == "" {
		for _, l := range g.listeners {
			g.advertise = l.host
			break
		}
	}
	g.selfHosts[g.advertise] = true
	g.installTLSRequester()
	for _, li := range g.listeners {
		li := li
		go func() {
			var err error
			switch {
			case li.pc != nil:
				err = g.srv.ServeUDP(li.pc)
			case li.transport == "TLS":
				err = g.srv.ServeTLS(li.ln) // connection caps inside, before the handshake (tls.go)
			default:
				err = g.srv.ServeTCP(g.streamListener(li.ln))
			}
			if err != nil && !g.closed.Load() && !errors.Is(err, net.ErrClosed) {
				g.log.Error().Err(err).Str("transport", li.transport).Msg("listener stopped")
			}
		}()
		if li.pc != nil {
			// Requests leave from the listener, which sipgo registers in
			// its connection pool once serving: wait for that.
			if err := waitUDPServing(g.ua, li.laddr.String()); err != nil {
				return err
			}
		}
		g.log.Info().Str("transport", li.transport).Str("addr", net.JoinHostPort(li.host, strconv.Itoa(li.port))).Msg("listening")
	}
	g.apply(g.adm.Tick(g.now())) // the engine's first deadline (at least the next cycle start)
	if g.media != nil {
		g.watchMedia()
	}
	return nil
}

// waitUDPServing waits until sipgo serves the UDP listener at addr.
func waitUDPServing(ua *sipgo.UserAgent, addr string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			c.TryClose() // GetConnection took a reference
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sip: udp listener %s not serving", addr)
		}
		time.Sleep(time.Millisecond)
	}
}

// Addr returns the bound host:port of the listener for transport ("udp",
// "tcp" or "tls").
func (g *Gateway) Addr(transport string) string {
	li := g.listeners[strings.ToUpper(transport)]
	if li == nil {
		return ""
	}
	return net.JoinHostPort(li.host, strconv.Itoa(li.port))
}

// ActiveCalls returns the number of calls in the dialog table.
func (g *Gateway) ActiveCalls() int { return g.dialogs.Len() }

// Dialog returns the call with the given Call-ID (any caller tag), or nil.
func (g *Gateway) Dialog(callID string) *Dialog {
	for _, d := range g.dialogs.All() {
		if d.CallID == callID {
			return d
		}
	}
	return nil
}

// Drain stops taking new calls: from now on every new INVITE gets 503.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Shutdown drains the gateway, waits for active calls to end until ctx is
// done, tears down what is left (BYE both legs), waits for the transactions
// still in flight (a BYE's 200 must reach the caller) and closes.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.Drain()
	g.log.Info().Int("active", g.ActiveCalls()).Msg("draining")
	if !g.waitIdle(ctx.Done(), func() bool { return g.ActiveCalls() == 0 }) {
		g.log.Warn().Int("active", g.ActiveCalls()).Msg("grace period over: tearing down remaining calls")
		for _, d := range g.dialogs.All() {
			g.Teardown(d, CauseShutdown)
		}
	}
	flush, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	g.waitIdle(flush.Done(), func() bool { return g.ActiveCalls() == 0 && g.inflight.Load() == 0 })
	return g.Close()
}

// flushTimeout bounds the wait for in-flight transactions at shutdown.
const flushTimeout = 5 * time.Second

// waitIdle polls cond until it holds (true) or stop fires (false).
func (g *Gateway) waitIdle(stop <-chan struct{}, cond func() bool) bool {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-stop:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

// track counts a transaction in flight until the returned func is called.
func (g *Gateway) track() func() {
	g.inflight.Add(1)
	return func() { g.inflight.Add(-1) }
}

// Close closes listeners and the user agent immediately.
func (g *Gateway) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	g.stopScheduler()
	g.closeListeners()
	for _, d := range g.dialogs.All() {
		g.closeMedia(d) // media ports go back with the process's sockets
	}
	if g.media != nil {
		g.media.Close() // and its readers stop
	}
	return g.ua.Close()
}

func (g *Gateway) closeListeners() {
	for _, li := range g.listeners {
		if li.pc != nil {
			li.pc.Close()
		}
		if li.ln != nil {
			li.ln.Close()
		}
	}
}

// isSelf reports whether uri addresses the gateway itself.
func (g *Gateway) isSelf(u *sip.Uri) bool {
	if !g.selfHosts[u.Host] {
		return false
	}
	port := u.Port
	if port == 0 {
		port = 5060
	}
	return g.selfPorts[port]
}
