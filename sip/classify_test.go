package sip

import (
	"net/netip"
	"testing"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

func classifierConfig() *configs.Config {
	cfg := &configs.Config{
		Carriers: []configs.Carrier{
			{Name: "c1", Hop: configs.Hop{Address: "127.0.0.2:5060", Transport: "udp"}, Sources: []string{"127.0.0.2/32", "10.1.0.0/16"}},
			{Name: "c2", Hop: configs.Hop{Address: "127.0.0.3:5060", Transport: "tcp"}},
		},
		Tenants: []configs.Tenant{
			{Name: "acme", Carrier: "c1", Sources: []string{"127.0.0.10/32"}, DIDs: []string{"+1555", "1555"}, PBX: configs.Hop{Address: "127.0.0.10:5070", Transport: "udp"}},
			{Name: "globex", Carrier: "c2", Sources: []string{"10.1.2.0/24"}, DIDs: []string{"+15550"}, PBX: configs.Hop{Address: "10.1.2.5:5060", Transport: "tcp"}},
		},
	}
	cfg.ApplyDefaults()
	return cfg
}

func TestClassify(t *testing.T) {
	c := NewClassifier(classifierConfig())
	cases := []struct {
		name   string
		src    string
		user   string
		tenant string
		dir    admission.Direction
		next   Hop
		code   int
	}{
		{"tenant source is outbound to its carrier", "127.0.0.10", "4930123", "acme", admission.Outbound, Hop{"127.0.0.2:5060", "UDP"}, 0},
		{"more specific tenant prefix wins over carrier /16", "10.1.2.7", "4930123", "globex", admission.Outbound, Hop{"127.0.0.3:5060", "TCP"}, 0},
		{"carrier source, DID prefix: inbound to PBX", "127.0.0.2", "+15551234", "acme", admission.Inbound, Hop{"127.0.0.10:5070", "UDP"}, 0},
		{"longest DID prefix wins", "10.1.9.9", "+155501", "globex", admission.Inbound, Hop{"10.1.2.5:5060", "TCP"}, 0},
		{"DID without plus", "127.0.0.2", "15559", "acme", admission.Inbound, Hop{"127.0.0.10:5070", "UDP"}, 0},
		{"visual separators ignored", "127.0.0.2", "+1-555-123", "acme", admission.Inbound, Hop{"127.0.0.10:5070", "UDP"}, 0},
		{"user parameters ignored", "127.0.0.2", "+1555123;npdi", "acme", admission.Inbound, Hop{"127.0.0.10:5070", "UDP"}, 0},
		{"carrier by default source (its address)", "127.0.0.3", "+1555", "acme", admission.Inbound, Hop{"127.0.0.10:5070", "UDP"}, 0},
		{"unknown DID", "127.0.0.2", "+4930", "", 0, Hop{}, 404},
		{"empty DID", "127.0.0.2", "", "", 0, Hop{}, 404},
		{"unknown source", "127.0.0.99", "+1555", "", 0, Hop{}, 403},
		{"IPv4-mapped IPv6 source", "::ffff:127.0.0.10", "1", "acme", admission.Outbound, Hop{"127.0.0.2:5060", "UDP"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.Classify(netip.MustParseAddr(tc.src), tc.user)
			if tc.code != 0 {
				if err == nil || err.Code != tc.code {
					t.Fatalf("got %+v, %v; want code %d", r, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected %v", err)
			}
			if r.Tenant != tc.tenant || r.Direction != tc.dir || r.Next != tc.next {
				t.Fatalf("got %+v, want %s %s %+v", r, tc.tenant, tc.dir, tc.next)
			}
		})
	}
	if !c.KnownSource(netip.MustParseAddr("10.1.200.1")) || c.KnownSource(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("KnownSource wrong")
	}
}

func FuzzClassify(f *testing.F) {
	c := NewClassifier(classifierConfig())
	f.Add([]byte{127, 0, 0, 2}, "+15551234")
	f.Add([]byte{127, 0, 0, 10}, "")
	f.Add([]byte{10, 1, 2, 3}, "+1 (555) 0-1;x=y")
	f.Fuzz(func(t *testing.T, ip []byte, user string) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		r, err := c.Classify(a, user)
		if err != nil {
			if err.Code != 403 && err.Code != 404 {
				t.Fatalf("code %d", err.Code)
			}
			return
		}
		if r.Tenant == "" || r.Next.Addr == "" || (r.Direction != admission.Outbound && r.Direction != admission.Inbound) {
			t.Fatalf("incomplete route %+v", r)
		}
	})
}
