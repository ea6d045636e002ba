package cluster

import (
	"sort"

	"github.com/tollgate/tollgate/admission"
)

// lease is one node's share of a parallel-calls ledger entry.
//
//   - Use is what the node admits against without asking the ledger: it
//     may have up to Use calls of the dimension in progress.
//   - N >= Use is what the ledger has set aside for it; N - Use is a
//     reserve the node does not admit against until a write moves it into
//     Use, so any other node may take it (takeReserves), and it is the
//     only part of a silent node's lease that returns before
//     max_call_duration.
//   - Busy is the node's calls in progress when it wrote (for status and
//     cluster-wide usage).
//
// In a CPS entry N is the node's tokens for the entry's second; Use and
// Busy are unused.
type lease struct {
	N     int64  `json:"n"`
	Use   int64  `json:"use,omitempty"`
	Busy  int64  `json:"busy,omitempty"`
	Epoch string `json:"epoch"`
	At    int64  `json:"at"` // Unix ms of the write
}

// record is the value of one ledger key: a tenant's cap in one dimension
// and the leases granted from it. The invariant the ledger keeps is
// Σ leases[*].N <= Cap.
type record struct {
	Cap    int64            `json:"cap"`
	Sec    int64            `json:"sec,omitempty"` // CPS: the Unix second the grants are for
	Leases map[string]lease `json:"leases,omitempty"`
}

// clone returns a deep copy of r (cached records are shared).
func (r record) clone() record {
	c := r
	c.Leases = make(map[string]lease, len(r.Leases)+1)
	for k, v := range r.Leases {
		c.Leases[k] = v
	}
	return c
}

// others is Σ N over every node but me.
func (r *record) others(me string) int64 {
	var s int64
	for n, l := range r.Leases {
		if n != me {
			s += l.N
		}
	}
	return s
}

// nodes returns the names holding a lease, sorted.
func (r *record) nodes() []string {
	out := make([]string, 0, len(r.Leases))
	for n := range r.Leases {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// block is the lease block a node takes or keeps: half the capacity
// nobody else holds, split over the live nodes (max(1, free/(2N)) when
// acquiring). Near the cap it is 1, a write per call, which is still
// exact.
func block(avail int64, live int, acquiring bool) int64 {
	if live < 1 {
		live = 1
	}
	b := avail / int64(2*live)
	if acquiring && b < 1 && avail >= 1 {
		b = 1
	}
	if b < 0 {
		b = 0
	}
	return b
}

// size computes the node's new lease of a parallel dimension: active calls
// in progress, capacity capv, others holding others. It keeps Use at
// active plus one block and N one block above that, both within what the
// others leave. full is true when not even one more call fits.
func size(capv, others, active int64, live int, acquiring bool) (n, use int64, full bool) {
	if capv == admission.Uncapped {
		use = active + uncappedBlock(active)
		return use, use, false
	}
	room := capv - others // the most this node may hold
	avail := room - active
	b := block(avail, live, acquiring)
	use = min(room, active+b)
	n = min(room, active+2*b)
	if use < active { // the cap was lowered below the calls in progress
		use, n = active, active
	}
	return n, use, acquiring && avail < 1
}

// uncappedBlock is the headroom of a lease with no cap on the sum
// (admission.Uncapped: a tenant with a budget and no parallel cap): a
// quarter of the calls in progress, at least 2. The others count a silent
// node's share of the budget at its lease, so the bound stays within 25 %
// (or 2 calls) of what it runs, and growing to n calls costs O(log n)
// writes. There is nothing to share, so no reserve is kept (N = Use).
func uncappedBlock(active int64) int64 { return max(2, active/4) }
