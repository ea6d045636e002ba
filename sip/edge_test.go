package sip

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// callJournal keeps the call records the runner persists.
type callJournal struct {
	mu    sync.Mutex
	calls map[string]admission.CallRecord
}

func (j *callJournal) Record(s *admission.Step) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range s.Answered {
		c.Payload = append([]byte(nil), c.Payload...)
		j.calls[c.CallID] = c
	}
	for _, id := range s.Released {
		delete(j.calls, id)
	}
}

func (j *callJournal) all() []admission.CallRecord {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []admission.CallRecord
	for _, c := range j.calls {
		out = append(out, c)
	}
	return out
}

func reasonOf(r rcvd) string {
	if h := r.req.GetHeader("Reason"); h != nil {
		return h.Value()
	}
	return ""
}

// The dialog data persisted at answer is enough for a restarted gateway
// to send a BYE to both parties, with a Reason saying why.
func TestRestoredCallTornDownFromRecord(t *testing.T) {
	e := newEnv(t)
	j := &callJournal{calls: map[string]admission.CallRecord{}}
	e.adm.SetJournal(j)
	_, callID := e.answeredCall(t)
	// The engine records the answer right after the 200 reached the caller.
	eventually(t, 2*time.Second, func() bool { return len(j.all()) == 1 }, "the answered call was never recorded")
	recs := j.all()
	if len(recs) != 1 || recs[0].Tenant != "acme" || recs[0].Callee != outboundNumber || len(recs[0].Payload) == 0 {
		t.Fatalf("persisted calls = %+v", recs)
	}
	// A second gateway (the restarted process) tears the call down from
	// the record alone.
	e2 := &env{pbx: e.pbx, carrier: e.carrier}
	e2.start(t, e.cfg)
	if n := e2.gw.TeardownRestored(recs); n != 1 {
		t.Fatalf("TeardownRestored = %d, want 1", n)
	}
	for _, p := range []*peer{e.pbx, e.carrier} {
		bye := p.waitFor(sip.BYE, callID, 5*time.Second)
		if r := reasonOf(bye); !strings.Contains(r, "cause=41") || !strings.Contains(r, "restart") {
			t.Errorf("%s: BYE Reason = %q, want Q.850 41 gateway restarted", p.ip, r)
		}
	}
	if n := e2.gw.TeardownRestored([]admission.CallRecord{{CallID: "x", Payload: []byte("{bad")}}); n != 0 {
		t.Fatalf("bad record torn down: %d", n)
	}
}

// Operators list active calls and hang one up: both legs get a BYE and
// the slot is released.
func TestCallsAndHangup(t *testing.T) {
	e := newEnv(t)
	_, callID := e.answeredCall(t)
	calls := e.gw.Calls("acme")
	if len(calls) != 1 || calls[0].CallID != callID || calls[0].State != "confirmed" ||
		calls[0].Callee != outboundNumber || calls[0].Direction != "outbound" || calls[0].Answered.IsZero() {
		t.Fatalf("Calls = %+v", calls)
	}
	if len(e.gw.Calls("other")) != 0 {
		t.Fatal("Calls(other) not empty")
	}
	if e.gw.Hangup("no-such-call") {
		t.Fatal("Hangup of an unknown call = true")
	}
	if !e.gw.Hangup(calls[0].ID) {
		t.Fatal("Hangup = false")
	}
	if e.gw.Hangup(calls[0].ID) {
		t.Fatal("second Hangup = true")
	}
	if n := e.obs.count(e.obs.teardowns, CauseHangup.Name); n != 1 {
		t.Errorf("teardowns counted for the hang-up = %d, want 1", n)
	}
	if n := e.obs.count(e.obs.admitted, "outbound"); n != 1 {
		t.Errorf("admitted outbound = %d, want 1", n)
	}
	for _, p := range []*peer{e.pbx, e.carrier} {
		if r := reasonOf(p.waitFor(sip.BYE, callID, 5*time.Second)); !strings.Contains(r, "operator") {
			t.Errorf("BYE Reason = %q", r)
		}
	}
	e.idle(t)
}

// New routing applies to the next INVITE: a source removed from the
// tenant is unknown (403) at once.
func TestSetRouting(t *testing.T) {
	e := newEnv(t)
	cfg := *e.cfg
	cfg.Tenants = []configs.Tenant{e.cfg.Tenants[0]}
	cfg.Tenants[0].Sources = []string{"127.0.0.99/32"}
	if err := e.gw.SetRouting(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, code, _ := e.pbx.invite(ctxT(t, 5*time.Second), e.gw, outboundNumber); code != 403 {
		t.Fatalf("INVITE from a removed source got %d, want 403", code)
	}
	if err := e.gw.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}
	e.gw.Drain()
	if e.gw.Ready() == nil {
		t.Fatal("Ready while draining")
	}
}
