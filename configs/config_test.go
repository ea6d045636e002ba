package configs

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestExamplesLoad loads every YAML file shipped in configs/, so a new
// example is covered as soon as it is added.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("*.yml")
	files = append(files, more...)
	if len(files) < 2 {
		t.Fatalf("expected at least tollgate.yaml and example-multi-tenant.yaml, found %v", files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate after Load: %v", err)
			}
			// ApplyDefaults is idempotent.
			again := *cfg
			again.ApplyDefaults()
			if !reflect.DeepEqual(&again, cfg) {
				t.Fatalf("ApplyDefaults not idempotent:\n%+v\n%+v", again, *cfg)
			}
		})
	}
}

// TestDemoConfig pins the demo config `make run` depends on.
func TestDemoConfig(t *testing.T) {
	cfg, err := Load("tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "console" {
		t.Errorf("log = %+v", cfg.Log)
	}
	wantListen := []Listen{{"udp", "127.0.0.1:5060"}, {"tcp", "127.0.0.1:5060"}}
	if !reflect.DeepEqual(cfg.SIP.Listen, wantListen) {
		t.Errorf("listen = %+v", cfg.SIP.Listen)
	}
	if cfg.SIP.Advertise != "127.0.0.1" {
		t.Errorf("advertise = %q", cfg.SIP.Advertise)
	}
	if len(cfg.Carriers) != 1 || cfg.Carriers[0].Name != "carrier" ||
		cfg.Carriers[0].Hop != (Hop{Address: "127.0.0.2:5060", Transport: "udp"}) {
		t.Errorf("carriers = %+v", cfg.Carriers)
	}
	if got := cfg.Carriers[0].Prefixes(); !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}) {
		t.Errorf("carrier prefixes = %v", got)
	}
	if len(cfg.Plans) != 1 || cfg.Plans[0].Name != "standard" || *cfg.Plans[0].Limits.MaxParallelCalls != 10 {
		t.Errorf("plans = %+v", cfg.Plans)
	}
	if len(cfg.Tenants) != 1 {
		t.Fatalf("tenants = %+v", cfg.Tenants)
	}
	tn := cfg.Tenants[0]
	if tn.Name != "demo" || tn.Plan != "standard" || tn.Carrier != "carrier" ||
		!reflect.DeepEqual(tn.DIDs, []string{"+1555", "1555"}) ||
		tn.PBX != (Hop{Address: "127.0.0.10:5070", Transport: "udp"}) ||
		tn.Limits.MaxParallelCalls != nil {
		t.Errorf("tenant = %+v", tn)
	}
	if got := tn.Prefixes(); !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("127.0.0.10/32")}) {
		t.Errorf("tenant prefixes = %v", got)
	}
	if r := cfg.Admission.Reject[CauseParallelCalls]; r != (Reject{486, "Busy Here"}) {
		t.Errorf("reject = %+v", r)
	}
}

func TestMultiTenantExample(t *testing.T) {
	cfg, err := Load("example-multi-tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Admission.Reject[CauseParallelCalls]; r != (Reject{503, "Service Unavailable"}) {
		t.Errorf("reject = %+v", r)
	}
	limits := map[string]*int64{}
	for _, tn := range cfg.Tenants {
		limits[tn.Name] = tn.Limits.MaxParallelCalls
	}
	if v := limits["bakery"]; v == nil || *v != 5 {
		t.Errorf("bakery override = %v", v)
	}
	if v := limits["callcenter"]; v == nil || *v != -1 {
		t.Errorf("callcenter override = %v", v)
	}
	if v, ok := limits["dentist"]; !ok || v != nil {
		t.Errorf("dentist override = %v, want nil (inherit)", v)
	}
	if cfg.Carriers[1].Transport != "tcp" {
		t.Errorf("carrier[1] transport = %q, want tcp", cfg.Carriers[1].Transport)
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32"), netip.MustParsePrefix("198.51.100.11/32")}
	if got := cfg.Carriers[0].Prefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("carrier[0] prefixes = %v, want %v", got, want)
	}
}

