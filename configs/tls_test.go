package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testutil"
)

// tlsFiles are the PEM files of a TLS config test, all in t.TempDir().
type tlsFiles struct {
	dir, cert, key, ca, otherKey string
}

func newTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "test CA")
	f := tlsFiles{dir: dir, ca: ca.WriteCA(t, dir, "ca")}
	f.cert, f.key = ca.Issue(t, "gateway", "127.0.0.1").Write(t, dir, "gateway")
	_, f.otherKey = ca.Issue(t, "other", "127.0.0.1").Write(t, dir, "other")
	return f
}

// tlsBase is base with a tls listener and a tls carrier; PATHS are
// replaced by the files.
func (f tlsFiles) base(t *testing.T) string {
	t.Helper()
	return strings.NewReplacer("CERT", f.cert, "KEY", f.key, "CA", f.ca).Replace(edit(t,
		"      address: 127.0.0.1:5060\n",
		"      address: 127.0.0.1:5060\n    - {transport: tls, address: 127.0.0.1:5061, cert: CERT, key: KEY, client_ca: CA}\n",
		"    address: 192.0.2.1:5060\n",
		"    address: 192.0.2.1:5061\n    transport: tls\n    server_name: sbc.carrier.example\n    ca: CA\n",
	))
}

func TestTLSConfig(t *testing.T) {
	f := newTLSFiles(t)
	cfg, err := Parse("tls.yaml", []byte(f.base(t)))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.SIP.Listen[1]
	if l.Transport != "tls" || l.Cert != f.cert || l.Key != f.key || l.ClientCA != f.ca {
		t.Errorf("tls listener = %+v", l)
	}
	if h := cfg.Carriers[0].Hop; h.Transport != "tls" || h.ServerName != "sbc.carrier.example" || h.CA != f.ca {
		t.Errorf("tls hop = %+v", h)
	}
	if cfg.SIP.TLS.HandshakeTimeout != DefaultTLSHandshakeTimeout || cfg.SIP.TLS.IdleTimeout != DefaultTLSIdleTimeout {
		t.Errorf("sip.tls defaults = %+v", cfg.SIP.TLS)
	}
	if _, err := Parse("tls.yaml", []byte(strings.Replace(f.base(t), "sip:\n", "sip:\n  tls: {handshake_timeout: 2s, idle_timeout: 90s}\n", 1))); err != nil {
		t.Fatal(err)
	}
	// A tls PBX hop without server_name (verified against its IP) and ca
	// (system roots) is valid.
	pbx := strings.Replace(f.base(t), "      address: 10.0.0.5:5060\n", "      address: 10.0.0.5:5061\n      transport: tls\n", 1)
	cfg, err = Parse("tls.yaml", []byte(pbx))
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Tenants[0].PBX; h.Transport != "tls" || h.ServerName != "" || h.CA != "" {
		t.Errorf("tls pbx = %+v", h)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	f := newTLSFiles(t)
	garbage := filepath.Join(f.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory cannot be read as a file, even by root (the tests may
	// run as root, for whom file modes do not deny a read).
	unreadable := filepath.Join(f.dir, "unreadable.pem")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(f.dir, "missing.pem")
	b := f.base(t)
	sub := func(old, new string) string {
		t.Helper()
		if !strings.Contains(b, old) {
			t.Fatalf("tls base has no %q", old)
		}
		return strings.Replace(b, old, new, 1)
	}
	listener := "{transport: tls, address: 127.0.0.1:5061, cert: " + f.cert + ", key: " + f.key + ", client_ca: " + f.ca + "}"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"listener without cert", sub(listener, "{transport: tls, address: 127.0.0.1:5061, key: "+f.key+"}"),
			[]string{"sip.listen[1].cert: required for a tls listener", "(line 6)"}},
		{"listener without key", sub(listener, "{transport: tls, address: 127.0.0.1:5061, cert: "+f.cert+"}"),
			[]string{"sip.listen[1].key: required for a tls listener"}},
		{"missing cert file", sub("cert: "+f.cert, "cert: "+missing),
			[]string{"sip.listen[1].cert: open " + missing + ": no such file or directory"}},
		{"missing key file", sub("key: "+f.key, "key: "+missing),
			[]string{"sip.listen[1].key: open " + missing + ": no such file or directory"}},
		{"unreadable key file", sub("key: "+f.key, "key: "+unreadable),
			[]string{"sip.listen[1].key: read " + unreadable + ": is a directory"}},
		{"cert not PEM", sub("cert: "+f.cert, "cert: "+garbage),
			[]string{"sip.listen[1].cert: " + garbage + ": no PEM CERTIFICATE block"}},
		{"key of another certificate", sub("key: "+f.key, "key: "+f.otherKey),
			[]string{"sip.listen[1].key: " + f.otherKey + ": tls: private key does not match public key"}},
		{"key file holds the cert", sub("key: "+f.key, "key: "+f.cert),
			[]string{"sip.listen[1].key: " + f.cert + ":"}},
		{"client_ca missing", sub("client_ca: "+f.ca, "client_ca: "+missing),
			[]string{"sip.listen[1].client_ca: open " + missing}},
		{"client_ca not PEM", sub("client_ca: "+f.ca, "client_ca: "+garbage),
			[]string{"sip.listen[1].client_ca: " + garbage + ": no PEM CERTIFICATE block"}},
		{"cert on a udp listener", edit(t, "      address: 127.0.0.1:5060\n", "      address: 127.0.0.1:5060\n      cert: "+f.cert+"\n"),
			[]string{"sip.listen[0].cert: only for transport tls (this listener is udp)"}},
		{"client_ca on a tcp listener", edit(t, "    - transport: udp\n", "    - {transport: tcp, address: 127.0.0.1:5060, client_ca: "+f.ca+"}\n    - transport: udp\n"),
			[]string{"sip.listen[0].client_ca: only for transport tls (this listener is tcp)"}},
		{"second tls listener", sub(listener, listener+"\n    - "+strings.Replace(listener, "5061", "5062", 1)),
			[]string{"sip.listen[2].transport: a second tls listener (sip.listen[1] is one)"}},
		{"zero handshake timeout", sub("sip:\n", "sip:\n  tls: {handshake_timeout: 0s}\n"),
			[]string{"sip.tls.handshake_timeout: must be > 0, got 0s"}},
		{"negative idle timeout", sub("sip:\n", "sip:\n  tls: {idle_timeout: -1m}\n"),
			[]string{"sip.tls.idle_timeout: must be > 0, got -1m0s"}},
		{"unknown sip.tls field", sub("sip:\n", "sip:\n  tls: {timeout: 1s}\n"),
			[]string{`sip.tls.timeout: unknown field "timeout"`, "handshake_timeout, idle_timeout"}},
		{"server_name with port", sub("server_name: sbc.carrier.example", "server_name: sbc.carrier.example:5061"),
			[]string{`carriers[0].server_name: must be an IP address or a host name without port, got "sbc.carrier.example:5061"`, "(line 11)"}},
		{"server_name as URL", sub("server_name: sbc.carrier.example", "server_name: sips://sbc.carrier.example"),
			[]string{`carriers[0].server_name: must be an IP address or a host name without port`}},
		{"server_name on a udp hop", edit(t, "    address: 192.0.2.1:5060\n", "    address: 192.0.2.1:5060\n    server_name: sbc.carrier.example\n"),
			[]string{"carriers[0].server_name: only for transport tls (this hop is udp)"}},
		{"ca on a tcp pbx", edit(t, "      address: 127.0.0.1:5060\n", "      address: 127.0.0.1:5060\n    - {transport: tcp, address: 127.0.0.1:5060}\n",
			"      address: 10.0.0.5:5060\n", "      address: 10.0.0.5:5060\n      transport: tcp\n      ca: "+f.ca+"\n"),
			[]string{"tenants[0].pbx.ca: only for transport tls (this hop is tcp)"}},
		{"server_name without pbx address", edit(t, "    pbx:\n      address: 10.0.0.5:5060\n", "    pbx:\n      server_name: pbx.example\n", `    dids: ["+1555"]`+"\n", ""),
			[]string{"tenants[0].pbx.address: "}},
		{"hop ca missing", sub("    ca: "+f.ca, "    ca: "+missing),
			[]string{"carriers[0].ca: open " + missing + ": no such file or directory"}},
		{"hop ca is a key", sub("    ca: "+f.ca, "    ca: "+f.key),
			[]string{"carriers[0].ca: " + f.key + ": no PEM CERTIFICATE block"}},
		{"tls hop without tls listener", sub(listener, "{transport: tcp, address: 127.0.0.1:5061}"),
			[]string{"carriers[0].transport: is tls, but sip.listen has no tls listener"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantParseError(t, tc.yaml, tc.want) })
	}
}

// A Config built in code gets the TLS defaults from ApplyDefaults, and
// Validate checks the files.
func TestTLSConfigProgrammatic(t *testing.T) {
	f := newTLSFiles(t)
	cfg := &Config{
		SIP:      SIP{Listen: []Listen{{Transport: "TLS", Address: "127.0.0.1:5061", Cert: f.cert, Key: f.key}}},
		Carriers: []Carrier{{Name: "c", Hop: Hop{Address: "127.0.0.2:5061", Transport: "TLS", CA: f.ca}}},
		Plans:    []Plan{{Name: "p"}},
		Tenants:  []Tenant{{Name: "t", Plan: "p", Carrier: "c", Sources: []string{"127.0.0.10/32"}}},
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.SIP.TLS != (TLS{HandshakeTimeout: 5 * time.Second, IdleTimeout: 5 * time.Minute}) {
		t.Errorf("sip.tls = %+v", cfg.SIP.TLS)
	}
	cfg.Carriers[0].CA = filepath.Join(f.dir, "gone.pem")
	if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "carriers[0].ca: open ") {
		t.Errorf("err = %v", err)
	}
}
