package bus

import "testing"

func TestCovers(t *testing.T) {
	for f, want := range map[string]bool{
		"tollgate.events.>": true, "tollgate.>": true, ">": true, "*.events.>": true, "*.*.>": true, "tollgate.*.>": true,
		"tollgate.events.*": false, "tollgate.events.*.*": false, "tollgate.events.acme.>": false,
		"tollgate.other.>": false, "tollgate": false, "tollgate.events": false,
	} {
		if got := covers(f, Subjects); got != want {
			t.Errorf("covers(%q) = %v, want %v", f, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h:4222,nats://h2:4222": "nats://***@h:4222,nats://h2:4222",
		"h:4222":                           "h:4222",
		"tls://tok@h":                      "tls://***@h",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
