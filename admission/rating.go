package admission

import "time"

// prefixTable is a longest-prefix-match table over strings. Lookups try
// every prefix length from the longest stored one down to 0, so they cost
// at most maxLen+1 map probes and never allocate.
type prefixTable[V any] struct {
	m      map[string]V
	maxLen int
}

func (p *prefixTable[V]) add(prefix string, v V) {
	if p.m == nil {
		p.m = make(map[string]V)
	}
	p.m[prefix] = v
	p.maxLen = max(p.maxLen, len(prefix))
}

// lookup returns the value of the longest stored prefix of s.
func (p *prefixTable[V]) lookup(s string) (V, bool) {
	var zero V
	if len(p.m) == 0 {
		return zero, false
	}
	for l := min(len(s), p.maxLen); l >= 0; l-- {
		if v, ok := p.m[s[:l]]; ok {
			return v, true
		}
	}
	return zero, false
}

// billedSeconds returns the seconds billed for a call of duration d under
// r's increments: d rounded up to whole seconds (any started second
// counts), then Initial if that is <= Initial, else Initial plus the
// following increments, each counted whole once started.
func billedSeconds(r *Rate, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	secs := int64((d + time.Second - 1) / time.Second)
	if secs <= r.Initial {
		return r.Initial
	}
	return r.Initial + (secs-r.Initial+r.Subsequent-1)/r.Subsequent*r.Subsequent
}

// cost is the rated cost in micro-units of a call of billed duration d: 0
// when d <= 0 or r is nil, else ConnectFee + PerMinute*billedSeconds/60,
// rounded half up at the end. It counts exactly the increments that
// started strictly before answer+d. Integer math only; saturates instead
// of overflowing.
func cost(r *Rate, d time.Duration) int64 {
	if r == nil || d <= 0 {
		return 0
	}
	return chargeOf(r, billedSeconds(r, d))
}

// costAt is the cost charged by instant answer+d inclusive: an increment
// starting exactly at answer+d is already charged (it starts then). This is
// the running cost used for budgets; cost is the settled cost of a call that
// ended (or was cut) at answer+d.
func costAt(r *Rate, d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return cost(r, d+1)
}
