package pike

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// testConfig: known 100/s burst 200, unknown 5/s burst 10, block 60s.
func testConfig() Config {
	return Config{Rate: 100, Burst: 200, UnknownRate: 5, UnknownBurst: 10, Block: time.Minute, MaxTracked: 10000}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// nth is the n-th address of 10.0.0.0/8 (or 2001:db8::/32 when v6).
func nth(n int, v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[12], b[13], b[14], b[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

// run sends n requests from a at now and returns the verdicts counted.
func run(l *Limiter, a netip.Addr, known bool, now time.Time, n int) map[Verdict]int {
	out := map[Verdict]int{}
	for range n {
		out[l.Allow(a, known, now)]++
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	ok := testConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		field string
		mut   func(*Config)
	}{
		{"Rate", func(c *Config) { c.Rate = 0 }},
		{"Rate", func(c *Config) { c.Rate = -1 }},
		{"Rate", func(c *Config) { c.Rate = math.NaN() }},
		{"Rate", func(c *Config) { c.Rate = math.Inf(1) }},
		{"Burst", func(c *Config) { c.Burst = 0 }},
		{"UnknownRate", func(c *Config) { c.UnknownRate = 0 }},
		{"UnknownBurst", func(c *Config) { c.UnknownBurst = -3 }},
		{"Block", func(c *Config) { c.Block = 0 }},
		{"MaxTracked", func(c *Config) { c.MaxTracked = 0 }},
	}
	for _, tc := range cases {
		c := testConfig()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+" must") {
			t.Errorf("%s: error %v, want one naming %s", tc.field, err, tc.field)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: New did not panic on an invalid config", tc.field)
				}
			}()
			New(c)
		}()
	}
}

func TestVerdictString(t *testing.T) {
	for v, s := range map[Verdict]string{Allow: "allow", Limited: "limited", Blocked: "blocked", 9: "Verdict(9)"} {
		if v.String() != s {
			t.Errorf("%d: %q, want %q", v, v.String(), s)
		}
	}
}

// TestBurstLimitBlock: a source gets exactly its burst at one instant,
// the next request is Limited and blocks it, the rest are Blocked until
// the block ends; known and unknown sources have their own buckets.
func TestBurstLimitBlock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		known bool
		burst int
	}{{"unknown", false, 10}, {"known", true, 200}} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(testConfig())
			a := ip("192.0.2.1")
			for i := range tc.burst {
				if v := l.Allow(a, tc.known, t0); v != Allow {
					t.Fatalf("request %d of the burst: %v", i+1, v)
				}
			}
			if v := l.Allow(a, tc.known, t0); v != Limited {
				t.Fatalf("request over the burst: %v, want limited", v)
			}
			if got := run(l, a, tc.known, t0.Add(time.Second), 50); got[Blocked] != 50 {
				t.Fatalf("during the block: %v, want 50 blocked", got)
			}
			// One nanosecond before the end it is still blocked, at the
			// end it is not (the bucket refilled during the block).
			if v := l.Allow(a, tc.known, t0.Add(time.Minute-1)); v != Blocked {
				t.Fatalf("1ns before the end: %v", v)
			}
			if !l.IsBlocked(a, t0.Add(time.Minute-1)) || l.IsBlocked(a, t0.Add(time.Minute)) {
				t.Fatal("IsBlocked wrong around the end of the block")
			}
			if got := run(l, a, tc.known, t0.Add(time.Minute), tc.burst+1); got[Allow] != tc.burst || got[Limited] != 1 {
				t.Fatalf("after the block: %v, want %d allowed then limited", got, tc.burst)
			}
			// Other sources are not affected.
			if v := l.Allow(ip("192.0.2.2"), tc.known, t0); v != Allow {
				t.Fatalf("another source: %v", v)
			}
			st := l.Stats(t0.Add(time.Minute))
			want := Stats{Allowed: uint64(2*tc.burst + 1), Limited: 2, Dropped: 51, BlockedSources: 1, TrackedSources: 2}
			if st != want {
				t.Fatalf("stats %+v, want %+v", st, want)
			}
		})
	}
}

