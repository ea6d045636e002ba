// Package configs holds the tollgate configuration: the structs a YAML config
// file decodes into, their defaults and their validation, plus the example
// configuration files shipped beside this file (every one of them is loaded
// by a test).
//
// The reference of every field is docs/CONFIG.md.
//
// Life cycle: Load (or Parse) strictly decodes the YAML (unknown fields are
// errors), then calls ApplyDefaults and Validate. A Config built in code must
// go through ApplyDefaults and Validate the same way before it is used.
// Every error names the field path, e.g.
//
//	configs/x.yaml: tenants[0].sources[1]: invalid CIDR "10.0.0.0/33": prefix length out of range (line 31)
package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/admission"
)

// Defaults applied by ApplyDefaults.
const (
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "json"
	DefaultTransport       = "udp"
	DefaultTimerC          = 180 * time.Second
	DefaultMaxCallDuration = 4 * time.Hour
	DefaultShutdownGrace   = 30 * time.Second
	// DefaultTLSHandshakeTimeout bounds a TLS connection's connect and
	// handshake (sip.tls.handshake_timeout).
	DefaultTLSHandshakeTimeout = 5 * time.Second
	// DefaultTLSIdleTimeout closes a TLS connection that carried nothing
	// for this long (sip.tls.idle_timeout).
	DefaultTLSIdleTimeout = 5 * time.Minute

	DefaultDataDir            = "data"
	MemoryDataDir             = ":memory:" // store.data_dir for the in-memory store
	DefaultCommitInterval     = 10 * time.Millisecond
	DefaultCheckpointInterval = time.Second
	DefaultMemtableMiB        = 4
	MinMemtableMiB            = 1
	MaxMemtableMiB            = 512
	DefaultUsageRetention     = 400 * 24 * time.Hour
	DefaultAuditRetention     = 400 * 24 * time.Hour
	DefaultOutboxRetention    = 30 * 24 * time.Hour
	DefaultAPIListen          = "127.0.0.1:8080"
	DefaultMaxTenantSeries    = 100
)

// DefaultAlertThresholdPct is the alert threshold of a plan that sets none.
const DefaultAlertThresholdPct = 80

// DefaultEmergencyNumbers are the emergency numbers when emergency_numbers
// is absent or null.
var DefaultEmergencyNumbers = []string{"112", "911"}

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

// defaultRejects are the SIP answers used for causes absent from
// admission.reject (the admission engine's defaults).
var defaultRejects = map[string]Reject{
	CauseParallelCalls:    {Code: 486, Reason: "Busy Here"},
	CauseParallelInbound:  {Code: 486, Reason: "Busy Here"},
	CauseParallelOutbound: {Code: 486, Reason: "Busy Here"},
	CauseCPS:              {Code: 503, Reason: "Service Unavailable"},
	CauseMinutes:          {Code: 403, Reason: "Forbidden"},
	CauseSpend:            {Code: 403, Reason: "Forbidden"},
	CauseDestination:      {Code: 403, Reason: "Forbidden"},
	CauseRoleParallel:     {Code: 486, Reason: "Busy Here"},
	CauseRoleMinutes:      {Code: 403, Reason: "Forbidden"},
	CauseSuspended:        {Code: 403, Reason: "Forbidden"},
	CauseSuspendedInbound: {Code: 480, Reason: "Temporarily Unavailable"},
	CauseLease:            {Code: 503, Reason: "Service Unavailable"},
}

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

// reasonPhrases are the standard reason phrases used when a Reject has a
// code but no reason (RFC 3261 §21 and later RFCs).
var reasonPhrases = map[int]string{
	400: "Bad Request",
	401: "Unauthorized",
	402: "Payment Required",
	403: "Forbidden",
	404: "Not Found",
	405: "Method Not Allowed",
	406: "Not Acceptable",
	407: "Proxy Authentication Required",
	408: "Request Timeout",
	410: "Gone",
	413: "Request Entity Too Large",
	414: "Request-URI Too Long",
	415: "Unsupported Media Type",
	416: "Unsupported URI Scheme",
	420: "Bad Extension",
	421: "Extension Required",
	423: "Interval Too Brief",
	480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist",
	482: "Loop Detected",
	483: "Too Many Hops",
	484: "Address Incomplete",
	485: "Ambiguous",
	486: "Busy Here",
	487: "Request Terminated",
	488: "Not Acceptable Here",
	491: "Request Pending",
	493: "Undecipherable",
	500: "Server Internal Error",
	501: "Not Implemented",
	502: "Bad Gateway",
	503: "Service Unavailable",
	504: "Server Time-out",
	505: "Version Not Supported",
	513: "Message Too Large",
	580: "Precondition Failure",
	600: "Busy Everywhere",
	603: "Decline",
	604: "Does Not Exist Anywhere",
	606: "Not Acceptable",
}

// maxReasonLen bounds a configured reason phrase (it goes into a status line
// and a Reason header).
const maxReasonLen = 128

// maxNameLen bounds carrier, plan and tenant names.
const maxNameLen = 64

// Load reads, strictly decodes (unknown fields are errors), applies defaults
// and validates the config file at path. Every error names the file and the
// field path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	return Parse(path, data)
}

// Parse does what Load does with the file content data; name is used in
// errors.
func Parse(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	idx, err := decodeDocument(name, data, cfg)
	if errors.Is(err, ErrEmptyDocument) {
		return nil, fmt.Errorf("%s: empty config", name)
	}
	if err != nil {
		return nil, err
	}

	// A zero duration written in the file is kept as written (ApplyDefaults
	// treats zero as unset): shutdown_grace: 0s is legal, timer_c: 0s fails.
	keep := map[*time.Duration]bool{}
	for path, d := range map[string]*time.Duration{
		"sip.timer_c":               &cfg.SIP.TimerC,
		"sip.max_call_duration":     &cfg.SIP.MaxCallDuration,
		"sip.shutdown_grace":        &cfg.SIP.ShutdownGrace,
		"sip.tls.handshake_timeout": &cfg.SIP.TLS.HandshakeTimeout,
		"sip.tls.idle_timeout":      &cfg.SIP.TLS.IdleTimeout,
		"media.rtp_timeout":         &cfg.Media.RTPTimeout,
		"media.hold_timeout":        &cfg.Media.HoldTimeout,
	} {
		if *d == 0 && idx.present(path) {
			keep[d] = true
		}
	}
	restoreFlood := cfg.SIP.Flood.keepWrittenZeros(idx.present)
	restoreNATS := cfg.NATS.keepWrittenZeros(idx.present)
	cfg.ApplyDefaults()
	for d := range keep {
		*d = 0
	}
	restoreFlood()
	restoreNATS()
	if err := cfg.Validate(); err != nil {
		return nil, idx.located(name, err)
	}
	if err := cfg.CheckProvisioningCaps(); err != nil {
		return nil, idx.located(name, err)
	}
	return cfg, nil
}

