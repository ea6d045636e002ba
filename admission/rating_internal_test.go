package admission

import (
	"math"
	"testing"
	"time"
)

func TestBilledSecondsAndCost(t *testing.T) {
	r6060 := &Rate{PerMinute: 60_000, Initial: 60, Subsequent: 60}
	r66 := &Rate{PerMinute: 60_000, Initial: 6, Subsequent: 6}
	r11 := &Rate{PerMinute: 60_000, Initial: 1, Subsequent: 1}
	r606 := &Rate{PerMinute: 60_000, ConnectFee: 100_000, Initial: 60, Subsequent: 6}
	half := &Rate{PerMinute: 90, Initial: 1, Subsequent: 1}
	tests := []struct {
		r     *Rate
		d     time.Duration
		secs  int64
		cost  int64
		right int64 // costAt(d): increments starting at d included
	}{
		{r6060, 0, 0, 0, 60_000},
		{r6060, time.Nanosecond, 60, 60_000, 60_000},
		{r6060, 60 * time.Second, 60, 60_000, 120_000},
		{r6060, 60*time.Second + 1, 120, 120_000, 120_000},
		{r6060, 61 * time.Second, 120, 120_000, 120_000},
		{r66, 61 * time.Second, 66, 66_000, 66_000},
		{r66, 60 * time.Second, 60, 60_000, 66_000},
		{r11, 400 * time.Millisecond, 1, 1_000, 1_000},
		{r11, 61 * time.Second, 61, 61_000, 62_000},
		{r606, 61 * time.Second, 66, 166_000, 166_000},
		{r606, 30 * time.Second, 60, 160_000, 160_000},
		{half, time.Second, 1, 2, 3},     // 1.5 -> 2; 3.0 -> 3
		{half, 3 * time.Second, 3, 5, 6}, // 4.5 -> 5; 6.0 -> 6
	}
	for _, tt := range tests {
		if got := billedSeconds(tt.r, tt.d); got != tt.secs {
			t.Errorf("billedSeconds(%d/%d, %v) = %d, want %d", tt.r.Initial, tt.r.Subsequent, tt.d, got, tt.secs)
		}
		if got := cost(tt.r, tt.d); got != tt.cost {
			t.Errorf("cost(%d/%d, %v) = %d, want %d", tt.r.Initial, tt.r.Subsequent, tt.d, got, tt.cost)
		}
		if got := costAt(tt.r, tt.d); got != tt.right {
			t.Errorf("costAt(%d/%d, %v) = %d, want %d", tt.r.Initial, tt.r.Subsequent, tt.d, got, tt.right)
		}
	}
	if cost(nil, time.Hour) != 0 || costAt(nil, time.Hour) != 0 || costAt(r6060, -1) != 0 {
		t.Error("nil rate or negative duration must cost nothing")
	}
	if got := incrementBound(r6060); got != 60_001 {
		t.Errorf("incrementBound(60/60 at 60000) = %d", got)
	}
	if got := incrementBound(&Rate{PerMinute: 90, Initial: 1, Subsequent: 1}); got != 3 {
		t.Errorf("incrementBound(1/1 at 90) = %d", got)
	}
	if got := incrementBound(&Rate{PerMinute: math.MaxInt64, Initial: 1, Subsequent: 86400}); got <= 0 {
		t.Errorf("incrementBound saturation = %d", got)
	}
	huge := &Rate{PerMinute: math.MaxInt64, Initial: 1, Subsequent: 1}
	if got := cost(huge, 1000*time.Hour); got <= 0 {
		t.Errorf("cost saturation = %d, want positive", got)
	}
}

func TestPrefixTable(t *testing.T) {
	var p prefixTable[string]
	if _, ok := p.lookup("123"); ok {
		t.Fatal("empty table matched")
	}
	p.add("+1", "nanp")
	p.add("+1900", "premium")
	p.add("+44", "uk")
	for s, want := range map[string]string{"+19005551234": "premium", "+12125551234": "nanp", "+4420": "uk", "+1": "nanp", "+190": "nanp"} {
		if got, ok := p.lookup(s); !ok || got != want {
			t.Errorf("lookup(%q) = %q, %v; want %q", s, got, ok, want)
		}
	}
	if _, ok := p.lookup("+33"); ok {
		t.Error("+33 matched")
	}
	p.add("", "default")
	if got, _ := p.lookup("+33"); got != "default" {
		t.Errorf(`"" row: got %q`, got)
	}
}

func TestMonthMath(t *testing.T) {
	loc := time.FixedZone("X", 5*3600)
	// 2026-02-01 03:00 in UTC+5 is still January in UTC.
	in := time.Date(2026, 2, 1, 3, 0, 0, 0, loc)
	if got := monthStart(in); !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("monthStart = %v", got)
	}
	if got := nextMonth(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("nextMonth(Dec) = %v", got)
	}
}
