package configs

// The configuration's types: the structs a YAML config file decodes into.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rejection causes accepted as keys of admission.reject. They are the
// admission engine's cause names (admission.Cause.String).
const (
	// CauseParallelCalls: the tenant's max_parallel_calls is reached (or 0).
	CauseParallelCalls = "parallel_calls"
	// CauseParallelInbound: the tenant's max_parallel_inbound is reached.
	CauseParallelInbound = "parallel_inbound"
	// CauseParallelOutbound: the tenant's max_parallel_outbound is reached.
	CauseParallelOutbound = "parallel_outbound"
	// CauseCPS: the tenant's max_calls_per_second bucket is empty (a
	// Retry-After header is added).
	CauseCPS = "cps"
	// CauseMinutes: max_monthly_minutes is exhausted (with auto_suspend).
	CauseMinutes = "minutes"
	// CauseSpend: monthly_spend_limit is exhausted (with auto_suspend).
	CauseSpend = "spend"
	// CauseDestination: the dialled number is in a disabled destination class.
	CauseDestination = "destination_class"
	// CauseRoleParallel: the user's role max_parallel_calls is reached.
	CauseRoleParallel = "role_parallel_calls"
	// CauseRoleMinutes: the user's role max_monthly_minutes is exhausted.
	CauseRoleMinutes = "role_minutes"
	// CauseSuspended: an outbound call of a suspended tenant.
	CauseSuspended = "suspended"
	// CauseSuspendedInbound: an inbound call to a suspended tenant.
	CauseSuspendedInbound = "suspended_inbound"
	// CauseLease: in a cluster, the node's leases ran out and the ledger
	// cannot be reached (NATS down past cluster.lease_ttl).
	CauseLease = "cluster_lease"
)

// Config is the whole tollgate configuration file.
type Config struct {
	// Node names this gateway: the "node" field of every event it
	// publishes (and its name in a cluster). Letters, digits, '-', '_' and
	// '.', at most 64. Default: the host name (DefaultNode).
	Node string `yaml:"node" json:"node"`
	// Log configures the process logger.
	Log Log `yaml:"log" json:"log"`
	// SIP configures the SIP edge: listeners, the advertised host and timers.
	SIP SIP `yaml:"sip" json:"sip"`
	// Media configures the media anchor: relay or off, ports, address.
	Media Media `yaml:"media" json:"media"`
	// Announcement configures the service-interrupted announcement.
	Announcement Announcement `yaml:"announcement" json:"announcement"`
	// Admission configures how admission decisions are answered and the
	// engine-wide admission settings.
	Admission Admission `yaml:"admission" json:"admission"`
	// EmergencyNumbers are dialled numbers (exact match on the normalised
	// dialled number, admission.NormalizeNumber, inbound or outbound) that
	// are always admitted, never cut and never counted against a cap
	// (still metered). Digits with an optional leading +, already normal.
	// Absent or null: DefaultEmergencyNumbers (112, 911); an explicit empty
	// list [] disables the exemption.
	EmergencyNumbers []string `yaml:"emergency_numbers" json:"emergency_numbers"`
	// DestinationClasses map a class name (e.g. international, premium) to
	// the dialled-number prefixes in it (already normal). The class of an
	// outbound call is the class of the longest prefix of its normalised
	// dialled number over all classes.
	// Limits enable or disable classes in limits.destinations. A prefix may
	// be in one class only.
	DestinationClasses map[string][]string `yaml:"destination_classes" json:"destination_classes"`
	// Carriers are the upstream SIP trunks. At least one.
	Carriers []Carrier `yaml:"carriers" json:"carriers"`
	// Plans hold default limits (and the rate table) for the tenants on them.
	Plans []Plan `yaml:"plans" json:"plans"`
	// TenantDefaults pre-fill the limit overrides of tenants created later
	// through the admin API (and restored by "reset to defaults"). The
	// tenants of this file are not affected: their overrides are their own
	// limits. null / absent fields: inherit the plan.
	TenantDefaults Limits `yaml:"tenant_defaults" json:"tenant_defaults"`
	// Tenants are the customers whose PBXs send and receive calls through
	// the gateway. May be empty when tenants are created through the API.
	Tenants []Tenant `yaml:"tenants" json:"tenants"`
	// Store configures persistence (Badger in data_dir).
	Store Store `yaml:"store" json:"store"`
	// API configures the admin HTTP API, metrics and health endpoints.
	API API `yaml:"api" json:"api"`
	// Debug configures the operators' profiling endpoint (off by default).
	Debug Debug `yaml:"debug" json:"debug"`
	// Runtime tunes the Go runtime's garbage collector at start.
	Runtime Runtime `yaml:"runtime" json:"runtime"`
	// NATS configures the event bus: the embedded or external NATS
	// server, the JetStream stream and the outbox publisher.
	NATS NATS `yaml:"nats" json:"nats"`
	// Cluster shares the tenants' caps with other gateways through NATS
	// JetStream (off by default).
	Cluster Cluster `yaml:"cluster" json:"cluster"`
}

