package admission

import "strings"

// NormalizeNumber returns the dialled number written in s, the user part of
// a SIP URI or the number of a tel: URI, in the one form the gateway
// compares numbers in (emergency numbers, destination classes, rate
// prefixes, DIDs):
//
//   - user parameters are dropped: everything from the first ';'
//     (";phone-context=+1", ";isub=12", ";npdi", ";rn=...");
//   - RFC 3966 visual separators are removed: '-', '.', '(' and ')', and
//     also spaces;
//   - percent-escapes of those, of digits and of '+', '*' and '#' are
//     decoded (then a separator is removed): a URI may escape any of them
//     and means the same number (RFC 3261 §19.1.4), so "%31900" is "1900"
//     and cannot slip past a "1900" prefix. Other escapes stay as written;
//   - everything else is kept as written, a leading '+' in particular:
//     "+1555" and "1555" are different numbers (operators list both), and
//     no digit is added or removed.
//
// The result contains no ';', no separator and none of the escapes above,
// so NormalizeNumber is idempotent. When s is already normal it is
// returned as is, without allocating; so is a number whose only change is
// dropped parameters.
func NormalizeNumber(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	i := 0
	for ; i < len(s); i++ {
		b := s[i]
		if isVisualSeparator(b) {
			break
		}
		if b == '%' && i+2 < len(s) {
			if _, ok := unescape(s[i+1], s[i+2]); ok {
				break
			}
		}
	}
	if i == len(s) {
		return s
	}
	out := make([]byte, i, len(s))
	copy(out, s[:i]) // holds no separator and no decodable escape
	for ; i < len(s); i++ {
		out = appendNormal(out, s[i])
	}
	return string(out)
}

// appendNormal appends b to out, which holds no separator and no decodable
// escape, and keeps it so: a separator is dropped, and a b that completes
// an escape ("%3" + "1") replaces it with its decoded byte, which is
// appended the same way (it may complete an escape in turn: "%%3" "2"
// "0" gives "%20", which is removed).
func appendNormal(out []byte, b byte) []byte {
	for {
		if isVisualSeparator(b) {
			return out
		}
		n := len(out)
		if n < 2 || out[n-2] != '%' {
			return append(out, b)
		}
		d, ok := unescape(out[n-1], b)
		if !ok {
			return append(out, b)
		}
		out, b = out[:n-2], d
	}
}

// isVisualSeparator reports the RFC 3966 visual separators and the space.
func isVisualSeparator(b byte) bool {
	switch b {
	case '-', '.', '(', ')', ' ':
		return true
	}
	return false
}

// unescape decodes the escape %hl when it stands for a byte of a number
// (digit, '+', '*', '#') or a separator; ok is false for any other escape.
func unescape(h, l byte) (byte, bool) {
	hi, ok1 := hexVal(h)
	lo, ok2 := hexVal(l)
	if !ok1 || !ok2 {
		return 0, false
	}
	d := hi<<4 | lo
	if d >= '0' && d <= '9' || d == '+' || d == '*' || d == '#' || isVisualSeparator(d) {
		return d, true
	}
	return 0, false
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
