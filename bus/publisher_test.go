package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/bus/bustest"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// pubEnv is a server, its stream, a client and a publisher over a fake
// outbox.
type pubEnv struct {
	srv *server.Server
	url string
	dir string
	js  jetstream.JetStream
	ob  *fakeOutbox
	sc  configs.NATSStream
}

func newPubEnv(t *testing.T) *pubEnv {
	t.Helper()
	dir := t.TempDir()
	srv, url := bustest.Start(t, dir)
	e := &pubEnv{srv: srv, url: url, dir: dir, ob: newFakeOutbox("0123456789abcdef"), sc: streamCfg()}
	_, e.js = connect(t, url)
	ensure(t, e.js, e.sc)
	return e
}

// start starts a publisher of e.ob on its own connection to url.
func (e *pubEnv) start(t *testing.T, url string, mod func(*bus.PublisherOptions)) *bus.Publisher {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	o := bus.PublisherOptions{
		Conn: nc, Outbox: e.ob, Encode: testEncode,
		Config: configs.NATSPublisher{MaxInFlight: 64, Batch: 100, MaxBackoff: 500 * time.Millisecond},
		Prepare: func(ctx context.Context) error {
			_, err := bus.EnsureStream(ctx, js, e.sc, zerolog.Nop())
			return err
		},
		Poll: 50 * time.Millisecond, Logger: zerolog.Nop(),
	}
	if mod != nil {
		mod(&o)
	}
	p, err := bus.StartPublisher(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closePub(t, p) })
	return p
}

func closePub(t *testing.T, p *bus.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Close: %v", err)
	}
}

// ackedOnlyAfterPubAck makes the outbox check, at every AckOutbox, that
// the stream holds every entry up to upTo already (the stream starts
// empty and every id is new, so its message count tells).
func (e *pubEnv) ackedOnlyAfterPubAck(t *testing.T, entries func() []store.OutboxEntry) {
	e.ob.check = func(upTo uint64) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, e.sc.Name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		n := uint64(0)
		for _, en := range entries() {
			if en.Seq <= upTo {
				n++
			}
		}
		if info.State.Msgs < n {
			return fmt.Errorf("AckOutbox(%d) with %d entries up to it but only %d messages in the stream", upTo, n, info.State.Msgs)
		}
		return nil
	}
}

// N entries published: exactly N messages in the stream, in order, each
// with its Nats-Msg-Id; the outbox is emptied only by acknowledged
// prefixes.
func TestPublishInOrderExactlyOnce(t *testing.T) {
	e := newPubEnv(t)
	var all []store.OutboxEntry
	var mu sync.Mutex
	e.ackedOnlyAfterPubAck(t, func() []store.OutboxEntry { mu.Lock(); defer mu.Unlock(); return all })
	var lat atomic.Int64
	p := e.start(t, e.url, func(o *bus.PublisherOptions) {
		o.OnPubAck = func(d time.Duration) { lat.Add(1) }
	})
	for _, tenant := range []string{"acme", "globex", "acme", "initech"} {
		es := e.ob.Add(250, tenant)
		mu.Lock()
		all = append(all, es...)
		mu.Unlock()
		p.Notify()
	}
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })
	wantExactlyOnce(t, e.js, e.sc.Name, all)
	st := p.Stats()
	if st.Published != 1000 || st.Duplicates != 0 || st.Errors != 0 || st.Skipped != 0 || !st.Connected || st.Depth != 0 || st.OldestAge != 0 {
		t.Errorf("stats %+v", st)
	}
	if lat.Load() != 1000 {
		t.Errorf("PubAck latency observed %d times, want 1000", lat.Load())
	}
	for _, err := range e.ob.errs() {
		t.Error(err)
	}
}

// A publisher restarted before its acks reached the store republishes
// the same entries: JetStream acknowledges them as duplicates (inside
// the 10 min window), the stream still holds each once.
func TestRepublishIsDeduplicated(t *testing.T) {
	e := newPubEnv(t)
	all := e.ob.Add(300, "acme")
	e.ob.setIgnore(true) // the first publisher's acks never reach the store
	p1 := e.start(t, e.url, nil)
	waitFor(t, 20*time.Second, "300 published", func() bool { return p1.Stats().Published == 300 })
	closePub(t, p1)
	if e.ob.depth() != 300 {
		t.Fatalf("depth %d", e.ob.depth())
	}
	e.ob.setIgnore(false)
	p2 := e.start(t, e.url, nil)
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })
	if st := p2.Stats(); st.Duplicates != 300 || st.Published != 0 {
		t.Errorf("second publisher: %+v, want 300 duplicates", st)
	}
	wantExactlyOnce(t, e.js, e.sc.Name, all)
}

