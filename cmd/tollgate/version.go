package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the release version; a release build sets it with
// -ldflags "-X main.version=v1.2.3". Unset ("" or "dev"), the module
// version recorded in the binary is used (`go install ...@v1.2.3`).
var version = "dev"

// buildVersion describes the binary from its build information: the
// version, the VCS revision (12 digits) and commit time, "dirty" when the
// work tree had uncommitted changes, and the Go version. E.g.
// "v1.2.3 (rev 0123456789ab, 2026-12-03T15:00:00Z, go1.26.0)" or
// "devel (rev 0123456789ab, 2026-12-03T15:00:00Z, dirty, go1.26.0)".
func buildVersion() string {
	return formatBuildVersion(version, readBuildInfo())
}

// readBuildInfo is debug.ReadBuildInfo (a test hook).
var readBuildInfo = func() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

func formatBuildVersion(v string, bi *debug.BuildInfo) string {
	goVersion := runtime.Version()
	var rev, at string
	dirty := false
	if bi != nil {
		if v == "" || v == "dev" {
			if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
				v = mv
			}
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" || v == "dev" {
		v = "devel"
	}
	var parts []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "rev "+rev)
	}
	if at != "" {
		parts = append(parts, at)
	}
	if dirty {
		parts = append(parts, "dirty")
	}
	parts = append(parts, goVersion)
	return v + " (" + strings.Join(parts, ", ") + ")"
}