// ApplyDefaults fills every unset (zero) field with its default and
// normalises case (transports, log level and format are lower-cased). It is
// idempotent. Zero durations count as unset, so a Config built in code
// cannot ask for shutdown_grace 0 through ApplyDefaults; Parse keeps a 0s
// written in the file.
func (c *Config) ApplyDefaults() {
	if c.Node == "" {
		c.Node = DefaultNode()
	}
	c.NATS.applyDefaults()
	c.Cluster.applyDefaults(c.Node)
	c.Log.Level = strings.ToLower(c.Log.Level)
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	c.Log.Format = strings.ToLower(c.Log.Format)
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}

	for i := range c.SIP.Listen {
		c.SIP.Listen[i].Transport = strings.ToLower(c.SIP.Listen[i].Transport)
	}
	if c.SIP.Advertise == "" && len(c.SIP.Listen) > 0 {
		if ap, msg := parseAddrPort(c.SIP.Listen[0].Address); msg == "" && !ap.Addr().IsUnspecified() {
			c.SIP.Advertise = ap.Addr().WithZone("").String()
		}
	}
	if c.SIP.TimerC == 0 {
		c.SIP.TimerC = DefaultTimerC
	}
	if c.SIP.MaxCallDuration == 0 {
		c.SIP.MaxCallDuration = DefaultMaxCallDuration
	}
	if c.SIP.ShutdownGrace == 0 {
		c.SIP.ShutdownGrace = DefaultShutdownGrace
	}
	c.SIP.Flood.applyDefaults()
	c.Media.applyDefaults(c.SIP.Advertise)
	c.Announcement.applyDefaults()
	if c.SIP.TLS.HandshakeTimeout == 0 {
		c.SIP.TLS.HandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if c.SIP.TLS.IdleTimeout == 0 {
		c.SIP.TLS.IdleTimeout = DefaultTLSIdleTimeout
	}

	if c.Admission.Reject == nil {
		c.Admission.Reject = make(map[string]Reject, len(defaultRejects))
	}
	for cause, r := range defaultRejects {
		if _, ok := c.Admission.Reject[cause]; !ok {
			c.Admission.Reject[cause] = r
		}
	}
	for cause, r := range c.Admission.Reject {
		if r.Reason == "" {
			if p, ok := reasonPhrases[r.Code]; ok {
				r.Reason = p
				c.Admission.Reject[cause] = r
			}
		}
	}

	for i := range c.Carriers {
		cr := &c.Carriers[i]
		cr.Hop.applyDefaults()
		if len(cr.Sources) == 0 {
			if ap, msg := parseAddrPort(cr.Address); msg == "" {
				a := ap.Addr().WithZone("")
				cr.Sources = []string{netip.PrefixFrom(a, a.BitLen()).String()}
			}
		}
	}
	if c.Admission.ResumeOnRollover == nil {
		c.Admission.ResumeOnRollover = ptrTo(true)
	}
	if c.EmergencyNumbers == nil {
		c.EmergencyNumbers = slices.Clone(DefaultEmergencyNumbers)
	}
	for i := range c.Plans {
		c.Plans[i].Limits.applyPlanDefaults()
		for j := range c.Plans[i].Rates {
			if c.Plans[i].Rates[j].Increments == (Increments{}) {
				c.Plans[i].Rates[j].Increments = DefaultIncrements
			}
		}
	}
	for i := range c.Tenants {
		if c.Tenants[i].PBX.Address != "" {
			c.Tenants[i].PBX.applyDefaults()
		}
	}
	c.Store.applyDefaults()
	if c.API.Listen == "" {
		c.API.Listen = DefaultAPIListen
	}
	if c.API.MaxTenantSeries == nil {
		c.API.MaxTenantSeries = ptrTo(DefaultMaxTenantSeries)
	}
	for i := range c.API.Tokens {
		c.API.Tokens[i].Scope = strings.ToLower(c.API.Tokens[i].Scope)
	}
}

