package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/admission"
)

// Money is an amount of money in integer micro-units (1 unit = 1,000,000
// micro-units). It is never a float: in YAML it is parsed exactly from the
// text of the scalar, so 0.1 is 100000 micro-units, not the nearest binary
// fraction. Accepted forms: an unquoted or quoted decimal number with at most
// 6 decimal places (500, 500.25, 0.000001, "12.5"), and -1, which means
// unlimited where a field allows it (MoneyUnlimited). No exponent, sign
// (other than -1), thousands separators, hex or underscores.
type Money int64

// MoneyUnlimited is the value of -1 written for a money limit: unlimited.
// It is stored as -1 micro-units, the admission engine's encoding.
const MoneyUnlimited Money = -1

// MicrosPerUnit is the number of micro-units in one unit of money.
const MicrosPerUnit = 1_000_000

// moneyDecimals is the number of decimal places a Money can hold.
const moneyDecimals = 6

// ParseMoney parses s exactly (see Money). -1 (also written -1.0) is
// MoneyUnlimited; any other negative amount is an error.
func ParseMoney(s string) (Money, error) {
	bad := func(reason string) (Money, error) {
		return 0, fmt.Errorf("invalid amount %q: %s", s, reason)
	}
	const form = "want a decimal number such as 500, 12.5 or 0.000001 (at most 6 decimal places), or -1 for unlimited"
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	intPart, frac, hasPoint := strings.Cut(body, ".")
	if intPart == "" || !allDigits(intPart) || hasPoint && (frac == "" || !allDigits(frac)) {
		return bad(form)
	}
	if len(frac) > moneyDecimals {
		return bad(fmt.Sprintf("at most %d decimal places (amounts are exact micro-units), got %d", moneyDecimals, len(frac)))
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil || whole > math.MaxInt64/MicrosPerUnit-1 {
		return bad("too large")
	}
	micros := whole * MicrosPerUnit
	if frac != "" {
		f, _ := strconv.ParseInt(frac+strings.Repeat("0", moneyDecimals-len(frac)), 10, 64)
		micros += f
	}
	if neg && micros != 0 {
		if micros == MicrosPerUnit {
			return MoneyUnlimited, nil
		}
		return bad("negative amounts are not allowed (-1 means unlimited where a field allows it)")
	}
	return Money(micros), nil
}

// MustMoney is ParseMoney for constants in code and tests; it panics on an
// invalid amount.
func MustMoney(s string) Money {
	m, err := ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// String formats the amount as ParseMoney reads it: "-1" for unlimited,
// else the shortest exact decimal ("500", "500.25", "0.000001")
// (admission.FormatMoney).
func (m Money) String() string { return admission.FormatMoney(int64(m)) }

// UnmarshalYAML parses the scalar's text exactly (see Money).
func (m *Money) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return valueError(n, "expected an amount of money such as 500, 12.5 or 0.000001, got %s", kindName(n))
	}
	v, err := ParseMoney(n.Value)
	if err != nil {
		return valueError(n, "%s", err)
	}
	*m = v
	return nil
}

// MarshalYAML writes the amount as a plain decimal scalar.
func (m Money) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: m.String()}, nil
}

// Increments are the billing increments of a rate, written "I/S": the
// first Initial seconds are billed as a block, then every started block of
// Subsequent seconds (60/60 per minute, 6/6 per six seconds, 1/1 per
// second, 30/6 ...). Both are in 1..MaxIncrement. The zero value means unset
// (ApplyDefaults sets DefaultIncrements).
type Increments struct {
	Initial    int64 // seconds of the first increment
	Subsequent int64 // seconds of each following increment
}

// MaxIncrement bounds both parts of Increments (one day, in seconds): the
// engine's bound.
const MaxIncrement = admission.MaxIncrement

// DefaultIncrements is the billing increment of a rate row without one.
var DefaultIncrements = Increments{Initial: 60, Subsequent: 60}

// ParseIncrements parses "I/S" with I and S whole seconds in
// 1..MaxIncrement.
func ParseIncrements(s string) (Increments, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok || !allDigits(a) || !allDigits(b) || a == "" || b == "" {
		return Increments{}, fmt.Errorf("invalid increments %q: want \"I/S\" in seconds, e.g. \"60/60\", \"6/6\" or \"1/1\"", s)
	}
	i, errI := strconv.ParseInt(a, 10, 64)
	j, errS := strconv.ParseInt(b, 10, 64)
	inc := Increments{Initial: i, Subsequent: j}
	if errI != nil || errS != nil {
		return Increments{}, fmt.Errorf("invalid increments %q: both parts must be 1..%d seconds", s, MaxIncrement)
	}
	if msg := inc.check(); msg != "" {
		return Increments{}, fmt.Errorf("invalid increments %q: %s", s, msg)
	}
	return inc, nil
}

// check returns why inc is invalid, "" if it is valid
// (admission.CheckIncrements).
func (inc Increments) check() string { return admission.CheckIncrements(inc.Initial, inc.Subsequent) }

// String formats the increments as "I/S".
func (inc Increments) String() string {
	return strconv.FormatInt(inc.Initial, 10) + "/" + strconv.FormatInt(inc.Subsequent, 10)
}

// UnmarshalYAML parses "I/S".
func (inc *Increments) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return valueError(n, "expected increments such as \"60/60\", got %s", kindName(n))
	}
	v, err := ParseIncrements(n.Value)
	if err != nil {
		return valueError(n, "%s", err)
	}
	*inc = v
	return nil
}

// MarshalYAML writes the increments as "I/S".
func (inc Increments) MarshalYAML() (any, error) {
	return inc.String(), nil
}

// valueError is the error a custom UnmarshalYAML returns: a yaml.TypeError,
// so decoding goes on and reports it in document order, with the line and
// column of the value, which index.readable turns into the field path.
func valueError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))}}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "an alias"
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MarshalJSON writes the amount as an exact JSON number ("-1" unlimited).
func (m Money) MarshalJSON() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalJSON reads an amount from a JSON number or string, exactly
// (never through a float).
func (m *Money) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseMoney(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalJSON writes the increments as "I/S", unset as null.
func (inc Increments) MarshalJSON() ([]byte, error) {
	if inc == (Increments{}) {
		return []byte("null"), nil
	}
	return []byte(`"` + inc.String() + `"`), nil
}

// UnmarshalJSON reads increments from a string "I/S"; null leaves them
// unset (the default 60/60 applies).
func (inc *Increments) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*inc = Increments{}
		return nil
	}
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return fmt.Errorf("expected increments as a string such as \"60/60\", got %s", s)
	}
	v, err := ParseIncrements(s[1 : len(s)-1])
	if err != nil {
		return err
	}
	*inc = v
	return nil
}