// Debug configures the operators' profiling endpoint.
type Debug struct {
	// Listen is the TCP address (IP:port) that serves the net/http/pprof
	// handlers under /debug/pprof/ (CPU and heap profiles, goroutines,
	// execution traces). Empty (default): nothing listens. It has no
	// authentication and is never part of api.listen: keep it on loopback
	// or a management network.
	Listen string `yaml:"listen" json:"listen"`
}

// Runtime tunes the Go runtime at start. Unset fields leave Go's own
// settings (its defaults, or the GOGC and GOMEMLIMIT environment
// variables) alone.
type Runtime struct {
	// GOGC is the garbage collector's target (runtime/debug.SetGCPercent):
	// a collection starts when the heap has grown by this percentage since
	// the last one. Higher: fewer collections (less CPU), more memory.
	// null/absent: Go's default (100, or $GOGC). -1 turns the collector
	// off until memory_limit is reached (it requires memory_limit). Else
	// 1..100000.
	GOGC *int `yaml:"gogc" json:"gogc"`
	// MemoryLimit is the Go runtime's soft memory limit
	// (runtime/debug.SetMemoryLimit): the collector runs harder as the
	// process nears it. An integer with a unit, as $GOMEMLIMIT: B, KiB,
	// MiB, GiB, TiB (e.g. 512MiB, 2GiB); at least 16MiB. Empty: no limit
	// (or $GOMEMLIMIT).
	MemoryLimit string `yaml:"memory_limit" json:"memory_limit"`
}

// MinMemoryLimit is the smallest runtime.memory_limit accepted.
const MinMemoryLimit = 16 << 20

// MaxGOGC is the largest runtime.gogc accepted.
const MaxGOGC = 100000

// MemoryLimitBytes is runtime.memory_limit in bytes; 0 when unset (or
// invalid: Validate reports that).
func (r Runtime) MemoryLimitBytes() int64 {
	n, _ := ParseByteSize(r.MemoryLimit)
	return n
}

// ParseByteSize parses a size written as $GOMEMLIMIT is: a non-negative
// integer and a unit, B, KiB, MiB, GiB or TiB ("512MiB"). "" is 0.
func ParseByteSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		if num == "" || strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return 0, fmt.Errorf("%q: want an integer and a unit (B, KiB, MiB, GiB, TiB), e.g. 512MiB", s)
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64>>u.shift {
			return 0, fmt.Errorf("%q: too large", s)
		}
		return n << u.shift, nil
	}
	return 0, fmt.Errorf("%q: want an integer and a unit (B, KiB, MiB, GiB, TiB), e.g. 512MiB", s)
}

