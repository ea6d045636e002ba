package sip

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// Hop is a next-hop address with its transport ("UDP" or "TCP").
type Hop struct {
	Addr      string
	Transport string
}

// Route is the outcome of classifying a dialog-creating request: which tenant
// it belongs to, in which direction it travels, and where it goes next.
type Route struct {
	Tenant    string
	Direction admission.Direction
	Next      Hop
}

// ClassifyError is a classification failure with the SIP answer to send.
type ClassifyError struct {
	Code   int
	Reason string
	Cause  string // unknown_source | unknown_did
}

func (e *ClassifyError) Error() string { return "sip: " + e.Cause }

var (
	errUnknownSource = &ClassifyError{Code: 403, Reason: "Forbidden", Cause: "unknown_source"}
	errUnknownDID    = &ClassifyError{Code: 404, Reason: "Not Found", Cause: "unknown_did"}
)

type tenantRoute struct {
	name    string
	carrier Hop
	pbx     Hop
}

// Classifier matches requests to tenants and directions. It is immutable
// after construction and safe for concurrent use.
type Classifier struct {
	sources sourceIndex
	dids    didIndex
	tenants []tenantRoute
}

// NewClassifier builds a classifier from a validated config.
func NewClassifier(cfg *configs.Config) *Classifier {
	c := &Classifier{sources: sourceIndex{owners: map[netip.Prefix]int{}}, dids: didIndex{owners: map[string]int{}}}
	carriers := make(map[string]Hop, len(cfg.Carriers))
	for _, cr := range cfg.Carriers {
		carriers[cr.Name] = hopOf(cr.Hop)
		for _, p := range cr.Prefixes() {
			c.sources.add(p, -1)
		}
	}
	for i, t := range cfg.Tenants {
		c.tenants = append(c.tenants, tenantRoute{name: t.Name, carrier: carriers[t.Carrier], pbx: hopOf(t.PBX)})
		for _, p := range t.Prefixes() {
			c.sources.add(p, i)
		}
		for _, d := range t.DIDs {
			c.dids.add(admission.NormalizeNumber(d), i)
		}
	}
	c.sources.sortLengths()
	c.dids.sortLengths()
	return c
}

// sourceIndex maps source prefixes to their owner (a tenant index, -1 for a
// carrier). A lookup masks the address to each prefix length configured for
// its family, longest first, and probes one map: its cost depends on the
// number of distinct lengths (at most 33 for IPv4, 129 for IPv6, in practice
// a handful), not on the number of prefixes, and it does not allocate.
// Overlapping prefixes are a config error (checkSourceOverlaps), so at most
// one prefix contains an address and the first hit is the owner.
type sourceIndex struct {
	owners map[netip.Prefix]int // masked prefix -> owner
	v4, v6 []int                // the prefix lengths present per family, longest first
}

func (x *sourceIndex) add(p netip.Prefix, owner int) {
	p = p.Masked()
	if _, dup := x.owners[p]; dup {
		return // the config rejects duplicates; keep the first owner
	}
	x.owners[p] = owner
	lens := &x.v6
	if p.Addr().Is4() {
		lens = &x.v4
	}
	if !slices.Contains(*lens, p.Bits()) {
		*lens = append(*lens, p.Bits())
	}
}

func (x *sourceIndex) sortLengths() {
	slices.SortFunc(x.v4, func(a, b int) int { return b - a })
	slices.SortFunc(x.v6, func(a, b int) int { return b - a })
}

func (x *sourceIndex) lookup(src netip.Addr) (int, bool) {
	src = src.Unmap()
	if src.Zone() != "" { // as netip.Prefix.Contains: a zoned address is in no prefix
		return 0, false
	}
	lens := x.v6
	if src.Is4() {
		lens = x.v4
	}
	for _, bits := range lens {
		p, err := src.Prefix(bits)
		if err != nil {
			continue
		}
		if owner, ok := x.owners[p]; ok {
			return owner, true
		}
	}
	return 0, false
}

// didIndex maps normalised DID prefixes to their tenant. A lookup probes
// the number's own prefixes of each configured DID length, longest first:
// the longest DID prefix wins, and the cost depends on the number of
// distinct DID lengths, not on the number of DIDs.
type didIndex struct {
	owners map[string]int
	lens   []int // the DID lengths present, longest first
}

func (x *didIndex) add(prefix string, tenant int) {
	if prefix == "" {
		return
	}
	if _, dup := x.owners[prefix]; dup {
		return // the config rejects duplicates; keep the first owner
	}
	x.owners[prefix] = tenant
	if !slices.Contains(x.lens, len(prefix)) {
		x.lens = append(x.lens, len(prefix))
	}
}

func (x *didIndex) sortLengths() {
	slices.SortFunc(x.lens, func(a, b int) int { return b - a })
}

func (x *didIndex) lookup(num string) (int, bool) {
	for _, n := range x.lens {
		if n > len(num) {
			continue
		}
		if t, ok := x.owners[num[:n]]; ok {
			return t, true
		}
	}
	return 0, false
}

func hopOf(h configs.Hop) Hop {
	return Hop{Addr: h.Address, Transport: strings.ToUpper(h.Transport)}
}

// KnownSource reports whether the address belongs to any configured carrier
// or tenant.
func (c *Classifier) KnownSource(src netip.Addr) bool {
	_, ok := c.owner(src)
	return ok
}

func (c *Classifier) owner(src netip.Addr) (int, bool) {
	return c.sources.lookup(src)
}

// Classify decides tenant, direction and next hop for a request from src
// dialling number: the Request-URI's dialled number, as DialledNumber
// returns it. A raw sip: user part also works (it is normalised here the
// same way, at no cost when it is already normal), but a tel: URI has no
// user part: pass DialledNumber(&req.Recipient).
func (c *Classifier) Classify(src netip.Addr, number string) (Route, *ClassifyError) {
	owner, ok := c.owner(src)
	if !ok {
		return Route{}, errUnknownSource
	}
	if owner >= 0 {
		t := &c.tenants[owner]
		return Route{Tenant: t.name, Direction: admission.Outbound, Next: t.carrier}, nil
	}
	num := admission.NormalizeNumber(number)
	if num == "" {
		return Route{}, errUnknownDID
	}
	if i, ok := c.dids.lookup(num); ok {
		t := &c.tenants[i]
		return Route{Tenant: t.name, Direction: admission.Inbound, Next: t.pbx}, nil
	}
	return Route{}, errUnknownDID
}
