package ng

import "testing"

func TestRoundTrip(t *testing.T) {
	msg := map[string]any{"command": "offer", "call-id": "a b:c", "sdp": "v=0\r\n", "n": 42}
	cookie, got, err := Split(append([]byte("123 "), Encode(msg)...))
	if err != nil || cookie != "123" {
		t.Fatalf("split: %q %v", cookie, err)
	}
	for k, v := range msg {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v", k, got[k], v)
		}
	}
	// Replies may hold lists and nested dictionaries (NG replies do); this
	// is a literal: the test talks to no media daemon.
	if m, err := Decode([]byte("d6:result2:ok4:listl1:ai1ee4:dictd1:k1:vee")); err != nil || m["result"] != "ok" {
		t.Fatalf("nested: %v %v", m, err)
	}
	for _, bad := range []string{"", "d", "d3:abc", "i12", "l", "d1:ai1e", "x"} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