func (s *Store) applyDefaults() {
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.Sync == nil {
		s.Sync = ptrTo(true)
	}
	if s.CommitInterval == 0 {
		s.CommitInterval = DefaultCommitInterval
	}
	if s.CheckpointInterval == 0 {
		s.CheckpointInterval = DefaultCheckpointInterval
	}
	if s.MemtableMiB == 0 {
		s.MemtableMiB = DefaultMemtableMiB
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&s.Retention.Usage, DefaultUsageRetention}, {&s.Retention.Audit, DefaultAuditRetention}, {&s.Retention.Outbox, DefaultOutboxRetention}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

func (s *Store) validate() error {
	if s.CommitInterval < time.Millisecond || s.CommitInterval > time.Second {
		return errf("store.commit_interval", "must be between 1ms and 1s, got %s", s.CommitInterval)
	}
	if s.CheckpointInterval < s.CommitInterval || s.CheckpointInterval > time.Minute {
		return errf("store.checkpoint_interval", "must be between commit_interval (%s) and 1m, got %s", s.CommitInterval, s.CheckpointInterval)
	}
	if s.MemtableMiB < MinMemtableMiB || s.MemtableMiB > MaxMemtableMiB {
		return errf("store.memtable_mib", "must be between %d and %d, got %d", MinMemtableMiB, MaxMemtableMiB, s.MemtableMiB)
	}
	for _, r := range []struct {
		name string
		v    time.Duration
	}{{"usage", s.Retention.Usage}, {"audit", s.Retention.Audit}, {"outbox", s.Retention.Outbox}} {
		if r.v < time.Hour {
			return errf("store.retention."+r.name, "must be at least 1h, got %s", r.v)
		}
	}
	return nil
}

func (a *API) validate() error {
	if a.Listen != "off" {
		if _, msg := parseAddrPort(a.Listen); msg != "" {
			return errf("api.listen", "%s (or \"off\")", msg)
		}
	}
	if *a.MaxTenantSeries < 0 {
		return errf("api.max_tenant_series", "must be >= 0, got %d", *a.MaxTenantSeries)
	}
	names := make(map[string]int, len(a.Tokens))
	for i, t := range a.Tokens {
		p := fmt.Sprintf("api.tokens[%d]", i)
		if err := checkName(p, "token", t.Name, names); err != nil {
			return err
		}
		names[t.Name] = i
		switch t.Scope {
		case "admin", "settings", "billing", "read":
		default:
			return errf(p+".scope", "must be admin, settings, billing or read, got %q", t.Scope)
		}
		if (t.TokenEnv == "") == (t.TokenSHA256 == "") {
			return errf(p, "exactly one of token_env and token_sha256 is required")
		}
		if t.TokenSHA256 != "" {
			if b, err := hex.DecodeString(t.TokenSHA256); err != nil || len(b) != sha256.Size {
				return errf(p+".token_sha256", "must be 64 hex digits (the SHA-256 of the secret)")
			}
		}
	}
	return nil
}

// applyPlanDefaults stores the meaning of an unset plan limit: -1
// (unlimited) for count and money limits, 80 for alert_threshold_pct, false
// for auto_suspend. cps_burst stays unset (max(1, rate)) and destinations
// absent stay enabled.
func (l *Limits) applyPlanDefaults() {
	for _, p := range []**int64{&l.MaxParallelCalls, &l.MaxParallelInbound, &l.MaxParallelOutbound,
		&l.MaxCallsPerSecond, &l.MaxMonthlyMinutes, &l.MaxDIDs, &l.MaxUsers} {
		if *p == nil {
			*p = ptrTo(int64(-1))
		}
	}
	if l.MonthlySpendLimit == nil {
		l.MonthlySpendLimit = ptrTo(MoneyUnlimited)
	}
	if l.AlertThresholdPct == nil {
		l.AlertThresholdPct = ptrTo(int64(DefaultAlertThresholdPct))
	}
	if l.AutoSuspend == nil {
		l.AutoSuspend = ptrTo(false)
	}
}

func ptrTo[T any](v T) *T { return &v }

func (h *Hop) applyDefaults() {
	h.Transport = strings.ToLower(h.Transport)
	if h.Transport == "" {
		h.Transport = DefaultTransport
	}
}

// fieldError is a validation error about one field.
type fieldError struct {
	path string // e.g. "sip.listen[1].transport"; empty for the whole file
	msg  string
}

func (e *fieldError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// ErrEmptyDocument is returned by DecodeDocument for a file with no YAML
// document (empty or only comments).
var ErrEmptyDocument = errors.New("configs: empty document")

// Document is a YAML file decoded by DecodeDocument: it knows the line of
// every field path in it.
type Document struct{ idx *index }

// DecodeDocument strictly decodes data, one YAML document in the config
// file's shapes (a whole config, or e.g. only plans: and tenants:), into
// out. Unknown fields, values of the wrong type and fractional integers
// are errors naming the file, the field path and the line, as for the
// config file itself. It applies no defaults and validates nothing else.
func DecodeDocument(name string, data []byte, out any) (*Document, error) {
	idx, err := decodeDocument(name, data, out)
	if err != nil {
		return nil, err
	}
	return &Document{idx: idx}, nil
}

// Line returns the line of the field path in the document, or of its
// nearest enclosing field present (0 if none): for errors that name a
// field, such as the admin API's.
func (d *Document) Line(path string) int { return d.idx.line(path) }

func decodeDocument(name string, data []byte, out any) (*index, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", name, ErrEmptyDocument)
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, fmt.Errorf("%s: line %d: a config file holds exactly one YAML document", name, line)
	}
	idx := newIndex(&root)
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(out); err != nil {
		return nil, idx.decodeError(name, err)
	}
	if err := idx.checkFloats(); err != nil {
		return nil, idx.located(name, err)
	}
	return idx, nil
}

// FieldPath returns the field path and message of a validation error
// from Validate (path "" for the whole file); ok is false for other errors.
func FieldPath(err error) (path, msg string, ok bool) {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.path, fe.msg, true
	}
	return "", "", false
}

func errf(path, format string, args ...any) error {
	return &fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}

// Validate checks the whole config and returns the first error, naming the
// field path (e.g. `sip.listen[1].transport: must be udp, tcp or tls, got "sctp"`).
// It expects ApplyDefaults to have run. Its only I/O is reading the TLS
// files the config names (certificates, keys, CAs) and the NATS creds and
// NKey files, so that a missing or bad one is reported with its field path.
func (c *Config) Validate() error {
	if err := validateNode(c.Node); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return errf("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return errf("log.format", "must be json or console, got %q", c.Log.Format)
	}

	if err := c.SIP.validate(); err != nil {
		return err
	}
	if err := c.Media.validate(); err != nil {
		return err
	}
	if err := c.Announcement.validate(); err != nil {
		return err
	}
	if err := c.Admission.validate(); err != nil {
		return err
	}
	if err := c.validateEmergencyNumbers(); err != nil {
		return err
	}
	if err := c.validateDestinationClasses(); err != nil {
		return err
	}
	if err := c.TenantDefaults.validate("tenant_defaults", c.DestinationClasses); err != nil {
		return err
	}

	if len(c.Carriers) == 0 {
		return errf("carriers", "at least one carrier is required")
	}
	carriers := make(map[string]int, len(c.Carriers))
	for i, cr := range c.Carriers {
		p := fmt.Sprintf("carriers[%d]", i)
		if err := checkName(p, "carrier", cr.Name, carriers); err != nil {
			return err
		}
		carriers[cr.Name] = i
		if err := cr.Hop.validate(p); err != nil {
			return err
		}
		if err := c.SIP.needListener(p+".transport", cr.Transport); err != nil {
			return err
		}
		if len(cr.Sources) == 0 {
			return errf(p+".sources", "at least one source is required")
		}
		for j, s := range cr.Sources {
			if _, msg := parseSource(s); msg != "" {
				return errf(fmt.Sprintf("%s.sources[%d]", p, j), "%s", msg)
			}
		}
	}

	plans := make(map[string]int, len(c.Plans))
	for i, pl := range c.Plans {
		p := fmt.Sprintf("plans[%d]", i)
		if err := checkName(p, "plan", pl.Name, plans); err != nil {
			return err
		}
		plans[pl.Name] = i
		if err := pl.Limits.validate(p+".limits", c.DestinationClasses); err != nil {
			return err
		}
		if err := validateRates(p+".rates", pl.Rates); err != nil {
			return err
		}
	}

	tenants := make(map[string]int, len(c.Tenants))
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		if err := checkName(p, "tenant", t.Name, tenants); err != nil {
			return err
		}
		tenants[t.Name] = i
		if t.Plan == "" {
			return errf(p+".plan", "required (one of: %s)", namesOf(plans))
		}
		if _, ok := plans[t.Plan]; !ok {
			return errf(p+".plan", "unknown plan %q (plans: %s)", t.Plan, namesOf(plans))
		}
		if t.Carrier == "" {
			return errf(p+".carrier", "required (one of: %s)", namesOf(carriers))
		}
		if _, ok := carriers[t.Carrier]; !ok {
			return errf(p+".carrier", "unknown carrier %q (carriers: %s)", t.Carrier, namesOf(carriers))
		}
		if len(t.Sources) == 0 {
			return errf(p+".sources", "at least one source is required (the addresses the tenant's PBX sends from)")
		}
		for j, s := range t.Sources {
			if _, msg := parseSource(s); msg != "" {
				return errf(fmt.Sprintf("%s.sources[%d]", p, j), "%s", msg)
			}
		}
		for j, d := range t.DIDs {
			if !validDID(d) {
				pp := fmt.Sprintf("%s.dids[%d]", p, j)
				if err := notNormalised(pp, d, validDID); err != nil {
					return err
				}
				return errf(pp, "must be digits with an optional leading +, got %q", d)
			}
		}
		if len(t.DIDs) > 0 && t.PBX.Address == "" {
			return errf(p+".pbx.address", "required when dids are set (where inbound calls go)")
		}
		if t.PBX != (Hop{}) {
			if err := t.PBX.validate(p + ".pbx"); err != nil {
				return err
			}
			if err := c.SIP.needListener(p+".pbx.transport", t.PBX.Transport); err != nil {
				return err
			}
		}
		if err := t.Limits.validate(p+".limits", c.DestinationClasses); err != nil {
			return err
		}
		if err := validateRoles(p+".roles", t.Roles); err != nil {
			return err
		}
	}

	if err := c.checkSourceOverlaps(); err != nil {
		return err
	}
	if err := c.checkDIDs(); err != nil {
		return err
	}
	if err := c.Store.validate(); err != nil {
		return err
	}
	if err := c.API.validate(); err != nil {
		return err
	}
	if err := c.Debug.validate(c.API.Listen); err != nil {
		return err
	}
	if err := c.Runtime.validate(); err != nil {
		return err
	}
	if err := c.NATS.validate(); err != nil {
		return err
	}
	return c.Cluster.validate(&c.NATS)
}

