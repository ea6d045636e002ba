package sip

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// budgetYAML is a config with one carrier and the tenant "acme"; %LIMITS%,
// %RATES% and %ROLES% are filled in per test.
const budgetYAML = `
log: {level: debug, format: json}
sip:
  listen: [{transport: udp, address: 127.0.0.1:5060}]
carriers:
  - {name: carrier, address: CARRIER, sources: [127.0.0.2/32]}
destination_classes:
  premium: ["1900"]
emergency_numbers: ["911"]
plans:
  - name: plan
    limits: %LIMITS%
    rates: %RATES%
tenants:
  - name: acme
    plan: plan
    carrier: carrier
    sources: [127.0.0.10/32]
    dids: ["+1555"]
    pbx: {address: PBX}
    roles: %ROLES%
`

func budgetEnv(t *testing.T, limits, rates, roles string) *env {
	t.Helper()
	return budgetEnvClock(t, limits, rates, roles, nil)
}

// budgetEnvClock is budgetEnv with the gateway on clock (nil: real).
func budgetEnvClock(t *testing.T, limits, rates, roles string, clock Clock) *env {
	t.Helper()
	if rates == "" {
		rates = "[]"
	}
	if roles == "" {
		roles = "[]"
	}
	yml := strings.NewReplacer("%LIMITS%", limits, "%RATES%", rates, "%ROLES%", roles).Replace(budgetYAML)
	return newEnvYAMLClock(t, yml, clock)
}

// Three calls share the tenant's last 60 s of minutes: each is cut after
// 20 s, at the instant the engine computed, with BYE on both legs. The
// gateway runs on a virtual clock: answers at distinct instants, then 20
// virtual seconds pass in one step and the deadline timer fires at the
// exhaustion instant exactly.
func TestConcurrentCallsCutAtExhaustion(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e := budgetEnvClock(t, "{max_monthly_minutes: 1, auto_suspend: true}", "", "", clock)
	calls := make([]string, 3)
	answered := make([]time.Time, 3)
	// The engine learns of an answer right after the 200 OK is relayed:
	// wait for it before the virtual clock moves on.
	drawn := func() time.Duration { return e.adm.Usage(clock.Now().Add(time.Second), "acme").Seconds }
	for i := range calls {
		before := drawn()
		sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
		if code != 200 {
			t.Fatalf("call %d got %d", i, code)
		}
		calls[i] = callIDOf(sess.InviteRequest)
		answered[i] = e.gw.Dialog(calls[i]).Answered()
		eventually(t, 5*time.Second, func() bool { return drawn() > before }, "call %d never billed", i)
		clock.Advance(time.Second) // the next call is answered 1 s later
	}
	// usage(t) = Σ (t - answer_i) reaches 60 s at first + (60 s + Σ offsets) / 3.
	var offsets time.Duration
	for _, a := range answered {
		offsets += a.Sub(answered[0])
	}
	want := answered[0].Add((60*time.Second + offsets) / 3)
	if !want.Equal(answered[0].Add(21 * time.Second)) {
		t.Fatalf("exhaustion at %v, want 21 s after the first answer", want.Sub(answered[0]))
	}
	if n := len(e.carrier.received(sip.BYE, "")); n != 0 {
		t.Fatalf("%d BYEs before the budget ran out", n)
	}
	clock.Advance(time.Minute) // the timer fires at want, not at the end of the step

	for i, id := range calls {
		bye := e.carrier.waitFor(sip.BYE, id, 5*time.Second)
		e.pbx.waitFor(sip.BYE, id, 5*time.Second)
		if h := bye.req.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "max_monthly_minutes") {
			t.Errorf("call %d: BYE Reason = %v, want it to name the cap", i, h)
		}
	}
	cuts := e.eventsOf("call.cut")
	if len(cuts) != 3 {
		t.Fatalf("%d call.cut events, want 3", len(cuts))
	}
	for _, c := range cuts {
		if !c.At.Equal(want) {
			t.Errorf("cut at %v, want the exhaustion instant %v exactly", c.At, want)
		}
	}
	e.idle(t)
	if u := e.adm.Usage(clock.Now(), "acme"); u.Seconds != 60*time.Second {
		t.Errorf("billed %v, want 60 s exactly", u.Seconds)
	}
}

