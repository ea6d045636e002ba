package configs

import (
	"math"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/internal/pike"
)

// Defaults of sip.flood, chosen for a carrier-facing edge (the reasoning
// is in docs/CONFIG.md, section sip.flood).
const (
	// DefaultFloodRate: requests per second from one known source. A
	// carrier trunk sends all its calls from one or a few addresses; 2000
	// requests/s is about 650 calls/s (INVITE, ACK, BYE each).
	DefaultFloodRate = 2000
	// DefaultFloodBurst: a known source may send twice its rate at once
	// (a trunk failing over to this edge).
	DefaultFloodBurst = 4000
	// DefaultFloodUnknownRate: requests per second from an unknown source,
	// which can only be answered 403 or 404: enough for a misconfigured
	// peer's retransmissions, not for a scanner.
	DefaultFloodUnknownRate = 5
	// DefaultFloodUnknownBurst: the unknown source's bucket.
	DefaultFloodUnknownBurst = 10
	// DefaultFloodBlock: how long a source over its bucket is blocked.
	DefaultFloodBlock = 60 * time.Second
	// DefaultFloodMaxTracked: sources tracked at once (about 11 MB).
	DefaultFloodMaxTracked = 100_000
	// DefaultFloodMaxConnectionsPerSource: TCP/TLS connections open at
	// once from one address.
	DefaultFloodMaxConnectionsPerSource = 32
	// DefaultFloodMaxConnections: TCP/TLS connections open at once in all.
	DefaultFloodMaxConnections = 4096
)

// The values of sip.flood.blocked_response.
const (
	// BlockedResponseNone: requests from a blocked source are dropped
	// without an answer (the default: nothing to reflect at a spoofed
	// victim).
	BlockedResponseNone = "none"
	// BlockedResponse503: a blocked source gets at most one 503 per second
	// (with Retry-After), the rest are dropped.
	BlockedResponse503 = "503"
)

// Bounds of the sip.flood settings.
const (
	maxFloodRate        = 1_000_000
	maxFloodBurst       = 10_000_000
	minFloodBlock       = time.Second
	maxFloodBlock       = 24 * time.Hour
	minFloodMaxTracked  = 100
	maxFloodMaxTracked  = 10_000_000
	maxFloodConnections = 1_000_000
)

// Flood configures flood protection at the SIP edge, in the manner of
// Kamailio's pike module and SBC blacklists: a token bucket per source
// address, a much tighter one for unknown sources (neither a carrier's
// nor a tenant's sources), an automatic temporary block of a source that
// exceeds its bucket, and caps on TCP/TLS connections. Every field has a
// default; zero written in the file is an error, not the default.
type Flood struct {
	// Rate is the sustained requests per second accepted from one known
	// source address (a carrier's or tenant's source). Default 2000;
	// > 0, at most 1000000.
	Rate float64 `yaml:"rate" json:"rate"`
	// Burst is how many requests a known source may send at once (its
	// bucket). Default 4000; 1..10000000.
	Burst int `yaml:"burst" json:"burst"`
	// UnknownRate is the sustained requests per second accepted from one
	// unknown source address. Default 5; > 0, at most rate.
	UnknownRate float64 `yaml:"unknown_rate" json:"unknown_rate"`
	// UnknownBurst is the bucket of an unknown source. Default 10;
	// 1..burst.
	UnknownBurst int `yaml:"unknown_burst" json:"unknown_burst"`
	// Block is how long a source that exceeded its bucket is blocked
	// (every request from it dropped, or answered per blocked_response).
	// Default 60s; 1s..24h.
	Block time.Duration `yaml:"block" json:"block"`
	// MaxTracked bounds the source addresses tracked at once (memory under
	// a flood of spoofed sources: the least recently seen are forgotten).
	// Default 100000; 100..10000000.
	MaxTracked int `yaml:"max_tracked" json:"max_tracked"`
	// MaxConnectionsPerSource caps the TCP/TLS connections open at once
	// from one address; more are closed at accept. Default 32;
	// 1..max_connections.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source" json:"max_connections_per_source"`
	// MaxConnections caps the TCP/TLS connections open at once in all.
	// Default 4096; 1..1000000.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// BlockedResponse is how blocked sources are answered: none (default:
	// dropped in silence) or 503 (at most one 503 per second per source,
	// the rest dropped).
	BlockedResponse string `yaml:"blocked_response" json:"blocked_response"`
}

// PikeConfig is the flood limiter's configuration.
func (f Flood) PikeConfig() pike.Config {
	return pike.Config{
		Rate: f.Rate, Burst: f.Burst,
		UnknownRate: f.UnknownRate, UnknownBurst: f.UnknownBurst,
		Block: f.Block, MaxTracked: f.MaxTracked,
	}
}

// ConnLimiter returns a new connection limiter with the TCP/TLS caps
// (share one between the tcp and tls listeners: max_connections is their
// total).
func (f Flood) ConnLimiter() *pike.ConnLimiter {
	return &pike.ConnLimiter{MaxPerSource: f.MaxConnectionsPerSource, MaxTotal: f.MaxConnections}
}