// TestRefill: tokens come back at the rate, never above the burst.
func TestRefill(t *testing.T) {
	l := New(testConfig()) // unknown: 5/s, burst 10
	a := ip("192.0.2.1")
	if got := run(l, a, false, t0, 10); got[Allow] != 10 {
		t.Fatal(got)
	}
	// 199 ms: 0.995 tokens, not enough.
	if v := l.Allow(a, false, t0.Add(199*time.Millisecond)); v != Limited {
		t.Fatalf("at 199ms: %v, want limited", v)
	}

	l = New(testConfig())
	run(l, a, false, t0, 10)
	// 200 ms: exactly one token.
	if v := l.Allow(a, false, t0.Add(200*time.Millisecond)); v != Allow {
		t.Fatalf("at 200ms: %v, want allow", v)
	}
	if v := l.Allow(a, false, t0.Add(200*time.Millisecond)); v != Limited {
		t.Fatalf("second at 200ms: %v, want limited", v)
	}

	// A long quiet period refills to the burst, not beyond.
	l = New(testConfig())
	run(l, a, false, t0, 3)
	if got := run(l, a, false, t0.Add(time.Hour), 11); got[Allow] != 10 || got[Limited] != 1 {
		t.Fatalf("after an hour: %v, want 10 allowed", got)
	}

	// A steady rate at the limit is never limited: 5/s for 10 minutes.
	l = New(testConfig())
	for i := range 3000 {
		if v := l.Allow(a, false, t0.Add(time.Duration(i)*200*time.Millisecond)); v != Allow {
			t.Fatalf("steady 5/s, request %d: %v", i, v)
		}
	}
	// Slightly above it is limited once the burst is spent: 6/s.
	l = New(testConfig())
	limitedAt := -1
	for i := range 600 {
		if l.Allow(a, false, t0.Add(time.Duration(i)*time.Second/6)) == Limited {
			limitedAt = i
			break
		}
	}
	// burst 10 + 5/s refill against 6/s: spent after ~10/(6-5) s = 60 requests.
	if limitedAt < 55 || limitedAt > 66 {
		t.Fatalf("6/s against 5/s burst 10: limited at request %d, want about 60", limitedAt)
	}
}

// TestFractionalRate: a rate below 1/s.
func TestFractionalRate(t *testing.T) {
	cfg := testConfig()
	cfg.UnknownRate, cfg.UnknownBurst = 0.5, 1
	l := New(cfg)
	a := ip("192.0.2.1")
	if l.Allow(a, false, t0) != Allow || l.Allow(a, false, t0.Add(1999*time.Millisecond)) != Limited {
		t.Fatal("0.5/s: a second request within 2s must be limited")
	}
	l = New(cfg)
	if l.Allow(a, false, t0) != Allow || l.Allow(a, false, t0.Add(2*time.Second)) != Allow {
		t.Fatal("0.5/s: a request every 2s must pass")
	}
}

// TestKnownAndUnknownBuckets: the same address is judged by the bucket of
// its class at each request; switching class caps the tokens at the
// class's burst.
func TestKnownAndUnknownBuckets(t *testing.T) {
	l := New(testConfig())
	carrier, stranger := ip("198.51.100.1"), ip("203.0.113.9")
	if got := run(l, carrier, true, t0, 150); got[Allow] != 150 {
		t.Fatalf("carrier: %v", got)
	}
	if got := run(l, stranger, false, t0, 150); got[Allow] != 10 || got[Limited] != 1 || got[Blocked] != 139 {
		t.Fatalf("stranger: %v, want 10 allowed, 1 limited, 139 blocked", got)
	}
	// A known source that stops being known (removed from the config)
	// keeps at most the unknown burst.
	if got := run(l, carrier, false, t0, 11); got[Allow] != 10 || got[Limited] != 1 {
		t.Fatalf("carrier judged unknown: %v", got)
	}
	b := l.Blocked(t0)
	if len(b) != 2 || b[0].Reason != ReasonUnknownRate || b[1].Reason != ReasonUnknownRate || b[0].Known || b[1].Known {
		t.Fatalf("blocked %+v", b)
	}
	// A known source blocked is reported with the known limit.
	l = New(testConfig())
	run(l, carrier, true, t0, 201)
	b = l.Blocked(t0)
	if len(b) != 1 || b[0].Reason != ReasonRate || !b[0].Known || b[0].Rate != 100 || b[0].Burst != 200 {
		t.Fatalf("blocked known %+v", b)
	}
}

