package sip

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// These tests need the proxy to hand the engine the normalised number
// (CallRequest.Callee = DialledNumber(&req.Recipient)).

// An emergency number with a user parameter is still the emergency number:
// admitted for a suspended tenant capped at 0, and forwarded as dialled.
func TestEmergencyNumberWithPhoneContextAdmittedWhileSuspended(t *testing.T) {
	e := budgetEnv(t, "{max_parallel_calls: 0}", "", "")
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "fraud check") })
	const dialled = "911;phone-context=+1"
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, dialled)
	if err != nil || code != 200 {
		t.Fatalf("emergency call to %s got %d %v, want 200 even when suspended and capped at 0", dialled, code, err)
	}
	id := callIDOf(sess.InviteRequest)
	if got := e.carrier.waitFor(sip.INVITE, id, time.Second).req.Recipient.User; got != dialled {
		t.Errorf("carrier got Request-URI user %q, want it forwarded as dialled (%q)", got, dialled)
	}
	eventually(t, 2*time.Second, func() bool { return e.adm.Usage(time.Now(), "acme").EmergencySeconds > 0 },
		"the call is not metered as an emergency call")
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

// A premium number written with separators, parameters, user=phone or
// escapes is still premium: rejected when the class is disabled.
func TestPremiumNumberInAnyFormRejectedWhenClassDisabled(t *testing.T) {
	e := budgetEnv(t, "{destinations: {premium: false}}", "", "")
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	userPhone := sip.NewParams()
	userPhone.Add("user", "phone")
	for _, ruri := range []sip.Uri{
		{User: "1-900-555-0100", Host: host, Port: port},
		{User: "1(900)555.0100;npdi", Host: host, Port: port, UriParams: userPhone},
		{User: "%31900%205550100", Host: host, Port: port},
	} {
		sess, err := e.pbx.calls.Invite(ctxT(t, 5*time.Second), ruri, []byte("v=0\r\n"), sip.NewHeader("Content-Type", "application/sdp"))
		if err != nil {
			t.Fatal(err)
		}
		sess.WaitAnswer(ctxT(t, 5*time.Second), sipgo.AnswerOptions{})
		res := sess.InviteResponse
		if res == nil {
			t.Fatalf("%s: no answer", ruri.String())
		}
		if res.StatusCode != 403 {
			t.Errorf("%s: got %d, want 403", ruri.String(), res.StatusCode)
			if res.StatusCode == 200 {
				sess.Ack(ctxT(t, 5*time.Second))
				sess.Bye(ctxT(t, 5*time.Second))
			}
			continue
		}
		if h := res.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "premium") {
			t.Errorf("%s: Reason = %v, want it to name the class", ruri.String(), h)
		}
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 0 {
		t.Errorf("carrier got %d INVITEs, want none", n)
	}
	ok, _ := e.answeredCall(t) // other destinations still go through
	ok.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

// A number with separators is rated on the prefix its digits match.
func TestNumberWithSeparatorsRatedOnItsPrefix(t *testing.T) {
	e := budgetEnv(t, "{}", `[{prefix: "1900", per_minute: 0, connect_fee: 0.5, increments: 1/1}, {prefix: "", per_minute: 0, connect_fee: 0.01, increments: 1/1}]`, "")
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, "1-900-555-0100")
	if err != nil || code != 200 {
		t.Fatalf("call got %d %v, want 200", code, err)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
	if got := e.adm.Usage(time.Now(), "acme").Spend; got != 500_000 {
		t.Errorf("spend %d micro-units, want 500000 (the 1900 row's connect fee)", got)
	}
}
