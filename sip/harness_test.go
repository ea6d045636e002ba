package sip

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/pike"
)

// Loopback addresses tell the parties apart.
const (
	carrierIP = "127.0.0.2"
	tenantIP  = "127.0.0.10"
	strangeIP = "127.0.0.99"
)

// rcvd is a request a peer received.
type rcvd struct {
	req *sip.Request
	at  time.Time
}

// peer is a real sipgo user agent on its own 127.0.0.x address: the PBX or
// the carrier, as UAC and UAS.
type peer struct {
	t         *testing.T
	ip        string
	port      int
	transport string
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	cli       *sipgo.Client
	contact   sip.ContactHeader
	calls     *sipgo.DialogClientCache
	answers   *sipgo.DialogServerCache

	mu      sync.Mutex
	onCall  func(p *peer, req *sip.Request, tx sip.ServerTransaction)
	got     []rcvd
	gotCh   chan struct{}
	dialogs map[string]*sipgo.DialogServerSession
}

func newPeer(t *testing.T, ip string) *peer { return newPeerOn(t, ip, "udp") }

// newPeerOn starts a peer whose SIP runs over transport (udp or tcp; both
// listens on UDP and TCP on one port and sends over UDP).
func newPeerOn(t *testing.T, ip, transport string) *peer {
	t.Helper()
	return newPeerWith(t, ip, transport, peerTLS{})
}

// peerTLS is a tls peer's side of TLS: the config of its listener and the
// one it dials with.
type peerTLS struct {
	server, client *tls.Config
}

