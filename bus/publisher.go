package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// Outbox is what the Publisher needs of the store (store.Store has it).
type Outbox interface {
	// Outbox returns up to limit entries with Seq > after, in Seq order.
	Outbox(after uint64, limit int) ([]store.OutboxEntry, error)
	// AckOutbox deletes the entries with Seq <= upTo.
	AckOutbox(upTo uint64) error
	// OutboxDepth is the number of entries waiting.
	OutboxDepth() (int, error)
}

// Encode turns an outbox entry into the message to publish: events.Encode
// with the node's name.
type Encode func(store.OutboxEntry) (events.Message, error)

// Defaults of PublisherOptions.
const (
	// DefaultPoll is how often the outbox is read when nothing called
	// Notify (a commit that wrote events calls it; the poll is the
	// fallback).
	DefaultPoll = 250 * time.Millisecond
	// DefaultAckTimeout is how long a PubAck is waited for before the
	// publish counts as failed (and is retried, deduplicated).
	DefaultAckTimeout = 5 * time.Second
	// DefaultStoreAckInterval: acknowledged entries are deleted from the
	// outbox at most this often (or a batch at a time), not one store
	// write per event.
	DefaultStoreAckInterval = 100 * time.Millisecond
	// prepareTimeout bounds one Prepare call.
	prepareTimeout = 10 * time.Second
)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	// Conn is the NATS connection (Connect). Required.
	Conn *nats.Conn
	// Outbox is the store. Required.
	Outbox Outbox
	// Encode maps an entry to its message. Required.
	Encode Encode
	// Config is nats.publisher: max_in_flight, batch, max_backoff; zero
	// fields take their defaults.
	Config configs.NATSPublisher
	// Prepare, optional, runs before the first publish and again after
	// every failure, until it succeeds: EnsureStream (so a stream that
	// could not be made at start, or was deleted since, is made when NATS
	// is back). An error counts as a publish failure.
	Prepare func(ctx context.Context) error
	// OnPubAck, optional, receives the time from publish to PubAck of
	// every acknowledged event (metrics).
	OnPubAck func(time.Duration)
	// Poll is the fallback poll of the outbox (default DefaultPoll).
	Poll time.Duration
	// AckTimeout bounds the wait for one PubAck (default
	// DefaultAckTimeout).
	AckTimeout time.Duration
	// StoreAckInterval: how often acknowledged entries are deleted from
	// the outbox (default DefaultStoreAckInterval).
	StoreAckInterval time.Duration
	// Logger is scoped by the caller (component nats).
	Logger zerolog.Logger
	// Now is the clock of Stats' OldestAge and the latencies (nil:
	// time.Now).
	Now func() time.Time
}

// Stats are the publisher's figures for /metrics.
type Stats struct {
	Depth      int           // outbox entries waiting (store.OutboxDepth)
	OldestAge  time.Duration // now − Event.At of the oldest waiting entry; 0 if none
	Published  uint64        // events acknowledged by JetStream as stored
	Duplicates uint64        // events acknowledged as duplicates (already stored: a republish)
	Errors     uint64        // failed publishes (each is retried) and failed Prepare calls
	Skipped    uint64        // entries that could not be encoded or published at all, dropped from the outbox
	Connected  bool          // the NATS connection is up
}

