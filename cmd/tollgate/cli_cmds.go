package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
)

// verb splits "list|get|delete NAME" style arguments: the verb (def when
// there are no arguments) and the rest.
func verb(pos []string, def string, verbs ...string) (string, []string, error) {
	if len(pos) == 0 {
		return def, nil, nil
	}
	for _, v := range verbs {
		if pos[0] == v {
			return v, pos[1:], nil
		}
	}
	return "", nil, usagef("unknown subcommand %q (want %s)", pos[0], strings.Join(verbs, ", "))
}

// act runs an action on the one object named in rest (delete, hang up)
// and confirms it in table mode ("deleted plan gold").
func (c *cli) act(rest []string, what, done string, do func(context.Context, string) error) error {
	if err := nargs(rest, 1, what); err != nil {
		return err
	}
	if err := do(c.ctx, rest[0]); err != nil {
		return err
	}
	if c.output == "table" {
		fmt.Fprintf(c.stdout, "%s %s\n", done, rest[0])
	}
	return nil
}

// ---- plans ----

func cmdPlans(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	v, rest, err := verb(pos, "list", "list", "get", "delete")
	if err != nil {
		return err
	}
	switch v {
	case "list":
		if err := nargs(rest, 0, ""); err != nil {
			return err
		}
		plans, err := c.client.Plans(c.ctx)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(plans)
		}
		sort.SliceStable(plans, func(i, j int) bool { return plans[i].Name < plans[j].Name })
		t := c.table("name", "max_parallel_calls", "max_calls_per_second", "max_monthly_minutes", "monthly_spend_limit", "auto_suspend", "rates")
		for _, p := range plans {
			l := p.Limits
			t.row(p.Name, fmtCount(l.MaxParallelCalls, "-"), fmtCount(l.MaxCallsPerSecond, "-"),
				fmtCount(l.MaxMonthlyMinutes, "-"), fmtMoneyLimit(l.MonthlySpendLimit, "-"),
				fmtBool(l.AutoSuspend, "-"), fmt.Sprint(len(p.Rates)))
		}
		return t.flush()
	case "get":
		if err := nargs(rest, 1, "plan name"); err != nil {
			return err
		}
		p, err := c.client.Plan(c.ctx, rest[0])
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(p)
		}
		fmt.Fprintf(c.stdout, "plan %s\n\n", p.Name)
		t := c.table("limit", "value")
		for _, f := range limitFields(p.Limits) {
			t.row(f.name, f.or(unsetEffective(f.name)))
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout)
		t = c.table("prefix", "per_minute", "connect_fee", "increments")
		rates := append([]configs.Rate(nil), p.Rates...)
		sort.SliceStable(rates, func(i, j int) bool { return rates[i].Prefix < rates[j].Prefix })
		for _, r := range rates {
			prefix := r.Prefix
			if prefix == "" {
				prefix = "(default)"
			}
			per := ""
			if r.PerMinute != nil {
				per = r.PerMinute.String()
			}
			t.row(prefix, per, r.ConnectFee.String(), r.Increments.String())
		}
		return t.flush()
	default: // delete
		return c.act(rest, "plan name", "deleted plan", c.client.DeletePlan)
	}
}

// ---- tenants ----

