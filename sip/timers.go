package sip

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// transactionLinger is how long a finished transaction stays to absorb
// retransmissions: sipgo's Timer J (non-INVITE server, UDP), Timer L and
// Timer M (INVITE accepted state, server and client) and Timer D (INVITE
// client after a non-2xx final). RFC 3261 puts them at 64*T1 = 32 s;
// Kamailio's tm keeps a finished transaction for its wait timer, 5 s by
// default, and so does tollgate. At 500 calls/s a transaction lingering
// 32 s instead of 5 s keeps about six times as many transactions (and
// their messages) in memory as there are calls up. A retransmission that
// arrives later than this is answered as a new request: a BYE gets 481
// from the dialog table (the call is over anyway), and a 2xx is relayed by
// the stray-response path.
const transactionLinger = 5 * time.Second

// sipgo's timers are package variables read when a transaction starts;
// they are set once, before any transaction of the process exists.
func init() {
	sip.Timer_J = transactionLinger
	sip.Timer_L = transactionLinger
	sip.Timer_M = transactionLinger
	sip.Timer_D = transactionLinger
}
