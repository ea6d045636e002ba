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
	if rates == "" {
		rates = "[]"
	}
	if roles == "" {
		roles = "[]"
	}
	yml := strings.NewReplacer("%LIMITS%", limits, "%RATES%", rates, "%ROLES%", roles).Replace(budgetYAML)
	return newEnvYAML(t, yml)
}

// Three calls share the tenant's last 60 s of minutes: each is cut after
// 20 s, at the instant the engine computed, with BYE on both legs.
func TestConcurrentCallsCutAtExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 20 s")
	}
	e := budgetEnv(t, "{max_monthly_minutes: 1, auto_suspend: true}", "", "")
	var wg sync.WaitGroup
	calls := make([]string, 3)
	codes := make([]int, 3)
	for i := range calls {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sess, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber)
			codes[i] = code
			if sess != nil {
				calls[i] = callIDOf(sess.InviteRequest)
			}
		}(i)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("call %d got %d", i, c)
		}
	}
	answered := map[string]time.Time{}
	var first time.Time
	for _, id := range calls {
		a := e.gw.Dialog(id).Answered()
		answered[id] = a
		if first.IsZero() || a.Before(first) {
			first = a
		}
	}
	var answerSum time.Duration
	for _, a := range answered {
		answerSum += a.Sub(first)
	}
	// usage(t) = Σ (t - answer_i) reaches 60 s at first + (60 s + Σ offsets) / 3.
	want := first.Add((60*time.Second + answerSum) / 3)

	for i, id := range calls {
		bye := e.carrier.waitFor(sip.BYE, id, 25*time.Second)
		e.pbx.waitFor(sip.BYE, id, time.Second)
		if h := bye.req.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "max_monthly_minutes") {
			t.Errorf("call %d: BYE Reason = %v, want it to name the cap", i, h)
		}
		lag := bye.at.Sub(want)
		t.Logf("call %d cut %.1f s after its answer; BYE reached the callee %v after the exhaustion instant", i,
			bye.at.Sub(answered[id]).Seconds(), lag)
		if lag < 0 || lag > 500*time.Millisecond {
			t.Errorf("call %d: BYE at %v from the exhaustion instant, want within 100 ms (500 ms tolerated in CI)", i, lag)
		}
	}
	cuts := e.eventsOf("call.cut")
	if len(cuts) != 3 {
		t.Fatalf("%d call.cut events, want 3", len(cuts))
	}
	for _, c := range cuts {
		if d := c.At.Sub(want); d < -5*time.Millisecond || d > 5*time.Millisecond {
			t.Errorf("engine exhaustion instant off by %v", d)
		}
	}
	e.idle(t)
	if u := e.adm.Usage(time.Now(), "acme"); u.Seconds < 59*time.Second || u.Seconds > 60*time.Second+50*time.Millisecond {
		t.Errorf("billed %v, want 60 s", u.Seconds)
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
	e.operate(t, func(now time.Time) (admission.Output, error) {
		return e.adm.SetOverrides(now, "acme", admission.Limits{MonthlySpendLimit: &ten})
	})
	e.operate(t, func(now time.Time) (admission.Output, error) { return e.adm.Resume(now, "acme", "customer paid") })
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
	e.operate(t, func(now time.Time) (admission.Output, error) { return e.adm.Suspend(now, "acme", "fraud check") })
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
