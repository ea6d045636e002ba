// Package callrec is the SIP edge's record of an active call, as the
// gateway reports it to the control service (control.Edge.Calls): neutral
// data below the API. The control service maps it to the API's wire type
// (api.CallView), so the edge does not depend on the API.
package callrec

import (
	"time"

	"github.com/tollgate/tollgate/meter"
)

// Call is an active call.
type Call struct {
	ID        string // admission id: Call-ID;from-tag
	CallID    string // SIP Call-ID
	Tenant    string
	Direction string // inbound | outbound
	Caller    string
	Callee    string
	State     string // early | confirmed
	Started   time.Time
	Answered  time.Time     // zero until answered
	Billed    time.Duration // since the answer
	// Media holds the RTP meters of an anchored call; nil otherwise.
	Media *Media
}

// Media are an anchored call's meters: what the caller sent and what the
// callee sent.
type Media struct {
	Caller, Callee meter.Stats
}
