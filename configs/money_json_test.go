package configs

import (
	"encoding/json"
	"testing"
)

// Money and Increments round-trip through JSON exactly; unset increments
// are null both ways; money reads from a number or a string.
func TestMoneyIncrementsJSON(t *testing.T) {
	r := Rate{Prefix: "00", PerMinute: ptrTo(MustMoney("0.123456")), ConnectFee: MustMoney("5")}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"prefix":"00","per_minute":0.123456,"connect_fee":5,"increments":null}`; got != want {
		t.Fatalf("json = %s, want %s", got, want)
	}
	var back Rate
	if err := json.Unmarshal(b, &back); err != nil || *back.PerMinute != *r.PerMinute || back.ConnectFee != r.ConnectFee || back.Increments != (Increments{}) {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"per_minute":"0.5","increments":"6/6"}`), &back); err != nil || *back.PerMinute != MustMoney("0.5") || back.Increments != (Increments{6, 6}) {
		t.Fatalf("string money = %+v, %v", back, err)
	}
	for _, bad := range []string{`{"per_minute":0.1234567}`, `{"increments":"0/6"}`, `{"increments":6}`, `{"per_minute":-2}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