// The server goes away in the middle of publishing with PubAcks
// outstanding (the messages stored, their acks lost), entries keep
// arriving, and the server comes back on the same port with the same
// store: every entry arrives exactly once, in order; the writer was never
// held up; the failure shows in Errors and the lost acks come back as
// duplicates.
func TestOutageExactlyOnceInOrder(t *testing.T) {
	e := newPubEnv(t)
	port := bustest.Port(e.srv)
	px := newProxy(t, e.srv.Addr().String())
	p := e.start(t, px.URL(), func(o *bus.PublisherOptions) { o.AckTimeout = 2 * time.Second })

	var (
		mu      sync.Mutex
		all     []store.OutboxEntry
		slowest time.Duration
	)
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() { // the engine's commits: never wait for NATS
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			es := e.ob.Add(5, fmt.Sprintf("t%d", i%3))
			p.Notify()
			d := time.Since(t0)
			mu.Lock()
			all = append(all, es...)
			slowest = max(slowest, d)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // the writer's pace, not a wait for a condition
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(all) }

	waitFor(t, 20*time.Second, "publishing under way", func() bool { return p.Stats().Published >= 200 })
	px.HoldAcks()
	waitFor(t, 10*time.Second, "PubAcks held in the proxy", func() bool { return px.Held() > 0 })
	bustest.Stop(e.srv)
	px.Drop()
	waitFor(t, 10*time.Second, "the publisher to see the outage", func() bool {
		st := p.Stats()
		return !st.Connected && st.Errors > 0
	})
	during := count()
	waitFor(t, 10*time.Second, "entries written during the outage", func() bool { return count() >= during+200 })
	if st := p.Stats(); st.Depth == 0 || st.OldestAge <= 0 {
		t.Errorf("during the outage: %+v", st)
	}
	px.Release()
	e.srv = bustest.Restart(t, e.dir, port)
	waitFor(t, 20*time.Second, "publishing again", func() bool { return p.Stats().Connected && e.ob.depth() < 50 })
	close(stop)
	<-writerDone
	p.Notify()
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })

	_, js := connect(t, e.srv.ClientURL())
	mu.Lock()
	defer mu.Unlock()
	wantExactlyOnce(t, js, e.sc.Name, all)
	st := p.Stats()
	t.Logf("%d entries; stats %+v; slowest write %s", len(all), st, slowest)
	if st.Errors == 0 || st.Duplicates == 0 {
		t.Errorf("stats %+v: want errors (the outage) and duplicate acks (stored messages whose acks were lost)", st)
	}
	if st.Published+st.Duplicates < uint64(len(all)) {
		t.Errorf("published %d + duplicates %d < %d entries", st.Published, st.Duplicates, len(all))
	}
	if slowest > time.Second {
		t.Errorf("a write to the outbox took %s: the publisher held up the writer", slowest)
	}
}

// An entry Encode rejects, and one too large for the server, are logged,
// counted and dropped; the rest is published in order.
func TestUnpublishableEntriesAreSkipped(t *testing.T) {
	dir := t.TempDir()
	srv := bustest.StartOpts(t, &server.Options{StoreDir: dir, MaxPayload: 64 << 10})
	_, js := connect(t, srv.ClientURL())
	sc := streamCfg()
	ensure(t, js, sc)
	e := &pubEnv{srv: srv, url: srv.ClientURL(), dir: dir, js: js, ob: newFakeOutbox("feed"), sc: sc}
	all := e.ob.Add(50, "acme")
	bad := map[uint64]bool{3: true, 17: true}
	huge := uint64(30)
	p := e.start(t, e.url, func(o *bus.PublisherOptions) {
		o.Encode = func(en store.OutboxEntry) (events.Message, error) {
			if bad[en.Seq] {
				return events.Message{}, errors.New("no such event type")
			}
			m, err := testEncode(en)
			if en.Seq == huge {
				m.Data = make([]byte, 100<<10)
			}
			return m, err
		}
	})
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })
	var want []store.OutboxEntry
	for _, en := range all {
		if !bad[en.Seq] && en.Seq != huge {
			want = append(want, en)
		}
	}
	wantExactlyOnce(t, js, sc.Name, want)
	if st := p.Stats(); st.Skipped != 3 || st.Published != 47 || st.Errors != 0 {
		t.Errorf("stats %+v, want 3 skipped, 47 published", st)
	}
}

