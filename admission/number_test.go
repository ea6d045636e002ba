package admission_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/admission"
)

func TestNormalizeNumber(t *testing.T) {
	cases := []struct{ in, want string }{
		// already normal: returned as is
		{"", ""},
		{"911", "911"},
		{"+15550100", "+15550100"},
		{"15550100", "15550100"},
		{"+", "+"},
		{"alice", "alice"},
		{"*67#", "*67#"},
		{"%41", "%41"}, // an escape of anything but a number byte or separator is kept
		{"%3B", "%3B"}, // an escaped ';' is data, not a parameter
		{"%2", "%2"},
		{"%", "%"},
		// user parameters (RFC 3966 par, RFC 4694 npdi/rn)
		{"911;phone-context=+1", "911"},
		{"+1-555-0100;phone-context=example.com", "+15550100"},
		{"+15550100;isub=12;npdi", "+15550100"},
		{"15550100;rn=+15559999;npdi", "15550100"},
		{";phone-context=+1", ""},
		{"911;", "911"},
		// visual separators
		{"1-900-555-0100", "19005550100"},
		{"+1 (555) 010.0100", "+15550100100"},
		{"(0)30-123", "030123"},
		{"---", ""},
		{"+-1", "+1"},
		// escaped separators
		{"+1%20555%200100", "+15550100"},
		{"1%2D900%2d555", "1900555"},
		{"%28030%29%2E123%2e4", "0301234"},
		{"1%20(555)", "1555"},
		// escaped digits, '+', '*', '#' are the same number
		{"%2B15550100", "+15550100"},
		{"%31%39%30%30", "1900"},
		{"%2a67%23", "*67#"},
		// removing or decoding must not leave a decodable escape behind
		{"%%3230", "#0"},
		{"%2-0", ""},
		{"%%2020", ""},
		{"%2%2D0", ""},
		{"9%2-D1-1", "911"},
		// '+' is only ever kept, never added or moved
		{"1+555", "1+555"},
		{"++1", "++1"},
	}
	for _, tc := range cases {
		if got := admission.NormalizeNumber(tc.in); got != tc.want {
			t.Errorf("NormalizeNumber(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := admission.NormalizeNumber(tc.want); got != tc.want {
			t.Errorf("NormalizeNumber(%q) = %q: not idempotent", tc.want, got)
		}
	}
}

// A normal number costs no allocation: the input string comes back.
func TestNormalizeNumberNormalInputDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"+15550100", "911", "4930123456", "%41b"} {
		var got string
		if n := testing.AllocsPerRun(100, func() { got = admission.NormalizeNumber(s) }); n != 0 {
			t.Errorf("NormalizeNumber(%q): %v allocs, want 0", s, n)
		}
		if got != s {
			t.Errorf("NormalizeNumber(%q) = %q", s, got)
		}
	}
	// Dropping parameters only slices.
	if n := testing.AllocsPerRun(100, func() { admission.NormalizeNumber("911;phone-context=+1") }); n != 0 {
		t.Errorf("parameter drop: %v allocs, want 0", n)
	}
}

// decodable lists the escapes NormalizeNumber decodes (upper case).
var decodable = func() string {
	var b strings.Builder
	for _, c := range "0123456789+*#-.() " {
		fmt.Fprintf(&b, "%%%02X|", c)
	}
	return b.String()
}()

func FuzzNormalizeNumber(f *testing.F) {
	for _, s := range []string{"", "911", "+1-555-0100;phone-context=example.com", "+1 (555) 010.0100", "%2-0", "1%2D900", "%31%2B", "%%3230", "%%2020;x", "sip:+1@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := admission.NormalizeNumber(s)
		if again := admission.NormalizeNumber(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, got, again)
		}
		if strings.ContainsAny(got, ";-.() ") {
			t.Fatalf("%q -> %q contains a separator or ';'", s, got)
		}
		for i := 0; i+2 < len(got); i++ {
			if esc := strings.ToUpper(got[i : i+3]); strings.Contains(decodable, esc) && esc[0] == '%' {
				t.Fatalf("%q -> %q contains the decodable escape %s", s, got, got[i:i+3])
			}
		}
		if len(got) > len(s) {
			t.Fatalf("%q -> %q grew", s, got)
		}
		if strings.HasPrefix(s, "+") && !strings.HasPrefix(got, "+") {
			t.Fatalf("%q -> %q lost its leading +", s, got)
		}
	})
}