func (d *Debug) validate(apiListen string) error {
	if d.Listen == "" {
		return nil
	}
	ap, msg := parseAddrPort(d.Listen)
	if msg != "" {
		return errf("debug.listen", "%s (or empty: off)", msg)
	}
	if api, msg := parseAddrPort(apiListen); msg == "" && api.Port() == ap.Port() &&
		(api.Addr() == ap.Addr() || api.Addr().IsUnspecified() || ap.Addr().IsUnspecified()) {
		return errf("debug.listen", "%s is the admin API's address (api.listen %s): profiling has its own listener", d.Listen, apiListen)
	}
	return nil
}

func (r *Runtime) validate() error {
	limit, err := ParseByteSize(r.MemoryLimit)
	if err != nil {
		return errf("runtime.memory_limit", "%s", err.Error())
	}
	if r.MemoryLimit != "" && limit < MinMemoryLimit {
		return errf("runtime.memory_limit", "must be at least 16MiB, got %s", r.MemoryLimit)
	}
	if r.GOGC != nil {
		switch g := *r.GOGC; {
		case g == -1:
			if r.MemoryLimit == "" {
				return errf("runtime.gogc", "-1 (collector off) needs runtime.memory_limit, or the heap grows without bound")
			}
		case g < 1 || g > MaxGOGC:
			return errf("runtime.gogc", "must be -1 (off, with memory_limit) or 1..%d, got %d", MaxGOGC, g)
		}
	}
	return nil
}

func (s *SIP) validate() error {
	if len(s.Listen) == 0 {
		return errf("sip.listen", "at least one listen entry is required (e.g. {transport: udp, address: 127.0.0.1:5060})")
	}
	type key struct {
		transport string
		addr      netip.AddrPort
	}
	seen := make(map[key]int, len(s.Listen))
	transports := make(map[string]int, len(s.Listen))
	for i, l := range s.Listen {
		p := fmt.Sprintf("sip.listen[%d]", i)
		if err := checkTransport(p+".transport", l.Transport); err != nil {
			return err
		}
		ap, msg := parseAddrPort(l.Address)
		if msg != "" {
			return errf(p+".address", "%s", msg)
		}
		k := key{l.Transport, ap}
		if j, dup := seen[k]; dup {
			return errf(p, "duplicate listen entry %s %s (same as sip.listen[%d])", l.Transport, l.Address, j)
		}
		seen[k] = i
		if j, dup := transports[l.Transport]; dup {
			return errf(p+".transport", "a second %s listener (sip.listen[%d] is one): the gateway serves one listener per transport", l.Transport, j)
		}
		transports[l.Transport] = i
		if err := l.validateTLS(p); err != nil {
			return err
		}
	}
	if s.Advertise == "" {
		if ap, _ := parseAddrPort(s.Listen[0].Address); !ap.Addr().IsUnspecified() {
			return errf("sip.advertise", "required (ApplyDefaults sets it from sip.listen[0].address)")
		}
		return errf("sip.advertise", "required because sip.listen[0].address %q is unspecified: set the IP or host name peers reach the gateway at (put in Via and Record-Route)", s.Listen[0].Address)
	}
	if msg := checkAdvertise(s.Advertise); msg != "" {
		return errf("sip.advertise", "%s", msg)
	}
	if s.TimerC <= 0 {
		return errf("sip.timer_c", "must be > 0, got %s", s.TimerC)
	}
	if s.MaxCallDuration <= 0 {
		return errf("sip.max_call_duration", "must be > 0, got %s", s.MaxCallDuration)
	}
	if s.ShutdownGrace < 0 {
		return errf("sip.shutdown_grace", "must be >= 0, got %s", s.ShutdownGrace)
	}
	if err := s.Flood.validate(); err != nil {
		return err
	}
	return s.TLS.validate()
}

