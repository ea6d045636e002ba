// Package configs holds the tollgate configuration: the structs a YAML config
// file decodes into, their defaults and their validation, plus the example
// configuration files shipped beside this file (every one of them is loaded
// by a test).
//
// The reference of every field is docs/CONFIG.md.
//
// Life cycle: Load (or Parse) strictly decodes the YAML (unknown fields are
// errors), then calls ApplyDefaults and Validate. A Config built in code must
// go through ApplyDefaults and Validate the same way before it is used.
// Every error names the field path, e.g.
//
//	configs/x.yaml: tenants[0].sources[1]: invalid CIDR "10.0.0.0/33": prefix length out of range (line 31)
package configs

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Load reads, strictly decodes (unknown fields are errors), applies defaults
// and validates the config file at path. Every error names the file and the
// field path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	return Parse(path, data)
}

// Parse does what Load does with the file content data; name is used in
// errors.
func Parse(name string, data []byte) (*Config, error) {
	cfg := &Config{}
	idx, err := decodeDocument(name, data, cfg)
	if errors.Is(err, ErrEmptyDocument) {
		return nil, fmt.Errorf("%s: empty config", name)
	}
	if err != nil {
		return nil, err
	}

	// A zero duration written in the file is kept as written (ApplyDefaults
	// treats zero as unset): shutdown_grace: 0s is legal, timer_c: 0s fails.
	keep := map[*time.Duration]bool{}
	for path, d := range map[string]*time.Duration{
		"sip.timer_c":               &cfg.SIP.TimerC,
		"sip.max_call_duration":     &cfg.SIP.MaxCallDuration,
		"sip.shutdown_grace":        &cfg.SIP.ShutdownGrace,
		"sip.tls.handshake_timeout": &cfg.SIP.TLS.HandshakeTimeout,
		"sip.tls.idle_timeout":      &cfg.SIP.TLS.IdleTimeout,
		"media.rtp_timeout":         &cfg.Media.RTPTimeout,
		"media.hold_timeout":        &cfg.Media.HoldTimeout,
	} {
		if *d == 0 && idx.present(path) {
			keep[d] = true
		}
	}
	restoreFlood := cfg.SIP.Flood.keepWrittenZeros(idx.present)
	restoreNATS := cfg.NATS.keepWrittenZeros(idx.present)
	cfg.ApplyDefaults()
	for d := range keep {
		*d = 0
	}
	restoreFlood()
	restoreNATS()
	if err := cfg.Validate(); err != nil {
		return nil, idx.located(name, err)
	}
	if err := cfg.CheckProvisioningCaps(); err != nil {
		return nil, idx.located(name, err)
	}
	return cfg, nil
}
