package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/configs"
)

// The cost of nats.sync_always, on the embedded server (file storage in
// the test's temporary directory; put TMPDIR on the disk to measure):
//
//	go test -run '^$' -bench . -benchtime 2000x ./bus/
//
// BenchmarkPubAck: one event at a time, publish to PubAck (the latency
// a subscriber waits for beyond the commit); reports p50/p99.
// BenchmarkDrain: the Publisher draining an outbox of b.N events with
// 256 in flight (the throughput); reports events/s.
func BenchmarkPubAck(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			js, _ := benchServer(b, sync)
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			data := make([]byte, 400) // about the size of a call.ended
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				if _, err := js.Publish(ctx, "tollgate.events.acme.call.ended", data, jetstream.WithMsgID(fmt.Sprint("bench-", i))); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func BenchmarkDrain(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			_, nc := benchServer(b, sync)
			ob := newFakeOutbox("bench")
			ob.Add(b.N, "acme")
			b.ResetTimer()
			p, err := bus.StartPublisher(bus.PublisherOptions{Conn: nc, Outbox: ob, Encode: testEncode, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			for ob.depth() > 0 {
				time.Sleep(time.Millisecond)
			}
			d := time.Since(t0)
			b.StopTimer()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = p.Close(ctx)
			b.ReportMetric(float64(b.N)/d.Seconds(), "events/s")
		})
	}
}

// benchServer starts the embedded server (in process) with the events
// stream and returns a JetStream context on an in-process connection.
func benchServer(b testing.TB, syncAlways bool) (jetstream.JetStream, *nats.Conn) {
	var c configs.Config
	c.NATS.Listen = "off"
	c.NATS.SyncAlways = syncAlways
	c.ApplyDefaults()
	srv, err := bus.StartServer(c.NATS, "bench", b.TempDir(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bus.EnsureStream(context.Background(), js, c.NATS.Stream, zerolog.Nop()); err != nil {
		b.Fatal(err)
	}
	return js, nc
}
