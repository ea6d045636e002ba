package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
)

// Errors of the ledger.
var (
	// ErrUnavailable: the ledger cannot be asked (NATS unreachable, the
	// bucket not ready, or the node's leases expired); the caller answers
	// 503 with Retry-After.
	ErrUnavailable = errors.New("cluster: ledger unavailable")
	// ErrContention: compare-and-set kept failing on a busy key.
	ErrContention = errors.New("cluster: ledger contention")
	// ErrAlive: Release of a node whose heartbeat is still fresh.
	ErrAlive = errors.New("cluster: node is alive")
	// ErrUnknownNode: Release of a node the ledger does not know.
	ErrUnknownNode = errors.New("cluster: unknown node")
)

// Engine is what the ledger needs of the admission runner.
type Engine interface {
	LeaseUsage(tenant string) (admission.LeaseUsage, bool)
	SetLease(tenant string, dim admission.LeaseDim, n, capv int64) (int64, bool)
	UserLeaseUsage(tenant, user string) (active, held, capv int64, ok bool)
	SetUserLease(tenant, user string, n, capv int64) (int64, bool)
	AddCPSTokens(tenant string, sec, k, capv int64) bool
	// For the cluster-wide usage and budgets (usage.go).
	SetClusterUsage(now time.Time, tenant string, minutes time.Duration, billing, spend int64, bounded bool) (admission.Ready, error)
	SetClusterUserUsage(now time.Time, tenant, user string, minutes time.Duration, billing int64, bounded bool) (admission.Ready, error)
	UsersMinutes(now time.Time, tenant string) []admission.UserMinutes
	Billing(tenant string) (calls, spendPerSecond int64)
	SpendBound(tenant string) (perSecond, start int64)
	Tenants() []string
	NearCap() []string
	Usage(now time.Time, tenant string) admission.Usage
	Active(tenant string) int64
	Cycle() (start, end time.Time)
}

// Options configure a Ledger.
type Options struct {
	// Node is this gateway's unique name in the cluster.
	Node string
	// TTL is cluster.lease_ttl.
	TTL time.Duration
	// MaxCallDuration is sip.max_call_duration: after it, a silent node's
	// calls have ended and everything it held returns.
	MaxCallDuration time.Duration
	// Bucket and Replicas are the KV bucket's name and replica count.
	Bucket   string
	Replicas int
	// JS is the JetStream context of the gateway's NATS connection.
	JS jetstream.JetStream
	// Engine is the admission runner.
	Engine Engine
	// Now is the wall clock (default time.Now); leases are compared in
	// Unix milliseconds across nodes.
	Now func() time.Time
	// Maintain is the period of the maintenance round (returns, prefetch,
	// reclaims, expiry); default TTL/50 within [20ms, 200ms].
	Maintain time.Duration
	// Timeout bounds one ledger request; default 2s.
	Timeout time.Duration
	// ContinueUnbounded is cluster.budget_failure continue: cut off past
	// lease_ttl, the node keeps the calls of a tenant with a budget and no
	// parallel cap up (default: they are cut, usage.go othersAtTheCap).
	ContinueUnbounded bool
	// Log is the component logger.
	Log zerolog.Logger
	// OnReady carries out the engine effects of the other nodes' usage
	// (cuts of calls that exhausted a shared budget, the next deadline):
	// the edge's Effects. Nil drops them (tests that read the engine).
	OnReady func(admission.Ready)
}

// nodeRec is a node's heartbeat, key node.<name>.
type nodeRec struct {
	Epoch   string `json:"epoch"`
	RenewBy int64  `json:"renew_by"` // Unix ms: the node admits within its leases until then
	At      int64  `json:"at"`       // Unix ms of the heartbeat
	TTL     int64  `json:"ttl_ms"`
	MaxCall int64  `json:"max_call_ms"`
	Started int64  `json:"started"` // Unix ms the node's current life started
}

type cached struct {
	rec record
	rev uint64
}

