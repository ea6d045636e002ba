package store_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/store"
)

// latencies collects durations and reports percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, prefix string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	pct := func(p float64) float64 {
		return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), prefix+"-p50-ms")
	b.ReportMetric(pct(0.99), prefix+"-p99-ms")
	b.ReportMetric(float64(len(l.d)), prefix+"s")
}

// callID is a realistic admission id: Call-ID;from-tag.
func callID(i int) string {
	return fmt.Sprintf("%016x-%08d@10.20.30.40;%08x", uint64(i)*0x9e3779b97f4a7c15, i, uint32(i)*2654435761)
}

// BenchmarkCommitterCalls records one call per op (its answer step and
// its end step) into a Committer on a synced Badger store and reports the
// commit latency percentiles: unpaced (as fast as Record goes: large
// groups) and paced at 2,000 calls/s (a loaded gateway).
func BenchmarkCommitterCalls(b *testing.B) {
	b.Run("unpaced", func(b *testing.B) { benchCommitter(b, 0) })
	b.Run("2000cps", func(b *testing.B) { benchCommitter(b, 2000) })
}

func benchCommitter(b *testing.B, rate int) {
	s, err := store.Open(b.TempDir(), store.Options{Sync: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var lat latencies
	c := store.NewCommitter(s, store.CommitterOptions{Logger: zerolog.Nop(), OnCommit: func(d time.Duration, _ *store.Batch) { lat.add(d) }})
	t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if rate > 0 && i%20 == 0 {
			if ahead := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		a, e := callSteps(fmt.Sprintf("tenant%d", i%5), fmt.Sprintf("user%d", i%50), callID(i), t0.Add(time.Duration(i)*time.Millisecond), 60)
		c.Record(&a)
		c.Record(&e)
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	lat.report(b, "commit")
}

// BenchmarkMemtable records calls (answer and end steps) into a Committer
// on a synced Badger store with memtables of 4, 8 and 32 MiB and reports
// the process's CPU per call, the memtable flushes and compactions in
// the background included (run enough calls to fill several memtables:
// -benchtime 100000x writes about 65 MB of memtable: 16 flushes at 4 MiB,
// 2 at 32 MiB).
func BenchmarkMemtable(b *testing.B) {
	for _, mib := range []int64{4, 8, 32} {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			s, err := store.Open(b.TempDir(), store.Options{Sync: true, Logger: zerolog.Nop(), MemTableSize: mib << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			c := store.NewCommitter(s, store.CommitterOptions{Logger: zerolog.Nop()})
			t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
			cpu0 := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a, e := callSteps(fmt.Sprintf("tenant%d", i%5), fmt.Sprintf("user%d", i%50), callID(i), t0.Add(time.Duration(i)*time.Millisecond), 60)
				c.Record(&a)
				c.Record(&e)
			}
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/call")
		})
	}
}

// BenchmarkApply measures one Apply of a typical group commit (20 calls
// answered, 20 ended with their counters, users and day usage) on Badger.
func BenchmarkApply(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run("sync="+strconv.FormatBool(sync), func(b *testing.B) {
			s, err := store.Open(b.TempDir(), store.Options{Sync: sync, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
			var lat latencies
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				batch := &store.Batch{At: t0.Add(time.Duration(i) * 10 * time.Millisecond)}
				for j := 0; j < 20; j++ {
					n := i*20 + j
					a, e := callSteps(fmt.Sprintf("tenant%d", n%5), fmt.Sprintf("user%d", n%50), callID(n), batch.At, 60)
					batch.PutCalls = append(batch.PutCalls, a.Answered...)
					if n >= 20 {
						batch.DeleteCalls = append(batch.DeleteCalls, callID(n-20))
					}
					batch.Counters = append(batch.Counters, e.Tenants...)
					batch.Users = append(batch.Users, e.Users...)
				}
				batch.Days = []store.DayDelta{{Tenant: "tenant0", Day: t0, Calls: 20, Seconds: 20 * time.Minute, Spend: 2000}}
				b.StartTimer()
				start := time.Now()
				if err := s.Apply(batch); err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(start))
			}
			b.StopTimer()
			lat.report(b, "apply")
		})
	}
}

// TestStoreSizePerCall measures the disk space per call: set
// TOLLGATE_STORE_SIZE_CALLS (e.g. 1000000) to run it.
func TestStoreSizePerCall(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TOLLGATE_STORE_SIZE_CALLS"))
	if n <= 0 {
		t.Skip("set TOLLGATE_STORE_SIZE_CALLS to the number of calls")
	}
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Sync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var commits int
	c := store.NewCommitter(s, store.CommitterOptions{Logger: zerolog.Nop(), OnCommit: func(time.Duration, *store.Batch) { commits++ }})
	// Calls spread over 30 days, 200 up at a time, 5 tenants, 250 users.
	const window = 200
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	step := 30 * 24 * time.Hour / time.Duration(n)
	start := time.Now()
	ends := make([]admission.Step, 0, window)
	for i := 0; i < n; i++ {
		a, e := callSteps(fmt.Sprintf("tenant-%d", i%5), fmt.Sprintf("+1555%07d", i%250), callID(i), t0.Add(time.Duration(i)*step), 90)
		c.Record(&a)
		ends = append(ends, e)
		if len(ends) == window {
			c.Record(&ends[0])
			ends = append(ends[:0], ends[1:]...)
		}
	}
	for i := range ends {
		c.Record(&ends[i])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	live := s.Size()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, true)
	if err := s.Flatten(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, true)
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Calls) != 0 || len(st.Counters) != 5 {
		t.Fatalf("%d calls, %d counters left", len(st.Calls), len(st.Counters))
	}
	size := s.Size()
	t.Logf("%d calls in %v (%.0f calls/s, %d commits); size while running %d bytes; after close, flatten and reopen %d bytes = %.1f bytes/call",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), commits, live, size, float64(size)/float64(n))
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			t.Logf("  %-16s %12d", e.Name(), info.Size())
		}
	}
}

// BenchmarkAckOutbox is the publisher's pattern on a Badger store: a
// batch of 30 events written (one 10 ms group commit at 1,000 calls/s),
// then acknowledged, then the depth read (as /metrics does). With the
// scans starting at the front of the outbox its cost grew with the
// events acknowledged before (Badger walks the deleted keys until
// compaction); it must not. Reported per batch; compare -benchtime 1000x
// with 20000x.
func BenchmarkAckOutbox(b *testing.B) {
	s, err := store.Open(b.TempDir(), store.Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	evs := make([]admission.Event, 30)
	for i := range evs {
		evs[i] = admission.Event{Type: admission.EventCallEnded, Tenant: "t", CallID: callID(i), At: time.Unix(0, 0)}
	}
	var last uint64
	for b.Loop() {
		if err := s.Apply(&store.Batch{Events: evs}); err != nil {
			b.Fatal(err)
		}
		last += uint64(len(evs))
		if err := s.AckOutbox(last); err != nil {
			b.Fatal(err)
		}
		if n, err := s.OutboxDepth(); err != nil || n != 0 {
			b.Fatalf("depth %d, %v", n, err)
		}
	}
}