func (a *Admission) validate() error {
	causes := make([]string, 0, len(a.Reject))
	for cause := range a.Reject {
		causes = append(causes, cause)
	}
	sort.Strings(causes) // deterministic "first" error
	for _, cause := range causes {
		r := a.Reject[cause]
		p := "admission.reject." + cause
		if _, ok := defaultRejects[cause]; !ok {
			return errf(p, "unknown rejection cause %q (allowed: %s)", cause, strings.Join(knownCauses(), ", "))
		}
		if r.Code < 400 || r.Code > 699 {
			return errf(p+".code", "must be a SIP error code 400..699, got %d", r.Code)
		}
		if r.Reason == "" {
			return errf(p+".reason", "required: code %d has no standard reason phrase", r.Code)
		}
		if len(r.Reason) > maxReasonLen {
			return errf(p+".reason", "must be at most %d bytes, got %d", maxReasonLen, len(r.Reason))
		}
		if !utf8.ValidString(r.Reason) || strings.IndexFunc(r.Reason, unicode.IsControl) >= 0 {
			return errf(p+".reason", "must be printable UTF-8 text without control characters, got %q", r.Reason)
		}
	}
	return nil
}

func knownCauses() []string {
	out := make([]string, 0, len(defaultRejects))
	for c := range defaultRejects {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func (h Hop) validate(path string) error {
	ap, msg := parseAddrPort(h.Address)
	if msg != "" {
		return errf(path+".address", "%s", msg)
	}
	if ap.Addr().IsUnspecified() {
		return errf(path+".address", "must be a reachable IP, not the unspecified address %s", ap.Addr())
	}
	if err := checkTransport(path+".transport", h.Transport); err != nil {
		return err
	}
	return h.validateTLS(path)
}

// needListener checks that the gateway listens on the transport it uses
// toward a next hop: its Via and Record-Route name that listener, so the
// peer's responses and in-dialog requests come back to it.
func (s SIP) needListener(path, transport string) error {
	for _, l := range s.Listen {
		if l.Transport == transport {
			return nil
		}
	}
	return errf(path, "is %s, but sip.listen has no %s listener for the peer to answer to", transport, transport)
}

// validate checks the limits at path (e.g. "plans[0].limits"); classes are
// the declared destination classes.
func (l Limits) validate(path string, classes map[string][]string) error {
	for _, f := range []struct {
		name  string
		v     *int64
		upper int64
	}{
		{"max_parallel_calls", l.MaxParallelCalls, MaxParallel},
		{"max_parallel_inbound", l.MaxParallelInbound, MaxParallel},
		{"max_parallel_outbound", l.MaxParallelOutbound, MaxParallel},
		{"max_calls_per_second", l.MaxCallsPerSecond, MaxCPS},
		{"max_monthly_minutes", l.MaxMonthlyMinutes, MaxMonthlyMinutes},
		{"max_dids", l.MaxDIDs, MaxProvisioned},
		{"max_users", l.MaxUsers, MaxProvisioned},
	} {
		if err := checkCount(path+"."+f.name, f.v, f.upper); err != nil {
			return err
		}
	}
	if v := l.CPSBurst; v != nil && (*v < 1 || *v > MaxCPS) {
		return errf(path+".cps_burst", "must be 1..%d calls (the bucket size; null: max(1, max_calls_per_second)), got %d", int64(MaxCPS), *v)
	}
	if m := l.MonthlySpendLimit; m != nil && (*m < 0 && *m != MoneyUnlimited || *m > MaxMoney) {
		return errf(path+".monthly_spend_limit", "must be -1 (unlimited), 0 (blocked) or a positive amount up to %s, got %s", MaxMoney, *m)
	}
	if v := l.AlertThresholdPct; v != nil && (*v < 1 || *v > 100) {
		return errf(path+".alert_threshold_pct", "must be 1..100 (percent of a cap), got %d", *v)
	}
	if len(l.Destinations) > 0 {
		names := make([]string, 0, len(l.Destinations))
		for class := range l.Destinations {
			names = append(names, class)
		}
		sort.Strings(names)
		for _, class := range names {
			if _, ok := classes[class]; !ok {
				return errf(path+".destinations."+class, "unknown destination class %q (declared in destination_classes: %s)", class, classNames(classes))
			}
		}
	}
	return nil
}

// Upper bounds of limits, the admission engine's (they keep its int64
// arithmetic exact).
const (
	MaxParallel       = 1<<62 - 1     // max_parallel_calls, _inbound, _outbound
	MaxCPS            = 1_000_000_000 // max_calls_per_second, cps_burst
	MaxMonthlyMinutes = 100_000_000   // max_monthly_minutes (tenants and roles)
	MaxProvisioned    = 1_000_000_000 // max_dids, max_users (provisioning caps)
)

// MaxMoney bounds money amounts: spend limits, prices and fees (10^9 units).
const MaxMoney Money = 1_000_000_000 * MicrosPerUnit

// checkCount checks a count limit: nil, -1, 0 or 0 < N <= upper.
func checkCount(path string, v *int64, upper int64) error {
	if v != nil && *v < -1 {
		return errf(path, "must be -1 (unlimited), 0 (blocked) or a positive cap, got %d", *v)
	}
	if v != nil && *v > upper {
		return errf(path, "must be at most %d, got %d", upper, *v)
	}
	return nil
}

func classNames(classes map[string][]string) string {
	if len(classes) == 0 {
		return "none"
	}
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// validateEmergencyNumbers: digits with an optional leading +, each once.
func (c *Config) validateEmergencyNumbers() error {
	seen := make(map[string]int, len(c.EmergencyNumbers))
	for i, n := range c.EmergencyNumbers {
		p := fmt.Sprintf("emergency_numbers[%d]", i)
		if !validDID(n) {
			if err := notNormalised(p, n, validDID); err != nil {
				return err
			}
			return errf(p, "must be digits with an optional leading +, got %q", n)
		}
		if j, dup := seen[n]; dup {
			return errf(p, "duplicate emergency number %q (same as emergency_numbers[%d])", n, j)
		}
		seen[n] = i
	}
	return nil
}

// validateDestinationClasses: class names as tenant names; prefixes are
// digits with an optional leading + ("+" alone matches every number
// written with +), and a prefix belongs to one class only. Classes are
// checked in name order, so the first error is deterministic.
func (c *Config) validateDestinationClasses() error {
	names := make([]string, 0, len(c.DestinationClasses))
	for n := range c.DestinationClasses {
		names = append(names, n)
	}
	sort.Strings(names)
	type at struct {
		class string
		i     int
	}
	seen := map[string]at{}
	for _, class := range names {
		p := "destination_classes." + class
		if msg := checkNameSyntax(class); msg != "" {
			return errf(p, "class name %s", msg)
		}
		prefixes := c.DestinationClasses[class]
		if len(prefixes) == 0 {
			return errf(p, "at least one number prefix is required (e.g. [\"00\", \"+\"])")
		}
		for i, pre := range prefixes {
			pp := fmt.Sprintf("%s[%d]", p, i)
			if !validPrefix(pre) {
				if err := notNormalised(pp, pre, validPrefix); err != nil {
					return err
				}
				return errf(pp, "must be digits with an optional leading + (or \"+\" alone), got %q", pre)
			}
			if prev, dup := seen[pre]; dup {
				return errf(pp, "prefix %q is already in destination_classes.%s[%d] (class %q); a prefix belongs to one class", pre, prev.class, prev.i, prev.class)
			}
			seen[pre] = at{class, i}
		}
	}
	return nil
}

// validateRates checks a plan's rate table at path ("plans[0].rates").
func validateRates(path string, rates []Rate) error {
	seen := make(map[string]int, len(rates))
	for i, r := range rates {
		p := fmt.Sprintf("%s[%d]", path, i)
		if r.Prefix != "" && !validPrefix(r.Prefix) {
			if err := notNormalised(p+".prefix", r.Prefix, validPrefix); err != nil {
				return err
			}
			return errf(p+".prefix", "must be digits with an optional leading +, or empty for the default row, got %q", r.Prefix)
		}
		if j, dup := seen[r.Prefix]; dup {
			what := fmt.Sprintf("prefix %q", r.Prefix)
			if r.Prefix == "" {
				what = "default row (empty prefix)"
			}
			return errf(p+".prefix", "duplicate %s (same as %s[%d]); a prefix appears once per plan", what, path, j)
		}
		seen[r.Prefix] = i
		if r.PerMinute == nil {
			return errf(p+".per_minute", "required (the price of one minute, e.g. 0.012)")
		}
		if *r.PerMinute < 0 || *r.PerMinute > MaxMoney {
			return errf(p+".per_minute", "must be an amount 0..%s, got %s", MaxMoney, *r.PerMinute)
		}
		if r.ConnectFee < 0 || r.ConnectFee > MaxMoney {
			return errf(p+".connect_fee", "must be an amount 0..%s, got %s", MaxMoney, r.ConnectFee)
		}
		if msg := r.Increments.check(); msg != "" {
			return errf(p+".increments", "invalid increments %q: %s", r.Increments, msg)
		}
	}
	return nil
}

// maxUserLen bounds a role user identity (a SIP user part).
const maxUserLen = 128

// validateRoles checks a tenant's roles at base ("tenants[0].roles").
func validateRoles(base string, roles []Role) error {
	names := make(map[string]int, len(roles))
	type at struct{ role, i int }
	users := map[string]at{}
	for i, r := range roles {
		p := fmt.Sprintf("%s[%d]", base, i)
		if r.Name == "" {
			return errf(p+".name", "required")
		}
		if msg := checkNameSyntax(r.Name); msg != "" {
			return errf(p+".name", "%s", msg)
		}
		if j, dup := names[r.Name]; dup {
			return errf(p+".name", "duplicate role name %q (already used by %s[%d])", r.Name, base, j)
		}
		names[r.Name] = i
		if err := checkCount(p+".max_parallel_calls", r.MaxParallelCalls, MaxParallel); err != nil {
			return err
		}
		if err := checkCount(p+".max_monthly_minutes", r.MaxMonthlyMinutes, MaxMonthlyMinutes); err != nil {
			return err
		}
		for j, u := range r.Users {
			up := fmt.Sprintf("%s.users[%d]", p, j)
			if u == "" || len(u) > maxUserLen || !utf8.ValidString(u) || strings.IndexFunc(u, unicode.IsSpace) >= 0 || strings.IndexFunc(u, unicode.IsControl) >= 0 {
				return errf(up, "must be a user identity of 1..%d printable characters without spaces, got %q", maxUserLen, u)
			}
			if prev, dup := users[u]; dup {
				if prev.role == i {
					return errf(up, "user %q listed twice (same as %s[%d].users[%d])", u, base, prev.role, prev.i)
				}
				return errf(up, "user %q is already on role %q (%s[%d].users[%d]); a user may be on one role of a tenant", u, roles[prev.role].Name, base, prev.role, prev.i)
			}
			users[u] = at{i, j}
		}
		for j, pat := range r.Patterns {
			pp := fmt.Sprintf("%s.patterns[%d]", p, j)
			if pat == "" {
				return errf(pp, "must not be empty")
			}
			if _, err := path.Match(pat, ""); err != nil {
				return errf(pp, "invalid glob %q: %v (path.Match syntax: * ? [a-z] [^0-9] and \\ to escape)", pat, err)
			}
		}
	}
	return nil
}

// notNormalised explains a number (or number prefix) at path that is not in
// the normal form dialled numbers are compared in: when
// admission.NormalizeNumber turns s into a valid value it names that value
// ("1-900" is not a normalised number; write "1900"). Config values are
// never rewritten: what the file, the store and the API show is what is
// matched. It returns nil when normalising does not help, and the caller
// reports its own message.
func notNormalised(path, s string, valid func(string) bool) error {
	if n := admission.NormalizeNumber(s); n != s && valid(n) {
		return errf(path, "%q is not a normalised number; write %q", s, n)
	}
	return nil
}

// validPrefix: digits with an optional leading + ("+" alone is allowed).
func validPrefix(s string) bool {
	return s != "" && allDigits(strings.TrimPrefix(s, "+"))
}

func checkTransport(path, t string) error {
	switch t {
	case "udp", "tcp", "tls":
		return nil
	}
	return errf(path, "must be udp, tcp or tls, got %q", t)
}

// checkName checks a carrier, plan or tenant name: non-empty, unique within
// its kind, and usable as a NATS subject token and a metric label
// (letters, digits, '-' and '_').
func checkName(path, kind, name string, seen map[string]int) error {
	if name == "" {
		return errf(path+".name", "required")
	}
	if msg := checkNameSyntax(name); msg != "" {
		return errf(path+".name", "%s", msg)
	}
	if j, dup := seen[name]; dup {
		return errf(path+".name", "duplicate %s name %q (already used by %ss[%d])", kind, name, kind, j)
	}
	return nil
}

// checkNameSyntax returns why name is not a valid carrier, plan, tenant,
// role or destination class name, "" if it is valid.
func checkNameSyntax(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > maxNameLen {
		return fmt.Sprintf("must be at most %d characters, got %d", maxNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return fmt.Sprintf("must contain only letters, digits, '-' and '_', got %q", name)
		}
	}
	return ""
}

func namesOf(m map[string]int) string {
	if len(m) == 0 {
		return "none defined"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return m[names[i]] < m[names[j]] })
	return strings.Join(names, ", ")
}

func validDID(d string) bool {
	d = strings.TrimPrefix(d, "+")
	if d == "" {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// parseAddrPort parses an "IP:port" string with an IP literal host and a
// port in 1..65535. It returns a readable message on failure.
func parseAddrPort(s string) (netip.AddrPort, string) {
	if s == "" {
		return netip.AddrPort{}, "required (IP:port, e.g. 192.0.2.10:5060 or [2001:db8::1]:5060)"
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("must be IP:port (IPv6 in brackets, e.g. [2001:db8::1]:5060), got %q", s)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("host must be an IP address (host names are not resolved), got %q", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return netip.AddrPort{}, fmt.Sprintf("port must be 1..65535, got %q", s)
	}
	return netip.AddrPortFrom(addr, uint16(n)), ""
}

// parseSource parses a CIDR or a bare IP (a /32 or /128). The prefix must be
// in canonical form (no host bits set) and written in its native family.
func parseSource(s string) (netip.Prefix, string) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q%s", s, reasonOf(err))
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: IPv4-mapped IPv6, write the IPv4 form", s)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: host bits set (did you mean %s?)", s, m)
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: neither a CIDR nor an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: IPv6 zones are not allowed", s)
	}
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("invalid CIDR %q: IPv4-mapped IPv6, write the IPv4 form", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// reasonOf extracts the reason of a net/netip parse error
// (`netip.ParsePrefix("x"): reason` -> ": reason").
func reasonOf(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "): "); i >= 0 {
		return ": " + msg[i+3:]
	}
	return ""
}

// checkAdvertise accepts an IP address (not unspecified) or a host name,
// without port.
func checkAdvertise(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.IsUnspecified() {
			return fmt.Sprintf("must be a reachable IP or host name, not the unspecified address %s", s)
		}
		return ""
	}
	if len(s) > 253 {
		return fmt.Sprintf("host name too long (%d > 253)", len(s))
	}
	for _, label := range strings.Split(s, ".") {
		ok := label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-'
		for i := 0; ok && i < len(label); i++ {
			b := label[i]
			ok = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-'
		}
		if !ok {
			return fmt.Sprintf("must be an IP address or a host name without port, got %q", s)
		}
	}
	return ""
}

// Prefixes parses the sources (already validated) into netip.Prefix values.
// Invalid entries are skipped.
func (c Carrier) Prefixes() []netip.Prefix { return prefixes(c.Sources) }

// Prefixes parses the sources (already validated) into netip.Prefix values.
// Invalid entries are skipped.
func (t Tenant) Prefixes() []netip.Prefix { return prefixes(t.Sources) }

func prefixes(sources []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(sources))
	for _, s := range sources {
		if p, msg := parseSource(s); msg == "" {
			out = append(out, p.Masked())
		}
	}
	return out
}

// checkSourceOverlaps makes source classification unambiguous: no two source
// prefixes (of any carriers and tenants, or within one of them) may overlap.
// It sorts the prefixes and sweeps them with a stack of enclosing prefixes,
// so it runs in O(n log n) for n sources. Of all overlapping pairs it
// reports the one whose later entry comes first in the file.
func (c *Config) checkSourceOverlaps() error {
	type src struct {
		p      netip.Prefix
		order  int32 // position in the file: carriers first, then tenants
		i, j   int32 // carriers[i].sources[j] or tenants[i].sources[j]
		tenant bool
	}
	path := func(s src) string {
		if s.tenant {
			return fmt.Sprintf("tenants[%d].sources[%d]", s.i, s.j)
		}
		return fmt.Sprintf("carriers[%d].sources[%d]", s.i, s.j)
	}
	owner := func(s src) string {
		if s.tenant {
			return fmt.Sprintf("tenant %q", c.Tenants[s.i].Name)
		}
		return fmt.Sprintf("carrier %q", c.Carriers[s.i].Name)
	}
	n := 0
	for _, cr := range c.Carriers {
		n += len(cr.Sources)
	}
	for _, t := range c.Tenants {
		n += len(t.Sources)
	}
	all := make([]src, 0, n)
	add := func(tenant bool, i int, sources []string) {
		for j, s := range sources {
			p, _ := parseSource(s)
			all = append(all, src{p: p, order: int32(len(all)), i: int32(i), j: int32(j), tenant: tenant})
		}
	}
	for i, cr := range c.Carriers {
		add(false, i, cr.Sources)
	}
	for i, t := range c.Tenants {
		add(true, i, t.Sources)
	}
	slices.SortFunc(all, func(a, b src) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
	var stack []src
	var bestA, bestB src // bestB is the later one in file order
	found := false
	for _, s := range all {
		for len(stack) > 0 && !stack[len(stack)-1].p.Contains(s.p.Addr()) {
			stack = stack[:len(stack)-1]
		}
		// Every prefix left on the stack contains s.
		for _, o := range stack {
			a, b := o, s
			if a.order > b.order {
				a, b = b, a
			}
			if !found || b.order < bestB.order || b.order == bestB.order && a.order < bestA.order {
				bestA, bestB, found = a, b, true
			}
		}
		stack = append(stack, s)
	}
	if found {
		return errf(path(bestB), "%s overlaps %s (%s of %s); a source must belong to exactly one carrier or tenant", bestB.p, path(bestA), bestA.p, owner(bestA))
	}
	return nil
}

// checkDIDs makes inbound classification unambiguous: a DID prefix may be
// claimed once. (Different prefixes such as "+1555" and "+15551" may belong
// to different tenants: the longest match wins.)
func (c *Config) checkDIDs() error {
	type claim struct{ i, j int }
	seen := map[string]claim{}
	for i, t := range c.Tenants {
		for j, d := range t.DIDs {
			if prev, dup := seen[d]; dup {
				return errf(fmt.Sprintf("tenants[%d].dids[%d]", i, j), "DID prefix %q already claimed by tenants[%d].dids[%d] (tenant %q)",
					d, prev.i, prev.j, c.Tenants[prev.i].Name)
			}
			seen[d] = claim{i, j}
		}
	}
	return nil
}

// --- locating decode and validation errors in the YAML source ---

// entry is one mapping key or sequence item of the YAML document.
type entry struct {
	path string
	line int
	key  string // mapping key; "" for a sequence item
	val  *yaml.Node
}

type index struct {
	entries []entry
	byPath  map[string]int // path -> index in entries (first occurrence)
}

func newIndex(root *yaml.Node) *index {
	idx := &index{byPath: map[string]int{}}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	idx.walk(n, "")
	return idx
}

func (idx *index) add(e entry) {
	if _, ok := idx.byPath[e.path]; !ok {
		idx.byPath[e.path] = len(idx.entries)
	}
	idx.entries = append(idx.entries, e)
}

func (idx *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx.add(entry{path: p, line: k.Line, key: k.Value, val: v})
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			idx.add(entry{path: p, line: v.Line, val: v})
			idx.walk(v, p)
		}
	}
}