// held is a key this node holds (or held) a lease in.
type held struct {
	tenant string
	dim    admission.LeaseDim
	user   string // LeaseUser only
}

// key is the ledger key of h.
func (h held) key() string {
	if h.dim == admission.LeaseUser {
		return "r." + token(h.tenant) + "." + token(h.user)
	}
	return keyOf(h.tenant, h.dim)
}

// usageOf is what the engine has of h: its cap (-1: none), the calls in
// progress and the capacity held.
func (l *Ledger) usageOf(h held) (capv, active, heldN int64, ok bool) {
	if h.dim == admission.LeaseUser {
		active, heldN, capv, ok = l.o.Engine.UserLeaseUsage(h.tenant, h.user)
		return capv, active, heldN, ok
	}
	u, ok := l.o.Engine.LeaseUsage(h.tenant)
	return u.Cap[h.dim], u.Active[h.dim], u.Held[h.dim], ok
}

// setLease sets the engine's capacity of h, granted under cap capv
// (clamped to its calls in progress; a raise is dropped if the cap
// changed meanwhile), and returns what was set. Lowering passes any capv.
func (l *Ledger) setLease(h held, n, capv int64) int64 {
	if h.dim == admission.LeaseUser {
		n, _ = l.o.Engine.SetUserLease(h.tenant, h.user, n, capv)
		return n
	}
	n, _ = l.o.Engine.SetLease(h.tenant, h.dim, n, capv)
	return n
}

// Ledger is this node's side of the shared ledger.
type Ledger struct {
	o     Options
	epoch string
	kv    jetstream.KeyValue
	grace time.Duration

	mu     sync.Mutex
	cache  map[string]cached  // every ledger key, kept by the watcher
	nodes  map[string]nodeRec // every heartbeat
	held   map[string]held    // parallel keys this node has a lease in
	keyMus map[string]*sync.Mutex
	// checked: when recheck last read a key from the server
	checked map[string]time.Time
	// usage: the usage.<tenant>.<node> entries; published: what this
	// node last wrote per tenant (usage.go)
	usage     map[string]NodeUsage
	published map[string]NodeUsage
	// usageDirty: tenants whose other nodes' usage changed since it was
	// last given to the engine (usage.go)
	usageDirty map[subject]bool
	// extrapolated: tenants whose other nodes' minutes the engine
	// extrapolates (re-applied every round, for a node going silent)
	extrapolated map[subject]bool
	// bound: the calls a silent node is counted at, by usage key, from
	// its lease (usage.go); dropped when it publishes again
	bound map[string]int64
	// silentSeen: the nodes found silent, whose leases got a usage entry
	// if they had none (usage.go unpublished)
	silentSeen map[string]bool
	synthetic  map[string]bool // usage keys unpublished gave an entry
	cutOffScan time.Time       // the last scan of every tenant while cut off (applyClusterUsage's loop only)
	// publishedAt: when the last complete usage round was acknowledged
	// (monotonic, since mono); clamped: clampUnpublished ran this spell
	publishedAt atomic.Int64
	clamped     atomic.Bool
	nearCapNext int // publishNearCap's turn (run loop only)
	onReady     atomic.Pointer[func(admission.Ready)]

	ready      atomic.Bool
	validUntil atomic.Int64 // monotonic: nanoseconds since l.mono; 0 = never renewed
	mono       time.Time
	expired    atomic.Bool

	stats stats

	stop chan struct{}
	done chan struct{}
}