// newPeerWith starts a peer whose SIP runs over transport (udp, tcp or
// tls, with the TLS settings tc).
func newPeerWith(t *testing.T, ip, transport string, tc peerTLS) *peer {
	t.Helper()
	var (
		pc   net.PacketConn
		ln   net.Listener
		port int
		err  error
	)
	if transport == "both" {
		pc, ln, port = listenBoth(t, ip)
		transport = "udp"
	} else if transport == "tcp" || transport == "tls" {
		if ln, err = net.Listen("tcp", ip+":0"); err != nil {
			t.Fatalf("listen %s: %v", ip, err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		if transport == "tls" {
			ln = tls.NewListener(ln, tc.server)
		}
	} else {
		if pc, err = net.ListenPacket("udp", ip+":0"); err != nil {
			t.Fatalf("listen %s: %v", ip, err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("peer-"+ip), sipgo.WithUserAgenTLSConfig(tc.client))
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ip: ip, port: port, transport: transport, ua: ua, gotCh: make(chan struct{}, 1), dialogs: map[string]*sipgo.DialogServerSession{}}
	p.srv, _ = sipgo.NewServer(ua)
	// Requests leave from the peer's own address: the UDP listener, or a
	// TCP connection bound to the peer's IP.
	connAddr := net.JoinHostPort(ip, strconv.Itoa(port))
	if transport != "udp" {
		connAddr = ip + ":0"
	}
	p.cli, err = sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientPort(port), sipgo.WithClientConnectionAddr(connAddr))
	if err != nil {
		t.Fatal(err)
	}
	p.contact = sip.ContactHeader{Address: sip.Uri{Host: ip, Port: port}}
	if transport != "udp" {
		p.contact.Address.UriParams = sip.NewParams()
		p.contact.Address.UriParams.Add("transport", transport)
	}
	p.calls = sipgo.NewDialogClientCache(p.cli, p.contact)
	p.answers = sipgo.NewDialogServerCache(p.cli, p.contact)
	p.onCall = answer(0)

	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		if to := req.To(); to != nil && tagOf(to.Params) != "" { // re-INVITE
			res := sip.NewResponseFromRequest(req, 200, "OK", req.Body())
			res.AppendHeader(&p.contact)
			tx.Respond(res)
			return
		}
		p.mu.Lock()
		h := p.onCall
		p.mu.Unlock()
		h(p, req, tx)
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		p.answers.ReadAck(req, tx)
	})
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	for _, m := range []sip.RequestMethod{sip.OPTIONS, sip.INFO, sip.UPDATE} {
		p.srv.OnRequest(m, func(req *sip.Request, tx sip.ServerTransaction) {
			p.record(req)
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
	}
	if ln != nil && transport == "tls" {
		go p.srv.ServeTLS(ln)
		t.Cleanup(func() { ua.Close(); ln.Close() })
		return p
	}
	if ln != nil {
		go p.srv.ServeTCP(ln)
		t.Cleanup(func() { ua.Close(); ln.Close() })
		if pc == nil {
			return p
		}
	}
	// The gateway's socket buffers: a burst of calls overflows the default
	// 208 KiB, and the peers share the gateway's short sipgo transaction
	// timers (timers.go), so a UAS stops retransmitting a lost 2xx after
	// 500 ms instead of the 32 s of a UAS in a process of its own.
	setUDPBuffers(pc.(*net.UDPConn), udpBufferBytes)
	go p.srv.ServeUDP(pc)
	if err := waitUDPServing(ua, p.addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close(); pc.Close() })
	return p
}

// hopTransport is the transport the gateway uses toward a peer: a peer on
// both UDP and TCP is configured as UDP.
func hopTransport(peerTransport string) string {
	if peerTransport == "both" {
		return "udp"
	}
	return peerTransport
}

// listenBoth binds UDP and TCP on the same free port of ip.
func listenBoth(t *testing.T, ip string) (net.PacketConn, net.Listener, int) {
	t.Helper()
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err == nil {
			return pc, ln, port
		}
		pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil, 0
}

func (p *peer) addr() string { return net.JoinHostPort(p.ip, strconv.Itoa(p.port)) }

func (p *peer) setOnCall(h func(p *peer, req *sip.Request, tx sip.ServerTransaction)) {
	p.mu.Lock()
	p.onCall = h
	p.mu.Unlock()
}

func (p *peer) record(req *sip.Request) {
	p.mu.Lock()
	p.got = append(p.got, rcvd{req: req, at: time.Now()})
	p.mu.Unlock()
	select {
	case p.gotCh <- struct{}{}:
	default:
	}
}

// received returns the requests of a method the peer got for a Call-ID
// ("" for any).
func (p *peer) received(method sip.RequestMethod, callID string) []rcvd {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []rcvd
	for _, r := range p.got {
		if r.req.Method == method && (callID == "" || callIDOf(r.req) == callID) {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls until the peer has received a request of the method.
func (p *peer) waitFor(method sip.RequestMethod, callID string, within time.Duration) rcvd {
	p.t.Helper()
	var got rcvd
	eventually(p.t, within, func() bool {
		rs := p.received(method, callID)
		if len(rs) == 0 {
			return false
		}
		got = rs[0]
		return true
	}, "%s %s never reached %s", method, callID, p.ip)
	return got
}

// answer returns a UAS behaviour: 180, then 200 after ring.
func answer(ring time.Duration) func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
	return answerBody(ring, "v=0\r\n")
}

// answerBody is answer with the 200's body.
func answerBody(ring time.Duration, body string) func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
	return func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := p.answers.ReadInvite(req, tx)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.dialogs[callIDOf(req)] = dlg
		p.mu.Unlock()
		if ring > 0 {
			dlg.Respond(180, "Ringing", nil)
			select {
			case <-time.After(ring):
			case <-tx.Done():
				return
			}
		}
		dlg.Respond(200, "OK", []byte(body))
	}
}

// ringForever sends 180 and never answers.
func ringForever(p *peer, req *sip.Request, tx sip.ServerTransaction) {
	dlg, err := p.answers.ReadInvite(req, tx)
	if err != nil {
		return
	}
	dlg.Respond(180, "Ringing", nil)
	<-tx.Done()
}

// reject returns a UAS behaviour answering code at once.
func reject(code int, phrase string) func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
	return func(p *peer, req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, code, phrase, nil))
	}
}

