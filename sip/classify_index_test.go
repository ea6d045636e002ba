package sip

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
)

// manyTenantsConfig is a config with n tenants, each with a /32 and a /24
// source and one DID, behind one carrier.
func manyTenantsConfig(n int) *configs.Config {
	cfg := &configs.Config{Carriers: []configs.Carrier{{
		Name: "carrier", Hop: configs.Hop{Address: "192.0.2.1:5060", Transport: "udp"}, Sources: []string{"192.0.2.1/32", "2001:db8:c::/48"},
	}}}
	for i := 0; i < n; i++ {
		cfg.Tenants = append(cfg.Tenants, configs.Tenant{
			Name: fmt.Sprintf("t%d", i), Carrier: "carrier",
			Sources: []string{tenantHost(i), fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff)},
			DIDs:    []string{tenantDID(i)},
			PBX:     configs.Hop{Address: "192.0.2.9:5060", Transport: "udp"},
		})
	}
	cfg.ApplyDefaults()
	return cfg
}

func tenantHost(i int) string { return fmt.Sprintf("172.16.%d.%d/32", i>>8, i&0xff) }
func tenantDID(i int) string  { return fmt.Sprintf("+4930%05d", i) }

func TestClassifyManyTenants(t *testing.T) {
	const n = 3000
	cfg := manyTenantsConfig(n)
	c := NewClassifier(cfg)
	for _, i := range []int{0, 1, 255, 256, 1234, n - 1} {
		want := fmt.Sprintf("t%d", i)
		host := netip.MustParsePrefix(tenantHost(i)).Addr()
		inNet := netip.MustParseAddr(fmt.Sprintf("10.%d.%d.77", i>>8, i&0xff))
		for _, src := range []netip.Addr{host, inNet, netip.AddrFrom16(host.As16())} {
			if r, err := c.Classify(src, "4930123"); err != nil || r.Tenant != want || r.Direction != admission.Outbound {
				t.Errorf("%s: %+v %v, want outbound of %s", src, r, err, want)
			}
		}
		num := strings.ReplaceAll(tenantDID(i), "0", "0-") + "12;npdi"
		for _, src := range []string{"192.0.2.1", "2001:db8:c:1::5"} {
			if r, err := c.Classify(netip.MustParseAddr(src), num); err != nil || r.Tenant != want || r.Direction != admission.Inbound {
				t.Errorf("%s dialling %s: %+v %v, want inbound of %s", src, num, r, err, want)
			}
		}
	}
	for _, src := range []string{"172.31.255.255", "10.200.0.1", "192.0.2.2", "2001:db8:d::1", "fe80::1%eth0"} {
		if c.KnownSource(netip.MustParseAddr(src)) {
			t.Errorf("%s: known, want unknown", src)
		}
	}
	if _, err := c.Classify(netip.MustParseAddr("192.0.2.1"), "+4931"); err == nil || err.Code != 404 {
		t.Errorf("unknown DID: %v, want 404", err)
	}
}

