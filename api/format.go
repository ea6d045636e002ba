package api

import (
	"strconv"
	"strings"
	"time"
)

// FormatMinutes writes d in minutes with at most 3 decimals, truncated
// (never rounded up: a usage figure never shows more than was billed) and
// without trailing zeros: 90s is "1.5", 20s is "0.333", 204.69s is
// "3.411". It is the one rule for minutes wherever they are shown: the
// usage caps and users of the API and every minutes column of the CLI.
func FormatMinutes(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	milli := int64(d / (time.Minute / 1000)) // thousandths of a minute
	s := strconv.FormatInt(milli/1000, 10)
	if f := milli % 1000; f != 0 {
		frac := strconv.FormatInt(f+1000, 10)[1:] // 3 digits, zero-padded
		s += "." + strings.TrimRight(frac, "0")
	}
	return s
}
