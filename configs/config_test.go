package configs

import (
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
	wantListen := []Listen{{Transport: "udp", Address: "127.0.0.1:5060"}, {Transport: "tcp", Address: "127.0.0.1:5060"}}
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

	// The limits model of the demo: a minutes cap, a rate table, alert 80,
	// auto_suspend, premium disabled, one role.
	pl := cfg.Plans[0]
	if v := pl.Limits.MaxMonthlyMinutes; v == nil || *v != 10000 {
		t.Errorf("plan max_monthly_minutes = %v", v)
	}
	if v := pl.Limits.AlertThresholdPct; v == nil || *v != 80 {
		t.Errorf("plan alert_threshold_pct = %v", v)
	}
	if v := pl.Limits.AutoSuspend; v == nil || !*v {
		t.Errorf("plan auto_suspend = %v", v)
	}
	if d := pl.Limits.Destinations; !reflect.DeepEqual(d, map[string]bool{"international": true, "premium": false}) {
		t.Errorf("plan destinations = %v", d)
	}
	if len(pl.Rates) != 3 || pl.Rates[0].Prefix != "" || *pl.Rates[0].PerMinute != 10_000 || pl.Rates[0].Increments != (Increments{60, 60}) {
		t.Errorf("plan rates = %+v", pl.Rates)
	}
	if !reflect.DeepEqual(cfg.DestinationClasses, map[string][]string{"international": {"00", "+"}, "premium": {"1900", "+1900"}}) {
		t.Errorf("destination_classes = %v", cfg.DestinationClasses)
	}
	if !reflect.DeepEqual(cfg.EmergencyNumbers, []string{"112", "911"}) {
		t.Errorf("emergency_numbers = %v", cfg.EmergencyNumbers)
	}
	if len(tn.Roles) != 1 || tn.Roles[0].Name != "reception" || *tn.Roles[0].MaxParallelCalls != 2 {
		t.Errorf("roles = %+v", tn.Roles)
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

	// Every cause key is set, some with a default phrase.
	for _, cause := range knownCauses() {
		if _, ok := cfg.Admission.Reject[cause]; !ok {
			t.Errorf("reject %s missing", cause)
		}
	}
	if r := cfg.Admission.Reject[CauseSuspendedInbound]; r != (Reject{480, "Temporarily Unavailable"}) {
		t.Errorf("suspended_inbound = %+v", r)
	}
	if r := cfg.Admission.Reject[CauseSpend]; r != (Reject{402, "Credit Exhausted"}) {
		t.Errorf("spend = %+v", r)
	}
	if v := cfg.Admission.ResumeOnRollover; v == nil || *v {
		t.Errorf("resume_on_rollover = %v, want false", v)
	}
	if td := cfg.TenantDefaults; *td.MaxParallelCalls != 2 || *td.MonthlySpendLimit != 10*MicrosPerUnit || !*td.AutoSuspend ||
		td.MaxParallelInbound != nil || !reflect.DeepEqual(td.Destinations, map[string]bool{"premium": false}) {
		t.Errorf("tenant_defaults = %+v", td)
	}
	starter, business := cfg.Plans[0], cfg.Plans[1]
	if *starter.Limits.MonthlySpendLimit != 25_500_000 || *starter.Limits.CPSBurst != 3 {
		t.Errorf("starter limits = %+v", starter.Limits)
	}
	if business.Limits.CPSBurst != nil || *business.Limits.MaxParallelInbound != -1 {
		t.Errorf("business limits = %+v (cps_burst stays unset, inbound unlimited)", business.Limits)
	}
	wantRates := []Rate{
		{Prefix: "", PerMinute: ptrTo(MustMoney("0.008")), Increments: Increments{1, 1}},
		{Prefix: "+44", PerMinute: ptrTo(MustMoney("0.01")), Increments: Increments{30, 6}},
		{Prefix: "+447", PerMinute: ptrTo(MustMoney("0.04")), ConnectFee: 1000, Increments: Increments{6, 6}},
		{Prefix: "00", PerMinute: ptrTo(Money(123456)), ConnectFee: 1, Increments: Increments{60, 60}},
	}
	if !reflect.DeepEqual(business.Rates, wantRates) {
		t.Errorf("business rates = %+v, want %+v", business.Rates, wantRates)
	}
	cc := cfg.Tenants[1]
	if len(cc.Roles) != 3 || cc.Roles[1].MaxParallelCalls != nil || *cc.Roles[2].MaxParallelCalls != 0 ||
		!reflect.DeepEqual(cc.Roles[0].Patterns, []string{"agent-*", "+44207123456?"}) {
		t.Errorf("callcenter roles = %+v", cc.Roles)
	}
	if v := cc.Limits.MonthlySpendLimit; v == nil || *v != MoneyUnlimited {
		t.Errorf("callcenter spend = %v, want -1", v)
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
			[]string{`sip.listen[0].transport: must be udp, tcp or tls, got "sctp"`}},
		{"bad hop transport", edit(t, "    address: 192.0.2.1:5060", "    address: 192.0.2.1:5060\n    transport: sctp"),
			[]string{`carriers[0].transport: must be udp, tcp or tls, got "sctp"`}},
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
		{"bad DID", edit(t, `dids: ["+1555"]`, `dids: ["+1555x"]`),
			[]string{`tenants[0].dids[0]: must be digits with an optional leading +, got "+1555x"`}},
		{"DID with separators", edit(t, `dids: ["+1555"]`, `dids: ["+1 (555)"]`),
			[]string{`tenants[0].dids[0]: "+1 (555)" is not a normalised number; write "+1555"`}},
		{"DID with a parameter", edit(t, `dids: ["+1555"]`, `dids: ["+1555;npdi"]`),
			[]string{`tenants[0].dids[0]: "+1555;npdi" is not a normalised number; write "+1555"`}},
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
		{"reject unknown cause", edit(t, "sip:\n", "admission:\n  reject:\n    unknown_tenant: {code: 403}\nsip:\n"),
			[]string{`admission.reject.unknown_tenant: unknown rejection cause "unknown_tenant" (allowed: cluster_lease, cps, destination_class, minutes, parallel_calls, parallel_inbound, parallel_outbound, role_minutes, role_parallel_calls, spend, suspended, suspended_inbound)`}},
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
		{"commit interval too long", "store: {commit_interval: 2s}\n" + base,
			[]string{"store.commit_interval: must be between 1ms and 1s, got 2s"}},
		{"checkpoint below commit", "store: {commit_interval: 50ms, checkpoint_interval: 10ms}\n" + base,
			[]string{"store.checkpoint_interval: must be between commit_interval (50ms) and 1m, got 10ms"}},
		{"memtable too small", "store: {memtable_mib: -1}\n" + base,
			[]string{"store.memtable_mib: must be between 1 and 512, got -1"}},
		{"memtable too large", "store: {memtable_mib: 1024}\n" + base,
			[]string{"store.memtable_mib: must be between 1 and 512, got 1024"}},
		{"short retention", "store: {retention: {audit: 1m}}\n" + base,
			[]string{"store.retention.audit: must be at least 1h, got 1m0s"}},
		{"bad api listen", "api: {listen: localhost}\n" + base,
			[]string{"api.listen:"}},
		{"bad token scope", "api: {tokens: [{name: ops, scope: root, token_env: X}]}\n" + base,
			[]string{`api.tokens[0].scope: must be admin, settings, billing or read, got "root"`}},
		{"token without secret", "api: {tokens: [{name: ops, scope: admin}]}\n" + base,
			[]string{"api.tokens[0]: exactly one of token_env and token_sha256 is required"}},
		{"bad token hash", "api: {tokens: [{name: ops, scope: admin, token_sha256: abc}]}\n" + base,
			[]string{"api.tokens[0].token_sha256: must be 64 hex digits"}},
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
		t.Run(tc.name, func(t *testing.T) { wantParseError(t, tc.yaml, tc.want) })
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
	if cfg.Store.MemtableMiB != DefaultMemtableMiB {
		t.Errorf("store.memtable_mib = %d, want %d", cfg.Store.MemtableMiB, DefaultMemtableMiB)
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

// --- the limits model: new fields, defaults, money, bad values ---

// planLimits adds lines to the limits of plan p1 in base.
func planLimits(t *testing.T, lines string) string {
	t.Helper()
	return edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n"+lines)
}

// planRates gives plan p1 of base a rate table.
func planRates(t *testing.T, rows string) string {
	t.Helper()
	return edit(t, "      max_parallel_calls: 10\n", "      max_parallel_calls: 10\n    rates:\n"+rows)
}

// tenantRoles gives tenant t1 of base roles.
func tenantRoles(roles string) string { return base + "    roles:\n" + roles }

const classes = "destination_classes:\n  international: [\"00\", \"+\"]\n  premium: [\"1900\", \"+1900\"]\n"

func TestLimitsModelParsed(t *testing.T) {
	yaml := classes + `
emergency_numbers: ["112", "+44999", 999]
admission:
  resume_on_rollover: false
  reject:
    cps: {code: 503, reason: Slow Down}
    suspended_inbound: {code: 480}
tenant_defaults:
  max_parallel_calls: 3
  monthly_spend_limit: 7.5
  destinations: {premium: false}
` + strings.Replace(base, "      max_parallel_calls: 10\n", `      max_parallel_calls: 10
      max_parallel_inbound: 4
      max_parallel_outbound: 0
      max_calls_per_second: 5
      cps_burst: 20
      max_monthly_minutes: 1000
      monthly_spend_limit: 500.25
      alert_threshold_pct: 90
      auto_suspend: true
      destinations: {international: false, premium: false}
    rates:
      - {prefix: "", per_minute: 0.01}
      - {prefix: "+44", per_minute: "0.02", connect_fee: 0.1, increments: 6/6}
      - {prefix: "1900", per_minute: 2, increments: "30/1"}
`, 1) + `    limits:
      max_parallel_calls: null
      max_parallel_inbound: -1
      max_monthly_minutes: 2000
      monthly_spend_limit: -1
      alert_threshold_pct: 50
      auto_suspend: false
      destinations: {international: true}
    roles:
      - name: agents
        max_parallel_calls: 1
        max_monthly_minutes: 600
        users: [alice, "+15550001", 1234]
        patterns: ["agent-*", "1555?"]
      - name: boss
        users: [bob]
`
	cfg, err := Parse("all.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.EmergencyNumbers, []string{"112", "+44999", "999"}) {
		t.Errorf("emergency_numbers = %v", cfg.EmergencyNumbers)
	}
	if v := cfg.Admission.ResumeOnRollover; v == nil || *v {
		t.Errorf("resume_on_rollover = %v", v)
	}
	if r := cfg.Admission.Reject[CauseCPS]; r != (Reject{503, "Slow Down"}) {
		t.Errorf("cps = %+v", r)
	}
	if r := cfg.Admission.Reject[CauseSuspendedInbound]; r != (Reject{480, "Temporarily Unavailable"}) {
		t.Errorf("suspended_inbound = %+v", r)
	}
	wantDefaults := Limits{MaxParallelCalls: ptr(3), MonthlySpendLimit: ptrTo(Money(7_500_000)), Destinations: map[string]bool{"premium": false}}
	if !reflect.DeepEqual(cfg.TenantDefaults, wantDefaults) {
		t.Errorf("tenant_defaults = %+v", cfg.TenantDefaults)
	}
	wantPlan := Limits{
		MaxParallelCalls: ptr(10), MaxParallelInbound: ptr(4), MaxParallelOutbound: ptr(0),
		MaxCallsPerSecond: ptr(5), CPSBurst: ptr(20), MaxMonthlyMinutes: ptr(1000),
		MonthlySpendLimit: ptrTo(Money(500_250_000)), AlertThresholdPct: ptr(90), AutoSuspend: ptrTo(true),
		MaxDIDs: ptr(-1), MaxUsers: ptr(-1),
		Destinations: map[string]bool{"international": false, "premium": false},
	}
	if !reflect.DeepEqual(cfg.Plans[0].Limits, wantPlan) {
		t.Errorf("plan limits = %+v\nwant %+v", cfg.Plans[0].Limits, wantPlan)
	}
	wantRates := []Rate{
		{Prefix: "", PerMinute: ptrTo(Money(10_000)), Increments: Increments{60, 60}},
		{Prefix: "+44", PerMinute: ptrTo(Money(20_000)), ConnectFee: 100_000, Increments: Increments{6, 6}},
		{Prefix: "1900", PerMinute: ptrTo(Money(2_000_000)), Increments: Increments{30, 1}},
	}
	if !reflect.DeepEqual(cfg.Plans[0].Rates, wantRates) {
		t.Errorf("rates = %+v", cfg.Plans[0].Rates)
	}
	tn := cfg.Tenants[0]
	wantTenant := Limits{
		MaxParallelInbound: ptr(-1), MaxMonthlyMinutes: ptr(2000), MonthlySpendLimit: ptrTo(MoneyUnlimited),
		AlertThresholdPct: ptr(50), AutoSuspend: ptrTo(false), Destinations: map[string]bool{"international": true},
	}
	if !reflect.DeepEqual(tn.Limits, wantTenant) {
		t.Errorf("tenant limits = %+v\nwant %+v", tn.Limits, wantTenant)
	}
	wantRoles := []Role{
		{Name: "agents", MaxParallelCalls: ptr(1), MaxMonthlyMinutes: ptr(600),
			Users: []string{"alice", "+15550001", "1234"}, Patterns: []string{"agent-*", "1555?"}},
		{Name: "boss", Users: []string{"bob"}},
	}
	if !reflect.DeepEqual(tn.Roles, wantRoles) {
		t.Errorf("roles = %+v", tn.Roles)
	}
}

func TestLimitsModelDefaults(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(planRates(t, "      - {per_minute: 0.01}\n")))
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Admission.ResumeOnRollover; v == nil || !*v {
		t.Errorf("resume_on_rollover = %v, want true", v)
	}
	if !reflect.DeepEqual(cfg.EmergencyNumbers, []string{"112", "911"}) {
		t.Errorf("emergency_numbers = %v", cfg.EmergencyNumbers)
	}
	if !reflect.DeepEqual(cfg.Admission.Reject, defaultRejects) {
		t.Errorf("rejects = %v, want %v", cfg.Admission.Reject, defaultRejects)
	}
	for cause, code := range map[string]int{
		CauseParallelCalls: 486, CauseParallelInbound: 486, CauseParallelOutbound: 486, CauseCPS: 503,
		CauseMinutes: 403, CauseSpend: 403, CauseDestination: 403, CauseRoleParallel: 486,
		CauseRoleMinutes: 403, CauseSuspended: 403, CauseSuspendedInbound: 480,
	} {
		if r := cfg.Admission.Reject[cause]; r.Code != code || r.Reason != reasonPhrases[code] {
			t.Errorf("default reject %s = %+v, want %d", cause, r, code)
		}
	}
	// In a plan, unset means unlimited (stored -1), threshold 80,
	// auto_suspend false; cps_burst stays derived from the rate.
	wantPlan := Limits{
		MaxParallelCalls: ptr(10), MaxParallelInbound: ptr(-1), MaxParallelOutbound: ptr(-1),
		MaxCallsPerSecond: ptr(-1), MaxMonthlyMinutes: ptr(-1), MonthlySpendLimit: ptrTo(MoneyUnlimited),
		AlertThresholdPct: ptr(80), AutoSuspend: ptrTo(false), MaxDIDs: ptr(-1), MaxUsers: ptr(-1),
	}
	if !reflect.DeepEqual(cfg.Plans[0].Limits, wantPlan) {
		t.Errorf("plan limits = %+v\nwant %+v", cfg.Plans[0].Limits, wantPlan)
	}
	if r := cfg.Plans[0].Rates[0]; r.Prefix != "" || r.ConnectFee != 0 || r.Increments != DefaultIncrements {
		t.Errorf("rate defaults = %+v", r)
	}
	// In a tenant and in tenant_defaults, unset stays nil (inherit).
	if !reflect.DeepEqual(cfg.Tenants[0].Limits, Limits{}) || !reflect.DeepEqual(cfg.TenantDefaults, Limits{}) {
		t.Errorf("tenant limits %+v, tenant_defaults %+v, want all unset", cfg.Tenants[0].Limits, cfg.TenantDefaults)
	}

	// An explicit empty list switches the emergency exemption off; null
	// keeps the default.
	cfg, err = Parse("e.yaml", []byte("emergency_numbers: []\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EmergencyNumbers == nil || len(cfg.EmergencyNumbers) != 0 {
		t.Errorf("emergency_numbers [] = %#v, want empty", cfg.EmergencyNumbers)
	}
	cfg, err = Parse("e.yaml", []byte("emergency_numbers: null\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.EmergencyNumbers, DefaultEmergencyNumbers) {
		t.Errorf("emergency_numbers null = %v", cfg.EmergencyNumbers)
	}
	// Mutating the config never changes the package default.
	cfg.EmergencyNumbers[0] = "000"
	if DefaultEmergencyNumbers[0] != "112" {
		t.Fatal("DefaultEmergencyNumbers aliased by a config")
	}
}

func TestMoneyExact(t *testing.T) {
	tests := []struct {
		in   string // YAML scalar as written
		want Money
		err  string // substring; "" = valid
	}{
		{"500", 500_000_000, ""},
		{"500.25", 500_250_000, ""},
		{"0.000001", 1, ""},
		{`"12.5"`, 12_500_000, ""},
		{"'0.1'", 100_000, ""},
		{"0.1", 100_000, ""}, // 0.1 has no exact float64; here it is exact
		{"0.3", 300_000, ""},
		{"0", 0, ""},
		{"0.0", 0, ""},
		{"-0", 0, ""},
		{"-1", MoneyUnlimited, ""},
		{"-1.00", MoneyUnlimited, ""},
		{"007.5", 7_500_000, ""},
		{"123456789.123456", 123_456_789_123_456, ""},
		{"9007199254740993", 0, "too large"},
		{"1000000000", MaxMoney, ""},
		{"9223372036854", 0, "too large"},
		{"1.2345678", 0, "at most 6 decimal places"},
		{"1.5000000", 0, "at most 6 decimal places"},
		{"abc", 0, `invalid amount "abc"`},
		{"1e3", 0, `invalid amount "1e3"`},
		{"1_000", 0, `invalid amount "1_000"`},
		{"0x10", 0, `invalid amount "0x10"`},
		{".5", 0, `invalid amount ".5"`},
		{"5.", 0, `invalid amount "5."`},
		{"+5", 0, `invalid amount "+5"`},
		{"1,5", 0, `invalid amount "1,5"`},
		{`" 5"`, 0, `invalid amount " 5"`},
		{`""`, 0, `invalid amount ""`},
		{".inf", 0, `invalid amount ".inf"`},
		{"-2", 0, "negative amounts are not allowed"},
		{"-0.5", 0, "negative amounts are not allowed"},
		{"[1]", 0, "expected an amount of money"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			cfg, err := Parse("m.yaml", []byte(planLimits(t, "      monthly_spend_limit: "+tc.in+"\n")))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error, got %v", *cfg.Plans[0].Limits.MonthlySpendLimit)
				}
				for _, w := range []string{"m.yaml: plans[0].limits.monthly_spend_limit: ", tc.err, "(line 13)"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := *cfg.Plans[0].Limits.MonthlySpendLimit
			if got != tc.want {
				t.Fatalf("got %d micro-units, want %d", int64(got), int64(tc.want))
			}
			// String round-trips exactly.
			if back, err := ParseMoney(got.String()); err != nil || back != got {
				t.Errorf("ParseMoney(%q) = %v, %v", got.String(), back, err)
			}
		})
	}
	for m, s := range map[Money]string{0: "0", 1: "0.000001", 10_000: "0.01", 500_250_000: "500.25", 3_000_000: "3", MoneyUnlimited: "-1"} {
		if m.String() != s {
			t.Errorf("Money(%d).String() = %q, want %q", int64(m), m.String(), s)
		}
	}
}

func TestIncrementsParse(t *testing.T) {
	for in, want := range map[string]Increments{"60/60": {60, 60}, "6/6": {6, 6}, "1/1": {1, 1}, "30/6": {30, 6}, "86400/1": {86400, 1}} {
		got, err := ParseIncrements(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseIncrements(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"0/60", "60/0", "60", "", "/", "60/", "a/b", "-1/60", "60/60/60", " 60/60", "86401/1", "99999999999999999999/1"} {
		if _, err := ParseIncrements(in); err == nil {
			t.Errorf("ParseIncrements(%q): no error", in)
		}
	}
}

func TestBadLimitsModel(t *testing.T) {
	role := func(name, extra string) string {
		return "      - name: " + name + "\n" + extra
	}
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		// money
		{"bad money", planLimits(t, "      monthly_spend_limit: abc\n"),
			[]string{`plans[0].limits.monthly_spend_limit: invalid amount "abc"`, "(line 13)"}},
		{"money with 7 decimals", planLimits(t, "      monthly_spend_limit: 1.2345678\n"),
			[]string{`plans[0].limits.monthly_spend_limit: invalid amount "1.2345678": at most 6 decimal places`, "(line 13)"}},
		{"money negative", base + "    limits: {monthly_spend_limit: -3}\n",
			[]string{`tenants[0].limits.monthly_spend_limit: invalid amount "-3": negative amounts are not allowed`, "(line 21)"}},
		{"money in flow mapping", planRates(t, "      - {prefix: \"44\", per_minute: 0.01, connect_fee: 0.12345678}\n"),
			[]string{`plans[0].rates[0].connect_fee: invalid amount "0.12345678"`, "(line 14)"}},
		{"money type", planLimits(t, "      monthly_spend_limit: {a: 1}\n"),
			[]string{"plans[0].limits.monthly_spend_limit: expected an amount of money", "got a mapping"}},
		{"tenant_defaults money", "tenant_defaults: {monthly_spend_limit: 0.0000001}\n" + base,
			[]string{`tenant_defaults.monthly_spend_limit: invalid amount "0.0000001"`, "(line 1)"}},
		// count limits
		{"inbound -2", planLimits(t, "      max_parallel_inbound: -2\n"),
			[]string{"plans[0].limits.max_parallel_inbound: must be -1 (unlimited), 0 (blocked) or a positive cap, got -2", "(line 13)"}},
		{"outbound -2", base + "    limits: {max_parallel_outbound: -2}\n",
			[]string{"tenants[0].limits.max_parallel_outbound: must be -1"}},
		{"cps -3", planLimits(t, "      max_calls_per_second: -3\n"),
			[]string{"plans[0].limits.max_calls_per_second: must be -1"}},
		{"cps_burst -1", planLimits(t, "      cps_burst: -1\n"),
			[]string{"plans[0].limits.cps_burst: must be 1..1000000000 calls (the bucket size; null: max(1, max_calls_per_second)), got -1"}},
		{"cps_burst 0", base + "    limits: {cps_burst: 0}\n",
			[]string{"tenants[0].limits.cps_burst: must be 1..1000000000 calls"}},
		{"minutes too large", planLimits(t, "      max_monthly_minutes: 100000001\n"),
			[]string{"plans[0].limits.max_monthly_minutes: must be at most 100000000, got 100000001"}},
		{"cps too large", planLimits(t, "      max_calls_per_second: 1000000001\n"),
			[]string{"plans[0].limits.max_calls_per_second: must be at most 1000000000"}},
		{"spend too large", planLimits(t, "      monthly_spend_limit: 1000000000.000001\n"),
			[]string{"plans[0].limits.monthly_spend_limit: must be -1 (unlimited), 0 (blocked) or a positive amount up to 1000000000, got 1000000000.000001"}},
		{"price too large", planRates(t, "      - {per_minute: 1000000001}\n"),
			[]string{"plans[0].rates[0].per_minute: must be an amount 0..1000000000, got 1000000001"}},
		{"minutes -9", "tenant_defaults: {max_monthly_minutes: -9}\n" + base,
			[]string{"tenant_defaults.max_monthly_minutes: must be -1"}},
		{"fractional minutes", planLimits(t, "      max_monthly_minutes: 1.5\n"),
			[]string{"plans[0].limits.max_monthly_minutes: expected an integer, got 1.5"}},
		// threshold, auto_suspend
		{"threshold 0", planLimits(t, "      alert_threshold_pct: 0\n"),
			[]string{"plans[0].limits.alert_threshold_pct: must be 1..100 (percent of a cap), got 0", "(line 13)"}},
		{"threshold 101", base + "    limits:\n      alert_threshold_pct: 101\n",
			[]string{"tenants[0].limits.alert_threshold_pct: must be 1..100 (percent of a cap), got 101", "(line 22)"}},
		{"threshold in tenant_defaults", "tenant_defaults: {alert_threshold_pct: -1}\n" + base,
			[]string{"tenant_defaults.alert_threshold_pct: must be 1..100"}},
		{"auto_suspend not a bool", planLimits(t, "      auto_suspend: sometimes\n"),
			[]string{`plans[0].limits.auto_suspend: expected true or false, got "sometimes"`, "(line 13)"}},
		// destination classes
		{"undeclared destination class", classes + planLimits(t, "      destinations: {premium: false, mobile: false}\n"),
			[]string{`plans[0].limits.destinations.mobile: unknown destination class "mobile" (declared in destination_classes: international, premium)`, "(line 16)"}},
		{"destination class without classes", base + "    limits:\n      destinations:\n        premium: false\n",
			[]string{`tenants[0].limits.destinations.premium: unknown destination class "premium" (declared in destination_classes: none)`, "(line 23)"}},
		{"undeclared class in tenant_defaults", classes + "tenant_defaults: {destinations: {intl: false}}\n" + base,
			[]string{`tenant_defaults.destinations.intl: unknown destination class "intl"`}},
		{"destination not a bool", classes + planLimits(t, "      destinations: {premium: 0}\n"),
			[]string{"plans[0].limits.destinations.premium: expected true or false"}},
		{"prefix in two classes", "destination_classes:\n  international: [\"00\", \"+\"]\n  premium: [\"1900\", \"00\"]\n" + base,
			[]string{`destination_classes.premium[1]: prefix "00" is already in destination_classes.international[0] (class "international")`, "(line 3)"}},
		{"prefix twice in a class", "destination_classes:\n  premium: [\"1900\", \"1900\"]\n" + base,
			[]string{`destination_classes.premium[1]: prefix "1900" is already in destination_classes.premium[0]`}},
		{"bad class prefix", "destination_classes:\n  premium: [\"19x\"]\n" + base,
			[]string{`destination_classes.premium[0]: must be digits with an optional leading + (or "+" alone), got "19x"`, "(line 2)"}},
		{"class prefix with separators", "destination_classes:\n  premium: [\"1-900\"]\n" + base,
			[]string{`destination_classes.premium[0]: "1-900" is not a normalised number; write "1900"`, "(line 2)"}},
		{"empty class", "destination_classes:\n  premium: []\n" + base,
			[]string{"destination_classes.premium: at least one number prefix is required"}},
		{"bad class name", "destination_classes:\n  \"prem ium\": [\"1900\"]\n" + base,
			[]string{`destination_classes.prem ium: class name must contain only letters, digits`}},
		// emergency numbers
		{"bad emergency number", "emergency_numbers: [\"112\", \"sos\"]\n" + base,
			[]string{`emergency_numbers[1]: must be digits with an optional leading +, got "sos"`, "(line 1)"}},
		{"emergency number with separators", "emergency_numbers: [\"112\", \"9-1-1\"]\n" + base,
			[]string{`emergency_numbers[1]: "9-1-1" is not a normalised number; write "911"`, "(line 1)"}},
		{"emergency number with a parameter", "emergency_numbers: [\"911;phone-context=+1\"]\n" + base,
			[]string{`emergency_numbers[0]: "911;phone-context=+1" is not a normalised number; write "911"`}},
		{"duplicate emergency number", "emergency_numbers: [\"112\", 112]\n" + base,
			[]string{`emergency_numbers[1]: duplicate emergency number "112" (same as emergency_numbers[0])`}},
		// admission
		{"resume_on_rollover not a bool", "admission: {resume_on_rollover: 1}\n" + base,
			[]string{"admission.resume_on_rollover: expected true or false"}},
		{"reject code for cps", "admission:\n  reject:\n    cps: {code: 302}\n" + base,
			[]string{"admission.reject.cps.code: must be a SIP error code 400..699, got 302"}},
		// rates
		{"duplicate rate prefix", planRates(t, "      - {prefix: \"+44\", per_minute: 0.01}\n      - {prefix: \"+1\", per_minute: 0.01}\n      - {prefix: \"+44\", per_minute: 0.02}\n"),
			[]string{`plans[0].rates[2].prefix: duplicate prefix "+44" (same as plans[0].rates[0]); a prefix appears once per plan`, "(line 16)"}},
		{"two default rows", planRates(t, "      - {per_minute: 0.01}\n      - {prefix: \"\", per_minute: 0.02}\n"),
			[]string{`plans[0].rates[1].prefix: duplicate default row (empty prefix) (same as plans[0].rates[0])`}},
		{"increments 0/60", planRates(t, "      - {per_minute: 0.01, increments: \"0/60\"}\n"),
			[]string{`plans[0].rates[0].increments: invalid increments "0/60": both parts must be 1..86400 seconds`, "(line 14)"}},
		{"increments 60", planRates(t, "      - per_minute: 0.01\n        increments: 60\n"),
			[]string{`plans[0].rates[0].increments: invalid increments "60": want "I/S" in seconds`, "(line 15)"}},
		{"increments 60/0", planRates(t, "      - {per_minute: 0.01, increments: 60/0}\n"),
			[]string{`plans[0].rates[0].increments: invalid increments "60/0"`}},
		{"missing per_minute", planRates(t, "      - {prefix: \"44\"}\n"),
			[]string{"plans[0].rates[0].per_minute: required", "(line 14)"}},
		{"per_minute -1", planRates(t, "      - {prefix: \"44\", per_minute: -1}\n"),
			[]string{"plans[0].rates[0].per_minute: must be an amount 0..1000000000, got -1"}},
		{"connect_fee -1", planRates(t, "      - {prefix: \"44\", per_minute: 1, connect_fee: -1}\n"),
			[]string{"plans[0].rates[0].connect_fee: must be an amount 0..1000000000, got -1"}},
		{"bad rate prefix", planRates(t, "      - {prefix: \"44x\", per_minute: 1}\n"),
			[]string{`plans[0].rates[0].prefix: must be digits with an optional leading +, or empty for the default row, got "44x"`}},
		{"rate prefix with separators", planRates(t, "      - {prefix: \"+44 20\", per_minute: 1}\n"),
			[]string{`plans[0].rates[0].prefix: "+44 20" is not a normalised number; write "+4420"`, "(line 14)"}},
		{"rate prefix of separators only", planRates(t, "      - {prefix: \"-\", per_minute: 1}\n"),
			[]string{`plans[0].rates[0].prefix: must be digits with an optional leading +, or empty for the default row, got "-"`}},
		{"unknown rate field", planRates(t, "      - {prefix: \"44\", price: 1}\n"),
			[]string{`plans[0].rates[0].price: unknown field "price" (allowed here: prefix, per_minute, connect_fee, increments)`}},
		// roles
		{"duplicate role user", tenantRoles(role("a", "        users: [alice, bob]\n") + role("b", "        users: [carol, bob]\n")),
			[]string{`tenants[0].roles[1].users[1]: user "bob" is already on role "a" (tenants[0].roles[0].users[1]); a user may be on one role of a tenant`, "(line 25)"}},
		{"user twice in a role", tenantRoles(role("a", "        users: [alice, alice]\n")),
			[]string{`tenants[0].roles[0].users[1]: user "alice" listed twice (same as tenants[0].roles[0].users[0])`}},
		{"bad glob", tenantRoles(role("a", "        patterns: [\"1555*\", \"agent-[\"]\n")),
			[]string{`tenants[0].roles[0].patterns[1]: invalid glob "agent-[": syntax error in pattern`, "(line 23)"}},
		{"empty glob", tenantRoles(role("a", "        patterns: [\"\"]\n")),
			[]string{"tenants[0].roles[0].patterns[0]: must not be empty"}},
		{"duplicate role name", tenantRoles(role("a", "") + role("a", "")),
			[]string{`tenants[0].roles[1].name: duplicate role name "a" (already used by tenants[0].roles[0])`}},
		{"role without name", tenantRoles("      - users: [alice]\n"),
			[]string{"tenants[0].roles[0].name: required"}},
		{"bad role name", tenantRoles(role("sales team", "")),
			[]string{"tenants[0].roles[0].name: must contain only letters, digits"}},
		{"role limit -2", tenantRoles(role("a", "        max_monthly_minutes: -2\n")),
			[]string{"tenants[0].roles[0].max_monthly_minutes: must be -1 (unlimited), 0 (blocked) or a positive cap, got -2"}},
		{"role user with space", tenantRoles(role("a", "        users: [\"al ice\"]\n")),
			[]string{`tenants[0].roles[0].users[0]: must be a user identity`}},
		{"unknown role field", tenantRoles(role("a", "        limits: {}\n")),
			[]string{`tenants[0].roles[0].limits: unknown field "limits" (allowed here: name, max_parallel_calls, max_monthly_minutes, users, patterns)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantParseError(t, tc.yaml, tc.want) })
	}
}

// TestProgrammaticLimitsValidate: a Config built in Go code is checked by
// Validate as strictly as a parsed one.
func TestProgrammaticLimitsValidate(t *testing.T) {
	valid := func() Config {
		var c Config
		c.SIP.Listen = []Listen{{Transport: "udp", Address: "127.0.0.1:5060"}}
		c.Carriers = []Carrier{{Name: "c", Hop: Hop{Address: "192.0.2.1:5060"}}}
		c.DestinationClasses = map[string][]string{"premium": {"1900"}}
		c.Plans = []Plan{{Name: "p", Rates: []Rate{{PerMinute: ptrTo(MustMoney("0.01"))}}}}
		c.Tenants = []Tenant{{Name: "t", Plan: "p", Carrier: "c", Sources: []string{"10.0.0.0/8"}}}
		c.ApplyDefaults()
		return c
	}
	c := valid()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"increments 0/0 after defaults": {func(c *Config) { c.Plans[0].Rates[0].Increments = Increments{0, 5} }, "plans[0].rates[0].increments: invalid increments \"0/5\""},
		"spend -5 micro":                {func(c *Config) { c.Tenants[0].Limits.MonthlySpendLimit = ptrTo(Money(-5)) }, "tenants[0].limits.monthly_spend_limit: must be -1 (unlimited), 0 (blocked) or a positive amount"},
		"role minutes too large": {func(c *Config) {
			c.Tenants[0].Roles = []Role{{Name: "r", MaxMonthlyMinutes: ptr(MaxMonthlyMinutes + 1)}}
		}, "tenants[0].roles[0].max_monthly_minutes: must be at most 100000000"},
		"per_minute nil":     {func(c *Config) { c.Plans[0].Rates[0].PerMinute = nil }, "plans[0].rates[0].per_minute: required"},
		"class not declared": {func(c *Config) { c.TenantDefaults.Destinations = map[string]bool{"intl": true} }, "tenant_defaults.destinations.intl: unknown destination class"},
	} {
		c := valid()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// TestMarshalRoundTrip: a loaded config written back as YAML (Money and
// Increments in their text forms) loads again to the same config.
func TestMarshalRoundTrip(t *testing.T) {
	for _, f := range []string{"tollgate.yaml", "example-multi-tenant.yaml"} {
		cfg, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(f+" (marshalled)", out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// Compared as text: nil and empty lists both marshal to [].
		out2, err := yaml.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Errorf("%s: round trip differs:\n%s\n---\n%s", f, out, out2)
		}
		if !strings.Contains(string(out), "per_minute: 0.01\n") || !strings.Contains(string(out), "increments: 6/6\n") {
			t.Errorf("%s: money or increments not in text form:\n%s", f, out)
		}
	}
	if m, err := ParseMoney("9223372036853.999999"); err != nil || int64(m) != 9_223_372_036_853_999_999 {
		t.Errorf("largest parseable amount: %v, %v", m, err)
	}
}

// FuzzParseMoney: whatever ParseMoney accepts is exactly the decimal value
// of the text (checked with math/big), at most 6 decimals, and String
// round-trips.
func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"500", "500.25", "0.000001", "12.5", "-1", "-1.0", "1.2345678", "abc", "1e3", "-0", "9223372036853.999999", "9223372036854"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMoney(s)
		if err != nil {
			return
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParseMoney(%q) = %d, but it is not a number", s, int64(m))
		}
		micros := new(big.Rat).Mul(r, big.NewRat(MicrosPerUnit, 1))
		want := micros
		if m == MoneyUnlimited {
			want = big.NewRat(-MicrosPerUnit, 1) // -1 unit means unlimited
		}
		if !micros.IsInt() || micros.Cmp(want) != 0 || m != MoneyUnlimited && micros.Num().Int64() != int64(m) {
			t.Fatalf("ParseMoney(%q) = %d micro-units, want %s", s, int64(m), micros.RatString())
		}
		if back, err := ParseMoney(m.String()); err != nil || back != m {
			t.Fatalf("String round trip of %q: %q -> %d, %v", s, m.String(), int64(back), err)
		}
	})
}

// FuzzParseIncrements: whatever ParseIncrements accepts is in range and
// String round-trips.
func FuzzParseIncrements(f *testing.F) {
	for _, s := range []string{"60/60", "6/6", "1/1", "0/60", "60", "30/6", "86401/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		inc, err := ParseIncrements(s)
		if err != nil {
			return
		}
		if inc.check() != "" {
			t.Fatalf("ParseIncrements(%q) = %v, out of range", s, inc)
		}
		if back, err := ParseIncrements(inc.String()); err != nil || back != inc {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}

// wantParseError parses yml and checks the error names every want.
func wantParseError(t *testing.T, yml string, want []string) {
	t.Helper()
	cfg, err := Parse("bad.yaml", []byte(yml))
	if err == nil {
		t.Fatalf("no error; config: %+v", cfg)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

// debug.listen and runtime: off/unset by default, validated, errors name
// the field.
func TestDebugAndRuntime(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Debug.Listen != "" || cfg.Runtime.GOGC != nil || cfg.Runtime.MemoryLimit != "" || cfg.Runtime.MemoryLimitBytes() != 0 {
		t.Errorf("defaults: debug %+v runtime %+v, want all unset", cfg.Debug, cfg.Runtime)
	}
	cfg, err = Parse("ok.yaml", []byte(base+"debug: {listen: \"[::1]:6060\"}\nruntime: {gogc: 400, memory_limit: 1GiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Debug.Listen != "[::1]:6060" || *cfg.Runtime.GOGC != 400 || cfg.Runtime.MemoryLimitBytes() != 1<<30 {
		t.Errorf("parsed debug %+v runtime %+v (%d bytes)", cfg.Debug, cfg.Runtime, cfg.Runtime.MemoryLimitBytes())
	}
	if _, err := Parse("off.yaml", []byte(base+"runtime: {gogc: -1, memory_limit: 512MiB}\napi: {listen: \"off\"}\ndebug: {listen: 127.0.0.1:8080}\n")); err != nil {
		t.Errorf("gogc -1 with a memory limit; debug on 8080 with the API off: %v", err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"debug: {listen: localhost:6060}", "debug.listen: host must be an IP address"},
		{"debug: {listen: 127.0.0.1}", "debug.listen: must be IP:port"},
		{"debug: {listen: 127.0.0.1:0}", "debug.listen: port must be 1..65535"},
		{"debug: {listen: 127.0.0.1:8080}", "debug.listen: 127.0.0.1:8080 is the admin API's address"},
		{"debug: {listen: 0.0.0.0:9000}\napi: {listen: 127.0.0.1:9000}", "debug.listen: 0.0.0.0:9000 is the admin API's address"},
		{"debug: {listen: 127.0.0.1:6060, port: 1}", `debug.port: unknown field "port"`},
		{"runtime: {gogc: 0}", "runtime.gogc: must be -1 (off, with memory_limit) or 1..100000, got 0"},
		{"runtime: {gogc: -5}", "runtime.gogc: must be -1"},
		{"runtime: {gogc: 100001}", "runtime.gogc: must be -1"},
		{"runtime: {gogc: -1}", "runtime.gogc: -1 (collector off) needs runtime.memory_limit"},
		{"runtime: {gogc: 1.5}", "runtime.gogc: expected an integer"},
		{"runtime: {memory_limit: 512}", `runtime.memory_limit: "512": want an integer and a unit`},
		{"runtime: {memory_limit: 1.5GiB}", `runtime.memory_limit: "1.5GiB": want an integer and a unit`},
		{"runtime: {memory_limit: 512MB}", `runtime.memory_limit: "512MB": want an integer and a unit`},
		{"runtime: {memory_limit: 8MiB}", "runtime.memory_limit: must be at least 16MiB, got 8MiB"},
		{"runtime: {memory_limit: 99999999999TiB}", `runtime.memory_limit: "99999999999TiB": too large`},
	} {
		wantParseError(t, base+tc.yaml+"\n", []string{tc.want})
	}
}