// base is a minimal valid config; bad configs are made from it.
const base = `
sip:
  listen:
    - transport: udp
      address: 127.0.0.1:5060
carriers:
  - name: c1
    address: 192.0.2.1:5060
plans:
  - name: p1
    limits:
      max_parallel_calls: 10
tenants:
  - name: t1
    plan: p1
    carrier: c1
    sources: [10.0.0.0/24]
    dids: ["+1555"]
    pbx:
      address: 10.0.0.5:5060
`

// edit returns base with each old string replaced by the new one; it fails
// the test if an old string is missing.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("base has no %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

const secondTenant = `
  - name: t2
    plan: p1
    carrier: c1
    sources: [10.1.0.0/24]
    dids: ["+1666"]
    pbx:
      address: 10.1.0.5:5060
`

func TestBaseIsValid(t *testing.T) {
	if _, err := Parse("base.yaml", []byte(base)); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("base.yaml", []byte(base+secondTenant)); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown field", edit(t, "sip:\n", "sip:\n  timerc: 3s\n"),
			[]string{"bad.yaml: ", "sip.timerc: unknown field \"timerc\"", "timer_c", "(line 3)"}},
		{"unknown top-level field", "tenant: []\n" + base,
			[]string{"tenant: unknown field \"tenant\"", "tenants"}},
		{"unknown field in flow mapping", edit(t, "    pbx:\n      address: 10.0.0.5:5060", "    pbx: {address: \"10.0.0.5:5060\", proto: udp}"),
			[]string{"tenants[0].pbx.proto: unknown field \"proto\""}},
		{"unknown field in inline hop", edit(t, "    address: 192.0.2.1:5060", "    address: 192.0.2.1:5060\n    port: 5060"),
			[]string{"carriers[0].port: unknown field", "address, transport"}},
		{"duplicate key", edit(t, "  - name: p1\n", "  - name: p1\n    name: p2\n"),
			[]string{"plans[0].name: duplicate key \"name\""}},
		{"bad transport", edit(t, "transport: udp", "transport: sctp"),
			[]string{`sip.listen[0].transport: must be udp or tcp, got "sctp"`}},
		{"bad hop transport", edit(t, "    address: 192.0.2.1:5060", "    address: 192.0.2.1:5060\n    transport: tls"),
			[]string{`carriers[0].transport: must be udp or tcp, got "tls"`}},
		{"tcp next hop without tcp listener", edit(t, "    address: 192.0.2.1:5060", "    address: 192.0.2.1:5060\n    transport: tcp"),
			[]string{`carriers[0].transport: is tcp, but sip.listen has no tcp listener`}},
		{"bad CIDR", edit(t, "sources: [10.0.0.0/24]", "sources: [10.0.0.0/24, 10.0.0.0/33]"),
			[]string{`bad.yaml: tenants[0].sources[1]: invalid CIDR "10.0.0.0/33"`}},
		{"CIDR with host bits", edit(t, "sources: [10.0.0.0/24]", "sources: [10.0.0.1/24]"),
			[]string{`tenants[0].sources[0]: invalid CIDR "10.0.0.1/24": host bits set (did you mean 10.0.0.0/24?)`}},
		{"bad carrier source", edit(t, "    address: 192.0.2.1:5060", "    address: 192.0.2.1:5060\n    sources: [not-an-ip]"),
			[]string{`carriers[0].sources[0]: invalid CIDR "not-an-ip"`}},
		{"tenant overlaps carrier", edit(t, "sources: [10.0.0.0/24]", "sources: [192.0.2.0/24]"),
			[]string{"tenants[0].sources[0]: 192.0.2.0/24 overlaps carriers[0].sources[0] (192.0.2.1/32 of carrier \"c1\")"}},
		{"tenants overlap", base + strings.Replace(secondTenant, "10.1.0.0/24", "10.0.0.128/25", 1),
			[]string{"tenants[1].sources[0]: 10.0.0.128/25 overlaps tenants[0].sources[0] (10.0.0.0/24 of tenant \"t1\")"}},
		{"overlap within a tenant", edit(t, "sources: [10.0.0.0/24]", "sources: [10.0.0.0/24, 10.0.0.7]"),
			[]string{"tenants[0].sources[1]: 10.0.0.7/32 overlaps tenants[0].sources[0]"}},
		{"duplicate DID prefix", base + strings.Replace(secondTenant, "+1666", "+1555", 1),
			[]string{`tenants[1].dids[0]: DID prefix "+1555" already claimed by tenants[0].dids[0] (tenant "t1")`}},
		{"bad DID", edit(t, `dids: ["+1555"]`, `dids: ["+1-555"]`),
			[]string{`tenants[0].dids[0]: must be digits with an optional leading +, got "+1-555"`}},
		{"DIDs without pbx", edit(t, "    pbx:\n      address: 10.0.0.5:5060\n", ""),
			[]string{"tenants[0].pbx.address: required when dids are set"}},
		{"unknown plan", edit(t, "plan: p1", "plan: gold"),
			[]string{`tenants[0].plan: unknown plan "gold" (plans: p1)`}},
		{"unknown carrier", edit(t, "carrier: c1", "carrier: c9"),
			[]string{`tenants[0].carrier: unknown carrier "c9" (carriers: c1)`}},
		{"limit -2 in plan", edit(t, "max_parallel_calls: 10", "max_parallel_calls: -2"),
			[]string{"plans[0].limits.max_parallel_calls: must be -1 (unlimited), 0 (blocked) or a positive cap, got -2"}},
		{"limit -5 in tenant", edit(t, "      address: 10.0.0.5:5060\n", "      address: 10.0.0.5:5060\n    limits: {max_parallel_calls: -5}\n"),
			[]string{"tenants[0].limits.max_parallel_calls: must be -1 (unlimited), 0 (blocked) or a positive cap, got -5"}},
		{"fractional limit", edit(t, "max_parallel_calls: 10", "max_parallel_calls: 2.5"),
			[]string{"plans[0].limits.max_parallel_calls: expected an integer, got 2.5"}},
		{"non-numeric limit", edit(t, "max_parallel_calls: 10", "max_parallel_calls: ten"),
			[]string{`plans[0].limits.max_parallel_calls: expected an integer, got "ten"`}},
		{"missing listen", edit(t, "  listen:\n    - transport: udp\n      address: 127.0.0.1:5060\n", "  advertise: 127.0.0.1\n"),
			[]string{"sip.listen: at least one listen entry is required"}},
		{"duplicate listen", edit(t, "      address: 127.0.0.1:5060\n", "      address: 127.0.0.1:5060\n    - {transport: UDP, address: 127.0.0.1:5060}\n"),
			[]string{"sip.listen[1]: duplicate listen entry udp 127.0.0.1:5060 (same as sip.listen[0])"}},
		{"listen host name", edit(t, "address: 127.0.0.1:5060", "address: localhost:5060"),
			[]string{`sip.listen[0].address: host must be an IP address`}},
		{"listen port 0", edit(t, "address: 127.0.0.1:5060", "address: 127.0.0.1:0"),
			[]string{`sip.listen[0].address: port must be 1..65535`}},
		{"listen port too big", edit(t, "address: 127.0.0.1:5060", "address: 127.0.0.1:65536"),
			[]string{`sip.listen[0].address: port must be 1..65535`}},
		{"listen without port", edit(t, "address: 127.0.0.1:5060", "address: 127.0.0.1"),
			[]string{`sip.listen[0].address: must be IP:port`}},
		{"unspecified listen needs advertise", edit(t, "address: 127.0.0.1:5060", "address: 0.0.0.0:5060"),
			[]string{"sip.advertise: required because sip.listen[0].address \"0.0.0.0:5060\" is unspecified"}},
		{"bad advertise", edit(t, "sip:\n", "sip:\n  advertise: 1.2.3.4:5060\n"),
			[]string{"sip.advertise: must be an IP address or a host name without port"}},
		{"reject code 200", edit(t, "sip:\n", "admission:\n  reject:\n    parallel_calls: {code: 200, reason: OK}\nsip:\n"),
			[]string{"admission.reject.parallel_calls.code: must be a SIP error code 400..699, got 200"}},
		{"reject unknown cause", edit(t, "sip:\n", "admission:\n  reject:\n    minutes: {code: 403}\nsip:\n"),
			[]string{`admission.reject.minutes: unknown rejection cause "minutes" (allowed: parallel_calls)`}},
		{"reject code without phrase", edit(t, "sip:\n", "admission:\n  reject:\n    parallel_calls: {code: 499}\nsip:\n"),
			[]string{"admission.reject.parallel_calls.reason: required: code 499 has no standard reason phrase"}},
		{"reject reason with newline", edit(t, "sip:\n", "admission:\n  reject:\n    parallel_calls: {code: 486, reason: \"Busy\\r\\nX-Evil: 1\"}\nsip:\n"),
			[]string{"admission.reject.parallel_calls.reason: must be printable"}},
		{"bad duration", edit(t, "sip:\n", "sip:\n  timer_c: 3 minutes\n"),
			[]string{`sip.timer_c: expected a duration such as 180s, 1m30s or 4h, got "3 minutes"`, "(line 3)"}},
		{"duration without unit", edit(t, "sip:\n", "sip:\n  max_call_duration: 3600\n"),
			[]string{`sip.max_call_duration: expected a duration`, `got "3600"`}},
		{"zero timer_c", edit(t, "sip:\n", "sip:\n  timer_c: 0s\n"),
			[]string{"sip.timer_c: must be > 0, got 0s"}},
		{"negative shutdown_grace", edit(t, "sip:\n", "sip:\n  shutdown_grace: -1s\n"),
			[]string{"sip.shutdown_grace: must be >= 0, got -1s"}},
		{"bad log level", "log: {level: verbose}\n" + base,
			[]string{`log.level: must be debug, info, warn or error, got "verbose"`}},
		{"bad log format", "log: {format: text}\n" + base,
			[]string{`log.format: must be json or console, got "text"`}},
		{"scalar where list expected", edit(t, "  listen:\n    - transport: udp\n      address: 127.0.0.1:5060\n", "  listen: udp\n"),
			[]string{"sip.listen: expected a list"}},
		{"no carriers", edit(t, "carriers:\n  - name: c1\n    address: 192.0.2.1:5060\n", ""),
			[]string{"carriers: at least one carrier is required"}},
		{"no tenants", strings.SplitN(base, "tenants:", 2)[0],
			[]string{"tenants: at least one tenant is required"}},
		{"tenant without sources", edit(t, "    sources: [10.0.0.0/24]\n", ""),
			[]string{"tenants[0].sources: at least one source is required"}},
		{"duplicate tenant name", base + strings.Replace(secondTenant, "name: t2", "name: t1", 1),
			[]string{`tenants[1].name: duplicate tenant name "t1" (already used by tenants[0])`}},
		{"empty carrier name", edit(t, "name: c1", "name: \"\""),
			[]string{"carriers[0].name: required"}},
		{"name with dot", edit(t, "name: t1", "name: t.1"),
			[]string{`tenants[0].name: must contain only letters, digits`}},
		{"carrier hop host name", edit(t, "address: 192.0.2.1:5060", "address: sbc.example.com:5060"),
			[]string{"carriers[0].address: host must be an IP address"}},
		{"carrier hop unspecified", edit(t, "address: 192.0.2.1:5060", "address: 0.0.0.0:5060"),
			[]string{"carriers[0].address: must be a reachable IP"}},
		{"syntax error", "sip: [\n", []string{"bad.yaml: ", "line"}},
		{"empty file", "# nothing\n", []string{"bad.yaml: empty config"}},
		{"two documents", base + "---\n" + base, []string{"exactly one YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; config: %+v", cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(path, []byte(edit(t, "sources: [10.0.0.0/24]", "sources: [10.0.0.0/24, 10.0.0.0/33]")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `: tenants[0].sources[1]: invalid CIDR "10.0.0.0/33"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(edit(t, "transport: udp", "transport: UDP")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log != (Log{Level: "info", Format: "json"}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.SIP.TimerC != 180*time.Second {
		t.Errorf("timer_c = %v", cfg.SIP.TimerC)
	}
	if cfg.SIP.MaxCallDuration != 4*time.Hour {
		t.Errorf("max_call_duration = %v", cfg.SIP.MaxCallDuration)
	}
	if cfg.SIP.ShutdownGrace != 30*time.Second {
		t.Errorf("shutdown_grace = %v", cfg.SIP.ShutdownGrace)
	}
	if cfg.SIP.Advertise != "127.0.0.1" {
		t.Errorf("advertise = %q, want the first listen IP", cfg.SIP.Advertise)
	}
	if cfg.SIP.Listen[0].Transport != "udp" {
		t.Errorf("listen transport = %q, want lower-cased udp", cfg.SIP.Listen[0].Transport)
	}
	if cfg.Carriers[0].Transport != "udp" {
		t.Errorf("carrier transport = %q, want udp", cfg.Carriers[0].Transport)
	}
	if cfg.Tenants[0].PBX.Transport != "udp" {
		t.Errorf("pbx transport = %q, want udp", cfg.Tenants[0].PBX.Transport)
	}
	if !reflect.DeepEqual(cfg.Carriers[0].Sources, []string{"192.0.2.1/32"}) {
		t.Errorf("carrier sources = %v, want the hop IP", cfg.Carriers[0].Sources)
	}
	if r := cfg.Admission.Reject[CauseParallelCalls]; r != (Reject{486, "Busy Here"}) {
		t.Errorf("reject = %+v", r)
	}
}

func TestDefaultsProgrammatic(t *testing.T) {
	var c Config
	c.SIP.Listen = []Listen{{Transport: "TCP", Address: "[2001:db8::1]:5060"}}
	c.Carriers = []Carrier{{Name: "c", Hop: Hop{Address: "[2001:db8::2]:5060", Transport: "TCP"}}}
	c.Plans = []Plan{{Name: "p"}}
	c.Tenants = []Tenant{{Name: "t", Plan: "p", Carrier: "c", Sources: []string{"2001:db8:1::/48"}}}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SIP.Advertise != "2001:db8::1" {
		t.Errorf("advertise = %q", c.SIP.Advertise)
	}
	if c.SIP.ShutdownGrace != DefaultShutdownGrace || c.SIP.TimerC != DefaultTimerC || c.SIP.MaxCallDuration != DefaultMaxCallDuration {
		t.Errorf("durations = %+v", c.SIP)
	}
	if !reflect.DeepEqual(c.Carriers[0].Prefixes(), []netip.Prefix{netip.MustParsePrefix("2001:db8::2/128")}) {
		t.Errorf("carrier prefixes = %v", c.Carriers[0].Prefixes())
	}
	if v := c.Plans[0].Limits.MaxParallelCalls; v == nil || *v != -1 {
		t.Errorf("plan without limit = %v, want -1 (unlimited)", v)
	}
	if c.Tenants[0].PBX != (Hop{}) {
		t.Errorf("pbx of an outbound-only tenant = %+v, want empty", c.Tenants[0].PBX)
	}
}

func TestExplicitZeroShutdownGrace(t *testing.T) {
	cfg, err := Parse("z.yaml", []byte(edit(t, "sip:\n", "sip:\n  shutdown_grace: 0s\n")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.ShutdownGrace != 0 {
		t.Errorf("shutdown_grace = %v, want 0 as written", cfg.SIP.ShutdownGrace)
	}
}

func TestRejectReasonDefault(t *testing.T) {
	cfg, err := Parse("r.yaml", []byte("admission:\n  reject:\n    parallel_calls: {code: 503}\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Admission.Reject[CauseParallelCalls]; r != (Reject{503, "Service Unavailable"}) {
		t.Errorf("reject = %+v", r)
	}
}

func TestMaxParallelCallsNullAbsentValue(t *testing.T) {
	tenants := `
  - {name: absent, plan: p1, carrier: c1, sources: [10.1.0.1]}
  - {name: empty, plan: p1, carrier: c1, sources: [10.1.0.2], limits: {}}
  - {name: nulled, plan: p1, carrier: c1, sources: [10.1.0.3], limits: {max_parallel_calls: null}}
  - {name: tilde, plan: p1, carrier: c1, sources: [10.1.0.4], limits: {max_parallel_calls: ~}}
  - {name: unlimited, plan: p1, carrier: c1, sources: [10.1.0.5], limits: {max_parallel_calls: -1}}
  - {name: blocked, plan: p1, carrier: c1, sources: [10.1.0.6], limits: {max_parallel_calls: 0}}
  - {name: capped, plan: p1, carrier: c1, sources: [10.1.0.7], limits: {max_parallel_calls: 7}}
`
	cfg, err := Parse("l.yaml", []byte(base+tenants))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*int64{"absent": nil, "empty": nil, "nulled": nil, "tilde": nil,
		"unlimited": ptr(-1), "blocked": ptr(0), "capped": ptr(7)}
	for _, tn := range cfg.Tenants[1:] {
		got, w := tn.Limits.MaxParallelCalls, want[tn.Name]
		switch {
		case w == nil && got != nil:
			t.Errorf("%s: got %d, want nil (inherit)", tn.Name, *got)
		case w != nil && got == nil:
			t.Errorf("%s: got nil, want %d", tn.Name, *w)
		case w != nil && *got != *w:
			t.Errorf("%s: got %d, want %d", tn.Name, *got, *w)
		}
	}

	// In a plan, null and absent mean unlimited.
	cfg, err = Parse("p.yaml", []byte(edit(t, "max_parallel_calls: 10", "max_parallel_calls: null")))
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Plans[0].Limits.MaxParallelCalls; v == nil || *v != -1 {
		t.Errorf("plan null = %v, want -1", v)
	}
}

func ptr(v int64) *int64 { return &v }

func TestSourcePrefixes(t *testing.T) {
	tn := Tenant{Sources: []string{"10.0.0.1", "10.0.0.0/8", "2001:db8::1", "2001:db8::/32", "bogus"}}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.1/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if got := tn.Prefixes(); !reflect.DeepEqual(got, want) {
		t.Errorf("Prefixes = %v, want %v", got, want)
	}
}

func TestOverlapReportsFirstInFileOrder(t *testing.T) {
	// t1 10/8 (first), t2 10.0/16, t3 10.0.0/24: the nested chain holds three
	// overlapping pairs; the first one in file order is t1 vs t2.
	var c Config
	c.SIP.Listen = []Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}
	c.Carriers = []Carrier{{Name: "c", Hop: Hop{Address: "192.0.2.1:5060"}}}
	c.Plans = []Plan{{Name: "p"}}
	c.Tenants = []Tenant{
		{Name: "t1", Plan: "p", Carrier: "c", Sources: []string{"10.0.0.0/8"}},
		{Name: "t2", Plan: "p", Carrier: "c", Sources: []string{"172.16.0.0/12", "10.0.0.0/16"}},
		{Name: "t3", Plan: "p", Carrier: "c", Sources: []string{"10.0.0.0/24"}},
	}
	c.ApplyDefaults()
	err := c.Validate()
	want := "tenants[1].sources[1]: 10.0.0.0/16 overlaps tenants[0].sources[0]"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
	// IPv4 and IPv6 never overlap.
	c.Tenants = c.Tenants[:1]
	c.Tenants = append(c.Tenants, Tenant{Name: "v6", Plan: "p", Carrier: "c", Sources: []string{"::/0"}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: Parse never panics, and whatever it accepts is valid and
// yields parseable prefixes.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	f.Add([]byte(base + secondTenant))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
		for _, cr := range cfg.Carriers {
			if len(cr.Prefixes()) != len(cr.Sources) {
				t.Fatalf("carrier %q: prefixes %v for sources %v", cr.Name, cr.Prefixes(), cr.Sources)
			}
		}
		for _, tn := range cfg.Tenants {
			if len(tn.Prefixes()) != len(tn.Sources) {
				t.Fatalf("tenant %q: prefixes %v for sources %v", tn.Name, tn.Prefixes(), tn.Sources)
			}
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	cfg, err := Load("example-multi-tenant.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateLarge: 5000 tenants with two sources and one DID each.
func BenchmarkValidateLarge(b *testing.B) {
	var c Config
	c.SIP.Listen = []Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}
	c.Carriers = []Carrier{{Name: "c", Hop: Hop{Address: "192.0.2.1:5060"}}}
	c.Plans = []Plan{{Name: "p"}}
	for i := range 5000 {
		c.Tenants = append(c.Tenants, Tenant{
			Name: fmt.Sprintf("t%d", i), Plan: "p", Carrier: "c",
			Sources: []string{fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("2001:db8:%x::/48", i)},
			DIDs:    []string{fmt.Sprintf("+1555%04d", i)},
			PBX:     Hop{Address: fmt.Sprintf("10.%d.%d.1:5060", i/256, i%256)},
		})
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