func cmdTenants(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	v, rest, err := verb(pos, "list", "list", "get", "delete")
	if err != nil {
		return err
	}
	switch v {
	case "list":
		if err := nargs(rest, 0, ""); err != nil {
			return err
		}
		tenants, err := c.client.Tenants(c.ctx)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(tenants)
		}
		sort.SliceStable(tenants, func(i, j int) bool { return tenants[i].Name < tenants[j].Name })
		t := c.table("name", "plan", "carrier", "status", "active_calls", "overrides", "roles")
		for _, tv := range tenants {
			t.row(tv.Name, tv.Plan, tv.Carrier, fmtStatus(tv.Status), fmt.Sprint(tv.Status.ActiveCalls),
				fmt.Sprint(len(overrides(tv.Limits))), fmt.Sprint(len(tv.Roles)))
		}
		return t.flush()
	case "get":
		if err := nargs(rest, 1, "tenant name"); err != nil {
			return err
		}
		tv, err := c.client.Tenant(c.ctx, rest[0])
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(tv)
		}
		t := c.table()
		pbx := tv.PBX.Address
		if pbx != "" && tv.PBX.Transport != "" {
			pbx += " (" + tv.PBX.Transport + ")"
		}
		var roles []string
		for _, r := range tv.Roles {
			roles = append(roles, r.Name)
		}
		t.row("NAME", tv.Name)
		t.row("PLAN", tv.Plan)
		t.row("CARRIER", tv.Carrier)
		t.row("STATUS", fmtStatus(tv.Status))
		t.row("ACTIVE_CALLS", fmt.Sprint(tv.Status.ActiveCalls))
		t.row("SOURCES", strings.Join(tv.Sources, ", "))
		t.row("DIDS", strings.Join(tv.DIDs, ", "))
		t.row("PBX", pbx)
		ovs := "none"
		if o := overrides(tv.Limits); len(o) > 0 {
			ovs = strings.Join(o, ", ")
		}
		t.row("OVERRIDES", ovs)
		t.row("ROLES", strings.Join(roles, ", "))
		if p := tv.Provisioning; p != nil {
			t.row("PROVISIONED", fmtProvisioned(*p))
		}
		return t.flush()
	default: // delete
		return c.act(rest, "tenant name", "deleted tenant", c.client.DeleteTenant)
	}
}

// fmtStatus is "active", or "suspended: reason".
func fmtStatus(s api.TenantStatus) string {
	if !s.Suspended {
		return "active"
	}
	out := "suspended"
	if s.SuspendCap != "" {
		out += " (" + s.SuspendCap + ")"
	}
	if s.SuspendReason != "" {
		out += ": " + s.SuspendReason
	}
	return out
}

// ---- limits ----

func cmdLimits(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	var lv api.LimitsView
	switch {
	case len(pos) == 0:
		return usagef("missing tenant name")
	case len(pos) == 1:
		lv, err = c.client.Limits(c.ctx, pos[0])
	case pos[0] == "reset":
		if err := nargs(pos[1:], 1, "tenant name"); err != nil {
			return err
		}
		lv, err = c.client.ResetLimits(c.ctx, pos[1])
	case pos[0] == "set":
		if len(pos) < 3 {
			return usagef("missing KEY=VALUE (e.g. max_parallel_calls=20)")
		}
		patch, perr := limitsPatch(pos[2:])
		if perr != nil {
			return perr
		}
		lv, err = c.client.PatchLimits(c.ctx, pos[1], patch)
	default:
		return usagef("unexpected argument %q", pos[1])
	}
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(lv)
	}
	fmt.Fprintf(c.stdout, "tenant %s, plan %s\n\n", lv.Tenant, lv.Plan)
	t := c.table("limit", "override", "effective")
	for _, row := range limitsRows(lv) {
		t.row(row[0], row[1], row[2])
	}
	return t.flush()
}

// limitsPatch builds the merge patch of `limits set` arguments.
func limitsPatch(args []string) (map[string]any, error) {
	patch := map[string]any{}
	seen := map[string]bool{}
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok || key == "" {
			return nil, usagef("%q: want KEY=VALUE, e.g. max_parallel_calls=20", a)
		}
		if seen[key] {
			return nil, usagef("%s given twice", key)
		}
		seen[key] = true
		clear := val == "null" || val == "inherit"
		if class, ok := strings.CutPrefix(key, "destinations."); ok {
			if class == "" {
				return nil, usagef("%q: want destinations.CLASS=true|false|inherit", a)
			}
			d, _ := patch["destinations"].(map[string]any)
			if d == nil {
				if _, cleared := patch["destinations"]; cleared {
					return nil, usagef("destinations=inherit clears every class; set %s separately", key)
				}
				d = map[string]any{}
				patch["destinations"] = d
			}
			switch {
			case clear:
				d[class] = nil
			case val == "true" || val == "false":
				d[class] = val == "true"
			default:
				return nil, usagef("%s: want true, false or inherit, got %q", key, val)
			}
			continue
		}
		if key == "destinations" {
			if !clear {
				return nil, usagef("destinations: only destinations=inherit (clear every class); set one class with destinations.CLASS=true|false")
			}
			if _, ok := patch["destinations"]; ok {
				return nil, usagef("destinations=inherit clears every class; set destinations.CLASS separately")
			}
			patch["destinations"] = nil
			continue
		}
		switch {
		case clear:
			patch[key] = nil
		case key == "monthly_spend_limit":
			if val == "unlimited" {
				val = "-1"
			}
			patch[key] = val // money as a decimal string: exact, never a float
		case val == "unlimited":
			patch[key] = json.Number("-1")
		case val == "true" || val == "false":
			patch[key] = val == "true"
		case isJSONNumber(val):
			patch[key] = json.Number(val)
		default:
			patch[key] = val // the API names the field when it rejects it
		}
	}
	return patch, nil
}

