package configs

// Validation: every check of Validate, each error naming its field path.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/admission"
)

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
			if !admission.IsNumber(d) {
				pp := fmt.Sprintf("%s.dids[%d]", p, j)
				if err := notNormalised(pp, d, admission.IsNumber); err != nil {
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

// Upper bounds of limits: the admission engine's own (they keep its int64
// arithmetic exact), defined once there.
const (
	MaxParallel       = admission.MaxParallel       // max_parallel_calls, _inbound, _outbound
	MaxCPS            = admission.MaxCPS            // max_calls_per_second, cps_burst
	MaxMonthlyMinutes = admission.MaxMonthlyMinutes // max_monthly_minutes (tenants and roles)
	MaxProvisioned    = 1_000_000_000               // max_dids, max_users (provisioning caps: not the engine's)
)

// MaxMoney bounds money amounts: spend limits, prices and fees (10^9 units).
const MaxMoney Money = admission.MaxMoney

// checkCount checks a count limit: nil, -1, 0 or 0 < N <= upper
// (admission.CheckCount).
func checkCount(path string, v *int64, upper int64) error {
	if msg := admission.CheckCount(v, upper); msg != "" {
		return errf(path, "%s", msg)
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
		if !admission.IsNumber(n) {
			if err := notNormalised(p, n, admission.IsNumber); err != nil {
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
		if msg := admission.CheckName(class); msg != "" {
			return errf(p, "class name %s", msg)
		}
		prefixes := c.DestinationClasses[class]
		if len(prefixes) == 0 {
			return errf(p, "at least one number prefix is required (e.g. [\"00\", \"+\"])")
		}
		for i, pre := range prefixes {
			pp := fmt.Sprintf("%s[%d]", p, i)
			if !admission.IsNumberPrefix(pre) {
				if err := notNormalised(pp, pre, admission.IsNumberPrefix); err != nil {
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

// validateRates checks a plan's rate table at path ("plans[0].rates")
// with the engine's rules (admission.ValidateRates) on the rows as
// written, increments unset included. A missing per_minute, which the
// engine's rows cannot express, is handed to it as an out-of-range price,
// so that the rows' errors keep their order; its message is "required".
func validateRates(path string, rates []Rate) error {
	rows := make([]admission.Rate, len(rates))
	for i, r := range rates {
		rows[i] = admission.Rate{Prefix: r.Prefix, PerMinute: math.MinInt64, ConnectFee: int64(r.ConnectFee),
			Initial: r.Increments.Initial, Subsequent: r.Increments.Subsequent}
		if r.PerMinute != nil {
			rows[i].PerMinute = int64(*r.PerMinute)
		}
	}
	err := admission.ValidateRates(path, rows)
	var fe *admission.FieldError
	if errors.As(err, &fe) {
		for i, r := range rates {
			if r.PerMinute == nil && fe.Path == fmt.Sprintf("%s[%d].per_minute", path, i) {
				return errf(fe.Path, "required (the price of one minute, e.g. 0.012)")
			}
		}
	}
	return fromAdmission(err)
}

// validateRoles checks a tenant's roles at base ("tenants[0].roles") with
// the engine's rules (admission.ValidateRoles).
func validateRoles(base string, roles []Role) error {
	rs := make([]admission.Role, len(roles))
	for i, r := range roles {
		rs[i] = r.AdmissionRole()
	}
	return fromAdmission(admission.ValidateRoles(base, rs))
}

// fromAdmission turns an *admission.FieldError into a field error of
// Validate (same path and message); nil stays nil.
func fromAdmission(err error) error {
	var fe *admission.FieldError
	if errors.As(err, &fe) {
		return errf(fe.Path, "%s", fe.Msg)
	}
	return err
}

// notNormalised explains a number (or number prefix) at path that is not in
// the normal form dialled numbers are compared in (admission.NotNormalised);
// nil when normalising does not help, and the caller reports its own
// message.
func notNormalised(path, s string, valid func(string) bool) error {
	if msg := admission.NotNormalised(s, valid); msg != "" {
		return errf(path, "%s", msg)
	}
	return nil
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
	if msg := admission.CheckName(name); msg != "" {
		return errf(path+".name", "%s", msg)
	}
	if j, dup := seen[name]; dup {
		return errf(path+".name", "duplicate %s name %q (already used by %ss[%d])", kind, name, kind, j)
	}
	return nil
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