// Store configures persistence. Plans, tenants and roles of this file seed
// the store on first start; afterwards the store is the source of truth.
type Store struct {
	// DataDir is the Badger directory. Default "data" (relative to the
	// working directory). ":memory:" keeps state in memory only (nothing
	// survives a restart: benchmarks and demos).
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// Sync fsyncs every group commit before it is acknowledged. Default
	// true; false survives a process crash (kill -9) but not a power loss.
	Sync *bool `yaml:"sync" json:"sync"`
	// CommitInterval is the group-commit interval: state changes are
	// batched and written this long after the first of a batch (so at most
	// this often). Default 10ms; 1ms..1s.
	CommitInterval time.Duration `yaml:"commit_interval" json:"commit_interval"`
	// CheckpointInterval bounds how much of a running call's usage a crash
	// can lose: while answered calls are up, the store clock is committed
	// at least this often (with none up, nothing is). Default 1s;
	// >= commit_interval, <= 1m.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval" json:"checkpoint_interval"`
	// Retention: how long per-day usage rows, audit entries and
	// unpublished events are kept. Defaults 9600h (400 days), 9600h, 720h.
	Retention Retention `yaml:"retention" json:"retention"`
	// MemtableMiB is the size of Badger's memtable in MiB: written state
	// is kept in it (and in its memory-mapped log) until it is full and
	// flushed to a table on disk. A fixed cost of up to about 2.3 × this
	// much resident memory (twice that during a flush), which also raises
	// the collector's goal. Larger: fewer flushes and compactions, and a
	// larger largest transaction (15 % of it). Default 4; 1..512.
	MemtableMiB int `yaml:"memtable_mib" json:"memtable_mib"`
}

// Retention of stored history; each > 0 after defaults.
type Retention struct {
	Usage  time.Duration `yaml:"usage" json:"usage"`
	Audit  time.Duration `yaml:"audit" json:"audit"`
	Outbox time.Duration `yaml:"outbox" json:"outbox"`
}

// API configures the admin HTTP API.
type API struct {
	// Listen is the TCP address of the admin API, /metrics and the health
	// endpoints. Default 127.0.0.1:8080; "off" disables it.
	Listen string `yaml:"listen" json:"listen"`
	// Tokens are bearer tokens of the file: they follow it on every start
	// (created when missing, scope and secret updated; more are created
	// through the API, and those are the store's alone).
	Tokens []APIToken `yaml:"tokens" json:"tokens"`
	// MaxTenantSeries bounds the per-tenant active-calls series in
	// /metrics: the busiest N tenants get their own series, the rest are
	// summed under tenant="_other". Default 100; 0: totals only.
	MaxTenantSeries *int `yaml:"max_tenant_series" json:"max_tenant_series"`
}

// APIToken is a bearer token given in the config file.
type APIToken struct {
	// Name identifies the token in the audit log (letters, digits, - and _).
	Name string `yaml:"name" json:"name"`
	// Scope is admin | settings | billing | read.
	Scope string `yaml:"scope" json:"scope"`
	// TokenEnv names the environment variable holding the secret (read
	// at every start, at least 16 characters).
	TokenEnv string `yaml:"token_env" json:"token_env"`
	// TokenSHA256 is the hex SHA-256 of the secret. Exactly one of
	// token_env and token_sha256.
	TokenSHA256 string `yaml:"token_sha256" json:"token_sha256"`
}

// Log configures the process logger.
type Log struct {
	Level  string `yaml:"level" json:"level"`   // debug|info|warn|error, default info
	Format string `yaml:"format" json:"format"` // json|console, default json
}

