package admission_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected outputs of testdata/*.txt")

// TestScenarios runs the golden scenario scripts in testdata/*.txt.
//
// A script is a sequence of blocks separated by blank lines. A block is one
// or more command lines, a "----" line, then the expected output (no blank
// lines). Lines starting with '#' before a block are comments. Commands:
//
//	settings emergency=112,911 class=premium:1900,+1900 resume_on_rollover=true
//	         reject=cps:503:"Slow Down" default.<limit>=v   (must come first)
//	plan name=basic <limits> rate=<prefix>:<per-min>:<fee>:<initial>:<subsequent> dest=<class>:<bool>
//	tenant name=acme plan=basic <limits>      (UpsertTenant; keeps the roles defined so far)
//	create name=acme plan=basic               (CreateTenant: overrides from the defaults)
//	role tenant=acme name=agents max_parallel_calls=1 max_monthly_minutes=5 users=100,101 patterns=2*
//	set tenant=acme <limits>                  (SetOverrides on top of the current overrides; v=null unsets)
//	reset tenant=acme | limits tenant=acme | active tenant=acme | suspended tenant=acme
//	invite t=<time> id=c1 tenant=acme dir=out|in caller=100 callee=+4420...
//	answer t= id= | bye t= id= | tick t= | deadline
//	suspend t= tenant= reason= | resume t= tenant= reason=
//	usage t= tenant= [user=]
//
// <limits> are the config names (max_parallel_calls=2, auto_suspend=true,
// dest=premium:false ...). t= is RFC 3339 or +<duration> after the previous
// time; it defaults to the previous time (initially 2026-01-15T12:00:00Z).
// Run with -rewrite to regenerate the expected outputs.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenarioFile(t, f) })
	}
}

type block struct {
	pre      []string // comments and blank lines before the block
	line     int      // line number of the first command
	cmds     []string
	expected []string
}

func parseScript(t *testing.T, path string) (blocks []block, trailer []string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var cur block
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		if len(cur.cmds) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			cur.pre = append(cur.pre, l)
			continue
		}
		if trimmed == "----" {
			if len(cur.cmds) == 0 {
				t.Fatalf("%s:%d: ---- without a command", path, i+1)
			}
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
				i++
				cur.expected = append(cur.expected, lines[i])
			}
			blocks = append(blocks, cur)
			cur = block{}
			continue
		}
		if len(cur.cmds) == 0 {
			cur.line = i + 1
		}
		cur.cmds = append(cur.cmds, trimmed)
	}
	if len(cur.cmds) > 0 {
		t.Fatalf("%s:%d: block without ----", path, cur.line)
	}
	return blocks, cur.pre
}

func runScenarioFile(t *testing.T, path string) {
	blocks, trailer := parseScript(t, path)
	h := newHarness()
	var sb strings.Builder
	for _, b := range blocks {
		var got []string
		for _, c := range b.cmds {
			got = append(got, h.run(c)...)
		}
		if len(got) == 0 {
			got = []string{"ok"}
		}
		if *rewrite {
			for _, p := range b.pre {
				sb.WriteString(p + "\n")
			}
			for _, c := range b.cmds {
				sb.WriteString(c + "\n")
			}
			sb.WriteString("----\n")
			for _, g := range got {
				sb.WriteString(g + "\n")
			}
			continue
		}
		if strings.Join(got, "\n") != strings.Join(b.expected, "\n") {
			t.Errorf("%s:%d: %s\n--- got:\n%s\n--- want:\n%s", path, b.line, strings.Join(b.cmds, " | "),
				strings.Join(got, "\n"), strings.Join(b.expected, "\n"))
		}
	}
	if *rewrite {
		for _, p := range trailer {
			sb.WriteString(p + "\n")
		}
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness drives one engine from script commands.
type harness struct {
	e        *admission.Engine
	settings admission.Settings
	tenants  map[string]*admission.Tenant
	now      time.Time
}

func newHarness() *harness {
	return &harness{
		tenants: map[string]*admission.Tenant{},
		now:     time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC),
	}
}

func (h *harness) engine() *admission.Engine {
	if h.e == nil {
		h.e = admission.NewEngine(h.settings)
	}
	return h.e
}

// tokenize splits a command into words; values may be double-quoted.
func tokenize(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, has := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			has = true
		case r == ' ' && !inQuote:
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		out = append(out, cur.String())
	}
	return out
}

type args struct {
	kv   map[string][]string
	used map[string]bool
}

func (a *args) get(k string) (string, bool) {
	v, ok := a.kv[k]
	if !ok {
		return "", false
	}
	a.used[k] = true
	return v[len(v)-1], true
}

func (a *args) str(k string) string { v, _ := a.get(k); return v }

func (a *args) all(k string) []string {
	a.used[k] = true
	return a.kv[k]
}

func (h *harness) run(line string) (out []string) {
	defer func() {
		if r := recover(); r != nil {
			out = append(out, fmt.Sprintf("error: %v", r))
		}
	}()
	words := tokenize(line)
	cmd := words[0]
	a := &args{kv: map[string][]string{}, used: map[string]bool{}}
	for _, w := range words[1:] {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			panic("bad argument " + w)
		}
		a.kv[k] = append(a.kv[k], v)
	}
	if v, ok := a.get("t"); ok {
		h.now = h.parseTime(v)
	}
	now := h.now
	defer func() {
		for k := range a.kv {
			if !a.used[k] {
				out = append(out, "error: unused argument "+k)
			}
		}
	}()
	switch cmd {
	case "settings":
		if h.e != nil {
			panic("settings after the engine started")
		}
		h.settings = parseSettings(a)
		return nil
	case "plan":
		p := admission.Plan{Name: a.str("name"), Limits: parseLimits(a, admission.Limits{})}
		for _, r := range a.all("rate") {
			p.Rates = append(p.Rates, parseRate(r))
		}
		o, err := h.engine().UpsertPlan(now, p)
		return outputLines(o, err)
	case "tenant":
		name := a.str("name")
		tn, ok := h.tenants[name]
		if !ok {
			tn = &admission.Tenant{Name: name}
			h.tenants[name] = tn
		}
		tn.Plan = a.str("plan")
		tn.Overrides = parseLimits(a, admission.Limits{})
		o, err := h.engine().UpsertTenant(now, *tn)
		return outputLines(o, err)
	case "create":
		name := a.str("name")
		o, err := h.engine().CreateTenant(now, name, a.str("plan"))
		if err == nil {
			h.tenants[name] = &admission.Tenant{Name: name, Plan: a.str("plan"), Overrides: h.settings.TenantDefaults}
		}
		return outputLines(o, err)
	case "role":
		tn := h.tenant(a.str("tenant"))
		r := admission.Role{Name: a.str("name")}
		if v, ok := a.get("max_parallel_calls"); ok {
			r.MaxParallelCalls = parseCount(v)
		}
		if v, ok := a.get("max_monthly_minutes"); ok {
			r.MaxMonthlyMinutes = parseCount(v)
		}
		if v, ok := a.get("users"); ok {
			r.Users = strings.Split(v, ",")
		}
		if v, ok := a.get("patterns"); ok {
			r.Patterns = strings.Split(v, ",")
		}
		replaced := false
		for i := range tn.Roles {
			if tn.Roles[i].Name == r.Name {
				tn.Roles[i], replaced = r, true
			}
		}
		if !replaced {
			tn.Roles = append(tn.Roles, r)
		}
		o, err := h.engine().UpsertTenant(now, *tn)
		return outputLines(o, err)
	case "set":
		name := a.str("tenant")
		var base admission.Limits
		if tn, ok := h.tenants[name]; ok {
			base = tn.Overrides
		}
		l := parseLimits(a, base)
		o, err := h.engine().SetOverrides(now, name, l)
		if err == nil {
			h.tenant(name).Overrides = l
		}
		return outputLines(o, err)
	case "reset":
		name := a.str("tenant")
		o, err := h.engine().ResetTenant(now, name)
		if err == nil {
			h.tenant(name).Overrides = h.settings.TenantDefaults
		}
		return outputLines(o, err)
	case "limits":
		l, err := h.engine().EffectiveLimits(a.str("tenant"))
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		return []string{formatLimits(l)}
	case "active":
		return []string{fmt.Sprintf("active %d calls %d", h.engine().Active(a.str("tenant")), h.engine().ActiveCalls())}
	case "suspended":
		s, reason := h.engine().Suspended(a.str("tenant"))
		if !s {
			return []string{"suspended=false"}
		}
		return []string{fmt.Sprintf("suspended=true reason=%q", reason)}
	case "invite":
		dir := admission.Outbound
		switch d := a.str("dir"); d {
		case "in":
			dir = admission.Inbound
		case "out", "":
		default:
			panic("bad dir " + d)
		}
		d := h.engine().Admit(now, admission.CallRequest{
			CallID: a.str("id"), Tenant: a.str("tenant"), Direction: dir,
			Caller: a.str("caller"), Callee: a.str("callee"),
		})
		return append([]string{formatDecision(d)}, outputLines(d.Output, nil)...)
	case "answer":
		return outputLines(h.engine().Answer(now, a.str("id")), nil)
	case "bye":
		o, ok := h.engine().End(now, a.str("id"))
		first := "ended"
		if !ok {
			first = "not active"
		}
		return append([]string{first}, outputLines(o, nil)...)
	case "tick":
		return outputLines(h.engine().Tick(now), nil)
	case "deadline":
		d, ok := h.engine().NextDeadline()
		if !ok {
			return []string{"deadline none"}
		}
		return []string{"deadline " + fmtTime(d)}
	case "suspend":
		o, err := h.engine().Suspend(now, a.str("tenant"), a.str("reason"))
		return outputLines(o, err)
	case "resume":
		o, err := h.engine().Resume(now, a.str("tenant"), a.str("reason"))
		return outputLines(o, err)
	case "usage":
		tenant := a.str("tenant")
		if user, ok := a.get("user"); ok {
			return []string{fmt.Sprintf("user %s seconds=%s", user, h.engine().UserUsage(now, tenant, user))}
		}
		u := h.engine().Usage(now, tenant)
		return []string{fmt.Sprintf("usage seconds=%s spend=%d emergency=%s", u.Seconds, u.Spend, u.EmergencySeconds)}
	default:
		panic("unknown command " + cmd)
	}
}

func (h *harness) tenant(name string) *admission.Tenant {
	tn, ok := h.tenants[name]
	if !ok {
		panic("unknown tenant " + name + " in script")
	}
	return tn
}

func (h *harness) parseTime(v string) time.Time {
	if rest, ok := strings.CutPrefix(v, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			panic(err)
		}
		return h.now.Add(d)
	}
	tm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		panic(err)
	}
	return tm
}

func parseSettings(a *args) admission.Settings {
	var s admission.Settings
	if v, ok := a.get("emergency"); ok {
		s.EmergencyNumbers = strings.Split(v, ",")
	}
	for _, c := range a.all("class") {
		name, prefixes, ok := strings.Cut(c, ":")
		if !ok {
			panic("bad class " + c)
		}
		if s.DestinationClasses == nil {
			s.DestinationClasses = map[string][]string{}
		}
		s.DestinationClasses[name] = append(s.DestinationClasses[name], strings.Split(prefixes, ",")...)
	}
	if v, ok := a.get("resume_on_rollover"); ok {
		s.ResumeOnRollover = v == "true"
	}
	for _, r := range a.all("reject") {
		parts := strings.SplitN(r, ":", 3)
		c, err := admission.ParseCause(parts[0])
		if err != nil {
			panic(err)
		}
		code, _ := strconv.Atoi(parts[1])
		if s.Rejects == nil {
			s.Rejects = map[admission.Cause]admission.Reject{}
		}
		s.Rejects[c] = admission.Reject{Code: code, Reason: parts[2]}
	}
	// default.<limit>=v fills the tenant defaults.
	d := &args{kv: map[string][]string{}, used: map[string]bool{}}
	for k, v := range a.kv {
		if f, ok := strings.CutPrefix(k, "default."); ok {
			d.kv[f] = v
			a.used[k] = true
		}
	}
	s.TenantDefaults = parseLimits(d, admission.Limits{})
	for k := range d.kv {
		if !d.used[k] {
			panic("unknown default " + k)
		}
	}
	return s
}

func parseCount(v string) *int64 {
	if v == "null" {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		panic(err)
	}
	return &n
}

// parseLimits applies the limit arguments of a on top of base (a copy).
func parseLimits(a *args, base admission.Limits) admission.Limits {
	l := base
	counts := map[string]**int64{
		"max_parallel_calls":    &l.MaxParallelCalls,
		"max_parallel_inbound":  &l.MaxParallelInbound,
		"max_parallel_outbound": &l.MaxParallelOutbound,
		"max_calls_per_second":  &l.MaxCallsPerSecond,
		"cps_burst":             &l.CPSBurst,
		"max_monthly_minutes":   &l.MaxMonthlyMinutes,
		"monthly_spend_limit":   &l.MonthlySpendLimit,
		"alert_threshold_pct":   &l.AlertThresholdPct,
	}
	for k, p := range counts {
		if v, ok := a.get(k); ok {
			*p = parseCount(v)
		}
	}
	if v, ok := a.get("auto_suspend"); ok {
		switch v {
		case "null":
			l.AutoSuspend = nil
		default:
			b := v == "true"
			l.AutoSuspend = &b
		}
	}
	if ds := a.all("dest"); len(ds) > 0 {
		m := map[string]bool{}
		for k, v := range base.Destinations {
			m[k] = v
		}
		for _, d := range ds {
			for _, item := range strings.Split(d, ",") {
				class, v, _ := strings.Cut(item, ":")
				if v == "null" {
					delete(m, class)
				} else {
					m[class] = v == "true"
				}
			}
		}
		l.Destinations = m
	}
	return l
}

func parseRate(s string) admission.Rate {
	p := strings.Split(s, ":")
	if len(p) != 5 {
		panic("bad rate " + s)
	}
	n := func(s string) int64 {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			panic(err)
		}
		return v
	}
	return admission.Rate{Prefix: p[0], PerMinute: n(p[1]), ConnectFee: n(p[2]), Initial: n(p[3]), Subsequent: n(p[4])}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func formatDecision(d admission.Decision) string {
	if d.Admitted {
		if d.Emergency {
			return "admitted emergency"
		}
		return "admitted"
	}
	r := d.Rejection
	s := fmt.Sprintf("rejected cause=%s code=%d reason=%q limit=%d usage=%d", r.Cause, r.Code, r.Reason, r.Limit, r.Usage)
	if r.Class != "" {
		s += " class=" + r.Class
	}
	if r.RetryAfter != 0 {
		s += " retry_after=" + r.RetryAfter.String()
	}
	return s + fmt.Sprintf(" text=%q", r.Text())
}

// cdrEvent reports the event types the scenarios leave out: the call
// lifecycle and limits.changed, which every step would otherwise list.
func cdrEvent(typ string) bool {
	switch typ {
	case admission.EventCallStarted, admission.EventCallAnswered, admission.EventCallEnded,
		admission.EventCallRejected, admission.EventLimits:
		return true
	}
	return false
}

func outputLines(o admission.Output, err error) []string {
	var out []string
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	for _, ev := range o.Events {
		if cdrEvent(ev.Type) {
			continue // the CDR events have tests of their own (cdr_test.go)
		}
		s := "event " + ev.Type
		if ev.Tenant != "" {
			s += " tenant=" + ev.Tenant
		}
		if ev.User != "" {
			s += " user=" + ev.User
		}
		if ev.CallID != "" {
			s += " call=" + ev.CallID
		}
		if ev.Cap != "" {
			s += " cap=" + ev.Cap
		}
		if ev.Type == admission.EventThreshold || ev.Type == admission.EventCapReached {
			s += fmt.Sprintf(" value=%d limit=%d", ev.Value, ev.Limit)
		}
		if ev.Reason != "" {
			s += fmt.Sprintf(" reason=%q", ev.Reason)
		}
		out = append(out, s+" at="+fmtTime(ev.At))
	}
	for _, c := range o.Cuts {
		out = append(out, fmt.Sprintf("cut %s cause=%s cap=%s at=%s", c.CallID, c.Cause, c.Cap, fmtTime(c.At)))
	}
	return out
}

func formatLimits(l admission.Limits) string {
	c := func(p *int64) string {
		if p == nil {
			return "unlimited"
		}
		return strconv.FormatInt(*p, 10)
	}
	s := fmt.Sprintf("max_parallel_calls=%s max_parallel_inbound=%s max_parallel_outbound=%s max_calls_per_second=%s cps_burst=%s max_monthly_minutes=%s monthly_spend_limit=%s alert_threshold_pct=%s",
		c(l.MaxParallelCalls), c(l.MaxParallelInbound), c(l.MaxParallelOutbound), c(l.MaxCallsPerSecond), c(l.CPSBurst),
		c(l.MaxMonthlyMinutes), c(l.MonthlySpendLimit), c(l.AlertThresholdPct))
	if l.AutoSuspend != nil {
		s += fmt.Sprintf(" auto_suspend=%t", *l.AutoSuspend)
	}
	var ds []string
	for k, v := range l.Destinations {
		ds = append(ds, fmt.Sprintf("%s:%t", k, v))
	}
	sort.Strings(ds)
	if len(ds) > 0 {
		s += " dest=" + strings.Join(ds, ",")
	}
	return s
}