// TestAddressForms: IPv4-mapped IPv6 is the IPv4 source; zones are
// ignored; IPv6 sources work.
func TestAddressForms(t *testing.T) {
	l := New(testConfig())
	run(l, ip("192.0.2.7"), false, t0, 5)
	if got := run(l, ip("::ffff:192.0.2.7"), false, t0, 6); got[Allow] != 5 || got[Limited] != 1 {
		t.Fatalf("mapped form shares the bucket: %v", got)
	}
	if !l.IsBlocked(ip("192.0.2.7"), t0) || !l.IsBlocked(ip("::ffff:192.0.2.7"), t0) {
		t.Fatal("blocked under both forms")
	}
	run(l, ip("fe80::1%eth0"), false, t0, 10)
	if v := l.Allow(ip("fe80::1%eth1"), false, t0); v != Limited {
		t.Fatalf("zone ignored: %v", v)
	}
	b := l.Blocked(t0)
	if len(b) != 2 || b[0].IP != ip("192.0.2.7") || b[1].IP != ip("fe80::1") {
		t.Fatalf("blocked %+v", b)
	}
}

// TestBlockedList: entries carry since, until, reason and the requests
// dropped in this block; ordered by since then address; expired blocks
// are not listed.
func TestBlockedList(t *testing.T) {
	l := New(testConfig())
	a, b, c := ip("192.0.2.3"), ip("192.0.2.1"), ip("2001:db8::1")
	run(l, a, false, t0, 11)
	run(l, a, false, t0.Add(time.Second), 7) // dropped
	run(l, c, false, t0.Add(2*time.Second), 11)
	run(l, b, false, t0.Add(2*time.Second), 12) // 1 dropped
	got := l.Blocked(t0.Add(3 * time.Second))
	want := []Entry{
		{IP: a, Since: t0, Until: t0.Add(time.Minute), Reason: ReasonUnknownRate, Rate: 5, Burst: 10, Dropped: 7},
		{IP: b, Since: t0.Add(2 * time.Second), Until: t0.Add(62 * time.Second), Reason: ReasonUnknownRate, Rate: 5, Burst: 10, Dropped: 1},
		{IP: c, Since: t0.Add(2 * time.Second), Until: t0.Add(62 * time.Second), Reason: ReasonUnknownRate, Rate: 5, Burst: 10},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v\nwant      %+v", i, got[i], want[i])
		}
	}
	if got := l.Blocked(t0.Add(time.Minute)); len(got) != 2 || got[0].IP != b {
		t.Fatalf("after a's block ended: %+v", got)
	}
	if got := l.Blocked(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("after every block ended: %+v", got)
	}
	// A new block starts its dropped count again.
	run(l, a, false, t0.Add(time.Hour), 11)
	l.Allow(a, false, t0.Add(time.Hour))
	if got := l.Blocked(t0.Add(time.Hour)); len(got) != 1 || got[0].Dropped != 1 || !got[0].Since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second block: %+v", got)
	}
}

