package main

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
)

// limitField is one limit of a configs.Limits: a scalar field by its JSON
// name, or one destination class as "destinations.CLASS".
type limitField struct {
	name  string
	set   bool   // it has a value (else: unset, inherit)
	value string // formatted: -1 counts and money as "unlimited", money as a decimal
}

// or is the value, or unset when the field has none.
func (f limitField) or(unset string) string {
	if f.set {
		return f.value
	}
	return unset
}

// limitFields lists the scalar limits of l in declaration order (set or
// not), then its destination classes sorted by name. Reflection keeps the
// list in step with configs.Limits.
func limitFields(l configs.Limits) []limitField {
	var out []limitField
	v := reflect.ValueOf(l)
	t := v.Type()
	var dest map[string]bool
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if d, ok := fv.Interface().(map[string]bool); ok {
			dest = d
			continue
		}
		f := limitField{name: name}
		if fv.Kind() == reflect.Pointer && !fv.IsNil() {
			f.set = true
			f.value = fmtScalar(fv.Elem().Interface())
		}
		out = append(out, f)
	}
	classes := make([]string, 0, len(dest))
	for class := range dest {
		classes = append(classes, class)
	}
	sort.Strings(classes)
	for _, class := range classes {
		out = append(out, limitField{name: "destinations." + class, set: true, value: strconv.FormatBool(dest[class])})
	}
	return out
}

// fmtScalar formats a limit value.
func fmtScalar(v any) string {
	switch x := v.(type) {
	case int64:
		if x == -1 {
			return "unlimited"
		}
		return strconv.FormatInt(x, 10)
	case configs.Money:
		if x == configs.MoneyUnlimited {
			return "unlimited"
		}
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// limitsRows are the rows (limit, override, effective) of `limits`: every
// scalar limit, then every destination class either side sets.
func limitsRows(lv api.LimitsView) [][3]string {
	ov := limitFields(lv.Overrides)
	ef := map[string]limitField{}
	for _, f := range limitFields(lv.Effective) {
		ef[f.name] = f
	}
	var rows [][3]string
	classes := map[string]bool{}
	for _, f := range ov {
		if strings.HasPrefix(f.name, "destinations.") {
			classes[f.name] = true
			continue
		}
		rows = append(rows, [3]string{f.name, f.or("inherit"), ef[f.name].or(unsetEffective(f.name))})
	}
	for name := range ef {
		if strings.HasPrefix(name, "destinations.") {
			classes[name] = true
		}
	}
	ovByName := map[string]limitField{}
	for _, f := range ov {
		ovByName[f.name] = f
	}
	names := make([]string, 0, len(classes))
	for name := range classes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// A class neither the plan nor the tenant sets is enabled.
		rows = append(rows, [3]string{name, ovByName[name].or("inherit"), ef[name].or("true")})
	}
	return rows
}

// unsetEffective is how a limit without a value reads in effect.
func unsetEffective(name string) string {
	if name == "cps_burst" {
		return "auto" // max(1, max_calls_per_second)
	}
	return "unlimited"
}

// overrides lists the overrides set in l as KEY=VALUE (the syntax of
// `limits set`).
func overrides(l configs.Limits) []string {
	var out []string
	for _, f := range limitFields(l) {
		if f.set {
			out = append(out, f.name+"="+f.value)
		}
	}
	return out
}

// fmtProvisioned is a tenant's use of its provisioning caps, used/cap:
// "DIDs 2/5, users 3/unlimited".
func fmtProvisioned(p api.Provisioning) string {
	one := func(c api.ProvisionedCount) string {
		if c.Limit < 0 {
			return fmt.Sprintf("%d/unlimited", c.Used)
		}
		return fmt.Sprintf("%d/%d", c.Used, c.Limit)
	}
	return "DIDs " + one(p.DIDs) + ", users " + one(p.Users)
}

// fmtCount formats a count limit: unset when nil, "unlimited" for -1.
func fmtCount(v *int64, unset string) string {
	if v == nil {
		return unset
	}
	return fmtScalar(*v)
}

// fmtMoneyLimit formats a money limit: unset when nil, "unlimited" for -1.
func fmtMoneyLimit(v *configs.Money, unset string) string {
	if v == nil {
		return unset
	}
	return fmtScalar(*v)
}

func fmtBool(v *bool, unset string) string {
	if v == nil {
		return unset
	}
	return strconv.FormatBool(*v)
}

// fmtNumberLimit formats a usage limit: nil is unlimited.
func fmtNumberLimit(v *json.Number) string {
	if v == nil {
		return "unlimited"
	}
	return v.String()
}

// fmtPercent formats a usage percentage with one decimal; nil (unlimited)
// is "-".
func fmtPercent(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64) + "%"
}

// fmtMinutes formats seconds as minutes by the API's rule
// (api.FormatMinutes: at most 3 decimals, truncated), so a minutes column
// the CLI computes (per day, per node) agrees with the minutes the API
// formats (caps, users).
func fmtMinutes(seconds float64) string {
	return api.FormatMinutes(time.Duration(math.Round(seconds * float64(time.Second))))
}

// fmtSeconds formats a duration in seconds with one decimal (a call's
// billed seconds: 1.9, not 1.8943819849999999).
func fmtSeconds(seconds float64) string { return strconv.FormatFloat(seconds, 'f', 1, 64) }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

var jsonNumberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// isJSONNumber reports whether s is a JSON number literal.
func isJSONNumber(s string) bool { return jsonNumberRe.MatchString(s) }

// ---- audit ----

// maxDetailChanges bounds the changed fields an audit row shows (-o json
// has them all).
const maxDetailChanges = 3

// auditDetail summarises an audit entry: the reason, the cap of an
// automatic suspension, the fields an update changed.
func auditDetail(e api.AuditEntry) string {
	var parts []string
	if e.Reason != "" {
		parts = append(parts, "reason: "+e.Reason)
	}
	if e.Cap != "" {
		parts = append(parts, fmt.Sprintf("cap %s: usage %s, limit %s", e.Cap, capAmount(e.Cap, e.Usage), capAmount(e.Cap, e.Limit)))
	}
	if len(e.Before) > 0 && len(e.After) > 0 {
		changes := api.JSONDiff(e.Before, e.After)
		if len(changes) > maxDetailChanges {
			n := len(changes) - maxDetailChanges
			changes = append(changes[:maxDetailChanges:maxDetailChanges], fmt.Sprintf("(+%d more)", n))
		}
		parts = append(parts, changes...)
	}
	return strings.Join(parts, "; ")
}

// capAmount formats the usage or limit of an automatic suspension: money
// for spend caps (micro-units), minutes for minutes caps (seconds).
func capAmount(cap string, v int64) string {
	switch {
	case strings.Contains(cap, "spend"):
		return configs.Money(v).String()
	case strings.Contains(cap, "minutes"):
		return fmtMinutes(float64(v)) + " min"
	}
	return strconv.FormatInt(v, 10)
}