// The index answers as the linear longest-prefix scan it replaced, also
// for overlapping prefixes (which Validate rejects, but NewClassifier does
// not rely on) and for DIDs that are prefixes of each other.
func TestClassifyIndexMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randPrefix := func() netip.Prefix {
		if rng.IntN(4) == 0 {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(rng.IntN(4))
			return netip.PrefixFrom(netip.AddrFrom16(b), 16+rng.IntN(113)).Masked()
		}
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(4)), byte(rng.IntN(256))})
		return netip.PrefixFrom(a, 8+rng.IntN(25)).Masked()
	}
	for round := 0; round < 50; round++ {
		cfg := &configs.Config{Carriers: []configs.Carrier{{Name: "c", Hop: configs.Hop{Address: "192.0.2.1:5060", Transport: "udp"}}}}
		type owned struct {
			p     netip.Prefix
			owner int
		}
		var all []owned
		seen := map[netip.Prefix]bool{}
		dids := map[string]int{}
		for i := 0; i < 20; i++ {
			tn := configs.Tenant{Name: fmt.Sprint(i), Carrier: "c"}
			for k := 0; k < 3; k++ {
				p := randPrefix()
				if !seen[p] {
					seen[p] = true
					tn.Sources = append(tn.Sources, p.String())
					all = append(all, owned{p, i})
				}
				d := fmt.Sprintf("+%d", rng.IntN(1000))
				if _, dup := dids[d]; !dup {
					dids[d] = i
					tn.DIDs = append(tn.DIDs, d)
				}
			}
			cfg.Tenants = append(cfg.Tenants, tn)
		}
		cfg.Carriers[0].Sources = []string{"192.0.2.0/24"}
		all = append(all, owned{netip.MustParsePrefix("192.0.2.0/24"), -1})
		cfg.ApplyDefaults()
		c := NewClassifier(cfg)
		sort.SliceStable(all, func(i, j int) bool { return all[i].p.Bits() > all[j].p.Bits() })
		linear := func(a netip.Addr) (int, bool) {
			for _, o := range all {
				if o.p.Contains(a.Unmap()) {
					return o.owner, true
				}
			}
			return 0, false
		}
		for q := 0; q < 500; q++ {
			a := randPrefix().Addr()
			if a.Is4() {
				b := a.As4()
				b[3] = byte(rng.IntN(256))
				a = netip.AddrFrom4(b)
			} else {
				b := a.As16()
				b[15] = byte(rng.IntN(256))
				a = netip.AddrFrom16(b)
			}
			gotO, gotOK := c.owner(a)
			wantO, wantOK := linear(a)
			if gotO != wantO || gotOK != wantOK {
				t.Fatalf("round %d: owner(%s) = %d %v, linear scan %d %v", round, a, gotO, gotOK, wantO, wantOK)
			}
		}
		for q := 0; q < 200; q++ {
			num := fmt.Sprintf("+%d", rng.IntN(100000))
			want, best := -1, 0
			for d, i := range dids {
				if strings.HasPrefix(num, d) && len(d) > best {
					want, best = i, len(d)
				}
			}
			got, ok := c.dids.lookup(num)
			if !ok {
				got = -1
			}
			if got != want {
				t.Fatalf("round %d: DID lookup %s = %d, longest prefix %d", round, num, got, want)
			}
		}
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	c := NewClassifier(manyTenantsConfig(100))
	host := netip.MustParseAddr("172.16.0.42")
	carrier := netip.MustParseAddr("192.0.2.1")
	stranger := netip.MustParseAddr("198.51.100.1")
	did := tenantDID(42) + "77"
	if n := testing.AllocsPerRun(200, func() {
		c.Classify(host, "4930123")
		c.Classify(carrier, did)
		c.KnownSource(stranger)
	}); n != 0 {
		t.Fatalf("%v allocs per classification, want 0", n)
	}
}

// BenchmarkClassify: the cost of classifying a request does not grow with
// the number of tenants (each has a /32 and a /24 source and one DID).
func BenchmarkClassify(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		c := NewClassifier(manyTenantsConfig(n))
		last := n - 1 // the last tenant: the end of any linear scan
		host := netip.MustParsePrefix(tenantHost(last)).Addr()
		inNet := netip.MustParseAddr(fmt.Sprintf("10.%d.%d.77", last>>8, last&0xff))
		carrier := netip.MustParseAddr("192.0.2.1")
		stranger := netip.MustParseAddr("198.51.100.1")
		did := tenantDID(last) + "77"
		cases := []struct {
			name string
			run  func()
		}{
			{"outbound-host", func() { c.Classify(host, "4930123") }},
			{"outbound-net", func() { c.Classify(inNet, "4930123") }},
			{"inbound-did", func() { c.Classify(carrier, did) }},
			{"in-dialog-unknown", func() { c.KnownSource(stranger) }},
		}
		for _, tc := range cases {
			b.Run(fmt.Sprintf("tenants=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tc.run()
				}
			})
		}
	}
}
