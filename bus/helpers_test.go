package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

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

// Both stores are an Outbox.
var _ bus.Outbox = store.Store(nil)

// fakeOutbox is the store's outbox in memory: entries appended with Add
// (seq 1, 2, ...), read and acknowledged by the publisher. check, when
// set, runs in AckOutbox before the deletion; its errors are collected.
type fakeOutbox struct {
	mu       sync.Mutex
	entries  []store.OutboxEntry
	next     uint64
	prefix   string
	ignore   bool // AckOutbox deletes nothing (a publisher whose acks never reached the store)
	acks     []uint64
	check    func(upTo uint64) error
	problems []error
}

func newFakeOutbox(prefix string) *fakeOutbox { return &fakeOutbox{prefix: prefix} }

// Add appends n events of tenant t and returns them.
func (f *fakeOutbox) Add(n int, tenant string) []store.OutboxEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.OutboxEntry
	for range n {
		f.next++
		e := store.OutboxEntry{Seq: f.next, ID: f.prefix + "-" + strconv.FormatUint(f.next, 10),
			Event: admission.Event{Type: "call.ended", Tenant: tenant, At: time.Now()}}
		f.entries = append(f.entries, e)
		out = append(out, e)
	}
	return out
}

func (f *fakeOutbox) Outbox(after uint64, limit int) ([]store.OutboxEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.OutboxEntry
	for _, e := range f.entries {
		if e.Seq > after {
			out = append(out, e)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

func (f *fakeOutbox) AckOutbox(upTo uint64) error {
	f.mu.Lock()
	check := f.check
	if len(f.acks) > 0 && upTo < f.acks[len(f.acks)-1] {
		f.problems = append(f.problems, fmt.Errorf("AckOutbox(%d) after AckOutbox(%d)", upTo, f.acks[len(f.acks)-1]))
	}
	f.acks = append(f.acks, upTo)
	f.mu.Unlock()
	if check != nil {
		if err := check(upTo); err != nil {
			f.mu.Lock()
			f.problems = append(f.problems, err)
			f.mu.Unlock()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ignore {
		return nil
	}
	i := 0
	for i < len(f.entries) && f.entries[i].Seq <= upTo {
		i++
	}
	f.entries = f.entries[i:]
	return nil
}

func (f *fakeOutbox) OutboxDepth() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries), nil
}

func (f *fakeOutbox) depth() int { n, _ := f.OutboxDepth(); return n }

func (f *fakeOutbox) setIgnore(v bool) {
	f.mu.Lock()
	f.ignore = v
	f.mu.Unlock()
}

func (f *fakeOutbox) errs() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.problems...)
}

// testEncode is a stand-in for events.Encode: the data names the seq.
func testEncode(e store.OutboxEntry) (events.Message, error) {
	return events.Message{Subject: events.Subject(e.Event.Tenant, e.Event.Type), ID: e.ID,
		Data: []byte(fmt.Sprintf(`{"id":%q,"seq":%d}`, e.ID, e.Seq))}, nil
}

// streamCfg is the default stream section.
func streamCfg() configs.NATSStream {
	var c configs.Config
	c.ApplyDefaults()
	return c.NATS.Stream
}

// waitFor polls cond every few milliseconds until it holds or timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connect is a plain client connection to url.
func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return bustest.Connect(t, url, opts...)
}

// ensure creates the events stream of c.
func ensure(t *testing.T, js jetstream.JetStream, c configs.NATSStream) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := bus.EnsureStream(ctx, js, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stored is a message of the stream.
type stored struct {
	seq  uint64
	id   string
	subj string
	data string
}

// readStream returns every message of the stream, in stream order.
func readStream(t *testing.T, js jetstream.JetStream, name string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		out = append(out, stored{seq: m.Sequence, id: m.Header.Get(jetstream.MsgIDHeader), subj: m.Subject, data: string(m.Data)})
	}
	return out
}

// msgCount is the stream's number of messages.
func msgCount(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// wantExactlyOnce checks that the stream holds exactly the entries, in
// order, each once with its Nats-Msg-Id.
func wantExactlyOnce(t *testing.T, js jetstream.JetStream, name string, entries []store.OutboxEntry) {
	t.Helper()
	got := readStream(t, js, name)
	if len(got) != len(entries) {
		t.Errorf("stream has %d messages, want %d", len(got), len(entries))
	}
	for i := 0; i < len(got) && i < len(entries); i++ {
		e := entries[i]
		want, _ := testEncode(e)
		if got[i].id != e.ID || got[i].subj != want.Subject || got[i].data != string(want.Data) {
			t.Fatalf("message %d (stream seq %d) = %+v, want id %s subject %s data %s", i, got[i].seq, got[i], e.ID, want.Subject, want.Data)
		}
	}
}

// proxy is a TCP proxy in front of a nats-server: HoldAcks stops what
// the server sends from reaching the client (the PubAcks pile up in the
// proxy), Drop closes every connection through it.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	hold  bool
	held  int // bytes held from the server since HoldAcks
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.Drop() })
	return p
}

func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

// pipe copies to dst from src; the direction !toServer is the one
// HoldAcks stops.
func (p *proxy) pipe(dst, src net.Conn, toServer bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !toServer {
				p.mu.Lock()
				if p.hold {
					p.held += n
					p.mu.Unlock()
					continue // dropped: lost with the connection
				}
				p.mu.Unlock()
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed
		}
	}
}

// HoldAcks keeps what the server sends from the client from now on.
func (p *proxy) HoldAcks() {
	p.mu.Lock()
	p.hold, p.held = true, 0
	p.mu.Unlock()
}

// Held is the number of bytes held since HoldAcks.
func (p *proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Release forwards again (for new connections).
func (p *proxy) Release() {
	p.mu.Lock()
	p.hold = false
	p.mu.Unlock()
}

// Drop closes every connection through the proxy.
func (p *proxy) Drop() {
	p.mu.Lock()
	cs := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}
