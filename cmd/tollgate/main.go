// Command tollgate is the SIP-edge call admission gateway: one binary, with
// `serve` to run the gateway. Wiring only: the logic lives in the packages.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
)

const usage = `tollgate — SIP-edge call admission gateway

Usage:
  tollgate serve -c configs/tollgate.yaml   run the gateway
  tollgate check -c configs/tollgate.yaml   validate a config file and exit
  tollgate version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if hoisted := hoistGlobalFlags(args); isCLICommand(hoisted[0]) {
		return runCLI(hoisted, stdout, stderr, os.Getenv)
	}
	switch args[0] {
	case "serve", "check":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("c", "configs/tollgate.yaml", "config file")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		cfg, err := configs.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, "tollgate:", err)
			return 1
		}
		// The tokens' secrets come from the environment: a variable unset
		// or too short stops serve, so check fails on it too.
		if _, err := control.ConfigTokens(cfg, os.Getenv, time.Now()); err != nil {
			fmt.Fprintf(stderr, "tollgate: %s: %s\n", *path, err)
			return 1
		}
		if args[0] == "check" {
			fmt.Fprintf(stdout, "%s: ok (%d carriers, %d plans, %d tenants)\n", *path, len(cfg.Carriers), len(cfg.Plans), len(cfg.Tenants))
			return 0
		}
		if err := serve(cfg, stderr); err != nil {
			fmt.Fprintln(stderr, "tollgate:", err)
			return 1
		}
		return 0
	case "version":
		fmt.Fprintln(stdout, "tollgate", buildVersion())
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage+cliUsage)
		return 0
	}
	fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(cfg configs.Log, w io.Writer) zerolog.Logger {
	if cfg.Format == "console" {
		// Colour only on a terminal: redirected to a file or a pipe, the
		// escape codes would end up in the log.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !colorTerminal(w)}
	}
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func init() {
	// Durations in the log carry their unit: grace=30s, billed=1.006s,
	// not grace=30000 (zerolog's default: a float of milliseconds).
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
}

// colorTerminal reports whether w is a terminal that may get colours: a
// character device, and NO_COLOR (no-color.org) unset.
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
