package configs

// Defaults: the values a field takes when the file leaves it out (ApplyDefaults).

import (
	"net/netip"
	"slices"
	"strings"
	"time"
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
