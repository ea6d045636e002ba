package configs

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/pike"
)

// withFlood is base with a sip.flood block (YAML lines indented under
// flood:).
func withFlood(t *testing.T, lines string) string {
	t.Helper()
	return edit(t, "sip:\n", "sip:\n  flood:\n"+lines)
}

func TestFloodDefaults(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	want := Flood{
		Rate: 2000, Burst: 4000, UnknownRate: 5, UnknownBurst: 10, Block: time.Minute,
		MaxTracked: 100_000, MaxConnectionsPerSource: 32, MaxConnections: 4096, BlockedResponse: "none",
	}
	if cfg.SIP.Flood != want {
		t.Fatalf("sip.flood = %+v\nwant        %+v", cfg.SIP.Flood, want)
	}
	if cfg.SIP.Flood.Answer503() {
		t.Error("blocked sources answered by default")
	}
	pc := cfg.SIP.Flood.PikeConfig()
	if pc != (pike.Config{Rate: 2000, Burst: 4000, UnknownRate: 5, UnknownBurst: 10, Block: time.Minute, MaxTracked: 100_000}) {
		t.Fatalf("PikeConfig = %+v", pc)
	}
	if err := pc.Validate(); err != nil {
		t.Fatal(err)
	}
	cl := cfg.SIP.Flood.ConnLimiter()
	if cl.MaxPerSource != 32 || cl.MaxTotal != 4096 {
		t.Fatalf("ConnLimiter caps %d, %d", cl.MaxPerSource, cl.MaxTotal)
	}
	// A config built in code gets the same defaults.
	c := Config{}
	c.ApplyDefaults()
	if c.SIP.Flood != want {
		t.Fatalf("ApplyDefaults: %+v", c.SIP.Flood)
	}
}

func TestFloodSet(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(withFlood(t, `    rate: 500.5
    burst: 1000
    unknown_rate: 0.5
    unknown_burst: 2
    block: 10m
    max_tracked: 5000
    max_connections_per_source: 4
    max_connections: 100
    blocked_response: 503
`)))
	if err != nil {
		t.Fatal(err)
	}
	want := Flood{Rate: 500.5, Burst: 1000, UnknownRate: 0.5, UnknownBurst: 2, Block: 10 * time.Minute,
		MaxTracked: 5000, MaxConnectionsPerSource: 4, MaxConnections: 100, BlockedResponse: "503"}
	if cfg.SIP.Flood != want {
		t.Fatalf("sip.flood = %+v", cfg.SIP.Flood)
	}
	if !cfg.SIP.Flood.Answer503() {
		t.Error("blocked_response 503 not reported")
	}
	// Quoted works as well.
	if _, err := Parse("f.yaml", []byte(withFlood(t, "    blocked_response: \"503\"\n"))); err != nil {
		t.Fatal(err)
	}
}