const connectFeeRate = `[{prefix: "", per_minute: 0, connect_fee: 0.85, increments: 1/1}]`

// The suspension flow: threshold event, cap reached, tenant suspended (its
// call cut), outbound 403, inbound 480, and back in service on resume.
func TestSuspensionFlow(t *testing.T) {
	e := budgetEnv(t, "{monthly_spend_limit: 1, alert_threshold_pct: 80, auto_suspend: true}", connectFeeRate, "")

	sess, _ := e.answeredCall(t) // 0.85 of 1.00: past the 80 % threshold
	th := e.waitEvent(t, "usage.threshold", 1, time.Second)
	if th.Cap != "monthly_spend_limit" || th.Value != 850000 || th.Limit != 1000000 {
		t.Errorf("threshold event %+v", th)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)

	_, second := e.answeredCall(t) // its connect fee cannot be paid: cut at answer
	e.carrier.waitFor(sip.BYE, second, 2*time.Second)
	e.pbx.waitFor(sip.BYE, second, 2*time.Second)
	if ev := e.waitEvent(t, "usage.cap_reached", 1, time.Second); ev.Cap != "monthly_spend_limit" {
		t.Errorf("cap_reached %+v", ev)
	}
	e.waitEvent(t, "tenant.suspended", 1, time.Second)
	e.idle(t)

	if _, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber); code != 403 {
		t.Errorf("outbound call of a suspended tenant got %d, want 403", code)
	}
	if _, code, _ := e.carrier.invite(ctxT(t, 5*time.Second), e.gw, "+15550001"); code != 480 {
		t.Errorf("inbound call of a suspended tenant got %d, want 480", code)
	}
	if len(e.eventsOf("usage.threshold")) != 1 || len(e.eventsOf("usage.cap_reached")) != 1 {
		t.Errorf("threshold/cap events repeated: %d threshold, %d cap_reached", len(e.eventsOf("usage.threshold")), len(e.eventsOf("usage.cap_reached")))
	}

	ten := int64(10_000_000)
	e.operate(t, func(now time.Time) (admission.Ready, error) {
		return e.adm.SetOverrides(now, "acme", admission.Limits{MonthlySpendLimit: &ten})
	})
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Resume(now, "acme", "customer paid") })
	e.waitEvent(t, "tenant.resumed", 1, time.Second)
	sess, _ = e.answeredCall(t)
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

func TestCPSOverflowGets503WithRetryAfter(t *testing.T) {
	e := budgetEnv(t, "{max_calls_per_second: 1, cps_burst: 2}", "", "")
	e.carrier.setOnCall(reject(486, "Busy Here"))
	host, port, _ := sip.ParseAddr(e.gw.Addr("udp"))
	codes := map[int]int{}
	var retry string
	for i := 0; i < 3; i++ {
		sess, err := e.pbx.calls.Invite(ctxT(t, 5*time.Second), sip.Uri{User: outboundNumber, Host: host, Port: port}, nil)
		if err != nil {
			t.Fatal(err)
		}
		sess.WaitAnswer(ctxT(t, 5*time.Second), sipgo.AnswerOptions{})
		res := sess.InviteResponse
		codes[res.StatusCode]++
		if res.StatusCode == 503 {
			if h := res.GetHeader("Retry-After"); h != nil {
				retry = h.Value()
			}
		}
	}
	if codes[486] != 2 || codes[503] != 1 {
		t.Fatalf("codes %v, want the burst of 2 through (486 from the callee) and the 3rd 503", codes)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Errorf("Retry-After = %q, want whole seconds ≥ 1", retry)
	}
	if n := len(e.carrier.received(sip.INVITE, "")); n != 2 {
		t.Errorf("carrier got %d INVITEs, want 2", n)
	}
}

func TestDisabledDestinationClassGets403(t *testing.T) {
	e := budgetEnv(t, "{destinations: {premium: false}}", "", "")
	sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, "19005550100")
	if code != 403 {
		t.Fatalf("premium call got %d, want 403", code)
	}
	if h := sess.InviteResponse.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "premium") {
		t.Errorf("Reason = %v, want it to name the class", h)
	}
	ok, _ := e.answeredCall(t) // other destinations still go through
	ok.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

