//go:build unix

package bus_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/store"
)

// BenchmarkPipeline is the gateway's publishing path without SIP: a
// Badger store (fsync, events in their published form) gets a commit of
// 3 × rate / 100 call events every 10 ms (the group commit at rate
// calls/s), for b.N commits. With publish=on the embedded server, the
// events stream and the Publisher drain the outbox as the gateway's do;
// with off the events stay in the outbox. Reported: the process's CPU
// (user + system, Go runtime included) per event, and the publishing
// cost is the difference between on and off of one run. The machine's
// other load moves both; compare within one run:
//
//	go test -run '^$' -bench Pipeline -benchtime 500x -count 3 ./bus/
func BenchmarkPipeline(b *testing.B) {
	for _, rate := range []int{1000, 2500} {
		for _, on := range []bool{false, true} {
			mode := map[bool]string{false: "off", true: "on"}[on]
			b.Run(fmt.Sprintf("rate=%d/publish=%s", rate, mode), func(b *testing.B) {
				benchPipeline(b, rate, on)
			})
		}
	}
}

func benchPipeline(b *testing.B, rate int, on bool) {
	dir := b.TempDir()
	st, err := store.Open(dir+"/store", store.Options{Sync: true, Logger: zerolog.Nop(), EncodeEvent: events.Wire("bench")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var p *bus.Publisher
	if on {
		_, nc := benchServer(b, false)
		p, err = bus.StartPublisher(bus.PublisherOptions{Conn: nc, Outbox: st, Logger: zerolog.Nop(),
			Encode: func(e store.OutboxEntry) (events.Message, error) { return events.Encode("bench", e) }})
		if err != nil {
			b.Fatal(err)
		}
	}
	perCommit := 3 * rate / 100
	evs := make([]admission.Event, perCommit)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range evs {
		typ := []string{admission.EventCallStarted, admission.EventCallAnswered, admission.EventCallEnded}[i%3]
		evs[i] = admission.Event{Type: typ, Tenant: "bench", At: t0, Call: &admission.CallInfo{
			Direction: admission.Outbound, Caller: "15550001", Callee: "4930123456", Rated: true, RatePrefix: "49",
			AnsweredAt: t0, Billed: time.Minute, Cost: 12345, Cause: "normal"}}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		<-tick.C
		now := time.Now()
		for j := range evs {
			evs[j].At = now
		}
		if err := st.Apply(&store.Batch{At: now, Events: evs}); err != nil {
			b.Fatal(err)
		}
		if p != nil {
			p.Notify()
		}
	}
	if p != nil {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if s := p.Stats(); s.Depth == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cpu := processCPU() - cpu0
	wall := time.Since(start)
	b.StopTimer()
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if s := p.Stats(); s.Published != uint64(b.N*perCommit) {
			b.Fatalf("published %d of %d", s.Published, b.N*perCommit)
		}
	}
	n := float64(b.N * perCommit)
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(0, "ns/op")
}

// processCPU is the CPU time (user + system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
