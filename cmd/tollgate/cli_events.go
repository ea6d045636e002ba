package main

// tollgate events: reads the events stream of JetStream with an ephemeral
// ordered consumer and prints one line per event, or the events' JSON as
// published (CLI.md, "tollgate events").

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/events"
)

const eventsUsage = `tollgate events [--tenant T] [--type X] [--since 1h | --from RFC3339 | --all] [--follow] [-o json]

One line per event of the events stream (NATS JetStream), or -o json: each
event's JSON as published. Without --follow it exits when caught up.
--type: a type (call.ended), a family (call: every call.*) or a pattern
(*.ended). --since 0 starts now, --all at the first stored event.
Exit codes: 3 no such stream, 4 NATS refused the credentials, 6 NATS
unreachable (CLI.md, "tollgate events").`

// Defaults of tollgate events.
const (
	defaultEventsStream = "TOLLGATE_EVENTS"
	defaultEventsSince  = time.Hour
	// eventsSetupTimeout bounds connecting and creating the consumer.
	eventsSetupTimeout = 10 * time.Second
	// eventsIdle is how long the non-follow mode waits for a message
	// before it asks the server whether any is still pending.
	eventsIdle = 2 * time.Second
)

// defaultNATSURL is the embedded server's default listen address.
var defaultNATSURL = "nats://" + configs.DefaultNATSListen

// eventsSignals is the context of a run: cancelled by SIGINT or SIGTERM
// (a test hook).
var eventsSignals = func(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// codeError is an error with its own exit code (report prints it as
// "tollgate: <message>").
type codeError struct {
	code int
	msg  string
}

func (e *codeError) Error() string { return e.msg }
func (e *codeError) ExitCode() int { return e.code }

// sinceFlag is --since: a Go duration, or a number of days (7d).
type sinceFlag struct{ d time.Duration }

func (s *sinceFlag) String() string {
	if s.d != 0 && s.d%time.Hour == 0 {
		return strconv.FormatInt(int64(s.d/time.Hour), 10) + "h"
	}
	return s.d.String()
}

func (s *sinceFlag) Set(v string) error {
	var (
		d   time.Duration
		err error
	)
	if n, ok := strings.CutSuffix(v, "d"); ok {
		var days float64
		days, err = strconv.ParseFloat(n, 64)
		d = time.Duration(days * 24 * float64(time.Hour))
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < 0 {
		return errors.New("want a duration such as 90m, 1h or 7d")
	}
	s.d = d
	return nil
}

// eventsOptions are the flags of tollgate events.
type eventsOptions struct {
	tenant, typ  string
	since        sinceFlag
	from         string
	all, follow  bool
	natsURL      string
	creds, nkey  string
	user         string
	passwordEnv  string
	tokenEnv     string
	tlsCA        string
	tlsCert      string
	tlsKey       string
	stream       string
	setFlags     map[string]bool
	filter       string
	start        *time.Time // nil: from the first event (--all)
	redactedURLs string
}

func cmdEvents(c *cli, args []string) error {
	// A flag set of its own: --api and --token do not apply.
	c.fs = flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {}
	o := &eventsOptions{since: sinceFlag{defaultEventsSince}}
	fs := c.fs
	fs.StringVar(&o.tenant, "tenant", "", "only the events of tenant `T` (_system: cycle.rollover)")
	fs.StringVar(&o.typ, "type", "", "only events of type `X`: call.ended, a family (call), or a NATS pattern (*.ended)")
	fs.Var(&o.since, "since", "events of the last `duration` (90m, 1h, 7d; 0: from now)")
	fs.StringVar(&o.from, "from", "", "events from `RFC3339` time on")
	fs.BoolVar(&o.all, "all", false, "every event the stream holds")
	fs.BoolVar(&o.follow, "follow", false, "keep printing new events until interrupted")
	fs.StringVar(&o.natsURL, "nats", "", "NATS server `URL`s, comma-separated (env TOLLGATE_NATS_URL, default "+defaultNATSURL+")")
	fs.StringVar(&o.creds, "creds", "", "NATS credentials `file` (user JWT and NKey seed)")
	fs.StringVar(&o.nkey, "nkey", "", "`file` holding an NKey user seed")
	fs.StringVar(&o.user, "user", "", "NATS user `name` (password from --password-env)")
	fs.StringVar(&o.passwordEnv, "password-env", "", "environment `variable` holding the password of --user")
	fs.StringVar(&o.tokenEnv, "token-env", "", "environment `variable` holding a NATS authentication token")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM `file` of the CAs of the server's certificate")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "client certificate PEM `file` (with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "client key PEM `file` (with --tls-cert)")
	fs.StringVar(&o.stream, "stream", defaultEventsStream, "JetStream stream `name` (config nats.stream.name)")
	fs.StringVar(&c.output, "o", "table", "output: table (one line per event) or json (the events as published)")
	// parse checks the admin API URL, which does not apply here.
	env := c.env
	c.env = func(k string) string {
		if k == "TOLLGATE_API" {
			return ""
		}
		return env(k)
	}
	pos, err := c.parse(args)
	c.env = env
	if err != nil {
		return err
	}
	if err := nargs(pos, 0, ""); err != nil {
		return err
	}
	o.setFlags = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.setFlags[f.Name] = true })
	if err := o.check(c.env); err != nil {
		return err
	}
	natsOpts, err := o.natsOptions(c.env)
	if err != nil {
		return err
	}

	ctx, stop := eventsSignals(c.ctx)
	defer stop()
	r := &eventsReader{c: c, o: o, stderr: &lockedWriter{w: c.stderr}}
	return r.run(ctx, natsOpts)
}

