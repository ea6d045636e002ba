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
//     also spaces and the percent-escaped forms of all five (%20, %2D,
//     %2E, %28, %29, either case), since a space can only reach a SIP URI
//     escaped;
//   - everything else is kept as written, a leading '+' in particular:
//     "+1555" and "1555" are different numbers (operators list both), and
//     no digits are added or removed.
//
// The result contains no ';', no separator and no escaped separator, so
// NormalizeNumber is idempotent. When s is already normal it is returned
// as is, without allocating.
func NormalizeNumber(s string) string {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	i := 0
	for ; i < len(s); i++ {
		if b := s[i]; isVisualSeparator(b) || b == '%' && i+2 < len(s) && isEscapedSeparator(s[i+1], s[i+2]) {
			break
		}
	}
	if i == len(s) {
		return s
	}
	// s[:i] holds no separator and no escaped one. Copy the rest, dropping
	// separators; whenever the bytes kept so far end in an escaped
	// separator (which removing a separator can create: "%2-0"), drop it
	// too. The kept bytes thus never contain one, whatever the input, and
	// a second pass finds nothing to remove.
	out := make([]byte, i, len(s))
	copy(out, s[:i])
	for ; i < len(s); i++ {
		b := s[i]
		if isVisualSeparator(b) {
			continue
		}
		out = append(out, b)
		if n := len(out); n >= 3 && out[n-3] == '%' && isEscapedSeparator(out[n-2], out[n-1]) {
			out = out[:n-3]
		}
	}
	return string(out)
}

// isVisualSeparator reports the RFC 3966 visual separators and the space.
func isVisualSeparator(b byte) bool {
	switch b {
	case '-', '.', '(', ')', ' ':
		return true
	}
	return false
}

// isEscapedSeparator reports whether %hl escapes a visual separator or a
// space: %20, %28, %29, %2D, %2E (hex in either case).
func isEscapedSeparator(h, l byte) bool {
	if h != '2' {
		return false
	}
	switch l {
	case '0', '8', '9', 'd', 'D', 'e', 'E':
		return true
	}
	return false
}