// Start creates or opens the ledger bucket, loads it, releases what an
// earlier life of this node held, and starts the heartbeat and the
// maintenance round. A NATS that cannot be reached is not an error: the
// ledger retries, and Acquire answers ErrUnavailable until it is ready.
// A bucket the server refuses (e.g. too few servers for the replicas) is.
func Start(ctx context.Context, o Options) (*Ledger, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Maintain == 0 {
		o.Maintain = min(max(o.TTL/50, 20*time.Millisecond), 200*time.Millisecond)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &Ledger{
		o: o, epoch: hex.EncodeToString(b[:]),
		grace: max(time.Second, o.TTL/2),
		cache: map[string]cached{}, nodes: map[string]nodeRec{},
		held: map[string]held{}, keyMus: map[string]*sync.Mutex{}, checked: map[string]time.Time{},
		usage: map[string]NodeUsage{}, published: map[string]NodeUsage{}, usageDirty: map[subject]bool{}, extrapolated: map[subject]bool{}, bound: map[string]int64{}, silentSeen: map[string]bool{}, synthetic: map[string]bool{},
		mono: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if o.OnReady != nil {
		l.SetOnReady(o.OnReady)
	}
	err := l.open(ctx)
	if err != nil && !unreachable(err) {
		return nil, err
	}
	if err != nil {
		o.Log.Warn().Err(err).Msg("cluster ledger not reachable at start; retrying (no leases until then)")
	}
	go l.run()
	return l, nil
}

// unreachable reports whether err is NATS being away rather than the
// server refusing the bucket.
func unreachable(err error) bool {
	var api *jetstream.APIError
	return !errors.As(err, &api)
}

// open creates or updates the bucket and starts the watcher; it returns
// once the watcher has delivered every current value.
func (l *Ledger) open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout*5)
	defer cancel()
	kv, err := l.o.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: l.o.Bucket, Replicas: l.o.Replicas, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		if m := err.Error(); strings.Contains(m, "insufficient resources") || strings.Contains(m, "replicas") {
			return fmt.Errorf("cluster.replicas: bucket %s with %d replicas: %w", l.o.Bucket, l.o.Replicas, err)
		}
		return fmt.Errorf("cluster: bucket %s: %w", l.o.Bucket, err)
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return fmt.Errorf("cluster: watch %s: %w", l.o.Bucket, err)
	}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("cluster: watch %s closed", l.o.Bucket)
			}
			if e == nil { // every current value delivered
				l.kv = kv
				go l.watch(w)
				if err := l.heartbeat(); err != nil {
					return err
				}
				l.releasePrevious()
				l.ready.Store(true)
				l.o.Log.Info().Str("bucket", l.o.Bucket).Int("replicas", l.o.Replicas).Str("epoch", l.epoch).Msg("cluster ledger ready")
				return nil
			}
			l.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return ctx.Err()
		}
	}
}

// watch applies the bucket's changes to the cache until the watcher stops.
func (l *Ledger) watch(w jetstream.KeyWatcher) {
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				l.apply(e)
			}
		case <-l.stop:
			_ = w.Stop()
			return
		}
	}
}

// apply puts one watched entry in the cache (older revisions than the
// cached one, e.g. after this node's own write, are ignored).
func (l *Ledger) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.HasPrefix(key, usagePrefix) || strings.HasPrefix(key, userUsagePrefix) {
		l.applyUsage(e)
		return
	}
	if name, ok := strings.CutPrefix(key, nodePrefix); ok {
		if e.Operation() != jetstream.KeyValuePut {
			delete(l.nodes, name)
			l.usageOfNodeChanged(name) // released: counted as last published
			return
		}
		var n nodeRec
		if json.Unmarshal(e.Value(), &n) == nil {
			l.nodes[name] = n
		}
		return
	}
	if c, ok := l.cache[key]; ok && c.rev >= e.Revision() {
		return
	}
	var r record
	if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &r) != nil {
		l.o.Log.Warn().Str("key", key).Msg("cluster ledger: unreadable record ignored")
		return
	}
	l.cache[key] = cached{rec: r, rev: e.Revision()}
}