// ---- roles ----

func cmdRoles(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 1, "tenant name"); err != nil {
		return err
	}
	roles, err := c.client.Roles(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(roles)
	}
	// In the API's order: the first matching pattern, in role order, wins.
	t := c.table("role", "max_parallel_calls", "max_monthly_minutes", "users", "patterns")
	for _, r := range roles {
		t.row(r.Name, fmtCount(r.MaxParallelCalls, "none"), fmtCount(r.MaxMonthlyMinutes, "none"),
			strings.Join(r.Users, ", "), strings.Join(r.Patterns, ", "))
	}
	return t.flush()
}

// ---- usage ----

func cmdUsage(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 1, "tenant name"); err != nil {
		return err
	}
	u, err := c.client.Usage(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(u)
	}
	calls := "calls"
	if u.Status.ActiveCalls == 1 {
		calls = "call"
	}
	fmt.Fprintf(c.stdout, "tenant %s: %s, %d active %s\ncycle %s to %s\n\n",
		u.Tenant, fmtStatus(u.Status), u.Status.ActiveCalls, calls, ts(u.CycleStart), ts(u.CycleEnd))
	t := c.table("cap", "used", "limit", "percent")
	for _, cu := range u.Caps {
		t.row(cu.Cap, cu.Used.String(), fmtNumberLimit(cu.Limit), fmtPercent(cu.Percent))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	days := append([]api.DayUsage(nil), u.Days...)
	sort.SliceStable(days, func(i, j int) bool { return days[i].Date < days[j].Date })
	t = c.table("date", "calls", "minutes", "spend")
	for _, d := range days {
		t.row(d.Date, fmt.Sprint(d.Calls), fmtMinutes(d.Seconds), d.Spend.String())
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(u.Users) > 0 {
		fmt.Fprintln(c.stdout)
		t = c.table("user", "role", "minutes", "limit", "percent")
		for _, uu := range u.Users {
			t.row(uu.User, uu.Role, uu.Minutes.String(), fmtNumberLimit(uu.Limit), fmtPercent(uu.Percent))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if u.Cluster == nil {
		return nil
	}
	// The cluster's usage: every node's, and the sum.
	fmt.Fprintln(c.stdout)
	t = c.table("node", "calls up", "minutes", "spend", "published")
	for _, n := range u.Cluster.Nodes {
		name := n.Node
		if n.Self {
			name += " (this)"
		}
		t.row(name, fmt.Sprint(n.ActiveCalls), fmtMinutes(n.BilledSeconds), configs.Money(n.SpendMicros).String(), ts(n.Published))
	}
	t.row("cluster", fmt.Sprint(u.Cluster.ActiveCalls), fmtMinutes(u.Cluster.BilledSeconds), configs.Money(u.Cluster.SpendMicros).String(), "")
	return t.flush()
}

// ---- calls ----

func cmdCalls(c *cli, args []string) error {
	tenant := c.fs.String("tenant", "", "only the calls of this tenant")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	v, rest, err := verb(pos, "list", "list", "hangup")
	if err != nil {
		return err
	}
	if v == "hangup" {
		return c.act(rest, "call ID", "hung up call", c.client.Hangup)
	}
	if err := nargs(rest, 0, ""); err != nil {
		return err
	}
	calls, err := c.client.Calls(c.ctx, *tenant)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(calls)
	}
	sort.SliceStable(calls, func(i, j int) bool {
		if !calls[i].Started.Equal(calls[j].Started) {
			return calls[i].Started.Before(calls[j].Started)
		}
		return calls[i].ID < calls[j].ID
	})
	t := c.table("id", "tenant", "direction", "caller", "callee", "state", "started", "seconds")
	for _, cv := range calls {
		t.row(cv.ID, cv.Tenant, cv.Direction, cv.Caller, cv.Callee, cv.State, ts(cv.Started), fmtSeconds(cv.Seconds))
	}
	return t.flush()
}

// ---- suspend, resume ----

func cmdSuspend(c *cli, args []string) error {
	reason := c.fs.String("reason", "", "why (required; recorded in the audit log)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 1, "tenant name"); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usagef("--reason is required")
	}
	st, err := c.client.Suspend(c.ctx, pos[0], *reason)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(st)
	}
	fmt.Fprintf(c.stdout, "tenant %s: %s\n", pos[0], fmtStatus(st))
	return nil
}

func cmdResume(c *cli, args []string) error {
	reason := c.fs.String("reason", "", "why (recorded in the audit log)")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 1, "tenant name"); err != nil {
		return err
	}
	st, err := c.client.Resume(c.ctx, pos[0], *reason)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(st)
	}
	fmt.Fprintf(c.stdout, "tenant %s: %s\n", pos[0], fmtStatus(st))
	return nil
}

