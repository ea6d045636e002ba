package events_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/events/eventstest"
	"github.com/tollgate/tollgate/store"
)

var t0 = time.Date(2026, 1, 31, 23, 0, 0, 0, time.UTC)

func lim(v int64) *int64 { return &v }

// engineEvents drives a real engine through a month end that produces
// every event type: calls answered, ended with media meters, rejected,
// cut by a hard minutes cap (threshold, cap reached, automatic
// suspension), a manual suspension and resumption, a limit change, and
// the rollover that resumes the tenant.
func engineEvents(t *testing.T) []admission.Event {
	t.Helper()
	var evs []admission.Event
	add := func(o admission.Output, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, o.Events...)
	}
	auto := true
	e := admission.NewEngine(admission.Settings{ResumeOnRollover: true})
	add(e.UpsertPlan(t0, admission.Plan{Name: "p",
		Limits: admission.Limits{MaxParallelCalls: lim(2), MaxMonthlyMinutes: lim(4), AutoSuspend: &auto},
		Rates:  []admission.Rate{{Prefix: "49", PerMinute: 12_000, ConnectFee: 500, Initial: 1, Subsequent: 1}}}))
	add(e.UpsertTenant(t0, admission.Tenant{Name: "acme", Plan: "p"}))
	req := func(id string, dir admission.Direction) admission.CallRequest {
		return admission.CallRequest{CallID: id + ";tag-" + id, Tenant: "acme", Direction: dir, Caller: "100", Callee: "4930123"}
	}
	d := e.Admit(t0, req("a", admission.Outbound))
	add(d.Output, nil)
	add(e.Answer(t0.Add(time.Second), "a;tag-a"), nil)
	o, _ := e.EndWith(t0.Add(31*time.Second), "a;tag-a", admission.End{Cause: "bye_caller", HungUp: "caller",
		BilledEnd: t0.Add(30 * time.Second),
		Media: &admission.Media{
			Caller: admission.MediaLeg{Packets: 1450, Bytes: 232000, Lost: 2, JitterMs: 0.4, FirstPacket: t0.Add(time.Second), LastPacket: t0.Add(30 * time.Second)},
			Callee: admission.MediaLeg{Packets: 1449, Bytes: 231840, JitterMs: 0.3, FirstPacket: t0.Add(time.Second), LastPacket: t0.Add(30 * time.Second)},
		}})
	add(o, nil)
	add(e.Admit(t0.Add(time.Minute), req("b", admission.Inbound)).Output, nil)
	add(e.Admit(t0.Add(time.Minute), req("c", admission.Outbound)).Output, nil)
	add(e.Admit(t0.Add(time.Minute), req("d", admission.Outbound)).Output, nil) // parallel cap: rejected
	add(e.Reject(t0.Add(time.Minute), req("x", admission.Inbound), "sdp", 488), nil)
	add(e.Answer(t0.Add(time.Minute), "b;tag-b"), nil)
	// 4 minutes, 29.5 s used: "b" draws the rest and is cut.
	add(e.Tick(t0.Add(10*time.Minute)), nil)
	o, _ = e.EndWith(t0.Add(10*time.Minute), "b;tag-b", admission.End{Cause: "minutes", HungUp: "gateway"})
	add(o, nil)
	o, _ = e.EndWith(t0.Add(10*time.Minute), "c;tag-c", admission.End{Cause: "rejected_403", HungUp: "gateway", Status: 403})
	add(o, nil)
	add(e.Resume(t0.Add(11*time.Minute), "acme", "paid"))
	add(e.Suspend(t0.Add(12*time.Minute), "acme", "fraud check"))
	add(e.SetOverrides(t0.Add(13*time.Minute), "acme", admission.Limits{MaxParallelCalls: lim(10)}))
	add(e.Tick(t0.Add(2*time.Hour)), nil) // February
	return evs
}