// dialog returns the UAS-side dialog of a call the peer answered.
func (p *peer) dialog(callID string) *sipgo.DialogServerSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialogs[callID]
}

// invite sends an INVITE to the gateway for user and waits for the final
// answer; on 2xx it sends the ACK.
func (p *peer) invite(ctx context.Context, gw *Gateway, user string) (*sipgo.DialogClientSession, int, error) {
	return p.inviteAs(ctx, gw, "", user)
}

// inviteBody is invite with an SDP body of its own.
func (p *peer) inviteBody(ctx context.Context, gw *Gateway, user, body string) (*sipgo.DialogClientSession, int, error) {
	return p.inviteFull(ctx, gw, "", user, body)
}

// inviteAs is invite with the caller identity (From user) set to from.
func (p *peer) inviteAs(ctx context.Context, gw *Gateway, from, user string) (*sipgo.DialogClientSession, int, error) {
	return p.inviteFull(ctx, gw, from, user, "v=0\r\n")
}

func (p *peer) inviteFull(ctx context.Context, gw *Gateway, from, user, body string) (*sipgo.DialogClientSession, int, error) {
	host, port, _ := sip.ParseAddr(gw.Addr(p.transport))
	uri := sip.Uri{User: user, Host: host, Port: port}
	if p.transport != "udp" {
		uri.UriParams = sip.NewParams()
		uri.UriParams.Add("transport", p.transport)
	}
	hdrs := []sip.Header{sip.NewHeader("Content-Type", "application/sdp")}
	if from != "" {
		params := sip.NewParams()
		params.Add("tag", sip.GenerateTagN(16))
		hdrs = append(hdrs, &sip.FromHeader{Address: sip.Uri{User: from, Host: p.ip}, Params: params})
	}
	sess, err := p.calls.Invite(ctx, uri, []byte(body), hdrs...)
	if err != nil {
		return nil, 0, err
	}
	err = sess.WaitAnswer(ctx, sipgo.AnswerOptions{})
	code := 0
	if sess.InviteResponse != nil {
		code = sess.InviteResponse.StatusCode
	}
	if err == nil {
		err = sess.Ack(ctx)
	}
	return sess, code, err
}

// env is a gateway between a tenant PBX and a carrier, both real peers.
type env struct {
	gw      *Gateway
	adm     *admission.Runner
	cfg     *configs.Config
	pbx     *peer         // the tenant's PBX (127.0.0.10): caller of outbound, callee of inbound
	carrier *peer         // the carrier (127.0.0.2): callee of outbound, caller of inbound
	clock   Clock         // the gateway's clock: real unless a test sets a fake one before start
	flood   *pike.Limiter // set before start to give the gateway a flood limiter
	conns   *pike.ConnLimiter

	mu     sync.Mutex
	events []admission.Event
	obs    countingObserver
}

// countingObserver counts what the gateway reports to its Observer.
type countingObserver struct {
	afterAdmit                    atomic.Pointer[func()]
	mu                            sync.Mutex
	admitted, rejected, teardowns map[string]int
	refused, dropped              map[string]int
}

func (o *countingObserver) inc(m *map[string]int, k string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[k]++
}

func (o *countingObserver) Admitted(dir string)   { o.inc(&o.admitted, dir) }
func (o *countingObserver) Rejected(cause string) { o.inc(&o.rejected, cause) }
func (o *countingObserver) AdmissionLatency(time.Duration) {
	if f := o.afterAdmit.Load(); f != nil {
		(*f)() // runs right after Admit returned, before the INVITE is forwarded
	}
}
func (o *countingObserver) Teardown(cause string) { o.inc(&o.teardowns, cause) }
func (o *countingObserver) Refused(cause string)  { o.inc(&o.refused, cause) }
func (o *countingObserver) Dropped(reason string) { o.inc(&o.dropped, reason) }