// A republish after its window has passed is stored again: the short
// window here shows what the default (10 min, far longer than a restart)
// prevents.
func TestDedupWindow(t *testing.T) {
	e := newPubEnv(t)
	e.sc.Name = "SHORT_WINDOW"
	e.sc.DuplicateWindow = time.Second
	if err := e.js.DeleteStream(context.Background(), streamCfg().Name); err != nil {
		t.Fatal(err)
	}
	ensure(t, e.js, e.sc)
	e.ob.Add(20, "acme")
	e.ob.setIgnore(true)
	p1 := e.start(t, e.url, nil)
	waitFor(t, 20*time.Second, "20 published", func() bool { return p1.Stats().Published == 20 })
	closePub(t, p1)
	t0 := time.Now()

	// Inside the window: duplicates.
	p2 := e.start(t, e.url, nil)
	waitFor(t, 20*time.Second, "20 republished", func() bool { st := p2.Stats(); return st.Duplicates+st.Published == 20 })
	closePub(t, p2)
	if time.Since(t0) < e.sc.DuplicateWindow {
		if st := p2.Stats(); st.Duplicates != 20 {
			t.Errorf("inside the window: %+v, want 20 duplicates", st)
		}
	}

	// After it (the server forgets the ids one window after they were
	// stored): stored again.
	waitFor(t, 10*time.Second, "the window to pass", func() bool { return time.Since(t0) > 2*e.sc.DuplicateWindow+500*time.Millisecond })
	e.ob.setIgnore(false)
	p3 := e.start(t, e.url, nil)
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })
	if st := p3.Stats(); st.Published != 20 || st.Duplicates != 0 {
		t.Errorf("after the window: %+v, want 20 stored again", st)
	}
	if n := msgCount(t, e.js, e.sc.Name); n != 40 {
		t.Errorf("stream has %d messages, want 40 (each event twice)", n)
	}
}

// Close publishes what the outbox holds while connected, and returns at
// once when NATS is down.
func TestCloseDrains(t *testing.T) {
	e := newPubEnv(t)
	p := e.start(t, e.url, func(o *bus.PublisherOptions) { o.Poll = time.Hour })
	all := e.ob.Add(500, "acme") // no Notify: only Close drains
	closePub(t, p)
	if e.ob.depth() != 0 {
		t.Fatalf("depth %d after Close", e.ob.depth())
	}
	wantExactlyOnce(t, e.js, e.sc.Name, all)

	// With the server gone, Close returns without waiting for anything.
	p2 := e.start(t, e.url, nil)
	waitFor(t, 5*time.Second, "connected", func() bool { return p2.Stats().Connected })
	bustest.Stop(e.srv)
	waitFor(t, 5*time.Second, "disconnected", func() bool { return !p2.Stats().Connected })
	e.ob.Add(10, "acme")
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p2.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Close took %s with NATS down", d)
	}
	if err := p2.Close(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if e.ob.depth() != 10 {
		t.Errorf("depth %d, want the 10 unpublished", e.ob.depth())
	}
}

// A stream deleted under the publisher: publishes fail (no responders),
// the publisher backs off, Prepare makes the stream again, and the rest
// is published.
func TestStreamRecreatedAfterFailure(t *testing.T) {
	e := newPubEnv(t)
	p := e.start(t, e.url, nil)
	e.ob.Add(10, "acme")
	p.Notify()
	waitFor(t, 10*time.Second, "10 published", func() bool { return e.ob.depth() == 0 })
	if err := e.js.DeleteStream(context.Background(), e.sc.Name); err != nil {
		t.Fatal(err)
	}
	later := e.ob.Add(10, "acme")
	p.Notify()
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool { return e.ob.depth() == 0 })
	if st := p.Stats(); st.Errors == 0 || st.Published != 20 {
		t.Errorf("stats %+v, want errors and 20 published", st)
	}
	wantExactlyOnce(t, e.js, e.sc.Name, later)
}

