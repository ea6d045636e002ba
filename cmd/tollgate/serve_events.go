package main

// The event sources of the admin API's GET /v1/events (server-sent
// events, read by the web console): the NATS JetStream events stream when
// nats.enabled, else the store's outbox, where events stay without NATS.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// eventBuffer is the channel capacity of one subscriber; a subscriber that
// falls this far behind loses events (its stream goes on).
const eventBuffer = 256

// eventFromSubject fills the tenant and type of an event from its subject,
// tollgate.events.<tenant>.<type>.
func eventFromSubject(id, subject string, data []byte) api.Event {
	ev := api.Event{ID: id, Data: data}
	rest, ok := strings.CutPrefix(subject, events.SubjectPrefix+".")
	if !ok {
		return ev
	}
	tenant, typ, _ := strings.Cut(rest, ".")
	if tenant != events.SystemTenant {
		ev.Tenant = tenant
	}
	ev.Type = typ
	return ev
}

// natsEvents reads the events stream with one ephemeral ordered consumer
// per subscriber, from the next event on.
type natsEvents struct {
	js     jetstream.JetStream
	stream string
}

func (n *natsEvents) Source() string { return "nats" }

func (n *natsEvents) Subscribe(ctx context.Context, since time.Time) (<-chan api.Event, error) {
	setup, cancel := context.WithTimeout(ctx, eventsSetupTimeout)
	defer cancel()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectPrefix + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := n.js.OrderedConsumer(setup, n.stream, cfg)
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	ch := make(chan api.Event, eventBuffer)
	go func() {
		defer close(ch)
		defer it.Stop()
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				continue // a reconnect: the ordered consumer resumes
			}
			ev := eventFromSubject(msg.Headers().Get("Nats-Msg-Id"), msg.Subject(), msg.Data())
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// outboxEvents polls the store's outbox (without NATS nothing takes
// events out of it but retention) from its tail and hands each new entry
// to every subscriber.
type outboxEvents struct {
	st    store.Store
	node  string
	every time.Duration
	log   zerolog.Logger

	mu    sync.Mutex
	subs  map[chan api.Event]struct{}
	stop  chan struct{}
	done  chan struct{}
	ready chan struct{} // closed once the tail is found
}

// startOutboxEvents finds the outbox's tail and starts polling it.
func startOutboxEvents(st store.Store, node string, log zerolog.Logger) *outboxEvents {
	o := &outboxEvents{st: st, node: node, every: 250 * time.Millisecond, log: log,
		subs: map[chan api.Event]struct{}{}, stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{})}
	go o.run()
	return o
}

func (o *outboxEvents) Source() string { return "outbox" }

func (o *outboxEvents) Subscribe(ctx context.Context, since time.Time) (<-chan api.Event, error) {
	if !since.IsZero() {
		return nil, api.ErrNoHistory // published events leave the outbox
	}
	ch := make(chan api.Event, eventBuffer)
	o.mu.Lock()
	select {
	case <-o.done:
		o.mu.Unlock()
		return nil, errors.New("stopped")
	default:
	}
	o.subs[ch] = struct{}{}
	o.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-o.done:
		}
		o.mu.Lock()
		if _, ok := o.subs[ch]; ok {
			delete(o.subs, ch)
			close(ch)
		}
		o.mu.Unlock()
	}()
	return ch, nil
}

// tail is the last sequence number in the outbox.
func (o *outboxEvents) tail() (uint64, error) {
	var last uint64
	for {
		page, err := o.st.Outbox(last, 1000)
		if err != nil {
			return last, err
		}
		if len(page) == 0 {
			return last, nil
		}
		last = page[len(page)-1].Seq
	}
}

func (o *outboxEvents) run() {
	defer func() {
		o.mu.Lock()
		close(o.done)
		o.mu.Unlock()
	}()
	last, err := o.tail()
	if err != nil {
		o.log.Warn().Err(err).Msg("events feed: cannot read the outbox")
	}
	close(o.ready)
	tick := time.NewTicker(o.every)
	defer tick.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-tick.C:
		}
		for {
			page, err := o.st.Outbox(last, 500)
			if err != nil || len(page) == 0 {
				break
			}
			last = page[len(page)-1].Seq
			for _, e := range page {
				msg, err := events.Encode(o.node, e)
				if err != nil {
					continue
				}
				o.fanOut(eventFromSubject(msg.ID, msg.Subject, msg.Data))
			}
			if len(page) < 500 {
				break
			}
		}
	}
}

// fanOut gives ev to every subscriber with room for it.
func (o *outboxEvents) fanOut(ev api.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for ch := range o.subs {
		select {
		case ch <- ev:
		default: // too far behind: this one is lost for it
		}
	}
}

// Close stops the poller and ends every subscription.
func (o *outboxEvents) Close() {
	close(o.stop)
	<-o.done
}
