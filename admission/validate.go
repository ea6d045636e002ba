package admission

// Validation of rate tables and roles: the one set of rules for them, each
// error naming its field. The engine runs it on what it is given
// (UpsertPlan, UpsertTenant), and configs' Validate runs the same
// functions on every plan and tenant of a config file and of every admin
// API change (which validates the config the change would produce), under
// the config path it passes ("plans[0].rates", "tenants[3].roles"). The
// helpers below (names, number prefixes, increments, counts, money) are
// also the ones configs checks its other fields with.

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldError is a validation error about one field of a rate table or a
// role list: Path is the path the caller gave with the field under it
// ("plans[0].rates[2].prefix", "roles[1].users[0]"), Msg what is wrong.
// It wraps ErrInvalidRate, ErrInvalidRole or (a role's cap)
// ErrInvalidLimit.
type FieldError struct {
	Path string
	Msg  string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Unwrap returns the sentinel error (ErrInvalidRate, ...).
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(kind error, at, format string, args ...any) error {
	return &FieldError{Path: at, Msg: fmt.Sprintf(format, args...), Err: kind}
}

// MaxIncrement bounds both billing increments of a rate (Rate.Initial,
// Rate.Subsequent): one day, in seconds.
const MaxIncrement = 86400

// MaxNameLen bounds role names (and configs' carrier, plan, tenant,
// destination class and token names, checked with CheckName too).
const MaxNameLen = 64

// MaxUserLen bounds a role user identity (a SIP user part).
const MaxUserLen = 128

// ValidateRates checks a plan's rate table at base (e.g. "plans[0].rates";
// the engine uses "rates"): every prefix is a normalised number prefix or
// "" (the default row) and appears once, prices and fees are amounts
// 0..MaxMoney, increments are 1..MaxIncrement seconds. The first error is
// a *FieldError wrapping ErrInvalidRate.
func ValidateRates(base string, rates []Rate) error {
	seen := make(map[string]int, len(rates))
	for i, r := range rates {
		at := func(field string) string { return base + "[" + strconv.Itoa(i) + "]." + field }
		if r.Prefix != "" && !IsNumberPrefix(r.Prefix) {
			if msg := NotNormalised(r.Prefix, IsNumberPrefix); msg != "" {
				return fieldErr(ErrInvalidRate, at("prefix"), "%s", msg)
			}
			return fieldErr(ErrInvalidRate, at("prefix"), "must be digits with an optional leading +, or empty for the default row, got %q", r.Prefix)
		}
		if j, dup := seen[r.Prefix]; dup {
			what := fmt.Sprintf("prefix %q", r.Prefix)
			if r.Prefix == "" {
				what = "default row (empty prefix)"
			}
			return fieldErr(ErrInvalidRate, at("prefix"), "duplicate %s (same as %s[%d]); a prefix appears once per plan", what, base, j)
		}
		seen[r.Prefix] = i
		if r.PerMinute < 0 || r.PerMinute > MaxMoney {
			return fieldErr(ErrInvalidRate, at("per_minute"), "must be an amount 0..%s, got %s", FormatMoney(MaxMoney), FormatMoney(r.PerMinute))
		}
		if r.ConnectFee < 0 || r.ConnectFee > MaxMoney {
			return fieldErr(ErrInvalidRate, at("connect_fee"), "must be an amount 0..%s, got %s", FormatMoney(MaxMoney), FormatMoney(r.ConnectFee))
		}
		if msg := CheckIncrements(r.Initial, r.Subsequent); msg != "" {
			return fieldErr(ErrInvalidRate, at("increments"), "invalid increments \"%d/%d\": %s", r.Initial, r.Subsequent, msg)
		}
	}
	return nil
}

// ValidateRoles checks a tenant's roles at base (e.g. "tenants[0].roles";
// the engine uses "roles"): names are valid (CheckName) and unique, the
// caps are counts (CheckCount), users are identities of 1..MaxUserLen
// printable characters without spaces, each on one role of the tenant
// only, and patterns are non-empty path.Match globs. The first error is a
// *FieldError wrapping ErrInvalidRole, or ErrInvalidLimit for a cap.
func ValidateRoles(base string, roles []Role) error {
	names := make(map[string]int, len(roles))
	type at struct{ role, i int }
	users := map[string]at{}
	for i, r := range roles {
		p := base + "[" + strconv.Itoa(i) + "]"
		if r.Name == "" {
			return fieldErr(ErrInvalidRole, p+".name", "required")
		}
		if msg := CheckName(r.Name); msg != "" {
			return fieldErr(ErrInvalidRole, p+".name", "%s", msg)
		}
		if j, dup := names[r.Name]; dup {
			return fieldErr(ErrInvalidRole, p+".name", "duplicate role name %q (already used by %s[%d])", r.Name, base, j)
		}
		names[r.Name] = i
		for _, c := range []struct {
			field string
			v     *int64
			upper int64
		}{
			{fieldMaxParallelCalls, r.MaxParallelCalls, MaxParallel},
			{fieldMaxMonthlyMinutes, r.MaxMonthlyMinutes, MaxMonthlyMinutes},
		} {
			if msg := CheckCount(c.v, c.upper); msg != "" {
				return fieldErr(ErrInvalidLimit, p+"."+c.field, "%s", msg)
			}
		}
		for j, u := range r.Users {
			up := fmt.Sprintf("%s.users[%d]", p, j)
			if u == "" || len(u) > MaxUserLen || !utf8.ValidString(u) || strings.IndexFunc(u, unicode.IsSpace) >= 0 || strings.IndexFunc(u, unicode.IsControl) >= 0 {
				return fieldErr(ErrInvalidRole, up, "must be a user identity of 1..%d printable characters without spaces, got %q", MaxUserLen, u)
			}
			if prev, dup := users[u]; dup {
				if prev.role == i {
					return fieldErr(ErrInvalidRole, up, "user %q listed twice (same as %s[%d].users[%d])", u, base, prev.role, prev.i)
				}
				return fieldErr(ErrInvalidRole, up, "user %q is already on role %q (%s[%d].users[%d]); a user may be on one role of a tenant", u, roles[prev.role].Name, base, prev.role, prev.i)
			}
			users[u] = at{i, j}
		}
		for j, pat := range r.Patterns {
			pp := fmt.Sprintf("%s.patterns[%d]", p, j)
			if pat == "" {
				return fieldErr(ErrInvalidRole, pp, "must not be empty")
			}
			if _, err := path.Match(pat, ""); err != nil {
				return fieldErr(ErrInvalidRole, pp, "invalid glob %q: %v (path.Match syntax: * ? [a-z] [^0-9] and \\ to escape)", pat, err)
			}
		}
	}
	return nil
}

// CheckName returns why name is not a valid role (or carrier, plan,
// tenant, destination class, token) name, "" if it is: 1..MaxNameLen
// letters, digits, '-' and '_', so that it is usable as a NATS subject
// token and a metric label.
func CheckName(name string) string {
	if name == "" {
		return "must not be empty"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("must be at most %d characters, got %d", MaxNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return fmt.Sprintf("must contain only letters, digits, '-' and '_', got %q", name)
		}
	}
	return ""
}

// CheckCount returns why a count limit is out of range, "" if it is nil,
// -1 (unlimited), 0 (blocked) or 0 < N <= upper.
func CheckCount(v *int64, upper int64) string {
	switch {
	case v == nil:
		return ""
	case *v < -1:
		return fmt.Sprintf("must be -1 (unlimited), 0 (blocked) or a positive cap, got %d", *v)
	case *v > upper:
		return fmt.Sprintf("must be at most %d, got %d", upper, *v)
	}
	return ""
}

// CheckIncrements returns why billing increments are out of range, "" if
// both are 1..MaxIncrement seconds.
func CheckIncrements(initial, subsequent int64) string {
	if initial < 1 || initial > MaxIncrement || subsequent < 1 || subsequent > MaxIncrement {
		return fmt.Sprintf("both parts must be 1..%d seconds", MaxIncrement)
	}
	return ""
}

// IsNumber reports whether s is a number as DIDs and emergency numbers are
// written: digits with an optional leading +, at least one digit.
func IsNumber(s string) bool {
	s = strings.TrimPrefix(s, "+")
	return s != "" && strings.Trim(s, digits) == ""
}

// IsNumberPrefix reports whether s is a number prefix (rate prefixes,
// destination classes): digits with an optional leading +; "+" alone
// matches every number written with +.
func IsNumberPrefix(s string) bool {
	return s != "" && strings.Trim(strings.TrimPrefix(s, "+"), digits) == ""
}

const digits = "0123456789"

// NotNormalised explains a number (or number prefix) s that is not in the
// normal form dialled numbers are compared in: when NormalizeNumber turns
// s into a value valid accepts it names that value (`"1-900" is not a
// normalised number; write "1900"`). Configured numbers are never
// rewritten: what the file, the store and the API show is what is
// matched. It returns "" when normalising does not help, and the caller
// gives its own message.
func NotNormalised(s string, valid func(string) bool) string {
	if n := NormalizeNumber(s); n != s && valid(n) {
		return fmt.Sprintf("%q is not a normalised number; write %q", s, n)
	}
	return ""
}

// FormatMoney formats an amount in micro-units as configs reads it back:
// "-1" for -1 (unlimited where a field allows it), else the shortest
// exact decimal ("500", "500.25", "0.000001").
func FormatMoney(micros int64) string {
	if micros == -1 {
		return "-1"
	}
	sign := ""
	v := micros
	if v < 0 { // not an amount; printed for diagnostics
		sign = "-"
		if v == -1<<63 {
			return strconv.FormatInt(v, 10) + "µ"
		}
		v = -v
	}
	s := sign + strconv.FormatInt(v/MicroUnits, 10)
	if f := v % MicroUnits; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", f), "0")
	}
	return s
}
