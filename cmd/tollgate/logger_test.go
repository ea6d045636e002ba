package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