// Publisher drains the outbox into JetStream, exactly once and in order.
// Create it with StartPublisher; it runs in its own goroutine until
// Close.
//
// Each entry is published (asynchronously, at most max_in_flight
// unacknowledged, in Seq order on one connection) with Nats-Msg-Id = its
// event id, and deleted from the outbox only once JetStream has
// acknowledged it and every entry before it — a contiguous prefix; a
// duplicate ack counts. On any failure (PubAck timeout, no responders,
// lost connection, a refusal) it stops publishing, waits until every
// outstanding publish is settled, and starts again from the oldest
// unacknowledged entry after a backoff (100 ms doubling to max_backoff,
// with jitter; at once when the connection comes back). What was stored
// already is dropped by JetStream's deduplication, so a retry neither
// duplicates nor reorders. An entry that cannot be encoded, or is too
// large for the server, is logged, counted (Skipped) and dropped: it
// never wedges the outbox.
type Publisher struct {
	o   PublisherOptions
	log zerolog.Logger
	now func() time.Time

	// The PubAcks come to inbox.<token> (one subscription, sub); its
	// handler queues them in acks and wakes run once for all it queued.
	inbox string
	sub   *nats.Subscription
	acks  ackQueue

	ctx    context.Context // cancelled by Close: aborts a Prepare under way
	cancel context.CancelFunc

	notify  chan struct{}
	closeCh chan context.Context
	done    chan struct{}
	status  chan nats.Status // (re)connected
	lost    chan nats.Status // reconnecting or closed: outstanding PubAcks will not come
	closed  sync.Once

	stored                                 atomic.Uint64 // last seq deleted from the outbox
	published, duplicates, errors, skipped atomic.Uint64
	closeErr                               error // set by run before done is closed
}

