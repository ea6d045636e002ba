// Package pike is tollgate's flood protection, in the manner of Kamailio's
// pike module and the blacklists of session border controllers: a token
// bucket per source address, a much tighter one for unknown sources (not
// a configured carrier or tenant), an automatic temporary block of a
// source that exceeds its bucket, a low-rate answer for blocked sources,
// and caps on TCP/TLS connections per source and in total (ConnLimiter).
//
// The package is pure: no I/O, no goroutines, and it never reads the
// clock. Every method that depends on time takes now, so tests inject it
// and the edge passes its own clock. It imports nothing of tollgate's.
//
// # Limiter
//
// Allow is called once per request received, with the packet's (or the
// connection's) source address and whether that source is known. It
// answers one of three verdicts:
//
//   - Allow: the source is within its bucket; the request costs one token.
//   - Limited: the bucket was empty; this request is refused and the
//     source is blocked for Config.Block from now.
//   - Blocked: the source is blocked; drop the request (see AnswerBlocked
//     for the one answer per second a blocked source may get).
//
// A block lasts Config.Block, whatever the source sends meanwhile (blocked
// requests consume no tokens and do not extend it); the bucket keeps
// refilling during the block, so a source that keeps flooding after it
// passes at most its burst before it is blocked again.
//
// State lives in a fixed number of shards, chosen by a seeded hash of the
// address; there is no global lock. A shard is a small mutex around a
// preallocated array of slots and a fixed open-addressing index into it
// (linear probing, at most half full, backward-shift deletion), so no
// call ever allocates, not even under a flood of new sources. The number of tracked sources
// is bounded by Config.MaxTracked: a shard that is full evicts its least
// recently seen source, preferring one that is not blocked among the
// oldest few. Evicting an idle source forgets nothing (its bucket had
// refilled); evicting a busy one only gives it a full bucket again.
// Allow, AnswerBlocked, IsBlocked and Unblock never allocate.
//
// IPv4-mapped IPv6 addresses are the same source as their IPv4 form, and
// zones are ignored.
package pike

import (
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Verdict is the outcome of Allow.
type Verdict uint8

// The verdicts.
const (
	// Allow: process the request.
	Allow Verdict = iota
	// Limited: the source exceeded its bucket with this request and is
	// now blocked; refuse the request.
	Limited
	// Blocked: the source is blocked; drop the request.
	Blocked
)

// String returns "allow", "limited" or "blocked".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Limited:
		return "limited"
	case Blocked:
		return "blocked"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Reasons of a block (Entry.Reason): the config setting that was exceeded.
const (
	// ReasonRate: a known source exceeded Rate/Burst.
	ReasonRate = "rate"
	// ReasonUnknownRate: an unknown source exceeded UnknownRate/UnknownBurst.
	ReasonUnknownRate = "unknown_rate"
)

// AnswerInterval is the least time between two true results of
// AnswerBlocked for one blocked source.
const AnswerInterval = time.Second

// Config configures a Limiter. Every field is required (Validate).
type Config struct {
	// Rate is the sustained requests per second allowed from one known
	// source (a configured carrier or tenant address): its bucket's
	// refill rate. > 0.
	Rate float64
	// Burst is the size of a known source's bucket: how many requests it
	// may send at once after a quiet period. >= 1.
	Burst int
	// UnknownRate is the refill rate of an unknown source's bucket. > 0,
	// and meant to be much smaller than Rate.
	UnknownRate float64
	// UnknownBurst is the size of an unknown source's bucket. >= 1.
	UnknownBurst int
	// Block is how long a source that exceeded its bucket stays blocked.
	// > 0.
	Block time.Duration
	// MaxTracked bounds the sources tracked at once (memory under a flood
	// of spoofed sources). >= 1.
	MaxTracked int
}

// Validate reports the first field of c that is out of range, naming it.
func (c Config) Validate() error {
	rate := func(name string, v float64) error {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("pike: %s must be a finite number > 0, got %v", name, v)
		}
		return nil
	}
	if err := rate("Rate", c.Rate); err != nil {
		return err
	}
	if c.Burst < 1 {
		return fmt.Errorf("pike: Burst must be >= 1, got %d", c.Burst)
	}
	if err := rate("UnknownRate", c.UnknownRate); err != nil {
		return err
	}
	if c.UnknownBurst < 1 {
		return fmt.Errorf("pike: UnknownBurst must be >= 1, got %d", c.UnknownBurst)
	}
	if c.Block <= 0 {
		return fmt.Errorf("pike: Block must be > 0, got %s", c.Block)
	}
	if c.MaxTracked < 1 {
		return fmt.Errorf("pike: MaxTracked must be >= 1, got %d", c.MaxTracked)
	}
	return nil
}