// check validates the flags and computes the filter subject and the start.
func (o *eventsOptions) check(env func(string) string) error {
	if o.setFlags["all"] && (o.setFlags["since"] || o.setFlags["from"]) {
		return usagef("--all, --since and --from are exclusive")
	}
	if o.setFlags["since"] && o.setFlags["from"] {
		return usagef("--since and --from are exclusive")
	}
	switch {
	case o.all:
	case o.from != "":
		t, err := time.Parse(time.RFC3339, o.from)
		if err != nil {
			return usagef("--from: want an RFC 3339 time such as 2026-11-22T10:00:00Z, got %q", o.from)
		}
		o.start = &t
	default:
		t := cliNow().Add(-o.since.d).UTC()
		o.start = &t
	}
	filter, err := eventsFilter(o.tenant, o.typ)
	if err != nil {
		return err
	}
	o.filter = filter
	if strings.TrimSpace(o.stream) == "" {
		return usagef("--stream must not be empty")
	}
	if strings.ContainsAny(o.stream, ".*> \t") {
		return usagef("--stream: invalid stream name %q", o.stream)
	}
	raw := firstNonEmpty(o.natsURL, env("TOLLGATE_NATS_URL"), defaultNATSURL)
	var urls, shown []string
	for _, u := range strings.Split(raw, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		urls = append(urls, u)
		shown = append(shown, redactURL(u))
	}
	if len(urls) == 0 {
		return usagef("--nats: no URL in %q", raw)
	}
	o.natsURL = strings.Join(urls, ",")
	o.redactedURLs = strings.Join(shown, ",")
	if o.creds != "" && o.nkey != "" {
		return usagef("--creds and --nkey are exclusive")
	}
	if o.passwordEnv != "" && o.user == "" {
		return usagef("--password-env needs --user")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	for _, f := range []struct{ flag, path string }{
		{"creds", o.creds}, {"nkey", o.nkey}, {"tls-ca", o.tlsCA}, {"tls-cert", o.tlsCert}, {"tls-key", o.tlsKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return &usageError{msg: fmt.Sprintf("--%s: %v", f.flag, err), quiet: true}
		}
	}
	return nil
}

// natsOptions are the connection options of the flags.
func (o *eventsOptions) natsOptions(env func(string) string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("tollgate events"), nats.Timeout(5 * time.Second)}
	if o.creds != "" {
		opts = append(opts, nats.UserCredentials(o.creds))
	}
	if o.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.nkey)
		if err != nil {
			return nil, &usageError{msg: fmt.Sprintf("--nkey: %v", err), quiet: true}
		}
		opts = append(opts, opt)
	}
	if o.user != "" {
		pass := ""
		if o.passwordEnv != "" {
			if pass = env(o.passwordEnv); pass == "" {
				return nil, usagef("--password-env: the environment variable %s is empty or not set", o.passwordEnv)
			}
		}
		opts = append(opts, nats.UserInfo(o.user, pass))
	}
	if o.tokenEnv != "" {
		tok := env(o.tokenEnv)
		if tok == "" {
			return nil, usagef("--token-env: the environment variable %s is empty or not set", o.tokenEnv)
		}
		opts = append(opts, nats.Token(tok))
	}
	if o.tlsCA != "" {
		opts = append(opts, nats.RootCAs(o.tlsCA))
	}
	if o.tlsCert != "" {
		opts = append(opts, nats.ClientCert(o.tlsCert, o.tlsKey))
	}
	if o.follow {
		opts = append(opts, nats.MaxReconnects(-1))
	}
	return opts, nil
}

