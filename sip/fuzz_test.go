package sip

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/configs"
)

// fuzzConfig is a carrier and a tenant on loopback, enough for the
// classifier and the party stage.
func fuzzConfig() *configs.Config {
	unlimited := int64(-1)
	return &configs.Config{
		Carriers: []configs.Carrier{{Name: "carrier", Hop: configs.Hop{Address: carrierIP + ":5060", Transport: "udp"}, Sources: []string{carrierIP + "/32"}}},
		Plans:    []configs.Plan{{Name: "plan", Limits: configs.Limits{MaxParallelCalls: &unlimited}}},
		Tenants: []configs.Tenant{{Name: "acme", Plan: "plan", Carrier: "carrier", Sources: []string{tenantIP + "/32"},
			DIDs: []string{"+1555"}, PBX: configs.Hop{Address: tenantIP + ":5060", Transport: "udp"}}},
	}
}

// FuzzClassifyURI: any Request-URI from any source gets a route or a typed
// rejection; an unknown source is never routed.
func FuzzClassifyURI(f *testing.F) {
	for _, s := range []string{"sip:+15551234@127.0.0.1", "tel:+1-555-1234;phone-context=+1", "sip:911;phone-context=+1@x;user=phone", "sips:%00@[::1]:5061", "sip:1-900-555-0100@h"} {
		f.Add(s, "127.0.0.10")
		f.Add(s, "127.0.0.2")
		f.Add(s, "127.0.1.50")
	}
	c := NewClassifier(fuzzConfig())
	f.Fuzz(func(t *testing.T, uri, src string) {
		var u sip.Uri
		if sip.ParseUri(uri, &u) != nil {
			return
		}
		ip, err := netip.ParseAddr(src)
		if err != nil {
			return
		}
		route, cerr := c.Classify(ip, DialledNumber(&u))
		if cerr == nil && !c.KnownSource(ip) {
			t.Fatalf("unknown source %s routed to %+v", ip, route)
		}
		if cerr != nil && (cerr.Code < 400 || cerr.Code > 699) {
			t.Fatalf("rejection with code %d", cerr.Code)
		}
	})
}

// FuzzInDialogTarget: whatever a party puts in its Contact, Record-Route,
// Request-URI or Route, the gateway sends in-dialog requests only to a
// configured party or to the address the party's messages came from.
func FuzzInDialogTarget(f *testing.F) {
	f.Add("sip:x@127.0.0.2:5060", "sip:127.0.1.50;lr", "sip:x@127.0.1.50:5070")
	f.Add("sip:x@127.0.1.50", "", "sip:x@127.0.0.10")
	f.Add("sip:x@[::1]:1", "sip:host.example.com;lr", "sips:a@b")
	g := &Gateway{}
	g.classifier.Store(NewClassifier(fuzzConfig()))
	f.Fuzz(func(t *testing.T, contact, route, asked string) {
		leg := Leg{Source: carrierIP + ":5060", Transport: "UDP"}
		if sip.ParseUri(contact, &leg.Contact) != nil {
			return
		}
		if route != "" {
			var r sip.Uri
			if sip.ParseUri(route, &r) != nil {
				return
			}
			leg.RouteSet = []sip.Uri{r}
		}
		dest := g.partyAddr(&leg)
		ap, err := netip.ParseAddrPort(dest)
		if err != nil {
			t.Fatalf("destination %q is not an address", dest)
		}
		if dest != leg.Source && !g.classifier.Load().KnownSource(ap.Addr()) {
			t.Fatalf("in-dialog destination %s is not a party", dest)
		}
		var a sip.Uri
		if sip.ParseUri(asked, &a) == nil {
			g.targetsParty(&a, &leg) // must not panic
		}
	})
}