// Entry is a blocked source, as Blocked lists it.
type Entry struct {
	IP netip.Addr
	// Known is whether the source was known when it was blocked.
	Known bool
	// Since is the instant it was blocked (its Limited request); Until
	// the instant the block ends.
	Since, Until time.Time
	// Reason is the setting exceeded: ReasonRate or ReasonUnknownRate;
	// Rate and Burst are its values.
	Reason string
	Rate   float64
	Burst  int
	// Dropped counts the requests dropped (verdict Blocked) during this
	// block.
	Dropped uint64
}

// Stats are the Limiter's totals since New, for metrics.
type Stats struct {
	Allowed uint64 // requests answered Allow
	Limited uint64 // requests answered Limited (each one started a block)
	Dropped uint64 // requests answered Blocked
	Evicted uint64 // sources forgotten to stay within MaxTracked
	// BlockedSources are the sources blocked at the instant given to
	// Stats; TrackedSources the sources tracked (at most MaxTracked).
	BlockedSources int
	TrackedSources int
}

// maxShards is the number of shards of a large table; a small MaxTracked
// gets fewer so that each shard keeps at least minPerShard slots.
const (
	maxShards   = 64
	minPerShard = 16
)

// evictScan is how many of a full shard's least recently seen sources
// eviction looks at for one that is not blocked.
const evictScan = 8

// clockStep is how far back an instant must be, compared with the last
// one seen for a source, to count as a step of the clock (the refill
// restarts from it) rather than a reordering of concurrent calls.
const clockStep = time.Second

// none marks the end of a slot list.
const none = -1

// slot is one tracked source. Times are Unix nanoseconds.
type slot struct {
	ip       netip.Addr
	hash     uint64 // the seeded hash of ip
	tokens   float64
	last     int64 // instant tokens were last brought up to date
	until    int64 // end of the block; 0: not blocked
	since    int64 // start of the block
	answered int64 // last true AnswerBlocked of this block; 0: none
	dropped  uint64
	prev     int32 // toward the most recently seen (LRU list), or the free list
	next     int32
	known    bool // class at the start of the block
}

type shard struct {
	mu    sync.Mutex
	index []int32 // open addressing: slot number + 1; 0 is empty
	imask uint64  // len(index) - 1
	slots []slot
	head  int32 // most recently seen
	tail  int32 // least recently seen
	free  int32 // free slots, linked through next
	n     int

	allowed, limited, dropped, evicted uint64
	_                                  [64]byte // keep shards on separate cache lines
}

// Limiter is the per-source rate limiter. Create it with New; it is safe
// for concurrent use.
type Limiter struct {
	cfg    Config
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

// New returns a Limiter for cfg. It panics if cfg is invalid (Validate);
// check configuration before.
func New(cfg Config) *Limiter {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	n := maxShards
	for n > 1 && cfg.MaxTracked/n < minPerShard {
		n /= 2
	}
	per := cfg.MaxTracked / n // n * per <= MaxTracked
	l := &Limiter{cfg: cfg, seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]shard, n)}
	for i := range l.shards {
		sh := &l.shards[i]
		size := 2
		for size < 2*per {
			size *= 2
		}
		sh.index = make([]int32, size)
		sh.imask = uint64(size - 1)
		sh.slots = make([]slot, per)
		sh.head, sh.tail, sh.free = none, none, 0
		for j := range sh.slots {
			sh.slots[j].next = int32(j + 1)
		}
		sh.slots[per-1].next = none
	}
	return l
}

// Config returns the configuration the Limiter was created with.
func (l *Limiter) Config() Config { return l.cfg }