// redactURL hides the password of a URL (nats://user:pass@host).
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// eventsFilter is the filter subject of --tenant and --type:
// tollgate.events.<tenant or *>.<type pattern>.
func eventsFilter(tenant, typ string) (string, error) {
	t := "*"
	if tenant != "" {
		if strings.ContainsAny(tenant, ".*> \t\r\n") {
			return "", usagef("--tenant: invalid tenant name %q", tenant)
		}
		t = tenant
	}
	p, err := typePattern(typ)
	if err != nil {
		return "", err
	}
	return events.SubjectPrefix + "." + t + "." + p, nil
}

// typePattern is the subject pattern of --type: ">" for every type, X.>
// for a family (no dot), the type or pattern itself otherwise. A pattern
// that matches no known type is a usage error (a typo).
func typePattern(typ string) (string, error) {
	if typ == "" {
		return ">", nil
	}
	p := typ
	if !strings.Contains(typ, ".") && typ != "*" && typ != ">" {
		p = typ + ".>"
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") ||
			(tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>")) || (tok == ">" && i != len(toks)-1) {
			return "", usagef("--type: invalid type %q", typ)
		}
	}
	for _, known := range events.Types {
		if subjectMatch(p, known) {
			return p, nil
		}
	}
	return "", usagef("--type: no event type matches %q (types: %s; a family such as call selects call.*)",
		typ, strings.Join(events.Types, ", "))
}