func encode(t *testing.T, evs []admission.Event) [][]byte {
	t.Helper()
	var out [][]byte
	for i, ev := range evs {
		m, err := events.Encode("gw-1", store.OutboxEntry{Seq: uint64(i + 1), ID: fmt.Sprintf("0123456789abcdef-%d", i+1), Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		want := "tollgate.events." + ev.Tenant + "." + ev.Type
		if ev.Tenant == "" {
			want = "tollgate.events._system." + ev.Type
		}
		if m.Subject != want || m.ID != fmt.Sprintf("0123456789abcdef-%d", i+1) {
			t.Errorf("message %d: subject %q id %q", i, m.Subject, m.ID)
		}
		out = append(out, m.Data)
	}
	return out
}

// TestEveryEventValidates: every event the engine emitted, of every type
// in the catalogue, validates against the JSON Schema of its type.
func TestEveryEventValidates(t *testing.T) {
	seen := map[string]int{}
	for _, data := range encode(t, engineEvents(t)) {
		if err := eventstest.Validate(data); err != nil {
			t.Errorf("%v\n%s", err, data)
		}
		w, _ := events.Decode(data)
		seen[w.Type]++
	}
	for _, typ := range events.Types {
		if seen[typ] == 0 {
			t.Errorf("no %s event was emitted: its schema is untested", typ)
		}
	}
}

// TestSchemasRejectWrongEvents: the schemas are not vacuous.
func TestSchemasRejectWrongEvents(t *testing.T) {
	for _, bad := range []string{
		`{"schema":1,"id":"0123456789abcdef-1","type":"call.ended","time":"2026-01-01T00:00:00Z","tenant":"acme","node":"n","call_id":"x","direction":"outbound","caller":"1","callee":"2","emergency":false,"cause":"bye_caller"}`, // no billed_seconds
		`{"schema":2,"id":"0123456789abcdef-1","type":"cycle.rollover","time":"2026-01-01T00:00:00Z","tenant":"","node":"n","cycle_start":"2026-01-01T00:00:00Z"}`,                                                                  // wrong schema version
		`{"schema":1,"id":"0123456789abcdef-1","type":"usage.threshold","time":"2026-01-01T00:00:00+01:00","tenant":"acme","node":"n","cap":"max_monthly_minutes","unit":"minutes","limit":4,"value":3.2}`,                          // not UTC
		`{"schema":1,"id":"0123456789abcdef-1","type":"usage.threshold","time":"2026-01-01T00:00:00Z","tenant":"acme","node":"n","cap":"max_monthly_minutes","unit":"minutes","limit":4,"value":3.2,"extra":1}`,                     // unknown field
		`{"schema":1,"id":"x","type":"no.such","time":"2026-01-01T00:00:00Z","tenant":"acme","node":"n"}`,
	} {
		if err := eventstest.Validate([]byte(bad)); err == nil {
			t.Errorf("accepted: %s", bad)
		}
	}
}

// TestUnits: limits and values are in the cap's own unit (minutes for a
// minutes cap, not seconds), call.cut names its cap with real figures,
// and call.ended carries the CDR.
func TestUnits(t *testing.T) {
	byType := map[string][]events.Event{}
	for _, data := range encode(t, engineEvents(t)) {
		w, err := events.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		byType[w.Type] = append(byType[w.Type], w)
	}
	thr := byType["usage.threshold"][0]
	if thr.Cap != "max_monthly_minutes" || thr.Unit != "minutes" || thr.Limit != 4 || thr.Value != 3.2 {
		t.Errorf("usage.threshold: %+v", thr.Usage)
	}
	// The automatic suspension names its cap with real figures, even
	// though the cuts of the tenant's early calls follow it.
	susp := byType["tenant.suspended"][0]
	if susp.Usage == nil || susp.Limit != 4 || susp.Value != 4 {
		t.Errorf("tenant.suspended: %+v", susp.Usage)
	}
	cut := byType["call.cut"][0]
	if cut.Usage == nil || cut.Limit != 4 || cut.Value != 4 || cut.Unit != "minutes" || cut.Call.Cause != "minutes" {
		t.Errorf("call.cut: %+v %+v", cut.Usage, cut.Call)
	}
	var a events.Event
	for _, w := range byType["call.ended"] {
		if w.CallID == "a" && w.FromTag == "tag-a" {
			a = w
		}
	}
	if a.Call == nil || a.BilledDuration() != 29*time.Second || *a.CostMicros != 500+29*200 || *a.RatePrefix != "49" ||
		a.HungUp != "caller" || a.Media == nil || a.Media.Caller.Packets != 1450 || a.BilledUntil == nil {
		t.Errorf("call.ended of a: %+v", a.Call)
	}
	rej := byType["call.rejected"]
	if len(rej) != 2 || rej[0].Call.Cause != "parallel_calls" || rej[0].Usage == nil || rej[0].Limit != 2 || rej[1].Call.Cause != "sdp" || rej[1].Status != 488 {
		t.Errorf("call.rejected: %+v / %+v", rej[0].Call, rej[1].Call)
	}
	if l := byType["limits.changed"]; len(l) != 1 || l[0].Limits.MaxParallelCalls != 10 || l[0].Limits.MaxMonthlyMinutes != 4 || l[0].Limits.MaxCallsPerSecond != -1 {
		t.Errorf("limits.changed: %+v", l)
	}
	if r := byType["cycle.rollover"]; len(r) != 1 || r[0].Tenant != "" || !r[0].CycleStart.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("cycle.rollover: %+v", r)
	}
	data, _ := json.Marshal(thr)
	if strings.Contains(string(data), "null") {
		t.Errorf("nulls on the wire: %s", data)
	}
}

// TestPrintExamples prints one event of each type (go test -run
// Examples -v ./events): the examples of docs/EVENTS.md.
func TestPrintExamples(t *testing.T) {
	seen := map[string]bool{}
	for _, data := range encode(t, engineEvents(t)) {
		w, _ := events.Decode(data)
		if seen[w.Type] {
			continue
		}
		seen[w.Type] = true
		var pretty bytes.Buffer
		json.Indent(&pretty, data, "", "  ")
		t.Logf("%s\n%s", w.Type, pretty.Bytes())
	}
}

// The published form the store keeps (Wire) is what Encode makes from the
// whole event, and Encode sends it as stored.
func TestWireIsEncode(t *testing.T) {
	for i, ev := range engineEvents(t) {
		e := store.OutboxEntry{Seq: uint64(i + 1), ID: fmt.Sprintf("0123456789abcdef-%d", i+1), Event: ev}
		full, err := events.Encode("gw-1", e)
		if err != nil {
			t.Fatal(err)
		}
		data, err := events.Wire("gw-1")(e.ID, ev)
		if err != nil || !bytes.Equal(data, full.Data) {
			t.Fatalf("Wire %s, Encode %s (%v)", data, full.Data, err)
		}
		stored := store.OutboxEntry{Seq: e.Seq, ID: e.ID, Event: admission.Event{Type: ev.Type, Tenant: ev.Tenant, At: ev.At}, Data: data}
		m, err := events.Encode("gw-1", stored)
		if err != nil || m.Subject != full.Subject || m.ID != full.ID || !bytes.Equal(m.Data, full.Data) {
			t.Fatalf("stored form sent as %+v, want %+v (%v)", m, full, err)
		}
	}
}

// In a cluster, the events every node derives from the shared usage go
// out under their fact: two nodes' copies of one fact share a
// Nats-Msg-Id, whether the store kept the event whole or in its
// published form; every other event keeps its own id.
func TestClusterEncodeFacts(t *testing.T) {
	facts := 0
	for i, ev := range engineEvents(t) {
		var ids [2]string
		for n, node := range []string{"gw-1", "gw-2"} {
			id := fmt.Sprintf("%016x-%d", n+1, i+1)
			e := store.OutboxEntry{Seq: uint64(i + 1), ID: id, Event: ev}
			if n == 1 { // the stored form
				data, err := events.Wire(node)(id, ev)
				if err != nil {
					t.Fatal(err)
				}
				e.Event, e.Data = admission.Event{Type: ev.Type, Tenant: ev.Tenant, At: ev.At}, data
			}
			m, err := events.ClusterEncode(node)(e)
			if err != nil {
				t.Fatal(err)
			}
			ids[n] = m.ID
			if w, _ := events.Decode(m.Data); w.Fact != events.FactID(ev) {
				t.Errorf("%s: fact %q, want %q", ev.Type, w.Fact, events.FactID(ev))
			}
		}
		if ev.Shared {
			facts++
			if ids[0] != ids[1] || ids[0] != events.FactID(ev) || ids[0] == "" {
				t.Errorf("%s: Nats-Msg-Ids %q, want both %q", ev.Type, ids, events.FactID(ev))
			}
		} else if ids[0] == ids[1] {
			t.Errorf("%s (not shared): both nodes publish it as %q", ev.Type, ids[0])
		}
	}
	// threshold, cap_reached and the automatic suspension of the minutes
	// cap, and cycle.rollover (the manual suspension is not lifted then)
	if facts != 4 {
		t.Errorf("%d shared events, want 4", facts)
	}
}