// present reports whether path is set to a non-null value in the file.
func (idx *index) present(path string) bool {
	i, ok := idx.byPath[path]
	return ok && idx.entries[i].val.Tag != "!!null"
}

// line returns the line of path or of its nearest ancestor present in the
// file (defaults have no line of their own), 0 if none.
func (idx *index) line(path string) int {
	for path != "" {
		if i, ok := idx.byPath[path]; ok {
			return idx.entries[i].line
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

// located formats a validation error with the file name and the line.
func (idx *index) located(name string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		if l := idx.line(fe.path); l > 0 {
			return fmt.Errorf("%s: %s (line %d)", name, fe, l)
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// checkFloats rejects fractional numbers for integer fields, which yaml.v3
// would silently truncate.
func (idx *index) checkFloats() error {
	for _, e := range idx.entries {
		if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!float" {
			continue
		}
		if t := typeAt(e.path); t != nil && t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64 && t != durationType && t != moneyType {
			return errf(e.path, "expected an integer, got %s", e.val.Value)
		}
	}
	return nil
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	moneyType    = reflect.TypeOf(Money(0))
	columnRe     = regexp.MustCompile(`^column (\d+): (.*)$`)
	lineRe       = regexp.MustCompile(`^line (\d+): (.*)$`)
	notFoundRe   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	alreadySetRe = regexp.MustCompile(`^field (\S+) already set in type (\S+)$`)
	dupKeyRe     = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	unmarshalRe  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// decodeError turns a yaml.v3 decode error into one naming the file, the
// field path and the line.
func (idx *index) decodeError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msg := idx.readable(te.Errors[0])
	if n := len(te.Errors) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more decode error%s)", n, plural(n))
	}
	return fmt.Errorf("%s: %s", name, msg)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// readable rewrites one yaml.v3 type error message, e.g.
// "line 12: field foo not found in type configs.SIP" becomes
// `sip.foo: unknown field "foo" (sip accepts: listen, ...) (line 12)`.
func (idx *index) readable(raw string) string {
	m := lineRe.FindStringSubmatch(raw)
	if m == nil {
		return raw
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	var (
		path string
		msg  = rest
	)
	if sm := columnRe.FindStringSubmatch(rest); sm != nil {
		// From a custom UnmarshalYAML (valueError): the value's position.
		col, _ := strconv.Atoi(sm[1])
		msg = sm[2]
		for _, e := range idx.entries {
			if e.val.Line == line && e.val.Column == col {
				path = e.path
				break
			}
		}
	} else if sm := notFoundRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("unknown field %q", sm[1])
		if known := knownFields(sm[2]); len(known) > 0 {
			msg += fmt.Sprintf(" (allowed here: %s)", strings.Join(known, ", "))
		}
	} else if sm := alreadySetRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("field %q set twice", sm[1])
	} else if sm := dupKeyRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("duplicate key %q (first defined at line %s)", sm[1], sm[2])
	} else if sm := unmarshalRe.FindStringSubmatch(rest); sm != nil {
		tag, val, target := sm[1], strings.TrimSuffix(sm[2], "..."), sm[3]
		var node *yaml.Node
		path = idx.find(line, func(e entry) bool {
			switch tag {
			case "!!seq":
				return e.val.Kind == yaml.SequenceNode
			case "!!map":
				return e.val.Kind == yaml.MappingNode
			}
			return e.val.Kind == yaml.ScalarNode && strings.HasPrefix(e.val.Value, val)
		})
		if i, ok := idx.byPath[path]; ok && path != "" {
			node = idx.entries[i].val
		}
		got := "a " + strings.TrimPrefix(tag, "!!") + " value"
		switch {
		case tag == "!!seq":
			got = "a list"
		case tag == "!!map":
			got = "a mapping"
		case node != nil:
			got = strconv.Quote(node.Value)
		case val != "":
			got = strconv.Quote(sm[2])
		}
		msg = fmt.Sprintf("expected %s, got %s", describeType(target), got)
	}
	if path == "" {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Sprintf("%s: %s (line %d)", path, msg, line)
}

// find returns the path of the entry on line that matches, "" if none does
// (an error about the document itself).
func (idx *index) find(line int, match func(entry) bool) string {
	for _, e := range idx.entries {
		if e.line == line && match(e) {
			return e.path
		}
	}
	return ""
}

func describeType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 180s, 1m30s or 4h"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "*int"):
		return "an integer"
	case t == "float64":
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool" || t == "*bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "configs."):
		return "a mapping"
	}
	return t
}