// ---- flood protection ----

func cmdBlocked(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 0, ""); err != nil {
		return err
	}
	blocked, err := c.client.Blocked(c.ctx)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(blocked)
	}
	// Oldest block first, as the API answers; ties by address.
	sort.SliceStable(blocked, func(i, j int) bool {
		if !blocked[i].Since.Equal(blocked[j].Since) {
			return blocked[i].Since.Before(blocked[j].Since)
		}
		return blocked[i].IP < blocked[j].IP
	})
	t := c.table("ip", "source", "reason", "limit", "since", "until", "dropped")
	for _, b := range blocked {
		source := "unknown"
		if b.Known {
			source = "known"
		}
		t.row(b.IP, source, b.Reason, fmt.Sprintf("%s/s burst %d", fmtFloat(b.Rate), b.Burst),
			ts(b.Since), ts(b.Until), fmt.Sprint(b.Dropped))
	}
	return t.flush()
}

func cmdUnblock(c *cli, args []string) error {
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	return c.act(pos, "IP address", "unblocked", c.client.Unblock)
}

// ---- cluster ----

func cmdCluster(c *cli, args []string) error {
	tenant := c.fs.String("tenant", "", "only the ledger entries of this tenant")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	v, rest, err := verb(pos, "status", "status", "release")
	if err != nil {
		return err
	}
	if v == "release" {
		if err := nargs(rest, 1, "node name"); err != nil {
			return err
		}
		out, err := c.client.ReleaseNode(c.ctx, rest[0])
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(out)
		}
		fmt.Fprintf(c.stdout, "released node %s: %d ledger entries, %d calls of capacity\n", out.Node, out.Entries, out.Calls)
		return nil
	}
	if err := nargs(rest, 0, ""); err != nil {
		return err
	}
	st, err := c.client.Cluster(c.ctx, *tenant)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(st)
	}
	if !st.Enabled {
		fmt.Fprintf(c.stdout, "cluster.enabled is false: node %s decides alone\n", st.Node)
		return nil
	}
	fmt.Fprintf(c.stdout, "node %s, ledger %s, lease_ttl %s, ledger reachable: %s, leases valid: %s\n\n",
		st.Node, st.Bucket, st.TTL, yesNo(st.Ready), yesNo(st.Valid))
	t := c.table("node", "alive", "last renewal", "renew by", "started", "epoch")
	for _, n := range st.Nodes {
		name := n.Name
		if n.Self {
			name += " (this)"
		}
		t.row(name, yesNo(n.Alive), ts(n.Renewed), ts(n.RenewBy), ts(n.Started), n.Epoch)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout)
	t = c.table("tenant", "dimension", "cap", "leased", "busy", "node", "held", "use", "node busy", "written")
	for _, e := range st.Entries {
		dim := e.Dimension
		if e.Second != 0 {
			dim += " @" + ts(time.Unix(e.Second, 0))
		}
		capv := fmt.Sprint(e.Cap)
		if e.Cap < 0 {
			capv = "none" // leased for a budget's sake
		}
		if len(e.Leases) == 0 {
			t.row(e.Tenant, dim, capv, fmt.Sprint(e.Leased), fmt.Sprint(e.Busy), "-", "", "", "", "")
		}
		for _, l := range e.Leases {
			t.row(e.Tenant, dim, capv, fmt.Sprint(e.Leased), fmt.Sprint(e.Busy),
				l.Node, fmt.Sprint(l.Held), fmt.Sprint(l.Use), fmt.Sprint(l.Busy), ts(l.At))
		}
	}
	return t.flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ---- audit ----

