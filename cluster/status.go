package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/admission"
)

// stats are the ledger's counters (/metrics).
type stats struct {
	acquired, returned, conflicts, reclaims, full, errors atomic.Uint64

	rttCount atomic.Uint64
	rttSum   atomic.Int64 // nanoseconds
	rttBkt   [len(RTTBuckets) + 1]atomic.Uint64
}

// RTTBuckets are the upper bounds of the ledger round-trip histogram.
var RTTBuckets = [...]time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, time.Second,
}

func (s *stats) observe(d time.Duration) {
	s.rttCount.Add(1)
	s.rttSum.Add(int64(d))
	i := sort.Search(len(RTTBuckets), func(i int) bool { return d <= RTTBuckets[i] })
	s.rttBkt[i].Add(1)
}

// Stats is a snapshot of the ledger's counters.
type Stats struct {
	// Acquired counts leases taken or grown; Returned, idle capacity given
	// back; Conflicts, compare-and-set revision mismatches; Reclaims,
	// writes that took back a silent node's capacity; Full, requests the
	// ledger had nothing left for; Errors, failed ledger requests.
	Acquired, Returned, Conflicts, Reclaims, Full, Errors uint64
	// RTTCount, RTTSum and RTTBuckets (cumulative counts per RTTBuckets
	// bound, then +Inf) are the ledger round-trip latency histogram.
	RTTCount   uint64
	RTTSum     time.Duration
	RTTBuckets []uint64
	// Ready: the bucket is open; Valid: this node's leases are renewed.
	Ready, Valid bool
}

// Stats returns the counters.
func (l *Ledger) Stats() Stats {
	s := Stats{
		Acquired: l.stats.acquired.Load(), Returned: l.stats.returned.Load(),
		Conflicts: l.stats.conflicts.Load(), Reclaims: l.stats.reclaims.Load(),
		Full: l.stats.full.Load(), Errors: l.stats.errors.Load(),
		RTTCount: l.stats.rttCount.Load(), RTTSum: time.Duration(l.stats.rttSum.Load()),
		Ready: l.ready.Load(), Valid: l.valid(),
	}
	var cum uint64
	for i := range l.stats.rttBkt {
		cum += l.stats.rttBkt[i].Load()
		s.RTTBuckets = append(s.RTTBuckets, cum)
	}
	return s
}

// Node is one gateway as the ledger sees it.
type Node struct {
	Name    string    `json:"name"`
	Epoch   string    `json:"epoch"`
	Renewed time.Time `json:"last_renewal"`
	RenewBy time.Time `json:"renew_by"`
	Started time.Time `json:"started"`
	Alive   bool      `json:"alive"`
	Self    bool      `json:"self"`
}

// Lease is one node's lease in one ledger entry.
type Lease struct {
	Node string `json:"node"`
	// Held is what the ledger sets aside for the node (n); Use, what it
	// admits against without asking; Busy, its calls in progress at its
	// last write (for CPS: Held is its tokens of the entry's second).
	Held  int64     `json:"held"`
	Use   int64     `json:"use"`
	Busy  int64     `json:"busy"`
	Epoch string    `json:"epoch"`
	At    time.Time `json:"written"`
}

// Entry is one ledger key: a tenant's cap in one dimension.
type Entry struct {
	Tenant    string  `json:"tenant"`
	User      string  `json:"user,omitempty"` // role.max_parallel_calls: the user
	Dimension string  `json:"dimension"`
	Cap       int64   `json:"cap"` // -1: none (leased for a budget's sake)
	Second    int64   `json:"second,omitempty"`
	Leased    int64   `json:"leased"`
	Busy      int64   `json:"busy"`
	Leases    []Lease `json:"leases"`
}

// Status is the cluster as this node's copy of the ledger has it.
type Status struct {
	// Enabled is cluster.enabled; with it false the rest is empty but
	// Node.
	Enabled bool    `json:"enabled"`
	Node    string  `json:"node"`
	Bucket  string  `json:"bucket"`
	Ready   bool    `json:"ready"`
	Valid   bool    `json:"leases_valid"`
	TTL     string  `json:"lease_ttl"`
	Nodes   []Node  `json:"nodes"`
	Entries []Entry `json:"entries"`
}