// Answer503 reports whether blocked sources get a low-rate 503.
func (f Flood) Answer503() bool { return f.BlockedResponse == BlockedResponse503 }

func (f *Flood) applyDefaults() {
	if f.Rate == 0 {
		f.Rate = DefaultFloodRate
	}
	if f.Burst == 0 {
		f.Burst = DefaultFloodBurst
	}
	if f.UnknownRate == 0 {
		f.UnknownRate = DefaultFloodUnknownRate
	}
	if f.UnknownBurst == 0 {
		f.UnknownBurst = DefaultFloodUnknownBurst
	}
	if f.Block == 0 {
		f.Block = DefaultFloodBlock
	}
	if f.MaxTracked == 0 {
		f.MaxTracked = DefaultFloodMaxTracked
	}
	if f.MaxConnectionsPerSource == 0 {
		f.MaxConnectionsPerSource = DefaultFloodMaxConnectionsPerSource
	}
	if f.MaxConnections == 0 {
		f.MaxConnections = DefaultFloodMaxConnections
	}
	if f.BlockedResponse == "" {
		f.BlockedResponse = BlockedResponseNone
	}
}

// keepWrittenZeros records which sip.flood fields the file sets to zero
// (present reports whether a field path is in the file) and returns a
// function that puts those zeros back after ApplyDefaults, so that
// Validate reports them instead of silently applying the default.
func (f *Flood) keepWrittenZeros(present func(path string) bool) (restore func()) {
	var undo []func()
	zero := func(path string, isZero bool, set func()) {
		if isZero && present("sip.flood."+path) {
			undo = append(undo, set)
		}
	}
	zero("rate", f.Rate == 0, func() { f.Rate = 0 })
	zero("burst", f.Burst == 0, func() { f.Burst = 0 })
	zero("unknown_rate", f.UnknownRate == 0, func() { f.UnknownRate = 0 })
	zero("unknown_burst", f.UnknownBurst == 0, func() { f.UnknownBurst = 0 })
	zero("block", f.Block == 0, func() { f.Block = 0 })
	zero("max_tracked", f.MaxTracked == 0, func() { f.MaxTracked = 0 })
	zero("max_connections_per_source", f.MaxConnectionsPerSource == 0, func() { f.MaxConnectionsPerSource = 0 })
	zero("max_connections", f.MaxConnections == 0, func() { f.MaxConnections = 0 })
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

func (f *Flood) validate() error {
	const p = "sip.flood."
	rate := func(name string, v, upper float64, bound string) error {
		if math.IsNaN(v) || v <= 0 {
			return errf(p+name, "must be > 0 (requests per second), got %v", v)
		}
		if v > upper {
			return errf(p+name, "must be at most %s, got %v", bound, v)
		}
		return nil
	}
	if err := rate("rate", f.Rate, maxFloodRate, "1000000"); err != nil {
		return err
	}
	if f.Burst < 1 || f.Burst > maxFloodBurst {
		return errf(p+"burst", "must be 1..%d (requests), got %d", maxFloodBurst, f.Burst)
	}
	if err := rate("unknown_rate", f.UnknownRate, f.Rate, "sip.flood.rate ("+strconv.FormatFloat(f.Rate, 'f', -1, 64)+"): unknown sources get the tighter limit"); err != nil {
		return err
	}
	if f.UnknownBurst < 1 || f.UnknownBurst > f.Burst {
		return errf(p+"unknown_burst", "must be 1..sip.flood.burst (%d), got %d", f.Burst, f.UnknownBurst)
	}
	if f.Block < minFloodBlock || f.Block > maxFloodBlock {
		return errf(p+"block", "must be between 1s and 24h, got %s", f.Block)
	}
	if f.MaxTracked < minFloodMaxTracked || f.MaxTracked > maxFloodMaxTracked {
		return errf(p+"max_tracked", "must be %d..%d (source addresses), got %d", minFloodMaxTracked, maxFloodMaxTracked, f.MaxTracked)
	}
	if f.MaxConnections < 1 || f.MaxConnections > maxFloodConnections {
		return errf(p+"max_connections", "must be 1..%d, got %d", maxFloodConnections, f.MaxConnections)
	}
	if f.MaxConnectionsPerSource < 1 || f.MaxConnectionsPerSource > f.MaxConnections {
		return errf(p+"max_connections_per_source", "must be 1..sip.flood.max_connections (%d), got %d", f.MaxConnections, f.MaxConnectionsPerSource)
	}
	switch f.BlockedResponse {
	case BlockedResponseNone, BlockedResponse503:
	default:
		return errf(p+"blocked_response", "must be none or 503, got %q", f.BlockedResponse)
	}
	// Whatever the bounds above allow must make a valid limiter.
	if err := f.PikeConfig().Validate(); err != nil {
		return errf("sip.flood", "%s", err.Error())
	}
	return nil
}
