// Command evlat subscribes to tollgate's usage events and measures them:
// events per second by type, duplicates by event id, and for one type
// (default call.ended) the latency from the event's own instant (its
// "time" field, when the call ended in the engine) to its arrival here,
// on the same machine's clock. Run by testbed/events-bench.sh.
//
//	evlat -url nats://127.0.0.1:4222                 # core subscription on tollgate.events.>
//	evlat -url nats://127.0.0.1:4222 -js             # JetStream ordered consumer, new messages only
//	evlat -url ... -duration 60s -series out.tsv
//
// A core subscription receives a message when the server routes the
// publish (before or while JetStream stores it): its latency is the
// gateway's own (commit, outbox read, publish). -js reads the stream
// through an ordered consumer (DeliverNew): the latency then includes
// JetStream's store and the consumer's delivery. A core subscriber also
// sees every republish (after a lost PubAck or a reconnect), which the
// stream deduplicates: its duplicates count publishes, the -js
// consumer's count duplicates in the stream.
//
// On SIGTERM, SIGINT or after -duration it prints one JSON line to
// stdout: events, the span from the first to the last arrival, events/s
// over that span, counts by type, duplicates, decode errors, and the
// latency percentiles (ms) of -type. -series writes one row per second of
// arrivals: unix second, events, events of -type, how many of those took
// more than 50 ms, and the largest latency (ms). -ready writes a
// file once the subscription is up.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

type summary struct {
	Label        string         `json:"label,omitempty"`
	Mode         string         `json:"mode"` // core | js
	Events       int            `json:"events"`
	SpanSeconds  float64        `json:"span_s"`
	EventsPerSec float64        `json:"events_per_s"`
	ByType       map[string]int `json:"by_type"`
	Duplicates   int            `json:"duplicates"`
	DecodeErrors int            `json:"decode_errors"`
	LatencyType  string         `json:"latency_type"`
	Latency      latencySummary `json:"latency_ms"`
	Reconnects   int            `json:"reconnects"`
	First        string         `json:"first,omitempty"`
	Last         string         `json:"last,omitempty"`
	PeakPerSec   int            `json:"peak_events_per_s"`
}

type latencySummary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Min  float64 `json:"min"`
}

// second is one second of arrivals.
type second struct {
	events, typed int     // events, events of the latency type
	over50        int     // of those, latency above 50 ms
	maxMs         float64 // the largest latency
}

type recorder struct {
	mu      sync.Mutex
	latType string
	seen    map[string]struct{}
	byType  map[string]int
	lat     []float64 // ms
	dups    int
	decErr  int
	n       int
	first   time.Time
	last    time.Time
	perSec  map[int64]*second // by unix second of arrival
	reconn  int
}

func (r *recorder) add(data []byte, at time.Time) {
	ev, err := events.Decode(data)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.decErr++
		return
	}
	if r.n == 0 {
		r.first = at
	}
	r.n++
	r.last = at
	r.byType[ev.Type]++
	if _, ok := r.seen[ev.ID]; ok {
		r.dups++
	} else {
		r.seen[ev.ID] = struct{}{}
	}
	c := r.perSec[at.Unix()]
	if c == nil {
		c = &second{}
		r.perSec[at.Unix()] = c
	}
	c.events++
	if r.latType == "" || ev.Type == r.latType {
		ms := float64(at.Sub(ev.Time).Nanoseconds()) / 1e6
		r.lat = append(r.lat, ms)
		c.typed++
		c.maxMs = max(c.maxMs, ms)
		if ms > 50 {
			c.over50++
		}
	}
}

