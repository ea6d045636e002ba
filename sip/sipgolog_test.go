package sip

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

type stackErrorCounter struct {
	Observer
	n int
}

func (c *stackErrorCounter) StackError() { c.n++ }

// sipgo's errors reach the log as flat lines of their own, one per second
// at most with the count suppressed, and every one is counted.
func TestSipgoLogHandler(t *testing.T) {
	var buf bytes.Buffer
	obs := &stackErrorCounter{}
	h := newSipgoHandler(zerolog.New(&buf), obs)
	log := slog.New(h).With("laddr", "127.0.0.1:5060")
	for range 5 {
		log.Error("failed to parse", "error", errors.New("bad header"), "data", "garbage\r\n", "n", 3)
	}
	log.Info("not an error")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || obs.n != 5 {
		t.Fatalf("%d lines, %d counted; want 1 line, 5 counted:\n%s", len(lines), obs.n, buf.String())
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l["level"] != "error" || l["message"] != "sipgo: failed to parse" || l["source"] != "sipgo" ||
		l["error"] != "bad header" || l["data"] != "garbage\r\n" || l["n"] != 3.0 || l["laddr"] != "127.0.0.1:5060" || l["suppressed"] != 0.0 {
		t.Errorf("line = %v", l)
	}
	if _, nested := l["sipgo"]; nested {
		t.Errorf("nested sipgo blob: %v", l)
	}
	// The next line allowed says how many were suppressed.
	h.limit.interval = 0
	h.limit.next.Store(0)
	buf.Reset()
	log.Error("again")
	if !strings.Contains(buf.String(), `"suppressed":4`) {
		t.Errorf("next line %q, want suppressed 4", buf.String())
	}
}
