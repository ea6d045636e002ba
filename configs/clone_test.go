package configs

import (
	"reflect"
	"testing"
)

// Clone copies deeply: changing the copy leaves the original alone.
func TestCloneIsDeep(t *testing.T) {
	orig := Tenant{
		Name: "t", Sources: []string{"10.0.0.0/24"}, DIDs: []string{"+1555"},
		Limits: Limits{MaxParallelCalls: ptrTo(int64(5)), MonthlySpendLimit: ptrTo(MustMoney("10")), Destinations: map[string]bool{"premium": false}},
		Roles:  []Role{{Name: "r", MaxParallelCalls: ptrTo(int64(1)), Users: []string{"100"}, Patterns: []string{"1*"}}},
	}
	want := Tenant{
		Name: "t", Sources: []string{"10.0.0.0/24"}, DIDs: []string{"+1555"},
		Limits: Limits{MaxParallelCalls: ptrTo(int64(5)), MonthlySpendLimit: ptrTo(MustMoney("10")), Destinations: map[string]bool{"premium": false}},
		Roles:  []Role{{Name: "r", MaxParallelCalls: ptrTo(int64(1)), Users: []string{"100"}, Patterns: []string{"1*"}}},
	}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("clone differs: %+v", c)
	}
	*c.Limits.MaxParallelCalls = 9
	*c.Limits.MonthlySpendLimit = 0
	c.Limits.Destinations["premium"] = true
	c.Sources[0], c.DIDs[0] = "x", "y"
	*c.Roles[0].MaxParallelCalls = 7
	c.Roles[0].Users[0], c.Roles[0].Patterns[0] = "x", "y"
	if !reflect.DeepEqual(orig, want) {
		t.Fatalf("original changed through the clone: %+v", orig)
	}
	p := Plan{Name: "p", Rates: []Rate{{PerMinute: ptrTo(MustMoney("1"))}}}
	pc := p.Clone()
	*pc.Rates[0].PerMinute = 0
	if *p.Rates[0].PerMinute != MustMoney("1") {
		t.Fatal("plan rate shared with its clone")
	}
}
