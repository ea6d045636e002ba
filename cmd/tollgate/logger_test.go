package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/configs"
)

// The console format has no colour codes unless it writes to a terminal
// (a file, a pipe or a buffer gets plain text).
func TestConsoleLogNoColorOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger(configs.Log{Format: "console", Level: "info"}, &buf)
	log.Info().Str("tenant", "demo").Msg("call decision")
	f, err := os.Create(filepath.Join(t.TempDir(), "gw.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flog := newLogger(configs.Log{Format: "console", Level: "info"}, f)
	flog.Info().Str("tenant", "demo").Msg("call decision")
	data, _ := os.ReadFile(f.Name())
	for name, out := range map[string]string{"buffer": buf.String(), "file": string(data)} {
		if strings.Contains(out, "\x1b[") {
			t.Errorf("%s: colour codes in %q", name, out)
		}
		if !strings.Contains(out, "tenant=demo") {
			t.Errorf("%s: %q", name, out)
		}
	}
}

// Durations carry their unit, in both formats.
func TestLogDurationsHaveUnits(t *testing.T) {
	var buf bytes.Buffer
	jlog := newLogger(configs.Log{Format: "json", Level: "info"}, &buf)
	jlog.Info().Dur("grace", 30*time.Second).Dur("billed", 1006*time.Millisecond).Msg("x")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["grace"] != "30s" || line["billed"] != "1.006s" {
		t.Errorf("json: grace=%v billed=%v, want 30s and 1.006s", line["grace"], line["billed"])
	}
	buf.Reset()
	clog := newLogger(configs.Log{Format: "console", Level: "info"}, &buf)
	clog.Info().Dur("grace", 30*time.Second).Msg("shutting down")
	if !strings.Contains(buf.String(), "grace=30s") {
		t.Errorf("console: %q, want grace=30s", buf.String())
	}
}