// StartPublisher starts a publisher.
func StartPublisher(o PublisherOptions) (*Publisher, error) {
	if o.Conn == nil || o.Outbox == nil || o.Encode == nil {
		return nil, errors.New("nats: publisher needs a connection, an outbox and an encoder")
	}
	c := &o.Config
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = configs.DefaultMaxInFlight
	}
	if c.Batch <= 0 {
		c.Batch = configs.DefaultPublisherBatch
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = configs.DefaultMaxBackoff
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.StoreAckInterval <= 0 {
		o.StoreAckInterval = DefaultStoreAckInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Publisher{
		o: o, log: o.Logger, now: o.Now,
		inbox:   o.Conn.NewInbox() + ".",
		acks:    ackQueue{wake: make(chan struct{}, 1)},
		notify:  make(chan struct{}, 1),
		closeCh: make(chan context.Context, 1),
		done:    make(chan struct{}),
	}
	sub, err := o.Conn.Subscribe(p.inbox+"*", p.onPubAck)
	if err != nil {
		return nil, fmt.Errorf("nats: PubAck subscription: %w", err)
	}
	p.sub = sub
	p.status = o.Conn.StatusChanged(nats.CONNECTED)
	p.lost = o.Conn.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.run()
	return p, nil
}

// Notify tells the publisher the outbox has new entries (a commit wrote
// events). It never blocks.
func (p *Publisher) Notify() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// Stats reads the figures (the depth and the oldest entry from the
// store).
func (p *Publisher) Stats() Stats {
	st := Stats{
		Published: p.published.Load(), Duplicates: p.duplicates.Load(),
		Errors: p.errors.Load(), Skipped: p.skipped.Load(),
		Connected: p.o.Conn.IsConnected(),
	}
	if n, err := p.o.Outbox.OutboxDepth(); err == nil {
		st.Depth = n
	}
	if es, err := p.o.Outbox.Outbox(p.stored.Load(), 1); err == nil && len(es) > 0 {
		st.OldestAge = max(0, p.now().Sub(es[0].Event.At))
	}
	return st
}

// Close stops the publisher. While NATS is connected it first publishes
// what the outbox holds (the events of the shutdown); then it waits for
// the outstanding PubAcks, and deletes from the outbox what was
// acknowledged. It gives up at ctx's end, returning ctx's error: what is
// left stays in the outbox for the next start.
func (p *Publisher) Close(ctx context.Context) error {
	err := ErrClosed
	p.closed.Do(func() {
		p.cancel()
		p.closeCh <- ctx
		<-p.done
		_ = p.sub.Unsubscribe()
		p.o.Conn.RemoveStatusListener(p.status)
		p.o.Conn.RemoveStatusListener(p.lost)
		err = p.closeErr
	})
	return err
}

// inflight is an entry taken from the outbox in this round, in Seq order.
// Its token names its PubAck (the reply subject inbox.<token>); the
// entries of q have consecutive tokens.
type inflight struct {
	seq     uint64
	tok     uint64
	sent    time.Time
	skipped bool // never published (settled)
	done    bool // its outcome came: a PubAck (dup: a duplicate), or err
	dup     bool
	err     error
	acked   time.Time // when its PubAck came
}

// round is the publisher's state, owned by run.
type round struct {
	q       []inflight          // taken, not yet settled, in Seq order
	buf     []store.OutboxEntry // read from the outbox, not yet taken
	cursor  uint64              // last seq taken
	acked   uint64              // last seq of the settled prefix: acknowledged or skipped
	failed  error               // first failure of this round: drain q, then back off
	idle    bool                // the last read found nothing: wait for Notify or the poll
	waiting bool                // backing off after a failure
	backoff time.Duration       // the last backoff (0: none since the last success)
	ready   bool                // Prepare succeeded since the last failure
	lastAck time.Time           // of the last AckOutbox
	nextTok uint64              // the token of the next entry taken (never reused)
	got     []pubAck            // the acks taken from the queue (reused)
}

func (p *Publisher) run() {
	defer close(p.done)
	var (
		r       round
		closing context.Context
		stopped <-chan struct{}
	)
	poll := time.NewTicker(p.o.Poll)
	defer poll.Stop()
	storeTimer := time.NewTimer(time.Hour)
	storeTimer.Stop()
	backoffTimer := time.NewTimer(time.Hour)
	backoffTimer.Stop()
	ackTimer := time.NewTimer(time.Hour) // the front's PubAck timeout
	ackTimer.Stop()
	var armed uint64 // the token ackTimer is set for (0: none)
	storePending := false
	r.nextTok = 1

	for {
		// Take the PubAcks that came, time out the front's, and settle
		// what has settled at the front.
		r.got = p.acks.take(r.got)
		p.apply(&r, r.got)
		if len(r.q) > 0 && !r.q[0].done && time.Since(r.q[0].sent) >= p.o.AckTimeout {
			r.q[0].done, r.q[0].err = true, jetstream.ErrAsyncPublishTimeout
		}
		for len(r.q) > 0 && r.q[0].done {
			p.settle(&r)
		}
		if r.failed != nil && len(r.q) == 0 {
			backoffTimer.Reset(p.endRound(&r))
		}
		// Delete the acknowledged prefix from the outbox, at most every
		// StoreAckInterval (or a batch at a time).
		if stored := p.stored.Load(); r.acked > stored {
			since := time.Since(r.lastAck)
			if closing != nil || r.acked-stored >= uint64(p.o.Config.Batch) || since >= p.o.StoreAckInterval {
				p.ackStore(&r)
				storePending = false
			} else if !storePending {
				storeTimer.Reset(p.o.StoreAckInterval - since)
				storePending = true
			}
		}
		if closing != nil {
			drained := len(r.q) == 0 && (r.idle || r.waiting || !p.o.Conn.IsConnected())
			if drained || closing.Err() != nil {
				p.finish(&r, closing)
				return
			}
		}
		p.fill(&r, closing)
		if len(r.q) > 0 && r.q[0].done || len(r.q) == 0 && (r.failed != nil || closing != nil && r.idle) {
			continue // a skipped entry at the front settles at once; a failure with nothing outstanding ends the round; or drained
		}
		if len(r.q) > 0 && r.q[0].tok != armed {
			ackTimer.Reset(max(0, p.o.AckTimeout-time.Since(r.q[0].sent)))
			armed = r.q[0].tok
		}

		select {
		case <-p.acks.wake:
		case <-ackTimer.C:
			armed = 0 // timed out (above), or set again for the front
		case <-p.lost:
			// Disconnected: the outstanding PubAcks will not come.
			for i := range r.q {
				if !r.q[i].done {
					r.q[i].done, r.q[i].err = true, nats.ErrDisconnected
				}
			}
		case <-p.notify:
			r.idle = false
		case <-poll.C:
			r.idle = false
		case <-backoffTimer.C:
			r.waiting = false
		case <-storeTimer.C:
			storePending = false
		case <-p.status:
			// (Re)connected: retry at once.
			r.waiting, r.backoff, r.idle = false, 0, false
		case ctx := <-p.closeCh:
			closing, stopped = ctx, ctx.Done()
			r.idle = false
		case <-stopped:
			stopped = nil
		}
	}
}

// apply records the outcomes of the acks in q; an ack of an entry no
// longer in q (timed out, or of an earlier round) is dropped.
func (p *Publisher) apply(r *round, acks []pubAck) {
	for _, a := range acks {
		if len(r.q) == 0 || a.tok < r.q[0].tok || a.tok-r.q[0].tok >= uint64(len(r.q)) {
			continue
		}
		f := &r.q[a.tok-r.q[0].tok]
		if !f.done {
			f.done, f.dup, f.err, f.acked = true, a.dup, a.err, a.at
		}
	}
}

// settle pops the front of the round, which has its outcome.
func (p *Publisher) settle(r *round) {
	f := r.q[0]
	r.q = r.q[1:]
	switch {
	case f.skipped:
	case f.err != nil:
		p.errors.Add(1)
		if r.failed == nil {
			r.failed = fmt.Errorf("event seq %d: %w", f.seq, f.err)
		}
		return
	default:
		if f.dup {
			p.duplicates.Add(1)
		} else {
			p.published.Add(1)
		}
		if p.o.OnPubAck != nil {
			p.o.OnPubAck(f.acked.Sub(f.sent))
		}
	}
	if r.failed == nil {
		r.acked = f.seq
		if !f.skipped {
			r.backoff = 0
		}
	}
}

// endRound starts again from the oldest unacknowledged entry, after a
// backoff, and returns the wait.
func (p *Publisher) endRound(r *round) time.Duration {
	if r.backoff == 0 {
		r.backoff = configs.MinBackoff
	} else {
		r.backoff = min(2*r.backoff, p.o.Config.MaxBackoff)
	}
	wait := r.backoff/2 + rand.N(r.backoff/2+1)
	p.log.Warn().Err(r.failed).Uint64("from_seq", r.acked+1).Dur("retry_in", wait).
		Msg("publishing events failed; retrying from the oldest unacknowledged")
	r.cursor, r.buf, r.failed, r.ready, r.waiting = r.acked, nil, nil, false, true
	return wait
}

// fill publishes entries until max_in_flight are outstanding or the
// outbox has no more.
func (p *Publisher) fill(r *round, closing context.Context) {
	if r.failed != nil || r.idle || r.waiting || !p.o.Conn.IsConnected() {
		return
	}
	if !r.ready {
		if p.o.Prepare != nil {
			parent := p.ctx // cancelled by Close
			if closing != nil {
				parent = closing
			}
			ctx, cancel := context.WithTimeout(parent, prepareTimeout)
			err := p.o.Prepare(ctx)
			cancel()
			if err != nil && closing == nil && p.ctx.Err() != nil {
				return // Close interrupted it: again under Close's context
			}
			if err != nil {
				p.errors.Add(1)
				r.failed = err
				return
			}
		}
		r.ready = true
	}
	for len(r.q) < p.o.Config.MaxInFlight {
		if len(r.buf) == 0 {
			es, err := p.o.Outbox.Outbox(r.cursor, p.o.Config.Batch)
			if err != nil {
				p.log.Error().Err(err).Msg("reading the outbox failed")
				r.idle = true // again at the next poll
				return
			}
			if len(es) == 0 {
				r.idle = true
				return
			}
			r.buf = es
		}
		e := r.buf[0]
		r.buf = r.buf[1:]
		msg, err := p.o.Encode(e)
		if err != nil {
			p.skip(r, e, "cannot be encoded", err)
			continue
		}
		tok := r.nextTok
		m := &nats.Msg{Subject: msg.Subject, Reply: p.inbox + strconv.FormatUint(tok, 10), Data: msg.Data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{msg.ID}}}
		sent := time.Now()
		if err := p.o.Conn.PublishMsg(m); err != nil {
			if permanent(err) {
				p.skip(r, e, "cannot be published", err)
				continue
			}
			p.errors.Add(1)
			r.failed = fmt.Errorf("event seq %d: %w", e.Seq, err)
			r.buf = nil
			return
		}
		r.q = append(r.q, inflight{seq: e.Seq, tok: tok, sent: sent})
		r.nextTok++
		r.cursor = e.Seq
	}
}

