package sip

import (
	"net/netip"
	"sort"
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

type prefixOwner struct {
	prefix netip.Prefix
	tenant int // index into tenants, -1 when the prefix belongs to a carrier
}

type didOwner struct {
	prefix string
	tenant int
}

type tenantRoute struct {
	name    string
	carrier Hop
	pbx     Hop
}

// Classifier matches requests to tenants and directions. It is immutable
// after construction and safe for concurrent use.
type Classifier struct {
	sources []prefixOwner // longest prefix first
	dids    []didOwner    // longest prefix first
	tenants []tenantRoute
}

// NewClassifier builds a classifier from a validated config.
func NewClassifier(cfg *configs.Config) *Classifier {
	c := &Classifier{}
	carriers := make(map[string]Hop, len(cfg.Carriers))
	for _, cr := range cfg.Carriers {
		carriers[cr.Name] = hopOf(cr.Hop)
		for _, p := range cr.Prefixes() {
			c.sources = append(c.sources, prefixOwner{prefix: p, tenant: -1})
		}
	}
	for i, t := range cfg.Tenants {
		c.tenants = append(c.tenants, tenantRoute{name: t.Name, carrier: carriers[t.Carrier], pbx: hopOf(t.PBX)})
		for _, p := range t.Prefixes() {
			c.sources = append(c.sources, prefixOwner{prefix: p, tenant: i})
		}
		for _, d := range t.DIDs {
			c.dids = append(c.dids, didOwner{prefix: normalizeNumber(d), tenant: i})
		}
	}
	sort.SliceStable(c.sources, func(i, j int) bool { return c.sources[i].prefix.Bits() > c.sources[j].prefix.Bits() })
	sort.SliceStable(c.dids, func(i, j int) bool { return len(c.dids[i].prefix) > len(c.dids[j].prefix) })
	return c
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
	src = src.Unmap()
	for _, o := range c.sources {
		if o.prefix.Contains(src) {
			return o.tenant, true
		}
	}
	return 0, false
}

// Classify decides tenant, direction and next hop for a request from src
// whose Request-URI user part is ruriUser.
func (c *Classifier) Classify(src netip.Addr, ruriUser string) (Route, *ClassifyError) {
	owner, ok := c.owner(src)
	if !ok {
		return Route{}, errUnknownSource
	}
	if owner >= 0 {
		t := &c.tenants[owner]
		return Route{Tenant: t.name, Direction: admission.Outbound, Next: t.carrier}, nil
	}
	num := normalizeNumber(ruriUser)
	if num == "" {
		return Route{}, errUnknownDID
	}
	for _, d := range c.dids {
		if strings.HasPrefix(num, d.prefix) {
			t := &c.tenants[d.tenant]
			return Route{Tenant: t.name, Direction: admission.Inbound, Next: t.pbx}, nil
		}
	}
	return Route{}, errUnknownDID
}

// normalizeNumber strips visual separators so "+1 (555) 010-0000" matches
// "+1555". A leading "+" is kept: "+1555" and "1555" are different prefixes.
func normalizeNumber(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 { // user parameters (RFC 3966)
		s = s[:i]
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if b := s[i]; b == ' ' || b == '-' || b == '.' || b == '(' || b == ')' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '-', '.', '(', ')':
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