// run retries open until it succeeds, then beats and maintains.
func (l *Ledger) run() {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for !l.ready.Load() {
		select {
		case <-l.stop:
			return
		case <-time.After(backoff):
		}
		if err := l.open(context.Background()); err != nil {
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
	}
	l.publishedAt.Store(int64(time.Since(l.mono))) // nothing to publish yet
	// The others' usage is applied on a loop of its own: it is local
	// work, and with NATS unreachable every heartbeat and ledger write
	// below waits out its timeout, which would leave the others' usage
	// (their spend above all, a fixed figure) frozen that long
	// (TestBudgetWhileNATSDown).
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		tick := time.NewTicker(l.o.Maintain)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
				l.clampUnpublished()
				l.applyClusterUsage()
			}
		}
	}()
	defer func() { <-applied }()
	beat := time.NewTicker(l.beatEvery())
	defer beat.Stop()
	tick := time.NewTicker(l.o.Maintain)
	defer tick.Stop()
	usage := time.NewTicker(usageEvery)
	defer usage.Stop()
	nearCap := time.NewTicker(usageEvery / 10)
	defer nearCap.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-usage.C:
			if l.valid() {
				l.publishUsage()
			}
		case <-nearCap.C:
			if l.valid() {
				l.publishNearCap()
			}
		case <-beat.C:
			if err := l.heartbeat(); err != nil {
				l.stats.errors.Add(1)
				l.o.Log.Debug().Err(err).Msg("cluster heartbeat failed")
			}
		case <-tick.C:
			l.maintain()
		}
	}
}

func (l *Ledger) beatEvery() time.Duration { return max(l.o.TTL/4, 50*time.Millisecond) }

// heartbeat renews this node's leases: valid until lease_ttl after the
// heartbeat was sent (measured on the monotonic clock from before the
// write, so never later than the renew_by the others see).
func (l *Ledger) heartbeat() error {
	start := time.Now()
	now := l.o.Now()
	rec := nodeRec{
		Epoch: l.epoch, RenewBy: now.Add(l.o.TTL).UnixMilli(), At: now.UnixMilli(),
		TTL: l.o.TTL.Milliseconds(), MaxCall: l.o.MaxCallDuration.Milliseconds(), Started: l.mono.UnixMilli(),
	}
	b, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
	defer cancel()
	if _, err := l.kv.Put(ctx, nodePrefix+l.o.Node, b); err != nil {
		return err
	}
	l.validUntil.Store(int64(start.Add(l.o.TTL).Sub(l.mono)))
	if l.expired.CompareAndSwap(true, false) {
		l.o.Log.Info().Msg("cluster ledger reachable again: leases renewed")
	}
	l.mu.Lock()
	l.nodes[l.o.Node] = rec
	l.mu.Unlock()
	return nil
}

// valid reports whether this node's leases are still renewed.
func (l *Ledger) valid() bool {
	return l.ready.Load() && time.Since(l.mono) < time.Duration(l.validUntil.Load())
}

// Close stops the heartbeat and the maintenance, then gives back every
// lease of a dimension this node has no call in progress in (a clean
// stop has torn its calls down): no capacity waits for lease_ttl. A
// lease it cannot return (calls left, NATS away) stays until its next
// start or the reclaim rules free it.
func (l *Ledger) Close() {
	if !l.halt() || !l.valid() {
		return
	}
	l.mu.Lock()
	hs := make(map[string]held, len(l.held))
	for k, h := range l.held {
		hs[k] = h
	}
	l.mu.Unlock()
	n := 0
	for k, h := range hs {
		if _, active, _, ok := l.usageOf(h); ok && active > 0 {
			continue
		}
		l.setLease(h, 0, -1) // lower first: never above the ledger
		if l.dropMine(k, func(lease) bool { return true }) {
			n++
		}
	}
	l.o.Log.Info().Int("returned", n).Int("held", len(hs)).Msg("cluster ledger closed: idle leases returned")
}

// halt stops the heartbeat and the maintenance (what a crash does to
// them); false if they were stopped already.
func (l *Ledger) halt() bool {
	select {
	case <-l.stop:
		return false
	default:
		close(l.stop)
	}
	<-l.done
	return true
}