// TestFloodErrors: every bad value is an error naming its field (and its
// line); zero written in the file is an error, not the default.
func TestFloodErrors(t *testing.T) {
	cases := []struct {
		name, lines string
		want        []string
	}{
		{"zero rate", "    rate: 0\n", []string{"sip.flood.rate: must be > 0 (requests per second), got 0", "(line 4)"}},
		{"negative rate", "    rate: -5\n", []string{"sip.flood.rate: must be > 0"}},
		{"nan rate", "    rate: .nan\n", []string{"sip.flood.rate: must be > 0", "NaN"}},
		{"inf rate", "    rate: .inf\n", []string{"sip.flood.rate: must be at most 1000000"}},
		{"rate too high", "    rate: 2000000\n", []string{"sip.flood.rate: must be at most 1000000, got 2e+06"}},
		{"rate not a number", "    rate: fast\n", []string{`sip.flood.rate: expected a number, got "fast"`}},
		{"zero burst", "    burst: 0\n", []string{"sip.flood.burst: must be 1..10000000 (requests), got 0"}},
		{"fractional burst", "    burst: 10.5\n", []string{"sip.flood.burst: expected an integer, got 10.5"}},
		{"zero unknown_rate", "    unknown_rate: 0\n", []string{"sip.flood.unknown_rate: must be > 0"}},
		{"unknown_rate above rate", "    rate: 10\n    unknown_rate: 20\n",
			[]string{"sip.flood.unknown_rate: must be at most sip.flood.rate (10): unknown sources get the tighter limit, got 20"}},
		{"unknown_burst above burst", "    burst: 8\n", []string{"sip.flood.unknown_burst: must be 1..sip.flood.burst (8), got 10"}},
		{"zero unknown_burst", "    unknown_burst: 0\n", []string{"sip.flood.unknown_burst: must be 1..sip.flood.burst (4000), got 0"}},
		{"zero block", "    block: 0s\n", []string{"sip.flood.block: must be between 1s and 24h, got 0s"}},
		{"short block", "    block: 500ms\n", []string{"sip.flood.block: must be between 1s and 24h, got 500ms"}},
		{"long block", "    block: 48h\n", []string{"sip.flood.block: must be between 1s and 24h, got 48h0m0s"}},
		{"block without unit", "    block: 60\n", []string{"sip.flood.block: expected a duration"}},
		{"small max_tracked", "    max_tracked: 10\n", []string{"sip.flood.max_tracked: must be 100..10000000 (source addresses), got 10"}},
		{"zero max_tracked", "    max_tracked: 0\n", []string{"sip.flood.max_tracked: must be 100..10000000"}},
		{"zero max_connections", "    max_connections: 0\n", []string{"sip.flood.max_connections: must be 1..1000000, got 0"}},
		{"per source above total", "    max_connections: 10\n    max_connections_per_source: 11\n",
			[]string{"sip.flood.max_connections_per_source: must be 1..sip.flood.max_connections (10), got 11"}},
		{"zero per source", "    max_connections_per_source: 0\n", []string{"sip.flood.max_connections_per_source: must be 1..sip.flood.max_connections (4096), got 0"}},
		{"bad blocked_response", "    blocked_response: 403\n", []string{`sip.flood.blocked_response: must be none or 503, got "403"`}},
		{"upper-case none", "    blocked_response: None\n", []string{`sip.flood.blocked_response: must be none or 503, got "None"`}},
		{"unknown field", "    rates: 5\n", []string{`sip.flood.rates: unknown field "rates"`, "unknown_rate", "max_connections_per_source"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantParseError(t, withFlood(t, tc.lines), tc.want) })
	}
	// In code (no file), every rule holds too.
	c, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c.SIP.Flood.UnknownRate = 3000
	if err := c.Validate(); err == nil {
		t.Fatal("unknown_rate above rate accepted")
	} else if path, _, _ := FieldPath(err); path != "sip.flood.unknown_rate" {
		t.Fatalf("error %v names %q", err, path)
	}
}

// TestFloodBoundsMakeValidLimiters: the extreme values accepted give a
// valid pike.Config.
func TestFloodBoundsMakeValidLimiters(t *testing.T) {
	for _, f := range []Flood{
		{Rate: maxFloodRate, Burst: maxFloodBurst, UnknownRate: maxFloodRate, UnknownBurst: maxFloodBurst,
			Block: maxFloodBlock, MaxTracked: maxFloodMaxTracked, MaxConnections: maxFloodConnections, MaxConnectionsPerSource: maxFloodConnections, BlockedResponse: "none"},
		{Rate: 1e-9, Burst: 1, UnknownRate: 1e-9, UnknownBurst: 1, Block: minFloodBlock, MaxTracked: minFloodMaxTracked,
			MaxConnections: 1, MaxConnectionsPerSource: 1, BlockedResponse: "503"},
	} {
		if err := f.validate(); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if err := f.PikeConfig().Validate(); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
	}
}