// SIP configures the SIP edge.
type SIP struct {
	Listen          []Listen      `yaml:"listen" json:"listen"`                       // at least one
	Advertise       string        `yaml:"advertise" json:"advertise"`                 // host put in Via and Record-Route; default: the first listen address's IP (must not be unspecified 0.0.0.0 then -> error asking for advertise)
	TimerC          time.Duration `yaml:"timer_c" json:"timer_c"`                     // default 180s, must be > 0
	MaxCallDuration time.Duration `yaml:"max_call_duration" json:"max_call_duration"` // default 4h, must be > 0
	ShutdownGrace   time.Duration `yaml:"shutdown_grace" json:"shutdown_grace"`       // default 30s, >= 0
	// Flood configures flood protection: per-source request rates with
	// automatic blocks, and TCP/TLS connection caps (flood.go).
	Flood Flood `yaml:"flood" json:"flood"`
	// TLS holds the timeouts of every TLS connection, accepted by the tls
	// listener or dialled to a tls next hop. The certificates are on the
	// listener (sip.listen[].cert) and the hops (server_name, ca).
	TLS TLS `yaml:"tls" json:"tls"`
}

// TLS holds the timeouts of the SIP edge's TLS connections.
type TLS struct {
	// HandshakeTimeout bounds the TLS handshake of an accepted connection
	// (a client that connects and does not complete it is dropped), and
	// connect plus handshake of a dialled one. Default 5s, > 0.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" json:"handshake_timeout"`
	// IdleTimeout closes a TLS connection on which nothing was read or
	// written for this long, unless a call in progress uses it (its party
	// signals over it). Keep-alives (CRLF, RFC 5626) count as traffic.
	// Default 5m, > 0.
	IdleTimeout time.Duration `yaml:"idle_timeout" json:"idle_timeout"`
}

// Listen is one SIP listening socket.
type Listen struct {
	Transport string `yaml:"transport" json:"transport"` // udp|tcp|tls (lower-cased on load)
	Address   string `yaml:"address" json:"address"`     // host:port, IP literal host, port 1..65535
	// Cert is the PEM file (path relative to the working directory) of the
	// certificate chain a tls listener presents, leaf first; also the
	// client certificate presented to tls next hops that ask for one.
	// Required for transport tls, not allowed otherwise. Reloaded with Key
	// on SIGHUP.
	Cert string `yaml:"cert,omitempty" json:"cert,omitempty"`
	// Key is the PEM file of Cert's private key. Required with Cert.
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// ClientCA is an optional PEM file of CA certificates. When set, the
	// tls listener requires every client to present a certificate signed
	// by one of them (mutual TLS, e.g. with a carrier); connections
	// without one fail the handshake. Only for transport tls.
	ClientCA string `yaml:"client_ca,omitempty" json:"client_ca,omitempty"`
}

// Admission configures how admission decisions are answered and the
// engine-wide admission settings.
type Admission struct {
	// Reject maps a rejection cause (the Cause* constants) to the SIP code
	// and reason phrase sent back. Causes absent keep their default
	// (defaultRejects, docs/CONFIG.md).
	Reject map[string]Reject `yaml:"reject" json:"reject"`
	// ResumeOnRollover: at the start of a new month (UTC), lift the
	// suspensions caused by a monthly cap (minutes or spend). Manual
	// suspensions stay. Default true (ApplyDefaults); null = default.
	ResumeOnRollover *bool `yaml:"resume_on_rollover" json:"resume_on_rollover"`
}

// Reject is the SIP final response sent for a rejection cause.
type Reject struct {
	Code   int    `yaml:"code" json:"code"`     // 400..699
	Reason string `yaml:"reason" json:"reason"` // non-empty; default: the standard phrase for the code (see docs/CONFIG.md), else required
}

// Hop is a SIP next hop.
type Hop struct {
	Address   string `yaml:"address" json:"address"`     // host:port next hop (IP literal)
	Transport string `yaml:"transport" json:"transport"` // udp|tcp|tls, default udp
	// ServerName is the name a tls hop's certificate is verified against
	// and sent as SNI: a host name, or an IP literal (the certificate must
	// then list the IP). Default: the IP of Address. Only for transport
	// tls.
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	// CA is a PEM file of the CA certificates a tls hop's certificate must
	// chain to. Default: the system's roots. Only for transport tls.
	CA string `yaml:"ca,omitempty" json:"ca,omitempty"`
}