// dropMine removes this node's lease from key when mine(lease) says so,
// with compare-and-set retries; it reports whether a lease was removed.
func (l *Ledger) dropMine(key string, mine func(lease) bool) bool {
	km := l.keyLock(key)
	km.Lock()
	defer km.Unlock()
	for range maxAttempts {
		r, rev := l.snapshot(key)
		ls, ok := r.Leases[l.o.Node]
		if !ok || !mine(ls) {
			return false
		}
		delete(r.Leases, l.o.Node)
		conflict, err := l.write(key, r, rev)
		if err != nil {
			return false
		}
		if !conflict {
			l.stats.returned.Add(1)
			l.mu.Lock()
			delete(l.held, key)
			l.mu.Unlock()
			return true
		}
	}
	return false
}

// Epoch is this life of the node: random, new at every start.
func (l *Ledger) Epoch() string { return l.epoch }

// RetryAfter is what a caller refused with ErrUnavailable should wait: the
// heartbeat period.
func (l *Ledger) RetryAfter() time.Duration { return max(time.Second, l.beatEvery()) }

const nodePrefix = "node."

// Ledger keys: p.<tenant>.<calls|in|out> and cps.<tenant>.
var dimKeys = [admission.NumLeaseDims]string{"", "calls", "in", "out", "cps"}

func keyOf(tenant string, dim admission.LeaseDim) string {
	if dim == admission.LeaseCPS {
		return "cps." + token(tenant)
	}
	return "p." + token(tenant) + "." + dimKeys[dim]
}

// token makes a tenant name a KV key token: names of letters, digits, '-'
// and '_' as they are, anything else hex-encoded after '='.
func token(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "=" + hex.EncodeToString([]byte(s))
		}
	}
	return s
}

// keyLock serialises this node's writes to one key (a miss and the
// maintenance round of the same tenant).
func (l *Ledger) keyLock(key string) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.keyMus[key]
	if m == nil {
		m = new(sync.Mutex)
		l.keyMus[key] = m
	}
	return m
}

// snapshot returns a private copy of key's record and its revision.
func (l *Ledger) snapshot(key string) (record, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cache[key]
	return c.rec.clone(), c.rev
}

// live counts the nodes whose heartbeat is fresh (at least 1: this one).
func (l *Ledger) live(now int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.nodes {
		if r.RenewBy+l.grace.Milliseconds() >= now {
			n++
		}
	}
	return max(n, 1)
}

// reclaim gives back, in r, what silent nodes can no longer be using:
// the reserve (N - Use) lease_ttl + grace after a node's last heartbeat,
// everything max_call_duration later. It reports whether r changed.
func (l *Ledger) reclaim(r *record, now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := false
	for name, ls := range r.Leases {
		switch all, reserve := l.silent(name, ls, now); {
		case all:
			delete(r.Leases, name)
			changed = true
		case reserve:
			ls.N = ls.Use
			r.Leases[name] = ls
			changed = true
		}
	}
	if changed {
		l.stats.reclaims.Add(1)
	}
	return changed
}

// silent tells what of another node's lease ls may be taken back at now
// (Unix ms): all of it, or its reserve. Called with l.mu held.
func (l *Ledger) silent(name string, ls lease, now int64) (all, reserve bool) {
	if name == l.o.Node {
		return false, false
	}
	hb, ok := l.nodes[name]
	if !ok {
		// No heartbeat in this node's copy: released by an operator (who
		// removed the leases too), or a heartbeat this copy has not seen
		// yet. The lease's own write time is then the last sign of life,
		// with this node's lease_ttl and max call.
		hb = nodeRec{RenewBy: ls.At + l.o.TTL.Milliseconds(), MaxCall: l.o.MaxCallDuration.Milliseconds()}
	}
	// The lease's own write is a sign of life too: this copy's heartbeat
	// of the node may be older than its lease (a node back from a crash
	// or an outage writes both, and the watch may deliver the lease
	// first). Counting only the stale heartbeat would take back a lease
	// the node has just written and admits against (the chaos test found
	// this). Later is the safe side: a reclaim only waits longer.
	hb.RenewBy = max(hb.RenewBy, ls.At+l.o.TTL.Milliseconds())
	g := l.grace.Milliseconds()
	all = now > hb.RenewBy+hb.MaxCall+g
	return all, !all && now > hb.RenewBy+g && ls.N > ls.Use
}

