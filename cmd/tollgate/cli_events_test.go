package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/events/eventstest"
	"github.com/tollgate/tollgate/store"
)

// natsServer starts an in-process nats-server with JetStream on a random
// loopback port.
func natsServer(t *testing.T) *server.Server {
	t.Helper()
	s, _ := bustest.Start(t, t.TempDir())
	return s
}

// eventsStream starts a server with the events stream (as the gateway
// creates it) and returns its URL and a JetStream client.
func eventsStream(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	s := natsServer(t)
	_, js := bustest.Connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: defaultEventsStream, Subjects: []string{events.SubjectPrefix + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return s.ClientURL(), js
}

var evT0 = time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)

func evLim(v int64) *int64 { return &v }

// testEngineEvents are engine events of every type, two tenants and the
// system tenant, in the order they are published.
func testEngineEvents() []admission.Event {
	at := func(d time.Duration) time.Time { return evT0.Add(d) }
	out := &admission.CallInfo{Direction: admission.Outbound, Caller: "100", Callee: "4930123", Rated: true, RatePrefix: "49"}
	answered := *out
	answered.AnsweredAt = at(time.Second)
	ended := answered
	ended.Billed, ended.Cost, ended.Cause = 29*time.Second, 6300, "bye_caller"
	ended.End = &admission.End{Cause: "bye_caller", HungUp: "caller", BilledEnd: at(30 * time.Second), Media: &admission.Media{
		Caller: admission.MediaLeg{Packets: 1450, Bytes: 232000, Lost: 2, JitterMs: 0.4, FirstPacket: at(time.Second), LastPacket: at(30 * time.Second)},
		Callee: admission.MediaLeg{Packets: 1449, Bytes: 231840, JitterMs: 0.3, FirstPacket: at(time.Second), LastPacket: at(30 * time.Second)},
	}}
	rejected := &admission.CallInfo{Direction: admission.Outbound, Caller: "101", Callee: "4930999", Cause: "parallel_calls", Code: 503, Limit: 2, Usage: 2}
	sdp := &admission.CallInfo{Direction: admission.Inbound, Caller: "+15550100", Callee: "200", Cause: "sdp", Code: 488}
	cut := &admission.CallInfo{Direction: admission.Inbound, Caller: "+4930555", Callee: "100", Rated: true, RatePrefix: "",
		AnsweredAt: at(time.Minute), Billed: 210500 * time.Millisecond, Cost: 42600, Cause: "minutes"}
	busy := &admission.CallInfo{Direction: admission.Inbound, Caller: "+15550111", Callee: "201", Cause: "rejected_486",
		End: &admission.End{Cause: "rejected_486", HungUp: "callee", Status: 486}}
	emergency := &admission.CallInfo{Direction: admission.Outbound, Caller: "202", Callee: "112", Emergency: true}
	auto := true
	return []admission.Event{
		{Type: admission.EventCallStarted, Tenant: "acme", User: "100", CallID: "a", At: at(0), Call: out},
		{Type: admission.EventCallAnswered, Tenant: "acme", User: "100", CallID: "a", At: at(time.Second), Call: &answered},
		{Type: admission.EventCallEnded, Tenant: "acme", User: "100", CallID: "a", At: at(31 * time.Second), Call: &ended},
		{Type: admission.EventCallRejected, Tenant: "acme", User: "101", CallID: "d", At: at(time.Minute), Call: rejected},
		{Type: admission.EventCallRejected, Tenant: "globex", User: "200", CallID: "x", At: at(time.Minute), Call: sdp},
		{Type: admission.EventCallStarted, Tenant: "globex", User: "202", CallID: "e", At: at(2 * time.Minute), Call: emergency},
		{Type: admission.EventThreshold, Tenant: "acme", Cap: admission.CapMinutes, Value: 192, Limit: 240, At: at(3 * time.Minute)},
		{Type: admission.EventThreshold, Tenant: "globex", Cap: admission.CapSpend, Value: 40_500_000, Limit: 50_000_000, At: at(4 * time.Minute)},
		{Type: admission.EventThreshold, Tenant: "globex", User: "200", Cap: "role:agents:max_monthly_minutes", Value: 14_400, Limit: 18_000, At: at(4 * time.Minute)},
		{Type: admission.EventCapReached, Tenant: "acme", Cap: admission.CapMinutes, Value: 240, Limit: 240, At: at(5 * time.Minute)},
		{Type: admission.EventCallCut, Tenant: "acme", User: "100", CallID: "b", Cap: admission.CapMinutes, Value: 240, Limit: 240, At: at(5 * time.Minute), Call: cut},
		{Type: admission.EventSuspended, Tenant: "acme", Cap: admission.CapMinutes, Value: 240, Limit: 240, Reason: "max_monthly_minutes reached", At: at(5 * time.Minute)},
		{Type: admission.EventCallEnded, Tenant: "globex", User: "201", CallID: "f", At: at(6 * time.Minute), Call: busy},
		{Type: admission.EventResumed, Tenant: "acme", Cap: admission.CapMinutes, Reason: "paid", At: at(11 * time.Minute)},
		{Type: admission.EventSuspended, Tenant: "acme", Reason: "fraud check", At: at(12 * time.Minute)},
		{Type: admission.EventLimits, Tenant: "acme", At: at(13 * time.Minute), Limits: &admission.Limits{
			MaxParallelCalls: evLim(10), MaxMonthlyMinutes: evLim(4), MonthlySpendLimit: evLim(250_500_000), AlertThresholdPct: evLim(80), AutoSuspend: &auto}},
		{Type: admission.EventRollover, At: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// testMessages are testEngineEvents as published, each checked against
// its schema.
func testMessages(t *testing.T) []events.Message {
	t.Helper()
	var msgs []events.Message
	for i, ev := range testEngineEvents() {
		m, err := events.Encode("gw-1", store.OutboxEntry{Seq: uint64(i + 1), ID: fmt.Sprintf("00000000000000a1-%d", i+1), Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		if err := eventstest.Validate(m.Data); err != nil {
			t.Fatalf("test event %d (%s) is not valid: %v\n%s", i+1, ev.Type, err, m.Data)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func publish(t *testing.T, js jetstream.JetStream, msgs ...events.Message) (last *jetstream.PubAck) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range msgs {
		ack, err := js.Publish(ctx, m.Subject, m.Data, jetstream.WithMsgID(m.ID))
		if err != nil {
			t.Fatal(err)
		}
		last = ack
	}
	return last
}

// eventsRun runs tollgate events with TOLLGATE_NATS_URL=url, on the real
// clock unless now is set.
func eventsRun(t *testing.T, url string, now time.Time, args ...string) result {
	t.Helper()
	if !now.IsZero() {
		old := cliNow
		cliNow = func() time.Time { return now }
		defer func() { cliNow = old }()
	}
	env := map[string]string{"TOLLGATE_NATS_URL": url}
	var out, errOut bytes.Buffer
	code := runCLI(append([]string{"events"}, args...), &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

func eventsGolden(t *testing.T, name string, r result) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
	checkGolden(t, "events/"+name, r.stdout)
}

// TestEventsGolden: the lines and the JSON of every event type, and the
// --tenant and --type filters.
func TestEventsGolden(t *testing.T) {
	url, js := eventsStream(t)
	msgs := testMessages(t)
	publish(t, js, msgs...)
	// A message on the events subjects that is not an event is skipped
	// with a warning (text) or printed as is (json).
	publish(t, js, events.Message{Subject: "tollgate.events.zz.call.ended", ID: "junk", Data: []byte("not json")})

	r := eventsRun(t, url, time.Time{})
	if r.code != exitOK || !strings.Contains(r.stderr, "not an event") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkGolden(t, "events/all", r.stdout)

	r = eventsRun(t, url, time.Time{}, "-o", "json", "--type", "call.ended")
	eventsGolden(t, "call_ended_json", r)
	// -o json is the events as published: byte for byte.
	var want strings.Builder
	for _, m := range msgs {
		if strings.HasSuffix(m.Subject, ".call.ended") {
			want.Write(m.Data)
			want.WriteString("\n")
		}
	}
	if r.stdout != want.String()+"not json\n" {
		t.Errorf("-o json is not the published data:\n%s\nwant\n%s", r.stdout, want.String())
	}

	eventsGolden(t, "tenant_acme", eventsRun(t, url, time.Time{}, "--tenant", "acme"))
	eventsGolden(t, "type_call", eventsRun(t, url, time.Time{}, "--type", "call", "--tenant", "globex"))
	eventsGolden(t, "type_usage_json", eventsRun(t, url, time.Time{}, "--type=usage", "-o=json"))
	eventsGolden(t, "type_pattern", eventsRun(t, url, time.Time{}, "--type", "*.suspended"))
	eventsGolden(t, "system", eventsRun(t, url, time.Time{}, "--tenant", events.SystemTenant))
	eventsGolden(t, "empty", eventsRun(t, url, time.Time{}, "--tenant", "nobody"))
	// The stream flag, and --nats over the environment.
	r = eventsRun(t, "nats://127.0.0.1:1", time.Time{}, "--nats", url, "--stream", defaultEventsStream, "--type", "cycle.rollover", "--all")
	eventsGolden(t, "system", r)
}

// TestEventsSince: --since and --from start at a time of the stream's
// clock; messages stored before it are not printed.
func TestEventsSince(t *testing.T) {
	url, js := eventsStream(t)
	msgs := testMessages(t)
	old := publish(t, js, msgs[:5]...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, defaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(seq uint64) time.Time {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		return m.Time
	}
	tOld := stored(old.Sequence)
	for time.Now().Sub(tOld) < time.Millisecond { // the stream's clock moves on
		time.Sleep(time.Millisecond)
	}
	first := publish(t, js, msgs[5])
	publish(t, js, msgs[6:]...)
	tNew := stored(first.Sequence)
	if !tNew.After(tOld) {
		t.Fatalf("stream times %s, %s do not increase", tOld, tNew)
	}
	mid := tOld.Add(tNew.Sub(tOld) / 2)

	eventsGolden(t, "since", eventsRun(t, url, mid.Add(90*time.Minute), "--since", "90m"))
	eventsGolden(t, "since", eventsRun(t, url, mid.Add(48*time.Hour), "--since=2d"))
	eventsGolden(t, "since", eventsRun(t, url, time.Time{}, "--from", mid.Format(time.RFC3339Nano)))
	// The default is the last hour; --all is everything.
	eventsGolden(t, "all", eventsRun(t, url, tOld.Add(-time.Second).Add(time.Hour)))
	eventsGolden(t, "empty", eventsRun(t, url, tOld.Add(2*time.Hour)))
	eventsGolden(t, "all", eventsRun(t, url, tOld.Add(2*time.Hour), "--all"))
	eventsGolden(t, "empty", eventsRun(t, url, time.Time{}, "--since", "0"))
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEventsFollow: --follow prints what is there, then an event
// published after it caught up, and exits 0 when interrupted.
func TestEventsFollow(t *testing.T) {
	url, js := eventsStream(t)
	msgs := testMessages(t)
	publish(t, js, msgs[:3]...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	oldSignals := eventsSignals
	eventsSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
		c, stop := context.WithCancel(parent)
		go func() {
			<-ctx.Done()
			stop()
		}()
		return c, stop
	}
	defer func() { eventsSignals = oldSignals }()

	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		env := func(k string) string {
			if k == "TOLLGATE_NATS_URL" {
				return url
			}
			return ""
		}
		done <- runCLI([]string{"events", "--follow", "--tenant", "acme"}, &out, &errOut, env)
	}()
	waitLines := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(out.String(), "\n") < n {
			select {
			case code := <-done:
				t.Fatalf("events --follow exited %d early; stderr %q", code, errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timeout waiting for %d lines; got %q, stderr %q", n, out.String(), errOut.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitLines(3)
	publish(t, js, msgs[3:5]...) // acme's call.rejected, globex's (filtered out)
	publish(t, js, msgs[6])      // acme's usage.threshold
	waitLines(5)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after the interrupt, stderr %q", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("events --follow did not exit after the interrupt")
	}
	checkGolden(t, "events/follow", out.String())
	if errOut.String() != "" {
		t.Errorf("stderr %q", errOut.String())
	}
}

// TestEventsErrors: exit codes and messages of what can go wrong.
func TestEventsErrors(t *testing.T) {
	url, _ := eventsStream(t)
	bare := natsServer(t) // JetStream, no stream
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "nats://" + ln.Addr().String()
	ln.Close()
	cases := []struct {
		name     string
		url      string
		args     []string
		code     int
		inStderr []string
	}{
		{"unreachable", closed, nil, exitUnreachable, []string{"cannot connect to NATS at " + closed, "TOLLGATE_NATS_URL"}},
		{"unreachable password hidden", "", []string{"--nats", "nats://ops:s3cret@" + strings.TrimPrefix(closed, "nats://")}, exitUnreachable,
			[]string{"cannot connect to NATS at nats://ops:xxxxx@"}},
		{"no stream", bare.ClientURL(), nil, exitNotFound, []string{`stream "TOLLGATE_EVENTS" not found on`, "the gateway creates it when it starts"}},
		{"other stream", url, []string{"--stream", "OTHER"}, exitNotFound, []string{`stream "OTHER" not found`, "--stream"}},
		{"bad since", url, []string{"--since", "1 day"}, exitUsage, []string{`invalid value "1 day" for flag -since`, "90m, 1h or 7d"}},
		{"negative since", url, []string{"--since", "-1h"}, exitUsage, []string{"-since"}},
		{"since and from", url, []string{"--since", "1h", "--from", "2026-01-01T00:00:00Z"}, exitUsage, []string{"exclusive"}},
		{"all and since", url, []string{"--all", "--since", "2h"}, exitUsage, []string{"exclusive"}},
		{"bad from", url, []string{"--from", "yesterday"}, exitUsage, []string{"--from: want an RFC 3339 time"}},
		{"unknown type", url, []string{"--type", "calls"}, exitUsage, []string{`no event type matches "calls"`, "call.ended"}},
		{"unknown exact type", url, []string{"--type", "call.finished"}, exitUsage, []string{`no event type matches "call.finished"`}},
		{"bad type", url, []string{"--type", "call..ended"}, exitUsage, []string{`invalid type "call..ended"`}},
		{"bad tenant", url, []string{"--tenant", "a.b"}, exitUsage, []string{`invalid tenant name "a.b"`}},
		{"bad output", url, []string{"-o", "yaml"}, exitUsage, []string{"-o must be table or json"}},
		{"argument", url, []string{"acme"}, exitUsage, []string{`unexpected argument "acme"`, "usage: tollgate events"}},
		{"admin flag", url, []string{"--api", "http://x"}, exitUsage, []string{"flag provided but not defined: -api"}},
		{"missing creds", url, []string{"--creds", "testdata/events/missing.creds"}, exitUsage, []string{"--creds: ", "missing.creds"}},
		{"password env unset", url, []string{"--user", "ops", "--password-env", "NATS_PW"}, exitUsage, []string{"NATS_PW is empty or not set"}},
		{"creds and nkey", url, []string{"--creds", "a", "--nkey", "b"}, exitUsage, []string{"exclusive"}},
		{"bad stream", url, []string{"--stream", "a.b"}, exitUsage, []string{"invalid stream name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := eventsRun(t, tc.url, time.Time{}, tc.args...)
			if r.code != tc.code {
				t.Errorf("events %s: exit %d, want %d; stderr %q", strings.Join(tc.args, " "), r.code, tc.code, r.stderr)
			}
			for _, s := range tc.inStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr %q does not contain %q", r.stderr, s)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			if !strings.HasPrefix(r.stderr, "tollgate: ") {
				t.Errorf("stderr %q does not start with \"tollgate: \"", r.stderr)
			}
		})
	}
	// -h prints the usage and the flags.
	r := eventsRun(t, url, time.Time{}, "-h")
	for _, s := range []string{"tollgate events [--tenant T]", "-follow", "-nats URL", "TOLLGATE_NATS_URL", "-stream name", "(default 1h)"} {
		if r.code != exitOK || !strings.Contains(r.stdout, s) {
			t.Errorf("events -h: exit %d, stdout does not contain %q:\n%s", r.code, s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "-token string") || strings.Contains(r.stdout, "-api ") {
		t.Errorf("events -h lists the admin API flags:\n%s", r.stdout)
	}
}

func TestEventsFilter(t *testing.T) {
	for _, tc := range []struct{ tenant, typ, want string }{
		{"", "", "tollgate.events.*.>"},
		{"acme", "", "tollgate.events.acme.>"},
		{"acme", "call.ended", "tollgate.events.acme.call.ended"},
		{"", "call", "tollgate.events.*.call.>"},
		{"", "usage", "tollgate.events.*.usage.>"},
		{"", "*.ended", "tollgate.events.*.*.ended"},
		{"_system", "cycle", "tollgate.events._system.cycle.>"},
		{"", "call.>", "tollgate.events.*.call.>"},
	} {
		got, err := eventsFilter(tc.tenant, tc.typ)
		if err != nil || got != tc.want {
			t.Errorf("eventsFilter(%q, %q) = %q, %v; want %q", tc.tenant, tc.typ, got, err, tc.want)
		}
	}
	for _, typ := range []string{"cal", "call.*.x", "call.>.x", "ca*ll", "call.", ".ended", "tenant.paused"} {
		if _, err := eventsFilter("", typ); err == nil {
			t.Errorf("eventsFilter(%q): no error", typ)
		}
	}
}

// TestEventsAuth: a server that wants a password refuses a client without
// one (exit 4) and accepts --user with --password-env.
func TestEventsAuth(t *testing.T) {
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Username: "ops", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	env := map[string]string{"TOLLGATE_NATS_URL": s.ClientURL(), "NATS_PW": "pw"}
	run := func(args ...string) result {
		var out, errOut bytes.Buffer
		code := runCLI(append([]string{"events"}, args...), &out, &errOut, func(k string) string { return env[k] })
		return result{code, out.String(), errOut.String()}
	}
	if r := run(); r.code != exitAuth || !strings.Contains(r.stderr, "refused the credentials") || !strings.Contains(r.stderr, s.ClientURL()) {
		t.Errorf("no password: exit %d, stderr %q", r.code, r.stderr)
	}
	// Authenticated: the stream is missing (the gateway never ran).
	if r := run("--user", "ops", "--password-env", "NATS_PW"); r.code != exitNotFound || !strings.Contains(r.stderr, "not found") {
		t.Errorf("with password: exit %d, stderr %q", r.code, r.stderr)
	}
}