func TestRoleCapBlocksWhileTenantHasRoom(t *testing.T) {
	e := budgetEnv(t, "{max_parallel_calls: 10}", "", `[{name: agents, max_parallel_calls: 1, users: ["100"]}]`)
	first, code, err := e.pbx.inviteAs(ctxT(t, 5*time.Second), e.gw, "100", outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("first call of user 100: %d %v", code, err)
	}
	second, code, _ := e.pbx.inviteAs(ctxT(t, 5*time.Second), e.gw, "100", outboundNumber)
	if code != 486 {
		t.Fatalf("second call of user 100 got %d, want 486 from the role cap", code)
	}
	if h := second.InviteResponse.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "agents") && !strings.Contains(h.Value(), "role") {
		t.Errorf("Reason = %v, want it to name the role cap", h)
	}
	other, code, err := e.pbx.inviteAs(ctxT(t, 5*time.Second), e.gw, "200", outboundNumber)
	if err != nil || code != 200 {
		t.Fatalf("user 200 (no role) got %d %v: the tenant still has room", code, err)
	}
	first.Bye(ctxT(t, 5*time.Second))
	other.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

func TestEmergencyCallAdmittedWhileSuspended(t *testing.T) {
	e := budgetEnv(t, "{max_parallel_calls: 0}", "", "")
	e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "fraud check") })
	if _, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber); code != 403 {
		t.Fatalf("ordinary call got %d, want 403", code)
	}
	sess, code, err := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, "911")
	if err != nil || code != 200 {
		t.Fatalf("emergency call got %d %v, want 200 even when suspended and capped at 0", code, err)
	}
	sess.Bye(ctxT(t, 5*time.Second))
	e.idle(t)
}

// Readies reach the gateway in any order once the runner's lock is
// released. An older one applied last must not move the timer to its
// stale, later deadline (issue 8, 3a): the call is still cut at the
// exhaustion instant the newer Ready carries.
func TestStaleReadyDoesNotMoveTheTimer(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e := budgetEnvClock(t, "{max_monthly_minutes: 10, alert_threshold_pct: 100, auto_suspend: true}", "", "", clock)
	_, callID := e.answeredCall(t)
	stale := e.adm.Tick(clock.Now()) // deadline: 10 minutes away
	one := int64(1)
	yes := true
	fresh, err := e.adm.SetOverrides(clock.Now(), "acme", admission.Limits{MaxMonthlyMinutes: &one, AutoSuspend: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if !fresh.Deadline.Before(stale.Deadline) {
		t.Fatalf("fresh deadline %v not before stale %v", fresh.Deadline, stale.Deadline)
	}
	e.gw.Effects(fresh)
	e.gw.Effects(stale) // arrives last
	clock.Advance(time.Minute)
	e.carrier.waitFor(sip.BYE, callID, 5*time.Second)
	cuts := e.eventsOf("call.cut")
	if len(cuts) != 1 || !cuts[0].At.Equal(fresh.Deadline) {
		t.Fatalf("cuts %+v, want one at %v", cuts, fresh.Deadline)
	}
}

// A suspension that lands right after Admit, before the INVITE is
// forwarded, cuts the early call (issue 8, 3d): the caller gets 403 and
// the call is never billed. Before the fix the dialog was not in the table
// yet, the cut was dropped and the call ran unbilled.
func TestSuspensionRightAfterAdmitCutsTheCall(t *testing.T) {
	e := budgetEnv(t, "{max_parallel_calls: 10}", "", "")
	var once sync.Once
	hook := func() {
		once.Do(func() {
			e.operate(t, func(now time.Time) (admission.Ready, error) { return e.adm.Suspend(now, "acme", "fraud") })
		})
	}
	e.obs.afterAdmit.Store(&hook)
	sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
	if code != 403 {
		t.Fatalf("call admitted just before the suspension got %d, want 403", code)
	}
	if sess != nil && sess.InviteResponse != nil {
		if h := sess.InviteResponse.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "suspended") {
			t.Errorf("Reason = %v, want it to name the suspension", h)
		}
	}
	e.idle(t)
	if u := e.adm.Usage(time.Now(), "acme"); u.Seconds != 0 {
		t.Errorf("billed %v for a call cut while early", u.Seconds)
	}
	if n := e.obs.count(e.obs.teardowns, "suspended"); n != 1 {
		t.Errorf("teardown metric counted %d times, want 1", n)
	}
}