// Carrier is an upstream SIP trunk.
type Carrier struct {
	Name    string           `yaml:"name" json:"name"` // unique, non-empty
	Hop     `yaml:",inline"` // where outbound calls of tenants using this carrier go
	Sources []string         `yaml:"sources" json:"sources"` // CIDRs (or bare IPs = /32 or /128) the carrier sends from; default: the Hop address IP
}

// Limits are the limits of a plan (its defaults), of a tenant (its
// overrides) or of tenant_defaults.
//
// Count limits (*int64): -1 unlimited, 0 blocked, N cap, nil (null or
// absent) = unset. Every field unset in a tenant (or tenant_defaults)
// inherits the plan's value. Unset in a plan means unlimited: ApplyDefaults
// stores -1 (and alert_threshold_pct 80, auto_suspend false; cps_burst stays
// unset, see below). The effective limit is the tenant's value if set, else
// the plan's.
type Limits struct {
	// MaxParallelCalls caps the concurrent calls, inbound and outbound
	// together. Count limit.
	MaxParallelCalls *int64 `yaml:"max_parallel_calls" json:"max_parallel_calls"`
	// MaxParallelInbound caps the concurrent inbound calls (checked after
	// max_parallel_calls). Count limit.
	MaxParallelInbound *int64 `yaml:"max_parallel_inbound" json:"max_parallel_inbound"`
	// MaxParallelOutbound caps the concurrent outbound calls. Count limit.
	MaxParallelOutbound *int64 `yaml:"max_parallel_outbound" json:"max_parallel_outbound"`
	// MaxCallsPerSecond is the refill rate (new calls per second, inbound
	// and outbound) of the tenant's token bucket; 0 blocks every call.
	// Count limit.
	MaxCallsPerSecond *int64 `yaml:"max_calls_per_second" json:"max_calls_per_second"`
	// CPSBurst is the size of the token bucket: how many calls may arrive
	// at once after an idle period. 1..MaxCPS or nil; not a count limit
	// (no -1 or 0). Unset everywhere: max(1, rate), so a plan's unset burst
	// stays unset.
	CPSBurst *int64 `yaml:"cps_burst" json:"cps_burst"`
	// MaxMonthlyMinutes caps the billed minutes (inbound + outbound, answer
	// to end) per calendar month UTC. Count limit.
	MaxMonthlyMinutes *int64 `yaml:"max_monthly_minutes" json:"max_monthly_minutes"`
	// MonthlySpendLimit caps the rated cost of the calls per calendar month
	// UTC, in money (see Money): -1 (MoneyUnlimited) unlimited, 0 blocked,
	// nil inherit (plan: unlimited).
	MonthlySpendLimit *Money `yaml:"monthly_spend_limit" json:"monthly_spend_limit"`
	// AlertThresholdPct: one usage.threshold event per cap (minutes, spend,
	// role minutes) per month when usage reaches this percentage of it.
	// 1..100; nil inherit (plan: 80).
	AlertThresholdPct *int64 `yaml:"alert_threshold_pct" json:"alert_threshold_pct"`
	// AutoSuspend makes the minutes and spend caps hard: at the cap the
	// tenant's calls are cut and the tenant is suspended. Off: the caps only
	// emit events. nil inherit (plan: false).
	AutoSuspend *bool `yaml:"auto_suspend" json:"auto_suspend"`
	// MaxDIDs caps the DID prefixes assigned to the tenant (its dids). A
	// provisioning cap, checked when numbers are assigned, never at call
	// time: a change that raises the count past it is refused, lowering
	// it below the current count is not retroactive. Count limit
	// (0: no DIDs may be added).
	MaxDIDs *int64 `yaml:"max_dids" json:"max_dids"`
	// MaxUsers caps the distinct user identities listed on the tenant's
	// roles (roles[].users; patterns are not counted). A provisioning cap
	// as max_dids. Count limit.
	MaxUsers *int64 `yaml:"max_users" json:"max_users"`
	// Destinations enable (true) or disable (false) destination classes
	// (keys must be declared in destination_classes) for outbound calls. A
	// tenant's entry wins over its plan's; a class in neither is enabled.
	Destinations map[string]bool `yaml:"destinations" json:"destinations"`
}

