package main

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
)

// One rounding rule for minutes: the CLI's columns (from seconds) and the
// API's figures (from durations) agree, truncated to 3 decimals.
func TestMinutesOneRule(t *testing.T) {
	for _, tc := range []struct {
		seconds float64
		want    string
	}{
		{0, "0"}, {90, "1.5"}, {20, "0.333"},
		{40, "0.666"}, // rounded would read 0.667
		{204.69, "3.411"},
		{204.72, "3.412"}, {1500, "25"}, {59.99, "0.999"}, {-1, "0"},
	} {
		got := fmtMinutes(tc.seconds)
		api := api.FormatMinutes(time.Duration(tc.seconds * float64(time.Second)))
		if got != tc.want || (tc.seconds >= 0 && api != tc.want) {
			t.Errorf("%v s: CLI %q, API %q; want %q", tc.seconds, got, api, tc.want)
		}
	}
}

func TestFmtSeconds(t *testing.T) {
	for v, want := range map[float64]string{1.8943819849999999: "1.9", 120: "120.0", 0: "0.0", 0.04: "0.0"} {
		if got := fmtSeconds(v); got != want {
			t.Errorf("fmtSeconds(%v) = %q, want %q", v, got, want)
		}
	}
}