// get reads one count of the map at m (safe while the gateway counts).
func (o *countingObserver) get(m *map[string]int, k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return (*m)[k]
}

func (o *countingObserver) count(m map[string]int, k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[k]
}

// recordEvent is the gateway's event sink in tests.
func (e *env) recordEvent(ev admission.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// eventsOf returns the recorded events of a type.
func (e *env) eventsOf(typ string) []admission.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []admission.Event
	for _, ev := range e.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for the n-th event of a type and returns it.
func (e *env) waitEvent(t *testing.T, typ string, n int, within time.Duration) admission.Event {
	t.Helper()
	eventually(t, within, func() bool { return len(e.eventsOf(typ)) >= n }, "no %d× %s event", n, typ)
	return e.eventsOf(typ)[n-1]
}

// envSpec is what a test asks of its environment.
type envSpec struct {
	pbxTransport     string
	carrierTransport string            // udp (default), tcp, tls, or both: UDP and TCP on one port (sends UDP)
	flood            bool              // the gateway gets a flood limiter from sip.flood
	conns            *pike.ConnLimiter // the gateway's TCP/TLS connection caps
	tls              *tlsSetup         // certificates and peer TLS settings (tls_test.go)
	edits            []func(*configs.Config)
}

type envOption func(*envSpec)

// withMedia anchors media on 127.0.0.1 with ports from lo to hi.
func withMedia(lo, hi int) envOption {
	return withConfig(func(c *configs.Config) {
		c.Media = configs.Media{Mode: configs.MediaRelay, Address: "127.0.0.1", Ports: fmt.Sprintf("%d-%d", lo, hi)}
	})
}

func withConfig(f func(*configs.Config)) envOption {
	return func(s *envSpec) { s.edits = append(s.edits, f) }
}

func withCap(n int64) envOption {
	return withConfig(func(c *configs.Config) { c.Plans[0].Limits.MaxParallelCalls = &n })
}

func withTimerC(d time.Duration) envOption {
	return withConfig(func(c *configs.Config) { c.SIP.TimerC = d })
}

// withTCPPBX makes the tenant's PBX talk TCP to the gateway (the carrier
// stays on UDP), and adds a TCP listener to the gateway.
func withTCPPBX() envOption {
	return func(s *envSpec) { s.pbxTransport = "tcp" }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	spec := envSpec{pbxTransport: "udp", carrierTransport: "udp"}
	for _, o := range opts {
		o(&spec)
	}
	var pbxTLS, carrierTLS peerTLS
	if spec.tls != nil {
		pbxTLS, carrierTLS = spec.tls.pbx, spec.tls.carrier
	}
	e := &env{pbx: newPeerWith(t, tenantIP, spec.pbxTransport, pbxTLS), carrier: newPeerWith(t, carrierIP, spec.carrierTransport, carrierTLS)}
	unlimited := int64(-1)
	cfg := &configs.Config{
		Log: configs.Log{Level: "debug", Format: "json"},
		SIP: configs.SIP{Listen: []configs.Listen{{Transport: "udp", Address: "127.0.0.1:0"}}},
		Carriers: []configs.Carrier{{
			Name: "carrier", Hop: configs.Hop{Address: e.carrier.addr(), Transport: hopTransport(spec.carrierTransport)},
			Sources: []string{carrierIP + "/32"},
		}},
		Plans: []configs.Plan{{Name: "plan", Limits: configs.Limits{MaxParallelCalls: &unlimited}}},
		Tenants: []configs.Tenant{{
			Name: "acme", Plan: "plan", Carrier: "carrier",
			Sources: []string{tenantIP + "/32"}, DIDs: []string{"+1555"},
			PBX: configs.Hop{Address: e.pbx.addr(), Transport: spec.pbxTransport},
		}},
	}
	if spec.pbxTransport == "tcp" {
		cfg.SIP.Listen = append(cfg.SIP.Listen, configs.Listen{Transport: "tcp", Address: "127.0.0.1:0"})
	}
	if spec.tls != nil {
		spec.tls.configure(cfg)
	}
	// Signalling tests run with media off (their SDP bodies are stand-ins);
	// withMedia anchors it.
	cfg.Media = configs.Media{Mode: configs.MediaOff}
	for _, edit := range spec.edits {
		edit(cfg)
	}
	cfg.ApplyDefaults()
	if spec.flood {
		e.flood = pike.New(cfg.SIP.Flood.PikeConfig())
	}
	e.conns = spec.conns
	e.start(t, cfg)
	return e
}

// newEnvYAML starts an environment from a full config in YAML, in which
// CARRIER and PBX stand for the peers' addresses. The gateway listens on a
// free UDP port.
func newEnvYAML(t *testing.T, yml string) *env {
	t.Helper()
	return newEnvYAMLClock(t, yml, nil)
}

// newEnvYAMLClock is newEnvYAML with the gateway on clock (nil: real).
func newEnvYAMLClock(t *testing.T, yml string, clock Clock) *env {
	t.Helper()
	e := &env{pbx: newPeer(t, tenantIP), carrier: newPeer(t, carrierIP), clock: clock}
	yml = strings.NewReplacer("CARRIER", e.carrier.addr(), "PBX", e.pbx.addr()).Replace(yml)
	cfg, err := configs.Parse(t.Name()+".yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SIP.Listen = []configs.Listen{{Transport: "udp", Address: "127.0.0.1:0"}}
	if !strings.Contains(yml, "\nmedia:") {
		cfg.Media.Mode = configs.MediaOff // as newEnv: stand-in SDP bodies
	}
	e.start(t, cfg)
	return e
}

func (e *env) start(t *testing.T, cfg *configs.Config) {
	t.Helper()
	var err error
	if e.clock == nil {
		e.clock = realClock{}
	}
	if e.adm, err = cfg.AdmissionRunner(e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	logw := zerolog.Nop()
	if testing.Verbose() {
		logw = zerolog.New(os.Stderr)
	}
	if e.gw, err = New(cfg, e.adm, Options{Logger: logw, OnEvent: e.recordEvent, Metrics: &e.obs, Clock: e.clock,
		Flood: e.flood, Conns: e.conns, FloodAnswer503: cfg.SIP.Flood.Answer503()}); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.gw.Close() })
	e.cfg = cfg
}

// operate runs an operator change on the engine and hands its effects to
// the gateway, as the control service does.
func (e *env) operate(t *testing.T, op func(now time.Time) (admission.Ready, error)) {
	t.Helper()
	rd, err := op(e.clock.Now())
	e.gw.Effects(rd)
	if err != nil {
		t.Fatal(err)
	}
}

// answeredCall places an outbound call from the PBX and returns it answered
// and acknowledged, with its Call-ID.
//
// The engine learns of an answer just after the 200 reached the caller (a
// 2xx that cannot be relayed is never billed), so it waits for that too.
func (e *env) answeredCall(t *testing.T) (*sipgo.DialogClientSession, string) {
	t.Helper()
	drawn := func() time.Duration { return e.adm.Usage(e.clock.Now().Add(time.Second), "acme").Seconds }
	before := drawn()
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("call: code %d err %v", code, err)
	}
	cid := callIDOf(sess.InviteRequest)
	eventually(t, 2*time.Second, func() bool {
		d := e.gw.Dialog(cid)
		return drawn() > before || d == nil || d.State() != Confirmed // billing, or cut at once
	}, "the engine never learnt of the answer")
	return sess, cid
}

// idle waits until the gateway has no call and the tenant no slot in use.
func (e *env) idle(t *testing.T) {
	t.Helper()
	eventually(t, 5*time.Second, func() bool {
		return e.gw.ActiveCalls() == 0 && e.adm.Active("acme") == 0
	}, "gateway not idle: %d dialogs, %d slots", e.gw.ActiveCalls(), e.adm.Active("acme"))
}

// eventually polls cond every 5 ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