// Plan holds the default limits and the rate table of the tenants on it.
type Plan struct {
	Name   string `yaml:"name" json:"name"` // unique, non-empty
	Limits Limits `yaml:"limits" json:"limits"`
	// Rates is the rate table: the row with the longest prefix of the
	// dialled number rates the call; a call no row matches costs 0.
	// Prefixes are unique within the plan.
	Rates []Rate `yaml:"rates" json:"rates"`
}

// Rate is one row of a plan's rate table.
type Rate struct {
	// Prefix of the normalised dialled number: digits with an optional
	// leading +, or "" (absent) for the default row that matches every
	// number.
	Prefix string `yaml:"prefix" json:"prefix"`
	// PerMinute is the price of one minute. Required; >= 0.
	PerMinute *Money `yaml:"per_minute" json:"per_minute"`
	// ConnectFee is charged once when the call is answered. >= 0, default 0.
	ConnectFee Money `yaml:"connect_fee" json:"connect_fee"`
	// Increments are the billing increments, "I/S" in seconds. Default
	// "60/60".
	Increments Increments `yaml:"increments" json:"increments"`
}

// Role caps each of its users individually. A user is a caller identity of
// the tenant: the From / P-Asserted-Identity user of an outbound call, the
// dialled DID of an inbound call. Role caps are independent of the
// tenant's: either can reject a call.
type Role struct {
	// Name is unique within the tenant (letters, digits, - and _).
	Name string `yaml:"name" json:"name"`
	// MaxParallelCalls caps each user's concurrent calls. Count limit;
	// nil (or -1) = no individual cap.
	MaxParallelCalls *int64 `yaml:"max_parallel_calls" json:"max_parallel_calls"`
	// MaxMonthlyMinutes caps each user's billed minutes per month (always
	// hard: reject and cut, never suspends the tenant). Count limit; nil
	// (or -1) = no individual cap.
	MaxMonthlyMinutes *int64 `yaml:"max_monthly_minutes" json:"max_monthly_minutes"`
	// Users are explicit identities on the role (exact match, checked
	// before any pattern). A user may be on one role of a tenant only.
	Users []string `yaml:"users" json:"users"`
	// Patterns are globs in path.Match syntax ("1555*", "sales-?", "[0-9]*")
	// matched against identities not listed in any role's users; the first
	// matching pattern, in role order, wins.
	Patterns []string `yaml:"patterns" json:"patterns"`
}

// Tenant is a customer: a PBX that sends outbound calls from Sources and
// receives the inbound calls for its DIDs at PBX.
type Tenant struct {
	Name    string   `yaml:"name" json:"name"`       // unique, non-empty
	Plan    string   `yaml:"plan" json:"plan"`       // must name a plan
	Carrier string   `yaml:"carrier" json:"carrier"` // must name a carrier: next hop for the tenant's outbound calls
	Sources []string `yaml:"sources" json:"sources"` // CIDRs / IPs the tenant's PBX sends from (outbound calls); at least one
	DIDs    []string `yaml:"dids" json:"dids"`       // number prefixes (digits, optional leading +, already normal) routed to this tenant for inbound calls
	PBX     Hop      `yaml:"pbx" json:"pbx"`         // where inbound calls go; required when DIDs are set
	Limits  Limits   `yaml:"limits" json:"limits"`   // overrides of the plan's limits
	Roles   []Role   `yaml:"roles" json:"roles"`     // per-user caps
}