func pct(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func (r *recorder) summary(label, mode string) summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summary{Label: label, Mode: mode, Events: r.n, ByType: r.byType, Duplicates: r.dups,
		DecodeErrors: r.decErr, LatencyType: r.latType, Reconnects: r.reconn}
	if s.LatencyType == "" {
		s.LatencyType = "all"
	}
	if r.n > 0 {
		s.First, s.Last = r.first.UTC().Format(time.RFC3339Nano), r.last.UTC().Format(time.RFC3339Nano)
		s.SpanSeconds = round3(r.last.Sub(r.first).Seconds())
		if s.SpanSeconds > 0 {
			s.EventsPerSec = round3(float64(r.n-1) / s.SpanSeconds)
		}
	}
	for _, c := range r.perSec {
		s.PeakPerSec = max(s.PeakPerSec, c.events)
	}
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		var sum float64
		for _, v := range lat {
			sum += v
		}
		s.Latency = latencySummary{N: n, Mean: round3(sum / float64(n)), P50: round3(pct(lat, 0.50)),
			P90: round3(pct(lat, 0.90)), P99: round3(pct(lat, 0.99)), P999: round3(pct(lat, 0.999)),
			Max: round3(lat[n-1]), Min: round3(lat[0])}
	}
	return s
}

func (r *recorder) writeSeries(path string) error {
	r.mu.Lock()
	secs := make([]int64, 0, len(r.perSec))
	for k := range r.perSec {
		secs = append(secs, k)
	}
	slices.Sort(secs)
	rows := make([]string, 0, len(secs))
	for _, k := range secs {
		c := r.perSec[k]
		rows = append(rows, fmt.Sprintf("%d\t%d\t%d\t%d\t%.3f\n", k, c.events, c.typed, c.over50, c.maxMs))
	}
	lt := r.latType
	r.mu.Unlock()
	if lt == "" {
		lt = "all"
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "unix_s\tevents\t%s\tover_50ms\tmax_ms\n", lt)
	for _, row := range rows {
		f.WriteString(row)
	}
	return f.Close()
}

func main() {
	url := flag.String("url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	subject := flag.String("subject", events.SubjectPrefix+".>", "subject to subscribe to")
	useJS := flag.Bool("js", false, "read the stream through a JetStream ordered consumer (DeliverNew) instead of a core subscription")
	stream := flag.String("stream", "TOLLGATE_EVENTS", "the stream (with -js)")
	latType := flag.String("type", "call.ended", "event type whose latency is measured (\"\": every type)")
	duration := flag.Duration("duration", 0, "stop after this long (0: at SIGTERM/SIGINT)")
	series := flag.String("series", "", "write per-second arrivals to this TSV file at the end")
	ready := flag.String("ready", "", "create this file once subscribed")
	label := flag.String("label", "", "label copied into the summary")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("evlat: ")

	r := &recorder{latType: *latType, seen: make(map[string]struct{}, 1<<18),
		byType: map[string]int{}, perSec: map[int64]*second{}, lat: make([]float64, 0, 1<<16)}
	nc, err := nats.Connect(*url, nats.Name("evlat"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.ReconnectHandler(func(*nats.Conn) { r.mu.Lock(); r.reconn++; r.mu.Unlock() }))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	mode := "core"
	if *useJS {
		mode = "js"
		js, err := jetstream.New(nc)
		if err != nil {
			log.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var st jetstream.Stream
		for { // the gateway creates the stream at its start: wait for it
			st, err = js.Stream(ctx, *stream)
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			log.Fatalf("stream %s: %v", *stream, err)
		}
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{*subject}, DeliverPolicy: jetstream.DeliverNewPolicy})
		cancel()
		if err != nil {
			log.Fatal(err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { r.add(m.Data(), time.Now()) })
		if err != nil {
			log.Fatal(err)
		}
		defer cc.Stop()
	} else {
		sub, err := nc.Subscribe(*subject, func(m *nats.Msg) { r.add(m.Data, time.Now()) })
		if err != nil {
			log.Fatal(err)
		}
		// The bench's bursts (an outage's drain) must not overflow the
		// client's buffer: a slow consumer would drop messages.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			log.Fatal(err)
		}
		if err := nc.Flush(); err != nil && !nc.IsReconnecting() {
			log.Printf("flush: %v", err)
		}
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(mode+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(*duration)
	}
	select {
	case <-sig:
	case <-timeout:
	}
	if *series != "" {
		if err := r.writeSeries(*series); err != nil {
			log.Print(err)
		}
	}
	out, _ := json.Marshal(r.summary(*label, mode))
	fmt.Println(string(out))
}