// subjectMatch reports whether subject matches the NATS pattern (tokens,
// * one token, > the rest).
func subjectMatch(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		if p == ">" {
			return len(st) > i
		}
		if i >= len(st) || (p != "*" && p != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

// eventsReader is one run of tollgate events.
type eventsReader struct {
	c       *cli
	o       *eventsOptions
	stderr  *lockedWriter
	closing atomic.Bool
}

func (r *eventsReader) run(ctx context.Context, natsOpts []nats.Option) error {
	o := r.o
	natsOpts = append(natsOpts,
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !r.closing.Load() {
				r.stderr.printf("tollgate: events: disconnected from NATS (%v), reconnecting\n", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			if !r.closing.Load() {
				r.stderr.printf("tollgate: events: reconnected to %s\n", nc.ConnectedUrlRedacted())
			}
		}))
	nc, err := nats.Connect(o.natsURL, natsOpts...)
	if err != nil {
		return connectError(o.redactedURLs, err)
	}
	defer func() {
		r.closing.Store(true)
		nc.Close()
	}()
	where := nc.ConnectedUrlRedacted()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	setup, cancel := context.WithTimeout(ctx, eventsSetupTimeout)
	defer cancel()
	stream, err := js.Stream(setup, o.stream)
	if err != nil {
		return streamError(o.stream, where, err)
	}
	lastSeq := stream.CachedInfo().State.LastSeq
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{o.filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if o.start != nil {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, o.start
	}
	cons, err := js.OrderedConsumer(setup, o.stream, cfg)
	if err != nil {
		return streamError(o.stream, where, err)
	}
	if !o.follow {
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil // nothing to print
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		var msg jetstream.Msg
		if o.follow {
			msg, err = it.Next(jetstream.NextContext(ctx))
		} else {
			nctx, ncancel := context.WithTimeout(ctx, eventsIdle)
			msg, err = it.Next(jetstream.NextContext(nctx))
			ncancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				// Nothing for a while: caught up unless the server still
				// has messages for the consumer.
				info, ierr := cons.Info(ctx)
				if ierr != nil {
					return fmt.Errorf("reading stream %q on %s: %w", o.stream, where, ierr)
				}
				if info.NumPending == 0 {
					return nil
				}
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return fmt.Errorf("reading stream %q on %s: %w", o.stream, where, err)
		}
		if err := r.print(msg); err != nil {
			return err
		}
		if !o.follow {
			meta, err := msg.Metadata()
			if err == nil && (meta.NumPending == 0 || meta.Sequence.Stream >= lastSeq) {
				return nil // caught up with what the stream held at start
			}
		}
	}
}

// print writes one message: its data as is (-o json), or its line.
func (r *eventsReader) print(msg jetstream.Msg) error {
	data := msg.Data()
	if r.c.output == "json" {
		data = []byte(strings.TrimRight(string(data), "\r\n"))
		_, err := fmt.Fprintf(r.c.stdout, "%s\n", data)
		return err
	}
	ev, err := events.Decode(data)
	if err != nil || ev.Type == "" {
		if err == nil {
			err = errors.New("no type")
		}
		r.stderr.printf("tollgate: events: skipped a message on %s that is not an event: %v\n", msg.Subject(), err)
		return nil
	}
	_, err = fmt.Fprintln(r.c.stdout, eventLine(ev))
	return err
}

// connectError phrases a failed connection.
func connectError(urls string, err error) error {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		return &codeError{exitAuth, fmt.Sprintf("NATS at %s refused the credentials (--creds, --nkey, --user, --token-env): %v", urls, err)}
	}
	return &codeError{exitUnreachable, fmt.Sprintf("cannot connect to NATS at %s (set --nats or TOLLGATE_NATS_URL): %v", urls, err)}
}

// streamError phrases a failure to open the stream or its consumer.
func streamError(stream, where string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return &codeError{exitNotFound, fmt.Sprintf("stream %q not found on %s: the gateway creates it when it starts (tollgate serve); "+
			"another name is set with --stream (config nats.stream.name)", stream, where)}
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return &codeError{exitFailure, fmt.Sprintf("JetStream is not enabled on %s (is it the gateway's NATS?)", where)}
	case errors.Is(err, nats.ErrPermissionViolation):
		return &codeError{exitAuth, fmt.Sprintf("NATS at %s does not allow reading stream %q: %v", where, stream, err)}
	}
	return fmt.Errorf("stream %q on %s: %w", stream, where, err)
}

// lockedWriter serialises writes (the NATS callbacks run in their own
// goroutine).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// ---- the line of an event ----

// eventLine is the human line of an event: time, tenant ("-" for none),
// type, and what happened.
func eventLine(ev events.Event) string {
	tenant := ev.Tenant
	if tenant == "" {
		tenant = "-"
	}
	line := ts(ev.Time) + "  " + tenant + "  " + ev.Type
	if d := eventDetail(ev); d != "" {
		line += "  " + d
	}
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(line)
}

// eventDetail is what happened, by type (CLI.md lists the fields).
func eventDetail(ev events.Event) string {
	var p []string
	add := func(s ...string) {
		for _, v := range s {
			if v != "" {
				p = append(p, v)
			}
		}
	}
	c := ev.Call
	if c != nil {
		add(callSummary(c))
	}
	switch ev.Type {
	case "call.started":
		add(ratePrefix(c))
	case "call.answered":
	case "call.ended":
		add(billed(c), kv("cause", c.Cause), kv("hung_up", c.HungUp), statusKV(c.Status), media(c.Media))
	case "call.cut":
		add(kv("cause", c.Cause), billed(c), capSummary(ev.Usage, false))
	case "call.rejected":
		add(kv("cause", c.Cause), statusKV(c.Status), kv("class", c.Class), capSummary(ev.Usage, false))
	case "usage.threshold", "usage.cap_reached":
		add(capSummary(ev.Usage, true), kv("user", ev.User))
	case "tenant.suspended":
		add(quoted("reason", ev.Reason), capSummary(ev.Usage, false))
	case "tenant.resumed":
		add(quoted("reason", ev.Reason), kv("suspend_cap", ev.SuspendCap))
	case "limits.changed":
		add(limitsSummary(ev.Limits))
	case "cycle.rollover":
		if ev.CycleStart != nil {
			add("cycle_start=" + ts(*ev.CycleStart))
		}
	default: // a type this CLI does not know: what it can tell
		if c != nil {
			add(kv("cause", c.Cause), billed(c))
		}
		add(capSummary(ev.Usage, false), quoted("reason", ev.Reason), kv("user", ev.User))
	}
	return strings.Join(p, " ")
}

func kv(k, v string) string {
	if v == "" {
		return ""
	}
	return k + "=" + v
}

func quoted(k, v string) string {
	if v == "" {
		return ""
	}
	return k + "=" + strconv.Quote(v)
}

func statusKV(s int) string {
	if s == 0 {
		return ""
	}
	return "status=" + strconv.Itoa(s)
}

// callSummary is "call=ID outbound 100 -> 4930123[ emergency]".
func callSummary(c *events.Call) string {
	s := fmt.Sprintf("call=%s %s %s -> %s", c.CallID, c.Direction, orDash(c.Caller), orDash(c.Callee))
	if c.Emergency {
		s += " emergency"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ratePrefix is the rate row: rate=49, rate=default, rate=none (free).
func ratePrefix(c *events.Call) string {
	switch {
	case c.RatePrefix == nil:
		return "rate=none"
	case *c.RatePrefix == "":
		return "rate=default"
	}
	return "rate=" + *c.RatePrefix
}

// billed is "billed=29.5s cost=0.0063" (cost in the tenant's currency).
func billed(c *events.Call) string {
	var p []string
	if c.BilledSeconds != nil {
		p = append(p, "billed="+trimFloat(*c.BilledSeconds, 3)+"s")
	}
	if c.CostMicros != nil {
		p = append(p, "cost="+configs.Money(*c.CostMicros).String())
	}
	return strings.Join(p, " ")
}

// media is "rtp=1450/1449 lost=2/0": packets and lost packets the caller
// and the callee sent.
func media(m *events.Media) string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf("rtp=%d/%d lost=%d/%d", m.Caller.Packets, m.Callee.Packets, m.Caller.Lost, m.Callee.Lost)
}

// capSummary is "cap=max_monthly_minutes 3.2/4 min (80%)": usage/limit in
// the cap's unit (money as a decimal), the percentage with pct. A cap
// without amounts (a cut by a suspension) is its name alone.
func capSummary(u *events.Usage, pct bool) string {
	if u == nil {
		return ""
	}
	s := "cap=" + u.Cap
	if u.Limit == 0 && u.Value == 0 {
		return s
	}
	amount := func(v float64) string {
		if u.Unit == events.UnitMicros {
			return configs.Money(int64(v)).String()
		}
		return trimFloat(v, 3)
	}
	s += " " + amount(u.Value) + "/" + amount(u.Limit)
	switch u.Unit {
	case events.UnitMicros:
	case events.UnitMinutes:
		s += " min"
	case events.UnitCPS:
		s += " calls/s"
	case "":
	default:
		s += " " + u.Unit
	}
	if pct && u.Limit > 0 {
		s += " (" + trimFloat(u.Value/u.Limit*100, 1) + "%)"
	}
	return s
}

// limitsSummary lists the limits that are set: -1 (unlimited; cps_burst:
// auto) is left out, auto_suspend always shown.
func limitsSummary(l *events.Limits) string {
	if l == nil {
		return ""
	}
	var p []string
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"max_parallel_calls", l.MaxParallelCalls}, {"max_parallel_inbound", l.MaxParallelInbound},
		{"max_parallel_outbound", l.MaxParallelOutbound}, {"max_calls_per_second", l.MaxCallsPerSecond},
		{"cps_burst", l.CPSBurst}, {"max_monthly_minutes", l.MaxMonthlyMinutes},
		{"monthly_spend_limit", l.MonthlySpendLimit}, {"alert_threshold_pct", l.AlertThresholdPct},
	} {
		if f.v == -1 {
			continue
		}
		v := strconv.FormatInt(f.v, 10)
		if f.name == "monthly_spend_limit" {
			v = configs.Money(f.v).String()
		}
		p = append(p, f.name+"="+v)
	}
	p = append(p, "auto_suspend="+strconv.FormatBool(l.AutoSuspend))
	return strings.Join(p, " ")
}

// trimFloat formats v with at most prec decimals, trailing zeros dropped.
func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}