func cmdAudit(c *cli, args []string) error {
	var (
		tenant = c.fs.String("tenant", "", "only the entries of this tenant")
		since  = c.fs.Duration("since", 0, "entries of the last `duration` (e.g. 24h, 90m)")
		from   = c.fs.String("from", "", "entries at or after this RFC 3339 `time`")
		to     = c.fs.String("to", "", "entries before this RFC 3339 `time`")
		limit  = c.fs.Int("limit", 0, "at most `N` entries (default 100, max 1000)")
	)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := nargs(pos, 0, ""); err != nil {
		return err
	}
	q := api.AuditQuery{Tenant: *tenant, Limit: *limit}
	if *since != 0 && *from != "" {
		return usagef("--since and --from are exclusive")
	}
	if *since < 0 {
		return usagef("--since must be positive, got %s", *since)
	}
	if *since > 0 {
		q.From = cliNow().Add(-*since).UTC()
	}
	for _, f := range []struct {
		name, val string
		dst       *time.Time
	}{{"from", *from, &q.From}, {"to", *to, &q.To}} {
		if f.val == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, f.val)
		if err != nil {
			return usagef("--%s: want an RFC 3339 time such as 2026-11-22T10:00:00Z, got %q", f.name, f.val)
		}
		*f.dst = t
	}
	entries, err := c.client.Audit(c.ctx, q)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.json(entries)
	}
	t := c.table("time", "actor", "action", "resource", "detail")
	for _, e := range entries { // newest first, as the API answers
		t.row(ts(e.At), e.Actor, e.Action, e.Resource, auditDetail(e))
	}
	return t.flush()
}

// ---- tokens ----

func cmdTokens(c *cli, args []string) error {
	scope := c.fs.String("scope", "", "scope of a new token: admin, settings, billing or read")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	v, rest, err := verb(pos, "list", "list", "create", "delete")
	if err != nil {
		return err
	}
	switch v {
	case "list":
		if err := nargs(rest, 0, ""); err != nil {
			return err
		}
		tokens, err := c.client.Tokens(c.ctx)
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(tokens)
		}
		t := c.table("name", "scope", "created")
		for _, tv := range tokens { // creation order, as the API answers
			t.row(tv.Name, string(tv.Scope), ts(tv.Created))
		}
		return t.flush()
	case "create":
		if err := nargs(rest, 1, "token name"); err != nil {
			return err
		}
		if *scope == "" {
			return usagef("--scope is required (admin, settings, billing or read)")
		}
		nt, err := c.client.CreateToken(c.ctx, rest[0], api.Scope(*scope))
		if err != nil {
			return err
		}
		if c.output == "json" {
			return c.json(nt)
		}
		// The secret alone on stdout, so `TOKEN=$(tollgate tokens create ...)` works.
		fmt.Fprintln(c.stdout, nt.Token)
		fmt.Fprintf(c.stderr, "created token %s (scope %s): store the secret now, it is not shown again\n", nt.Name, nt.Scope)
		return nil
	default: // delete
		return c.act(rest, "token name", "deleted token", c.client.DeleteToken)
	}
}