// takeReserves lowers every other node's n to its use in r, and reports
// whether that freed anything. It is safe for live nodes too: a node
// admits only against use, and moves reserve into use only by a
// compare-and-set, which fails once this write has changed the key (its
// engine is lowered before its ledger, and raised after). So a node that
// finds the cap full takes the others' idle reserve at once instead of
// waiting for their maintenance round.
func takeReserves(r *record, me string) bool {
	took := false
	for name, ls := range r.Leases {
		if name != me && ls.N > ls.Use {
			ls.N = ls.Use
			r.Leases[name] = ls
			took = true
		}
	}
	return took
}

// write compare-and-sets key to r at rev; on a conflict it refreshes the
// cache from the server and reports conflict.
func (l *Ledger) write(key string, r record, rev uint64) (conflict bool, err error) {
	b, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
	defer cancel()
	start := time.Now()
	nrev, err := l.kv.Update(ctx, key, b, rev)
	l.stats.observe(time.Since(start))
	if err == nil {
		l.mu.Lock()
		if c, ok := l.cache[key]; !ok || c.rev < nrev {
			l.cache[key] = cached{rec: r, rev: nrev}
		}
		l.mu.Unlock()
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		l.stats.errors.Add(1)
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.stats.conflicts.Add(1)
	e, gerr := l.kv.Get(ctx, key)
	switch {
	case gerr == nil:
		l.apply(e)
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
	default:
		return true, fmt.Errorf("%w: %v", ErrUnavailable, gerr)
	}
	return true, nil
}

// recheckEvery is how often, at most, a key this node finds full is read
// from the server instead of trusted from the watched copy, which may lag
// behind a return another node just wrote.
const recheckEvery = 20 * time.Millisecond

// recheck reads key from the server when the last read is older than
// recheckEvery, and reports whether the revision moved past rev. Called
// with the key's lock held.
func (l *Ledger) recheck(key string, rev uint64) bool {
	l.mu.Lock()
	last := l.checked[key]
	l.mu.Unlock()
	if time.Since(last) < recheckEvery {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.o.Timeout)
	defer cancel()
	start := time.Now()
	e, err := l.kv.Get(ctx, key)
	l.stats.observe(time.Since(start))
	l.mu.Lock()
	l.checked[key] = time.Now()
	l.mu.Unlock()
	if err != nil {
		return false
	}
	l.apply(e)
	return e.Revision() > rev
}

// maxAttempts bounds the compare-and-set retries of one request.
const maxAttempts = 16

// Acquire leases more of tenant's dimension dim after the engine found
// none left (admission.CauseLease): one or more compare-and-sets of the
// tenant's key, then the engine's capacity raised. full reports that the
// ledger has nothing left for one more call (the cap is reached across
// the cluster). ErrUnavailable: the ledger cannot be asked, or this
// node's leases expired.
func (l *Ledger) Acquire(tenant, user string, dim admission.LeaseDim, now time.Time) (full bool, err error) {
	if !l.valid() {
		return false, ErrUnavailable
	}
	if dim == admission.LeaseCPS {
		return l.acquireCPS(tenant, now)
	}
	h := held{tenant: tenant, dim: dim}
	if dim == admission.LeaseUser {
		h.user = user
	}
	key := h.key()
	km := l.keyLock(key)
	km.Lock()
	defer km.Unlock()
	for range maxAttempts {
		capv, active, heldN, ok := l.usageOf(h)
		if !ok {
			return false, nil
		}
		if capv < 0 || active < heldN {
			return false, nil // unlimited, or another request leased meanwhile
		}
		r, rev := l.snapshot(key)
		ms := l.o.Now().UnixMilli()
		reclaimed := l.reclaim(&r, ms)
		n, use, isFull := size(capv, r.others(l.o.Node), active, l.live(ms), true)
		if isFull && !reclaimed {
			if l.recheck(key, rev) {
				continue // the copy was behind: size again
			}
			if !takeReserves(&r, l.o.Node) {
				l.stats.full.Add(1)
				return true, nil
			}
			l.stats.reclaims.Add(1)
		}
		mine := r.Leases[l.o.Node]
		r.Cap = capv
		r.Leases[l.o.Node] = lease{N: n, Use: use, Busy: active, Epoch: l.epoch, At: ms}
		if isFull { // write the reclaim alone, then size again
			r.Leases[l.o.Node] = lease{N: max(mine.N, active), Use: max(mine.Use, active), Busy: active, Epoch: l.epoch, At: ms}
		}
		conflict, err := l.write(key, r, rev)
		if err != nil {
			return false, err
		}
		if conflict {
			continue
		}
		if isFull {
			continue
		}
		l.mu.Lock()
		l.held[key] = h
		l.mu.Unlock()
		l.setLease(h, use, capv)
		l.stats.acquired.Add(1)
		return false, nil
	}
	return false, ErrContention
}

// acquireCPS leases tokens of the current second: the entry holds the
// grants of one second, and a new second starts it empty.
func (l *Ledger) acquireCPS(tenant string, now time.Time) (bool, error) {
	key := keyOf(tenant, admission.LeaseCPS)
	km := l.keyLock(key)
	km.Lock()
	defer km.Unlock()
	sec := now.Unix()
	for range maxAttempts {
		u, ok := l.o.Engine.LeaseUsage(tenant)
		if !ok || u.Cap[admission.LeaseCPS] < 0 {
			return false, nil
		}
		capv := u.Cap[admission.LeaseCPS]
		r, rev := l.snapshot(key)
		switch {
		case r.Sec > sec:
			return true, nil // this second is over in the ledger
		case r.Sec < sec:
			r.Sec, r.Leases = sec, map[string]lease{}
		}
		var used int64
		for _, g := range r.Leases {
			used += g.N
		}
		if used >= capv {
			l.stats.full.Add(1)
			return true, nil
		}
		k := block(capv-used, l.live(l.o.Now().UnixMilli()), true)
		r.Cap = capv
		r.Leases[l.o.Node] = lease{N: r.Leases[l.o.Node].N + k, Epoch: l.epoch, At: l.o.Now().UnixMilli()}
		conflict, err := l.write(key, r, rev)
		if err != nil {
			return false, err
		}
		if conflict {
			continue
		}
		l.o.Engine.AddCPSTokens(tenant, sec, k, capv)
		l.stats.acquired.Add(1)
		return false, nil
	}
	return false, ErrContention
}

// maintain is one maintenance round: at expiry it stops admissions beyond
// the calls in progress; otherwise, for every key this node holds, it
// gives back idle capacity, leases ahead when calls run low, refreshes a
// stale busy count, and reclaims from silent nodes.
func (l *Ledger) maintain() {
	if !l.ready.Load() {
		return
	}
	if !l.valid() {
		if l.expired.CompareAndSwap(false, true) {
			l.o.Log.Warn().Dur("lease_ttl", l.o.TTL).Msg("cluster ledger unreachable past lease_ttl: no new calls beyond those in progress until it is back")
			l.mu.Lock()
			hs := make([]held, 0, len(l.held))
			for _, h := range l.held {
				hs = append(hs, h)
			}
			l.mu.Unlock()
			for _, h := range hs {
				l.setLease(h, 0, -1) // clamped to the calls in progress
			}
		}
		return
	}
	l.mu.Lock()
	keys := make([]string, 0, len(l.held))
	for k := range l.held {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	for _, k := range keys {
		l.mu.Lock()
		h := l.held[k]
		l.mu.Unlock()
		l.tend(k, h)
	}
	l.sweep()
}

// tend is the maintenance of one held key.
func (l *Ledger) tend(key string, h held) {
	km := l.keyLock(key)
	km.Lock()
	defer km.Unlock()
	capv, active, heldN, ok := l.usageOf(h)
	if !ok {
		return
	}
	granted := capv // the cap the engine's raises are checked against
	r, rev := l.snapshot(key)
	ms := l.o.Now().UnixMilli()
	mine, has := r.Leases[l.o.Node]
	if capv < 0 { // the cap was lifted: nothing to hold
		capv = mine.N
	}
	reclaimed := l.reclaim(&r, ms)
	live := l.live(ms)
	n, use, _ := size(capv, r.others(l.o.Node), active, live, false)
	b, slack := block(capv-r.others(l.o.Node)-active, live, true), max(1, (n-active)/4)
	if capv == admission.Uncapped { // shrink only past twice the headroom: a write per call otherwise
		b = uncappedBlock(active)
		slack = b
	}
	shrink := has && mine.N-n >= slack
	grow := active+max(1, b/2) > heldN && use > mine.Use
	stale := has && mine.Busy != active && ms-mine.At > time.Second.Milliseconds()
	if !shrink && !grow && !stale && !reclaimed && mine.Epoch == l.epoch {
		return
	}
	var set int64
	if shrink {
		// Lower first, never raise before the write is in: another node
		// may take this node's reserve (takeReserves) meanwhile, and after
		// a cap change the engine holds less than the ledger's old grant.
		set = l.setLease(h, min(use, heldN), granted)
		use, n = max(use, set), max(n, use, set)
	} else if !grow {
		n, use = max(mine.N, active), max(mine.Use, active)
	}
	r.Cap = capv
	if n == 0 && active == 0 {
		delete(r.Leases, l.o.Node)
	} else {
		r.Leases[l.o.Node] = lease{N: n, Use: use, Busy: active, Epoch: l.epoch, At: ms}
	}
	conflict, err := l.write(key, r, rev)
	if err != nil || conflict {
		return // the engine is at most what the ledger grants; next round
	}
	if grow {
		l.setLease(h, use, granted)
		l.stats.acquired.Add(1)
	}
	if shrink {
		if use > set {
			l.setLease(h, use, granted)
		}
		l.stats.returned.Add(1)
	}
	if n == 0 && active == 0 {
		l.mu.Lock()
		delete(l.held, key)
		l.mu.Unlock()
	}
}

// sweep reclaims, from keys this node holds nothing in, what silent nodes
// no longer use, so capacity returns without waiting for demand. One key
// per round keeps it cheap.
func (l *Ledger) sweep() {
	ms := l.o.Now().UnixMilli()
	l.mu.Lock()
	var key string
	for k, c := range l.cache {
		if _, mine := l.held[k]; mine || strings.HasPrefix(k, "cps.") {
			continue
		}
		if l.silentIn(&c.rec, ms) {
			key = k
			break
		}
	}
	l.mu.Unlock()
	if key == "" {
		return
	}
	km := l.keyLock(key)
	km.Lock()
	defer km.Unlock()
	r, rev := l.snapshot(key)
	if l.reclaim(&r, ms) {
		_, _ = l.write(key, r, rev)
	}
}

// silentIn reports whether r holds a lease reclaim would change. Called
// with l.mu held.
func (l *Ledger) silentIn(r *record, ms int64) bool {
	for name, ls := range r.Leases {
		if all, reserve := l.silent(name, ls, ms); all || reserve {
			return true
		}
	}
	return false
}

// releasePrevious gives back what an earlier life of this node held: at
// start the store's restore has ended its calls, so it holds only what
// its calls in progress (none) need.
func (l *Ledger) releasePrevious() {
	l.mu.Lock()
	var keys []string
	for k, c := range l.cache {
		if ls, ok := c.rec.Leases[l.o.Node]; ok && ls.Epoch != l.epoch {
			keys = append(keys, k)
		}
	}
	l.mu.Unlock()
	for _, k := range keys {
		l.dropMine(k, func(ls lease) bool { return ls.Epoch != l.epoch })
	}
	if len(keys) > 0 {
		l.o.Log.Info().Int("keys", len(keys)).Msg("cluster: released the leases of this node's previous run")
	}
}