// skip drops an entry that can never be published.
func (p *Publisher) skip(r *round, e store.OutboxEntry, why string, err error) {
	p.skipped.Add(1)
	p.log.Error().Err(err).Uint64("seq", e.Seq).Str("id", e.ID).Str("type", e.Event.Type).Str("tenant", e.Event.Tenant).
		Msg("event " + why + "; dropped from the outbox")
	r.q = append(r.q, inflight{seq: e.Seq, tok: r.nextTok, skipped: true, done: true})
	r.nextTok++
	r.cursor = e.Seq
}

// permanent reports publish errors that a retry cannot cure.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrHeadersNotSupported)
}

// ackStore deletes the acknowledged prefix from the outbox.
func (p *Publisher) ackStore(r *round) {
	r.lastAck = time.Now()
	if err := p.o.Outbox.AckOutbox(r.acked); err != nil {
		p.log.Error().Err(err).Uint64("up_to", r.acked).Msg("deleting published events from the outbox failed")
		return
	}
	p.stored.Store(r.acked)
}

// finish is the end of Close: the acknowledged prefix leaves the outbox.
func (p *Publisher) finish(r *round, closing context.Context) {
	if r.acked > p.stored.Load() {
		p.ackStore(r)
	}
	if len(r.q) > 0 {
		p.closeErr = fmt.Errorf("nats: publisher stopped with %d publishes unacknowledged: %w", len(r.q), closing.Err())
	}
}

