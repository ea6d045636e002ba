package sip

import (
	"errors"
	"fmt"
	"sort"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/callrec"
)

// The operator side of the gateway: what the control service asks of it
// (list and hang up calls, new routing, engine effects, readiness) and
// the dialog data persisted with every answered call so a restarted
// gateway can tear the call down.

// Causes of operator and restart teardowns.
var (
	CauseHangup  = Cause{Name: "operator_hangup", Q850: 16, Text: "call cleared by operator", SIPCode: 480, SIPReason: "Temporarily Unavailable"}
	CauseRestart = Cause{Name: "gateway_restart", Q850: 41, Text: "gateway restarted", SIPCode: 503, SIPReason: "Service Unavailable"}
)

// SetRouting rebuilds tenant classification from cfg (carriers and
// tenants changed through the API); calls in progress keep their route.
func (g *Gateway) SetRouting(cfg *configs.Config) error {
	g.classifier.Store(NewClassifier(cfg))
	return g.setTLSRouting(cfg) // TLS next hops: server names and CAs
}

// Effects carries out engine effects produced outside the SIP path
// (operator changes): events, cuts, and the deadline timer re-armed.
func (g *Gateway) Effects(r admission.Ready) { g.apply(r) }

// Ready is nil while the gateway listens and takes new calls.
func (g *Gateway) Ready() error {
	switch {
	case g.closed.Load():
		return errors.New("sip: closed")
	case g.draining.Load():
		return errors.New("sip: draining")
	case len(g.listeners) == 0:
		return errors.New("sip: not listening")
	}
	return nil
}

// Calls lists the active calls of a tenant ("" = all), oldest first.
func (g *Gateway) Calls(tenant string) []callrec.Call {
	now := g.now()
	var out []callrec.Call
	for _, d := range g.dialogs.All() {
		if tenant != "" && d.Tenant != tenant {
			continue
		}
		v := callrec.Call{
			ID: d.Key, CallID: d.CallID, Tenant: d.Tenant, Direction: d.Direction.String(),
			Caller: d.Caller, Callee: d.Callee, State: d.State().String(), Started: d.Created.UTC(),
		}
		if a := d.Answered(); !a.IsZero() {
			v.Answered, v.Billed = a.UTC(), now.Sub(a)
		}
		if caller, callee, ok := d.MediaStats(); ok {
			v.Media = &callrec.Media{Caller: caller, Callee: callee}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Hangup tears down the call with admission id (Call-ID;from-tag) or SIP
// Call-ID id. It is false when no such call is active.
func (g *Gateway) Hangup(id string) bool {
	d := g.dialogs.Get(id)
	if d == nil {
		d = g.Dialog(id)
	}
	return d != nil && g.Teardown(d, CauseHangup)
}

func (r legRecord) leg() (Leg, error) {
	l := Leg{Tag: r.Tag, Source: r.Source, Transport: r.Transport, CSeq: r.CSeq}
	if r.Contact != "" {
		if err := sip.ParseUri(r.Contact, &l.Contact); err != nil {
			return l, fmt.Errorf("contact %q: %w", r.Contact, err)
		}
	}
	for _, s := range r.RouteSet {
		var u sip.Uri
		if err := sip.ParseUri(s, &u); err != nil {
			return l, fmt.Errorf("route %q: %w", s, err)
		}
		l.RouteSet = append(l.RouteSet, u)
	}
	return l, nil
}

// restoreDialog rebuilds a confirmed dialog from its record.
func restoreDialog(rec admission.CallRecord) (*Dialog, error) {
	r, err := decodeRecord(rec.Payload)
	if err != nil {
		return nil, err
	}
	d := &Dialog{
		Key: rec.CallID, CallID: r.CallID, Tenant: rec.Tenant, Direction: rec.Direction,
		Caller: rec.Caller, Callee: rec.Callee, state: Confirmed, answered: rec.AnsweredAt,
		from: &sip.FromHeader{Params: sip.NewParams()}, to: &sip.ToHeader{Params: sip.NewParams()},
	}
	if d.from.DisplayName, err = sip.ParseAddressValue(r.From, &d.from.Address, &d.from.Params); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if d.to.DisplayName, err = sip.ParseAddressValue(r.To, &d.to.Address, &d.to.Params); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	if d.caller, err = r.Caller.leg(); err != nil {
		return nil, fmt.Errorf("caller: %w", err)
	}
	if d.callee, err = r.Callee.leg(); err != nil {
		return nil, fmt.Errorf("callee: %w", err)
	}
	return d, nil
}

// TeardownRestored sends a BYE to both legs of every call that was active
// when the gateway last stopped without a clean shutdown (already billed
// up to the last checkpoint and released by the engine). It returns how
// many calls it tore down; undecodable records are logged and skipped.
func (g *Gateway) TeardownRestored(calls []admission.CallRecord) int {
	n := 0
	for _, rec := range calls {
		d, err := restoreDialog(rec)
		if err != nil {
			g.log.Warn().Err(err).Str("call_key", rec.CallID).Msg("restored call: bad dialog record, not torn down")
			continue
		}
		g.bye(d, d.caller, true, CauseRestart)
		g.bye(d, d.callee, false, CauseRestart)
		if g.metrics != nil {
			g.metrics.Teardown(CauseRestart.Name)
		}
		g.log.Info().Str("call_id", d.CallID).Str("tenant", d.Tenant).Time("answered", rec.AnsweredAt).
			Msg("call active at restart torn down")
		n++
	}
	return n
}