// Status returns the nodes with their last renewal, and every ledger
// entry with the leases in it, sorted.
func (l *Ledger) Status(tenant string) Status {
	ms := l.o.Now().UnixMilli()
	st := Status{Enabled: true, Node: l.o.Node, Bucket: l.o.Bucket, Ready: l.ready.Load(), Valid: l.valid(), TTL: l.o.TTL.String(), Nodes: []Node{}, Entries: []Entry{}}
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, n := range l.nodes {
		st.Nodes = append(st.Nodes, Node{
			Name: name, Epoch: n.Epoch, Renewed: time.UnixMilli(n.At).UTC(), RenewBy: time.UnixMilli(n.RenewBy).UTC(),
			Started: time.UnixMilli(n.Started).UTC(), Alive: n.RenewBy+l.grace.Milliseconds() >= ms, Self: name == l.o.Node,
		})
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	for key, c := range l.cache {
		t, user, dim, ok := parseKey(key)
		if !ok || tenant != "" && t != tenant || len(c.rec.Leases) == 0 && c.rec.Cap == 0 {
			continue
		}
		e := Entry{Tenant: t, User: user, Dimension: dim.String(), Cap: c.rec.Cap, Second: c.rec.Sec, Leases: []Lease{}}
		if e.Cap == admission.Uncapped {
			e.Cap = -1 // leased for a budget, no cap
		}
		for _, name := range c.rec.nodes() {
			ls := c.rec.Leases[name]
			e.Leased += ls.N
			e.Busy += ls.Busy
			e.Leases = append(e.Leases, Lease{Node: name, Held: ls.N, Use: ls.Use, Busy: ls.Busy, Epoch: ls.Epoch, At: time.UnixMilli(ls.At).UTC()})
		}
		st.Entries = append(st.Entries, e)
	}
	sort.Slice(st.Entries, func(i, j int) bool {
		a, b := st.Entries[i], st.Entries[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Dimension != b.Dimension {
			return a.Dimension < b.Dimension
		}
		return a.User < b.User
	})
	return st
}

// parseKey is the inverse of keyOf and held.key (user: LeaseUser only).
func parseKey(key string) (tenant, user string, dim admission.LeaseDim, ok bool) {
	if rest, ok := strings.CutPrefix(key, "r."); ok {
		t, u, ok := strings.Cut(rest, ".")
		t, ok1 := untoken(t)
		u, ok2 := untoken(u)
		return t, u, admission.LeaseUser, ok && ok1 && ok2
	}
	if t, ok := strings.CutPrefix(key, "cps."); ok {
		t, ok = untoken(t)
		return t, "", admission.LeaseCPS, ok
	}
	rest, ok := strings.CutPrefix(key, "p.")
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 {
		return "", "", 0, false
	}
	for d := admission.LeaseParallel; d < admission.LeaseCPS; d++ {
		if dimKeys[d] == rest[i+1:] {
			t, ok := untoken(rest[:i])
			return t, "", d, ok
		}
	}
	return "", "", 0, false
}

func untoken(s string) (string, bool) {
	h, ok := strings.CutPrefix(s, "=")
	if !ok {
		return s, true
	}
	var b []byte
	if _, err := fmt.Sscanf(h, "%x", &b); err != nil {
		return "", false
	}
	return string(b), true
}

// Released is what Release gave back.
type Released struct {
	Node    string `json:"node"`
	Entries int    `json:"entries"`
	Calls   int64  `json:"capacity"` // leased capacity returned (calls; CPS tokens not counted)
}

// Release gives back everything node holds and removes its heartbeat: for
// a node that will not come back, whose calls in progress would otherwise
// stay reserved until max_call_duration. It refuses a node whose
// heartbeat is fresh (ErrAlive), this node included: releasing a live
// node's capacity would let the cluster exceed its caps.
func (l *Ledger) Release(ctx context.Context, node string) (Released, error) {
	out := Released{Node: node}
	if !l.ready.Load() {
		return out, ErrUnavailable
	}
	ms := l.o.Now().UnixMilli()
	l.mu.Lock()
	hb, known := l.nodes[node]
	var keys []string
	for k, c := range l.cache {
		if _, ok := c.rec.Leases[node]; ok {
			keys = append(keys, k)
		}
	}
	l.mu.Unlock()
	if !known && len(keys) == 0 {
		return out, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	if node == l.o.Node || known && hb.RenewBy+l.grace.Milliseconds() >= ms {
		return out, fmt.Errorf("%w: %q renewed its leases at %s", ErrAlive, node, time.UnixMilli(hb.At).UTC().Format(time.RFC3339))
	}
	if known {
		if err := l.kv.Delete(ctx, nodePrefix+node); err != nil {
			return out, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	for _, k := range keys {
		for range maxAttempts {
			r, rev := l.snapshot(k)
			ls, ok := r.Leases[node]
			if !ok {
				break
			}
			delete(r.Leases, node)
			conflict, err := l.write(k, r, rev)
			if err != nil {
				return out, err
			}
			if !conflict {
				out.Entries++
				if !strings.HasPrefix(k, "cps.") {
					out.Calls += ls.N
				}
				break
			}
		}
	}
	return out, nil
}
