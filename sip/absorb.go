package sip

import (
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// absorbWindow is how long the gateway still recognises a retransmission
// of a request it has answered: 64*T1, RFC 3261's Timer J and RFC 6026's
// Timer L for UDP (T1 = 500 ms), the longest a peer retransmits a request.
const absorbWindow = 64 * 500 * time.Millisecond

// absorber answers retransmissions of requests whose sipgo transaction is
// gone, as the transaction would have. sipgo keeps a finished server
// transaction, with its request and response, for the linger of
// timers.go; after that a retransmission would start a new transaction and
// reach the proxy as a new request: a retransmitted INVITE of a call that
// is up would get 482, a retransmitted BYE 481. Instead the absorber
// remembers, for absorbWindow, a 64-bit hash of each answered server
// transaction (method, top Via branch and sent-by) with the status code,
// in pointer-free memory the collector does not scan (24 bytes in a ring
// plus a map entry, instead of two parsed messages), and
//
//   - drops a retransmitted INVITE whose transaction sent a 2xx (RFC 6026
//     §8.6: the Accepted state absorbs it, no response);
//   - answers a retransmitted BYE with the same status code (RFC 3261
//     §17.2.2: the Completed state resends the final response; a BYE's
//     response has no body and the gateway's BYE responses no headers of
//     their own). Other in-dialog requests are forwarded again as before:
//     their dialog is still up and the next hop's transaction answers them.
//
// A request without an RFC 3261 branch is not tracked.
type absorber struct {
	clock Clock
	base  time.Time
	seed  maphash.Seed

	mu    sync.Mutex
	ring  []absorbed        // oldest first from head
	head  int               // index of the oldest live entry in ring
	next  uint64            // sequence number of the next entry
	index map[uint64]uint64 // hash -> sequence number of its newest entry
}

type absorbed struct {
	hash uint64
	at   int64 // nanoseconds since base
	seq  uint64
	code int
}

func newAbsorber(c Clock) *absorber {
	return &absorber{clock: c, base: c.Now(), seed: maphash.MakeSeed(), index: make(map[uint64]uint64)}
}

// key hashes a request's server transaction identity as sipgo matches it
// (branch, sent-by host and port, method; ACK matches INVITE but is never
// absorbed); ok is false without an RFC 3261 branch.
func (a *absorber) key(req *sip.Request) (h uint64, ok bool) {
	via := req.Via()
	if via == nil {
		return 0, false
	}
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) || len(branch) == len(sip.RFC3261BranchMagicCookie) {
		return 0, false
	}
	var m maphash.Hash
	m.SetSeed(a.seed)
	m.WriteString(string(req.Method))
	m.WriteByte(0)
	m.WriteString(branch)
	m.WriteByte(0)
	m.WriteString(via.Host)
	m.WriteByte(0)
	m.WriteString(strconv.Itoa(via.Port))
	return m.Sum64(), true
}

func (a *absorber) now() int64 { return int64(a.clock.Now().Sub(a.base)) }

// add remembers that the transaction h was answered with code.
func (a *absorber) add(h uint64, code int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.expire(now)
	a.ring = append(a.ring, absorbed{hash: h, at: now, seq: a.next, code: code})
	a.index[h] = a.next
	a.next++
}

// lookup returns the code the transaction h was answered with within the
// window, or 0.
func (a *absorber) lookup(h uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(a.now())
	seq, ok := a.index[h]
	if !ok {
		return 0
	}
	return a.ring[a.head+int(seq-a.ring[a.head].seq)].code
}

// expire drops the entries older than the window; the ring's live part is
// moved to the front once the dead part is the larger half.
func (a *absorber) expire(now int64) {
	for a.head < len(a.ring) && now-a.ring[a.head].at >= int64(absorbWindow) {
		e := a.ring[a.head]
		if a.index[e.hash] == e.seq {
			delete(a.index, e.hash)
		}
		a.head++
	}
	if a.head > 0 && a.head >= len(a.ring)-a.head {
		n := copy(a.ring, a.ring[a.head:])
		a.ring = a.ring[:n]
		a.head = 0
	}
}

// len is the number of remembered transactions (tests).
func (a *absorber) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.index)
}

// wrap returns h behind the absorber: retransmissions of answered
// transactions are handled here, and the final responses h sends are
// remembered.
func (a *absorber) wrap(h func(*sip.Request, sip.ServerTransaction) bool) func(*sip.Request, sip.ServerTransaction) bool {
	return func(req *sip.Request, tx sip.ServerTransaction) (async bool) {
		k, ok := a.key(req)
		if !ok {
			return h(req, tx)
		}
		if code := a.lookup(k); code != 0 {
			if !req.IsInvite() {
				res := sip.NewResponseFromRequest(req, code, reasonPhrase(code), nil)
				_ = tx.Respond(res)
			}
			return false
		}
		return h(req, &recordingTx{ServerTransaction: tx, a: a, key: k, invite: req.IsInvite()})
	}
}

// recordingTx remembers the final response sent on a server transaction:
// any for a non-INVITE, a 2xx for an INVITE (a non-2xx final response is
// retransmitted by sipgo itself until the ACK, for Timer H).
type recordingTx struct {
	sip.ServerTransaction
	a      *absorber
	key    uint64
	invite bool
}

// TerminateGracefully ends the wrapped transaction (see endServerTx).
func (t *recordingTx) TerminateGracefully() { endServerTx(t.ServerTransaction) }

func (t *recordingTx) Respond(res *sip.Response) error {
	err := t.ServerTransaction.Respond(res)
	if err == nil && res.StatusCode >= 200 && (!t.invite || res.IsSuccess()) {
		t.a.add(t.key, res.StatusCode)
	}
	return err
}

// reasonPhrase is the reason phrase of a replayed response (RFC 3261 §21;
// the phrase is for people, the code is what counts).
func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 403:
		return "Forbidden"
	case 408:
		return "Request Timeout"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 483:
		return "Too Many Hops"
	case 503:
		return "Service Unavailable"
	}
	switch {
	case code < 300:
		return "OK"
	case code < 400:
		return "Redirection"
	case code < 500:
		return "Client Error"
	case code < 600:
		return "Server Error"
	}
	return "Global Failure"
}