// fieldsByType maps Go type names ("configs.SIP") to the YAML keys they
// accept, for "unknown field" messages.
var fieldsByType = func() map[string][]string {
	out := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Ptr || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
			return
		}
		if _, done := out[t.String()]; done {
			return
		}
		out[t.String()] = nil
		var keys []string
		var collect func(t reflect.Type)
		collect = func(t reflect.Type) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("yaml")
				if strings.Contains(tag, "inline") {
					collect(f.Type)
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				keys = append(keys, name)
				visit(f.Type)
			}
		}
		collect(t)
		out[t.String()] = keys
	}
	visit(reflect.TypeOf(Config{}))
	return out
}()

func knownFields(typeName string) []string { return fieldsByType[typeName] }

// typeAt resolves a field path ("plans[0].limits.max_parallel_calls") to the
// Go type it decodes into, nil if unknown.
func typeAt(path string) reflect.Type {
	t := reflect.TypeOf(Config{})
	for _, part := range strings.Split(path, ".") {
		name, idxs, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Ptr {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			t = fieldType(t, name)
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		if t == nil {
			return nil
		}
		for n := strings.Count(idxs, "]"); n > 0; n-- {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	return t
}

func fieldType(t reflect.Type, name string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if strings.Contains(tag, "inline") {
			if ft := fieldType(f.Type, name); ft != nil {
				return ft
			}
			continue
		}
		if n, _, _ := strings.Cut(tag, ","); n == name {
			return f.Type
		}
	}
	return nil
}
