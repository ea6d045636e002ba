package sip

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// How long sipgo keeps a finished transaction, with its request and last
// response, before it forgets it. RFC 3261 puts these timers at 64*T1 =
// 32 s for UDP (0 for TCP, where sipgo already ends server transactions
// when the handler returns and client non-INVITE ones at the final
// response); each lingering transaction holds two parsed messages, and at
// 500 calls/s with 10 s calls the 5 s the gateway used before cost about
// 18 KiB of RSS per active call, half of it (BENCHMARKS.md, issue 8).
// What each one still buys, and who does it after:
//
//   - Timer L (INVITE server transaction after a 2xx) and Timer J
//     (non-INVITE server transaction after its final response) absorb
//     retransmissions of the request from a peer that missed our
//     response. After them the absorber (absorb.go) does the same for
//     64*T1 from a 24-byte record: a retransmitted INVITE is dropped, a
//     retransmitted BYE gets the same status code. They stay at T1, so
//     that the first retransmission (T1 after the request) still meets
//     the transaction.
//   - Timer M (INVITE client transaction after a 2xx) passes 2xx
//     retransmissions and the 2xx of other forks up to the proxy, which
//     relays them. A 2xx without a transaction goes the stray-response
//     path, which relays it the same way (RFC 3261 §16.7 step 10), so the
//     transaction is dropped at once.
//   - Timer D (INVITE client transaction after a non-2xx final; sipgo
//     also uses it as Timer K for non-INVITE client transactions) answers
//     a retransmitted non-2xx final response with the ACK again: 1 s meets
//     the next hop's first retransmission (T1 after its response); a
//     later one is dropped and the next hop stops at its Timer H. As
//     Timer K it only absorbs duplicate responses, which are harmless.
const (
	acceptedLinger  = 500 * time.Millisecond // Timers L and J: T1
	forkLinger      = 0                      // Timer M
	completedLinger = 1 * time.Second        // Timer D (and K)
)

// sipgo's timers are package variables read when a transaction starts;
// they are set once, before any transaction of the process exists.
func init() {
	sip.Timer_L = acceptedLinger
	sip.Timer_J = acceptedLinger
	sip.Timer_M = forkLinger
	sip.Timer_D = completedLinger
}