// Stats: waiting entries give a depth and the age of the oldest.
func TestStatsWhileNotConnected(t *testing.T) {
	ob := newFakeOutbox("ab")
	ob.Add(3, "acme")
	ln, err := net.Listen("tcp", "127.0.0.1:0") // nothing speaks NATS here
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	nc, err := nats.Connect("nats://"+addr, nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	now := time.Now().Add(time.Minute)
	p, err := bus.StartPublisher(bus.PublisherOptions{Conn: nc, Outbox: ob, Encode: testEncode, Logger: zerolog.Nop(),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer closePub(t, p)
	st := p.Stats()
	if st.Connected || st.Depth != 3 || st.OldestAge < 59*time.Second || st.OldestAge > 61*time.Second || st.Published+st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	if _, err := bus.StartPublisher(bus.PublisherOptions{Conn: nc}); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Errorf("StartPublisher without an outbox: %v", err)
	}
}

// noAckOutbox is a store whose AckOutbox is lost (the process died
// between the PubAcks and the outbox's delete).
type noAckOutbox struct{ store.Store }

func (noAckOutbox) AckOutbox(uint64) error { return nil }

// On the Badger store (events kept in their published form, the newest
// read from its in-memory tail): a publisher whose deletes never reach
// the store, as if the process died after the PubAcks and before the
// outbox's write, then a restart on the same directory (the tail starts
// empty, the outbox is read from disk): every event is in the stream
// exactly once, in order, the republished ones counted as duplicates,
// and the outbox empties.
func TestBadgerOutboxCrashBetweenPubAckAndDelete(t *testing.T) {
	e := newPubEnv(t)
	dir := t.TempDir()
	enc := events.Wire("n1")
	open := func() *store.Badger {
		s, err := store.Open(dir, store.Options{Logger: zerolog.Nop(), EncodeEvent: enc})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	encode := func(en store.OutboxEntry) (events.Message, error) { return events.Encode("n1", en) }
	st := open()
	write := func(n int) {
		b := &store.Batch{}
		for i := range n {
			b.Events = append(b.Events, admission.Event{Type: admission.EventCallEnded, Tenant: []string{"acme", "beta"}[i%2],
				At: time.Now(), Call: &admission.CallInfo{Caller: "1555", Callee: "49301"}})
		}
		if err := st.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	p1 := e.start(t, e.url, func(o *bus.PublisherOptions) { o.Outbox, o.Encode = noAckOutbox{st}, encode })
	for range 20 {
		write(30)
		p1.Notify()
	}
	waitFor(t, 20*time.Second, "600 published", func() bool { return p1.Stats().Published == 600 })
	closePub(t, p1)
	if n, _ := st.OutboxDepth(); n != 600 {
		t.Fatalf("depth %d after the lost deletes, want 600", n)
	}
	all, err := st.Outbox(0, 1000)
	if err != nil || len(all) != 600 {
		t.Fatalf("outbox: %d entries, %v", len(all), err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	defer st.Close()
	p2 := e.start(t, e.url, func(o *bus.PublisherOptions) { o.Outbox, o.Encode = st, encode })
	write(30) // and new events after the restart
	p2.Notify()
	waitFor(t, 20*time.Second, "the outbox to empty", func() bool { n, _ := st.OutboxDepth(); return n == 0 })
	if s := p2.Stats(); s.Duplicates != 600 || s.Published != 30 {
		t.Errorf("after the restart: %+v, want 600 duplicates and 30 published", s)
	}
	msgs := readStream(t, e.js, e.sc.Name)
	if len(msgs) != 630 {
		t.Fatalf("stream: %d messages, want 630", len(msgs))
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		if seen[m.id] {
			t.Fatalf("message %d: duplicate id %s", i, m.id)
		}
		seen[m.id] = true
		if i < 600 && m.id != all[i].ID {
			t.Fatalf("message %d: id %s, want %s", i, m.id, all[i].ID)
		}
	}
}
