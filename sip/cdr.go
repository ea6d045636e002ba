package sip

import (
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/meter"
)

// callEnd is what the edge tells the engine about how a call ended, for
// its call.ended event: the cause endCall was given, who hung up, and the
// final status of a call that never got a 2xx.
func callEnd(cause string, billedEnd time.Time) admission.End {
	end := admission.End{BilledEnd: billedEnd, Cause: cause, HungUp: "gateway"}
	switch cause {
	case "bye_caller":
		end.HungUp = "caller"
	case "bye_callee":
		end.HungUp = "callee"
	case "cancel":
		end.HungUp, end.Status = "caller", 487
	case "timeout", "timer_c":
		end.Status = 408
	case "media_ports":
		end.Status = 503
	case "forward_failed":
		end.Status = 502
	default:
		if code, ok := strings.CutPrefix(cause, "rejected_"); ok {
			end.HungUp = "callee"
			end.Status, _ = strconv.Atoi(code)
		}
	}
	return end
}

// engineMedia is d's media meters in the engine's neutral form, for the
// call.ended event and the "call ended" line; nil when the
// call is not anchored.
func (d *Dialog) engineMedia() *admission.Media {
	caller, callee, ok := d.MediaStats()
	if !ok {
		return nil
	}
	return &admission.Media{Caller: engineLeg(caller), Callee: engineLeg(callee)}
}

// engineLeg is a leg's meters in the engine's neutral form.
func engineLeg(s meter.Stats) admission.MediaLeg {
	return admission.MediaLeg{
		Packets: s.Packets, Bytes: s.Bytes, Lost: s.Lost, JitterMs: s.Jitter, SSRCChanges: s.SSRCChanges,
		Dropped: s.Dropped, Malformed: s.Malformed, RTCPPackets: s.RTCPPackets,
		FirstPacket: s.FirstPacket, LastPacket: s.LastPacket,
	}
}

// rejectEarly refuses a new call of a known tenant before the engine is
// asked (draining, hop count, SDP, loop), and records its call.rejected.
func (g *Gateway) rejectEarly(now time.Time, callID, key string, route Route, caller, callee, cause string, code int) {
	g.apply(g.adm.Reject(now, admission.CallRequest{
		CallID: key, Tenant: route.Tenant, Direction: route.Direction, Caller: caller, Callee: callee,
	}, cause, code))
	g.logDecision(callID, route.Tenant, route.Direction, "reject", cause, code)
}