// TestReblockAfterExpiry: a source still flooding when its block ends
// passes at most its burst before it is blocked again.
func TestReblockAfterExpiry(t *testing.T) {
	l := New(testConfig())
	a := ip("192.0.2.1")
	passed := 0
	// 1000 requests/s for 5 minutes.
	for i := range 300_000 {
		if l.Allow(a, false, t0.Add(time.Duration(i)*time.Millisecond)) == Allow {
			passed++
		}
	}
	// Four block periods in 5 minutes (plus the first burst); each
	// re-opening passes the bucket (10, refilled during the block) plus
	// the refill while it is being spent.
	if passed < 5*10 || passed > 5*11 {
		t.Fatalf("%d requests passed, want about 5 bursts of 10", passed)
	}
	st := l.Stats(t0.Add(5 * time.Minute))
	if st.Limited != 5 || st.Allowed != uint64(passed) || st.Dropped != uint64(300_000-passed-5) {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnblock(t *testing.T) {
	l := New(testConfig())
	a := ip("192.0.2.1")
	if _, ok := l.Unblock(a, t0); ok {
		t.Fatal("unblock of an unknown source")
	}
	run(l, a, false, t0, 5)
	if _, ok := l.Unblock(a, t0); ok {
		t.Fatal("unblock of a source that is not blocked")
	}
	// Not blocked: nothing was reset (5 tokens left).
	if got := run(l, a, false, t0, 6); got[Allow] != 5 || got[Limited] != 1 {
		t.Fatalf("after a refused unblock: %v", got)
	}
	run(l, a, false, t0, 3)
	e, ok := l.Unblock(ip("::ffff:192.0.2.1"), t0.Add(time.Second))
	if !ok || e.IP != a || !e.Since.Equal(t0) || e.Dropped != 3 {
		t.Fatalf("unblock: %+v %v", e, ok)
	}
	if l.IsBlocked(a, t0.Add(time.Second)) || len(l.Blocked(t0.Add(time.Second))) != 0 {
		t.Fatal("still blocked after unblock")
	}
	// A fresh start: a full bucket.
	if got := run(l, a, false, t0.Add(time.Second), 11); got[Allow] != 10 || got[Limited] != 1 {
		t.Fatalf("after unblock: %v", got)
	}
	// An expired block cannot be lifted.
	if _, ok := l.Unblock(a, t0.Add(2*time.Minute)); ok {
		t.Fatal("unblock of an expired block")
	}
	if st := l.Stats(t0.Add(time.Second)); st.BlockedSources != 1 || st.TrackedSources != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAnswerBlocked: at most one answer per second per blocked source,
// the first one at once; none for sources that are not blocked.
func TestAnswerBlocked(t *testing.T) {
	l := New(testConfig())
	a, b := ip("192.0.2.1"), ip("192.0.2.2")
	if l.AnswerBlocked(a, t0) {
		t.Fatal("answer for an untracked source")
	}
	run(l, a, false, t0, 3)
	if l.AnswerBlocked(a, t0) {
		t.Fatal("answer for a source that is not blocked")
	}
	run(l, a, false, t0, 8) // the 11th is Limited
	run(l, b, false, t0, 11)
	if !l.AnswerBlocked(a, t0) || !l.AnswerBlocked(b, t0) {
		t.Fatal("the first refused request of a block is answered")
	}
	// A 1000/s flood for 10 s gets 10 answers (at 1s, 2s, ... 10s after
	// the first), not more.
	answers := 0
	for i := 1; i <= 10_000; i++ {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		if l.Allow(a, false, at) != Blocked {
			t.Fatalf("request %d not blocked", i)
		}
		if l.AnswerBlocked(a, at) {
			answers++
		}
	}
	if answers != 10 {
		t.Fatalf("%d answers in 10s, want 10", answers)
	}
	// b's answers are its own.
	if !l.AnswerBlocked(b, t0.Add(time.Second)) || l.AnswerBlocked(b, t0.Add(1500*time.Millisecond)) {
		t.Fatal("b: one answer per second")
	}
	if l.AnswerBlocked(a, t0.Add(time.Minute)) {
		t.Fatal("answer after the block ended")
	}
	// A new block answers its first refused request at once.
	run(l, a, false, t0.Add(time.Minute), 11)
	if !l.AnswerBlocked(a, t0.Add(time.Minute)) {
		t.Fatal("a new block: first refused request not answered")
	}
}

// TestEvictionBound: a flood of spoofed sources never tracks more than
// MaxTracked, and every source beyond is an eviction.
func TestEvictionBound(t *testing.T) {
	for _, max := range []int{1, 10, 100, 1000, 5000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxTracked = max
			l := New(cfg)
			const n = 20000
			for i := range n {
				l.Allow(nth(i, i%2 == 1), false, t0.Add(time.Duration(i)*time.Microsecond))
				if i%997 == 0 {
					if st := l.Stats(t0); st.TrackedSources > max {
						t.Fatalf("after %d sources: %d tracked > %d", i+1, st.TrackedSources, max)
					}
				}
			}
			st := l.Stats(t0)
			if st.TrackedSources > max || st.TrackedSources < max/2 {
				t.Fatalf("%d tracked, want at most %d and not far below", st.TrackedSources, max)
			}
			if st.Evicted != uint64(n-st.TrackedSources) || st.Allowed != n {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestEvictionPrefersUnblocked: a flood of new sources does not evict the
// blocked ones while unblocked ones are among the oldest; a table full of
// blocked sources evicts the least recently seen.
func TestEvictionPrefersUnblocked(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTracked = 16 // one shard of 16
	l := New(cfg)
	attackers := []netip.Addr{ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"), ip("192.0.2.4")}
	for _, a := range attackers {
		run(l, a, false, t0, 11)
	}
	for i := range 10000 {
		l.Allow(nth(i, false), false, t0.Add(time.Millisecond))
	}
	b := l.Blocked(t0.Add(time.Second))
	if len(b) != len(attackers) {
		t.Fatalf("blocked after the flood of new sources: %+v", b)
	}
	for _, a := range attackers {
		if l.Allow(a, false, t0.Add(time.Second)) != Blocked {
			t.Fatalf("%s forgotten", a)
		}
	}

	// Every slot blocked: the least recently seen goes.
	l = New(cfg)
	for i := range 16 {
		run(l, nth(i, false), false, t0.Add(time.Duration(i)*time.Millisecond), 11)
	}
	if st := l.Stats(t0.Add(time.Second)); st.BlockedSources != 16 || st.TrackedSources != 16 {
		t.Fatalf("stats %+v", st)
	}
	l.Allow(ip("198.51.100.1"), false, t0.Add(time.Second))
	if l.IsBlocked(nth(0, false), t0.Add(time.Second)) || !l.IsBlocked(nth(1, false), t0.Add(time.Second)) {
		t.Fatal("the least recently seen blocked source should be the one evicted")
	}
	if st := l.Stats(t0.Add(time.Second)); st.TrackedSources != 16 || st.BlockedSources != 15 || st.Evicted != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// model is a reference implementation without sharding or eviction.
type model struct {
	cfg Config
	src map[netip.Addr]*modelSrc
}

type modelSrc struct {
	tokens       float64
	last, until  time.Time
	blocked      bool
	dropped      uint64
	answered     time.Time
	hasAnswered  bool
	since        time.Time
	knownAtBlock bool
}

func (m *model) allow(a netip.Addr, known bool, now time.Time) Verdict {
	rate, burst := m.cfg.UnknownRate, float64(m.cfg.UnknownBurst)
	if known {
		rate, burst = m.cfg.Rate, float64(m.cfg.Burst)
	}
	s := m.src[a]
	if s == nil {
		s = &modelSrc{tokens: burst, last: now}
		m.src[a] = s
	}
	if s.blocked {
		if now.Before(s.until) {
			s.dropped++
			return Blocked
		}
		*s = modelSrc{tokens: s.tokens, last: s.last}
	}
	if d := now.Sub(s.last); d > 0 {
		s.tokens += float64(d.Nanoseconds()) * rate / 1e9
		s.last = now
	}
	s.tokens = min(s.tokens, burst)
	if s.tokens >= 1 {
		s.tokens--
		return Allow
	}
	s.blocked, s.until, s.since, s.knownAtBlock, s.hasAnswered, s.dropped = true, now.Add(m.cfg.Block), now, known, false, 0
	return Limited
}

func (m *model) answer(a netip.Addr, now time.Time) bool {
	s := m.src[a]
	if s == nil || !s.blocked || !now.Before(s.until) {
		return false
	}
	if s.hasAnswered && now.Sub(s.answered) < AnswerInterval {
		return false
	}
	s.answered, s.hasAnswered = now, true
	return true
}

func (m *model) unblock(a netip.Addr, now time.Time) bool {
	s := m.src[a]
	if s == nil || !s.blocked || !now.Before(s.until) {
		return false
	}
	delete(m.src, a)
	return true
}

// TestMatchesModel: random traffic from a few sources (both classes,
// bursts, pauses, answers, unblocks) gets exactly the model's verdicts.
func TestMatchesModel(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		cfg := Config{
			Rate: 1 + r.Float64()*50, Burst: 1 + r.IntN(30),
			UnknownRate: 0.2 + r.Float64()*5, UnknownBurst: 1 + r.IntN(8),
			Block: time.Duration(1+r.IntN(20)) * time.Second, MaxTracked: 4096,
		}
		l := New(cfg)
		m := &model{cfg: cfg, src: map[netip.Addr]*modelSrc{}}
		srcs := make([]netip.Addr, 12)
		for i := range srcs {
			srcs[i] = nth(i, i%3 == 0)
		}
		now := t0
		for step := range 20000 {
			switch r.IntN(10) {
			case 0:
				now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
			case 1, 2, 3:
				now = now.Add(time.Duration(r.IntN(50)) * time.Millisecond)
			}
			a := srcs[r.IntN(len(srcs))]
			known := r.IntN(4) == 0
			switch op := r.IntN(100); {
			case op < 90:
				if got, want := l.Allow(a, known, now), m.allow(a, known, now); got != want {
					t.Fatalf("seed %d step %d: Allow(%s, %v) = %v, model %v", seed, step, a, known, got, want)
				}
			case op < 97:
				if got, want := l.AnswerBlocked(a, now), m.answer(a, now); got != want {
					t.Fatalf("seed %d step %d: AnswerBlocked(%s) = %v, model %v", seed, step, a, got, want)
				}
			default:
				_, got := l.Unblock(a, now)
				if want := m.unblock(a, now); got != want {
					t.Fatalf("seed %d step %d: Unblock(%s) = %v, model %v", seed, step, a, got, want)
				}
			}
			if step%500 == 0 {
				blocked := l.Blocked(now)
				n := 0
				for _, s := range m.src {
					if s.blocked && now.Before(s.until) {
						n++
					}
				}
				if len(blocked) != n {
					t.Fatalf("seed %d step %d: %d blocked, model %d", seed, step, len(blocked), n)
				}
				for _, e := range blocked {
					s := m.src[e.IP]
					if s == nil || !e.Since.Equal(s.since) || !e.Until.Equal(s.until) || e.Dropped != s.dropped || e.Known != s.knownAtBlock {
						t.Fatalf("seed %d step %d: entry %+v, model %+v", seed, step, e, s)
					}
				}
			}
		}
	}
}

// TestClockOrder: an instant slightly before the last one (concurrent
// callers) refills nothing and does not move the refill back; a clock
// stepped back restarts the refill instead of starving the source.
func TestClockOrder(t *testing.T) {
	l := New(testConfig()) // known: 100/s, burst 200
	a := ip("198.51.100.1")
	T := t0.Add(time.Second)
	run(l, a, true, T, 199) // one token left
	if v := l.Allow(a, true, T.Add(-100*time.Millisecond)); v != Allow {
		t.Fatalf("reordered instant: %v, want allow (the last token)", v)
	}
	// 5 ms after T: half a token. Had the refill moved back 100 ms, there
	// would be 10.5.
	if v := l.Allow(a, true, T.Add(5*time.Millisecond)); v != Limited {
		t.Fatalf("after a reordered instant: %v, want limited", v)
	}

	l = New(testConfig()) // unknown: 5/s, burst 10
	u := ip("192.0.2.1")
	run(l, u, false, t0.Add(time.Hour), 9) // one token left
	// The clock steps back an hour: the last token, then the refill
	// restarts from the new instant.
	if v := l.Allow(u, false, t0); v != Allow {
		t.Fatalf("stepped back: %v, want allow", v)
	}
	if v := l.Allow(u, false, t0.Add(200*time.Millisecond)); v != Allow {
		t.Fatalf("200ms after the step: %v, want allow (refill restarted)", v)
	}
}

// TestConcurrent: many goroutines on the same and on different sources
// (run with -race): one source at one instant gets exactly its burst, and
// every request is counted once.
func TestConcurrent(t *testing.T) {
	l := New(testConfig())
	hot := ip("192.0.2.1")
	const workers, per = 8, 2000
	var wg sync.WaitGroup
	counts := make([]map[Verdict]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := map[Verdict]int{}
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range per {
				c[l.Allow(hot, true, t0)]++
				other := nth(r.IntN(500), r.IntN(2) == 0)
				l.Allow(other, r.IntN(2) == 0, t0.Add(time.Duration(i)*time.Millisecond))
				if i%100 == 0 {
					l.AnswerBlocked(hot, t0)
					l.Stats(t0)
					l.Blocked(t0)
					l.IsBlocked(other, t0)
				}
				if i%501 == 0 {
					l.Unblock(other, t0.Add(time.Duration(i)*time.Millisecond))
				}
			}
			counts[w] = c
		}()
	}
	wg.Wait()
	total := map[Verdict]int{}
	for _, c := range counts {
		for v, n := range c {
			total[v] += n
		}
	}
	if total[Allow] != 200 || total[Limited] != 1 || total[Blocked] != workers*per-201 {
		t.Fatalf("hot source: %v, want 200 allowed, 1 limited, the rest blocked", total)
	}
	st := l.Stats(t0)
	if st.Allowed+st.Limited+st.Dropped != 2*workers*per {
		t.Fatalf("stats %+v count %d requests, want %d", st, st.Allowed+st.Limited+st.Dropped, 2*workers*per)
	}
}

// TestZeroAlloc: Allow, AnswerBlocked and IsBlocked allocate nothing for
// tracked sources, and nothing for new sources once the table is full.
func TestZeroAlloc(t *testing.T) {
	cfg := testConfig()
	cfg.MaxTracked = 1024
	l := New(cfg)
	known, unknown, blocked := ip("198.51.100.1"), ip("2001:db8::7"), ip("192.0.2.1")
	run(l, blocked, false, t0, 11)
	now := t0
	for name, f := range map[string]func(){
		"known":   func() { now = now.Add(time.Millisecond); l.Allow(known, true, now) },
		"unknown": func() { now = now.Add(time.Second); l.Allow(unknown, false, now) },
		"blocked": func() { l.Allow(blocked, false, t0.Add(time.Second)); l.AnswerBlocked(blocked, t0.Add(time.Second)) },
		"gate":    func() { l.IsBlocked(blocked, t0) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
	// Churn: a spoofed flood of new sources in a full table.
	i := 0
	for range 5000 { // fill and grow the maps
		l.Allow(nth(i, false), false, t0)
		i++
	}
	if n := testing.AllocsPerRun(20000, func() { l.Allow(nth(i, i%2 == 0), false, t0); i++ }); n > 0.01 {
		t.Errorf("new sources in a full table: %v allocations per call", n)
	}
}

// BenchmarkAllow: a request from a known source (within its rate), an
// unknown one (within its rate), a blocked one (dropped, with
// AnswerBlocked), and a flood of spoofed new sources (each evicts one).
// Run with -cpu 1,2: each goroutine has its own sources and clock.
func BenchmarkAllow(b *testing.B) {
	const nsrc = 1024
	for _, bc := range []struct {
		name  string
		known bool
		step  time.Duration // clock advance per request
		want  Verdict
		setup func(l *Limiter, srcs []netip.Addr)
		spoof bool
	}{
		{name: "known", known: true, step: time.Microsecond, want: Allow},
		{name: "unknown", step: time.Millisecond, want: Allow},
		{name: "blocked", step: time.Microsecond, want: Blocked, setup: func(l *Limiter, srcs []netip.Addr) {
			for _, a := range srcs {
				run(l, a, false, t0, 11)
			}
		}},
		{name: "spoofed", step: time.Microsecond, want: Allow, spoof: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Rate: 2000, Burst: 4000, UnknownRate: 5, UnknownBurst: 10, Block: 1000 * time.Hour, MaxTracked: 100_000}
			l := New(cfg)
			var mu sync.Mutex
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				g := next
				next++
				mu.Unlock()
				srcs := make([]netip.Addr, nsrc)
				for i := range srcs {
					srcs[i] = nth(g<<20|i, false)
				}
				if bc.setup != nil {
					bc.setup(l, srcs)
				}
				now := t0.Add(time.Second)
				i, spoof := 0, g<<22
				for pb.Next() {
					a := srcs[i%nsrc]
					if bc.spoof {
						a = nth(spoof, true)
						spoof++
					}
					now = now.Add(bc.step)
					v := l.Allow(a, bc.known, now)
					if v == Blocked {
						l.AnswerBlocked(a, now)
					}
					if v != bc.want {
						b.Fatalf("verdict %v, want %v", v, bc.want)
					}
					i++
				}
			})
		})
	}
}

// checkShards verifies every shard's structure: the LRU list holds the
// n tracked slots, each found through the index at its own slot, the
// index holds n entries, the free list the rest.
func checkShards(t *testing.T, l *Limiter) {
	t.Helper()
	for si := range l.shards {
		sh := &l.shards[si]
		sh.mu.Lock()
		n := 0
		prev := int32(none)
		for j := sh.head; j != none; j = sh.slots[j].next {
			s := &sh.slots[j]
			if s.prev != prev {
				t.Fatalf("shard %d: slot %d prev %d, want %d", si, j, s.prev, prev)
			}
			if got, ok := sh.find(s.ip, s.hash); !ok || got != j {
				t.Fatalf("shard %d: %s in slot %d found at %d %v", si, s.ip, j, got, ok)
			}
			prev = j
			n++
		}
		if sh.tail != prev || n != sh.n {
			t.Fatalf("shard %d: tail %d (want %d), list %d, n %d", si, sh.tail, prev, n, sh.n)
		}
		used := 0
		for _, v := range sh.index {
			if v != 0 {
				used++
			}
		}
		free := 0
		for j := sh.free; j != none; j = sh.slots[j].next {
			free++
		}
		if used != n || free != len(sh.slots)-n {
			t.Fatalf("shard %d: index holds %d, free %d, for %d tracked of %d", si, used, free, n, len(sh.slots))
		}
		sh.mu.Unlock()
	}
}

// TestIndexChurn: random inserts, evictions and unblocks keep every
// shard consistent and every tracked source findable.
func TestIndexChurn(t *testing.T) {
	for _, max := range []int{1, 3, 16, 40, 1500} {
		cfg := testConfig()
		cfg.MaxTracked = max
		cfg.UnknownBurst = 1
		l := New(cfg)
		r := rand.New(rand.NewPCG(uint64(max), 3))
		now := t0
		for step := range 20000 {
			now = now.Add(time.Duration(r.IntN(20)) * time.Millisecond)
			a := nth(r.IntN(3*max+5), r.IntN(2) == 0)
			if r.IntN(10) == 0 {
				l.Unblock(a, now)
			} else {
				l.Allow(a, false, now)
			}
			if step%97 == 0 {
				checkShards(t, l)
			}
		}
		checkShards(t, l)
	}
}