// pubAck is the outcome of one publish: its token, a duplicate, or an
// error (the stream refused it, or no stream took it).
type pubAck struct {
	tok uint64
	dup bool
	err error
	at  time.Time
}

// ackQueue holds the PubAcks the subscription received until run takes
// them: one wakeup for all the acks that came meanwhile, not one per
// event.
type ackQueue struct {
	mu   sync.Mutex
	acks []pubAck
	wake chan struct{} // 1-buffered
}

// take returns the queued acks, leaving buf (emptied) as the queue.
func (q *ackQueue) take(buf []pubAck) []pubAck {
	q.mu.Lock()
	defer q.mu.Unlock()
	got := q.acks
	q.acks = buf[:0]
	return got
}

// onPubAck is the subscription's handler: a reply to inbox.<token>.
func (p *Publisher) onPubAck(m *nats.Msg) {
	tok, err := strconv.ParseUint(m.Subject[len(p.inbox):], 10, 64)
	if err != nil {
		return
	}
	a := pubAck{tok: tok, at: time.Now()}
	a.dup, a.err = parsePubAck(m)
	p.acks.mu.Lock()
	p.acks.acks = append(p.acks.acks, a)
	p.acks.mu.Unlock()
	select {
	case p.acks.wake <- struct{}{}:
	default:
	}
}

// parsePubAck reads JetStream's reply to a publish: nil for a message
// stored (dup: it was already, a duplicate), else why not. The usual
// reply, {"stream":...,"seq":...} without "duplicate" or "error", is
// recognised without decoding the JSON; any other is decoded.
func parsePubAck(m *nats.Msg) (dup bool, err error) {
	d := m.Data
	if len(d) == 0 && m.Header.Get("Status") == "503" {
		return false, jetstream.ErrNoStreamResponse
	}
	if bytes.HasPrefix(d, []byte(`{"stream":"`)) && bytes.Contains(d, []byte(`"seq":`)) &&
		!bytes.Contains(d, []byte(`"error"`)) && !bytes.Contains(d, []byte(`"duplicate"`)) {
		return false, nil
	}
	var r struct {
		Error     *jetstream.APIError `json:"error"`
		Stream    string              `json:"stream"`
		Duplicate bool                `json:"duplicate"`
	}
	if err := json.Unmarshal(d, &r); err != nil {
		return false, jetstream.ErrInvalidJSAck
	}
	if r.Error != nil {
		return false, r.Error
	}
	if r.Stream == "" {
		return false, jetstream.ErrInvalidJSAck
	}
	return r.Duplicate, nil
}