// canon is the form an address is tracked under.
func canon(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// shardOf returns ip's shard and hash (its low bits chose the shard, its
// high bits place it in the shard's index).
func (l *Limiter) shardOf(ip netip.Addr) (*shard, uint64) {
	b := ip.As16()
	h := maphash.Bytes(l.seed, b[:])
	return &l.shards[h&l.mask], h
}

// Allow decides on one request from ip received at now; known is whether
// ip is a configured carrier or tenant source (it picks the bucket).
func (l *Limiter) Allow(ip netip.Addr, known bool, now time.Time) Verdict {
	ip = canon(ip)
	t := now.UnixNano()
	rate, burst := l.cfg.UnknownRate, l.cfg.UnknownBurst
	if known {
		rate, burst = l.cfg.Rate, l.cfg.Burst
	}
	sh, h := l.shardOf(ip)
	sh.mu.Lock()
	i, ok := sh.find(ip, h)
	if !ok {
		i = sh.insert(ip, h, t)
		sh.slots[i].tokens = float64(burst)
	} else {
		sh.touch(i)
	}
	s := &sh.slots[i]
	if s.until != 0 {
		if t < s.until {
			s.dropped++
			sh.dropped++
			sh.mu.Unlock()
			return Blocked
		}
		s.until, s.since, s.answered, s.dropped = 0, 0, 0, 0
	}
	// Refill up to now. Concurrent callers may pass instants slightly out
	// of order: an instant before the last one refills nothing. A clock
	// stepped back by more than clockStep restarts the refill from now.
	switch d := t - s.last; {
	case d > 0:
		s.tokens += float64(d) * rate / 1e9
		s.last = t
	case d < -int64(clockStep):
		s.last = t
	}
	if s.tokens > float64(burst) {
		s.tokens = float64(burst)
	}
	if s.tokens >= 1 {
		s.tokens--
		sh.allowed++
		sh.mu.Unlock()
		return Allow
	}
	s.until = t + int64(l.cfg.Block)
	if s.until <= t { // overflow at the end of time
		s.until = math.MaxInt64
	}
	s.since, s.known, s.answered, s.dropped = t, known, 0, 0
	sh.limited++
	sh.mu.Unlock()
	return Limited
}

// AnswerBlocked reports whether the edge may answer a request from ip,
// received at now, that was refused because ip is blocked (verdict
// Limited or Blocked): true at most once per AnswerInterval per blocked
// source, and always for the first request of a block, so a blocked
// source gets at most one answer (a 503) per second and the rest are
// dropped. It is false for a source that is not blocked.
func (l *Limiter) AnswerBlocked(ip netip.Addr, now time.Time) bool {
	ip = canon(ip)
	t := now.UnixNano()
	sh, h := l.shardOf(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(ip, h)
	if !ok {
		return false
	}
	s := &sh.slots[i]
	if s.until == 0 || t >= s.until {
		return false
	}
	if s.answered != 0 && t-s.answered < int64(AnswerInterval) {
		return false
	}
	s.answered = t
	return true
}

// IsBlocked reports whether ip is blocked at now, without counting a
// request (e.g. a gate for new connections).
func (l *Limiter) IsBlocked(ip netip.Addr, now time.Time) bool {
	ip = canon(ip)
	t := now.UnixNano()
	sh, h := l.shardOf(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(ip, h)
	return ok && sh.slots[i].until != 0 && t < sh.slots[i].until
}

// Blocked lists the sources blocked at now, oldest block first (ties by
// address).
func (l *Limiter) Blocked(now time.Time) []Entry {
	t := now.UnixNano()
	var out []Entry
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for j := sh.head; j != none; j = sh.slots[j].next {
			s := &sh.slots[j]
			if s.until != 0 && t < s.until {
				out = append(out, l.entry(s))
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return out
}

func (l *Limiter) entry(s *slot) Entry {
	e := Entry{IP: s.ip, Known: s.known, Since: time.Unix(0, s.since).UTC(), Until: time.Unix(0, s.until).UTC(), Dropped: s.dropped}
	if s.known {
		e.Reason, e.Rate, e.Burst = ReasonRate, l.cfg.Rate, l.cfg.Burst
	} else {
		e.Reason, e.Rate, e.Burst = ReasonUnknownRate, l.cfg.UnknownRate, l.cfg.UnknownBurst
	}
	return e
}

// Unblock lifts the block of ip at now and forgets the source (its next
// request starts with a full bucket). It returns the block lifted, and
// false (changing nothing) when ip is not blocked at now.
func (l *Limiter) Unblock(ip netip.Addr, now time.Time) (Entry, bool) {
	ip = canon(ip)
	t := now.UnixNano()
	sh, h := l.shardOf(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(ip, h)
	if !ok {
		return Entry{}, false
	}
	s := &sh.slots[i]
	if s.until == 0 || t >= s.until {
		return Entry{}, false
	}
	e := l.entry(s)
	sh.remove(i)
	return e, true
}

// Stats returns the totals since New; BlockedSources counts the blocks in
// force at now. It visits every tracked source (for a scrape, not per
// request).
func (l *Limiter) Stats(now time.Time) Stats {
	t := now.UnixNano()
	var st Stats
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		st.Allowed += sh.allowed
		st.Limited += sh.limited
		st.Dropped += sh.dropped
		st.Evicted += sh.evicted
		st.TrackedSources += sh.n
		for j := sh.head; j != none; j = sh.slots[j].next {
			if u := sh.slots[j].until; u != 0 && t < u {
				st.BlockedSources++
			}
		}
		sh.mu.Unlock()
	}
	return st
}

// ---- shard internals (called with mu held) ----

// insert tracks ip as the most recently seen source, evicting one if the
// shard is full, and returns its slot (tokens to be set by the caller).
func (sh *shard) insert(ip netip.Addr, h uint64, t int64) int32 {
	if sh.free == none {
		sh.remove(sh.victim(t))
		sh.evicted++
	}
	i := sh.free
	sh.free = sh.slots[i].next
	sh.slots[i] = slot{ip: ip, hash: h, last: t, prev: none, next: sh.head}
	if sh.head != none {
		sh.slots[sh.head].prev = i
	} else {
		sh.tail = i
	}
	sh.head = i
	p := sh.home(h)
	for sh.index[p] != 0 {
		p = (p + 1) & sh.imask
	}
	sh.index[p] = i + 1
	sh.n++
	return i
}

// home is the index position a hash probes first (the low bits chose the
// shard).
func (sh *shard) home(h uint64) uint64 { return (h >> 32) & sh.imask }

// find returns the slot of ip (hash h).
func (sh *shard) find(ip netip.Addr, h uint64) (int32, bool) {
	for p := sh.home(h); ; p = (p + 1) & sh.imask {
		v := sh.index[p]
		if v == 0 {
			return 0, false
		}
		if s := &sh.slots[v-1]; s.hash == h && s.ip == ip {
			return v - 1, true
		}
	}
}

// unindex removes slot i from the index, shifting back the entries of
// its probe run so that no lookup stops early at the hole.
func (sh *shard) unindex(i int32) {
	p := sh.home(sh.slots[i].hash)
	for sh.index[p] != i+1 {
		p = (p + 1) & sh.imask
	}
	for {
		sh.index[p] = 0
		q := p
		for {
			q = (q + 1) & sh.imask
			v := sh.index[q]
			if v == 0 {
				return
			}
			// The entry at q may fill the hole at p unless its home
			// lies cyclically in (p, q].
			k := sh.home(sh.slots[v-1].hash)
			if p <= q && p < k && k <= q || p > q && (p < k || k <= q) {
				continue
			}
			sh.index[p] = v
			p = q
			break
		}
	}
}

// victim picks the slot to evict: the least recently seen of the oldest
// evictScan sources that is not blocked at t, else the least recently
// seen.
func (sh *shard) victim(t int64) int32 {
	j := sh.tail
	for k := 0; k < evictScan && j != none; k++ {
		if u := sh.slots[j].until; u == 0 || t >= u {
			return j
		}
		j = sh.slots[j].prev
	}
	return sh.tail
}

// remove forgets slot i.
func (sh *shard) remove(i int32) {
	sh.unlink(i)
	sh.unindex(i)
	sh.slots[i] = slot{next: sh.free, prev: none}
	sh.free = i
	sh.n--
}

// touch makes slot i the most recently seen.
func (sh *shard) touch(i int32) {
	if sh.head == i {
		return
	}
	sh.unlink(i)
	s := &sh.slots[i]
	s.prev, s.next = none, sh.head
	sh.slots[sh.head].prev = i
	sh.head = i
}

func (sh *shard) unlink(i int32) {
	s := &sh.slots[i]
	if s.prev != none {
		sh.slots[s.prev].next = s.next
	} else {
		sh.head = s.next
	}
	if s.next != none {
		sh.slots[s.next].prev = s.prev
	} else {
		sh.tail = s.prev
	}
	s.prev, s.next = none, none
}
