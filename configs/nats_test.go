package configs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/testutil"
)

// defaultNATS is the nats section of a file without one.
var defaultNATS = NATS{
	Enabled: ptrTo(true),
	Listen:  "127.0.0.1:4222",
	Stream: NATSStream{Name: "TOLLGATE_EVENTS", Replicas: 1, MaxAge: 720 * time.Hour, MaxBytes: -1, MaxMsgs: -1,
		DuplicateWindow: 10 * time.Minute, Storage: "file"},
	Publisher: NATSPublisher{MaxInFlight: 256, Batch: 256, MaxBackoff: 5 * time.Second},
}

func TestNATSDefaults(t *testing.T) {
	cfg, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.NATS, defaultNATS) {
		t.Fatalf("nats = %+v\nwant   %+v", cfg.NATS, defaultNATS)
	}
	if !cfg.NATS.On() || !cfg.NATS.Embedded() {
		t.Errorf("On %v Embedded %v, want both", cfg.NATS.On(), cfg.NATS.Embedded())
	}
	if h, p, ok := cfg.NATS.ListenAddr(); h != "127.0.0.1" || p != 4222 || !ok {
		t.Errorf("ListenAddr = %q %d %v", h, p, ok)
	}
	if cfg.Node == "" || cfg.Node != DefaultNode() {
		t.Errorf("node = %q, want the host name %q", cfg.Node, DefaultNode())
	}
	if err := validateNode(DefaultNode()); err != nil {
		t.Errorf("the default node name is invalid: %v", err)
	}
	// A config built in code gets the same defaults.
	c := Config{}
	c.ApplyDefaults()
	if !reflect.DeepEqual(c.NATS, defaultNATS) || c.Node != DefaultNode() {
		t.Fatalf("ApplyDefaults: node %q nats %+v", c.Node, c.NATS)
	}
}

// The host name becomes a valid node name.
func TestDefaultNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"gw1.example.net":       "gw1.example.net",
		"":                      "tollgate",
		"host name/with:ch":     "host-name-with-ch",
		strings.Repeat("a", 80): strings.Repeat("a", 64),
	} {
		if got := nodeName(in); got != want {
			t.Errorf("nodeName(%q) = %q, want %q", in, got, want)
		}
		if err := validateNode(nodeName(in)); err != nil {
			t.Errorf("nodeName(%q): %v", in, err)
		}
	}
}

func TestNATSSet(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "nats CA")
	caFile := ca.WriteCA(t, dir, "ca")
	cert, key := ca.Issue(t, "tollgate", "127.0.0.1").Write(t, dir, "client")
	cfg, err := Parse("n.yaml", []byte(base+`node: gw-1.fra
nats:
  url: "tls://10.0.0.1:4222, nats2.example.net:4222,wss://nats3.example.net"
  user: tollgate
  password_env: NATS_PASSWORD
  tls: {ca_file: `+caFile+`, cert_file: `+cert+`, key_file: `+key+`, server_name: nats.example.net}
  stream: {name: EVENTS-gw, replicas: 3, max_age: 0s, max_bytes: 1073741824, max_msgs: 1000000, duplicate_window: 1h, storage: MEMORY}
  publisher: {max_in_flight: 1024, batch: 5000, max_backoff: 30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := NATS{
		Enabled: ptrTo(true),
		URL:     "tls://10.0.0.1:4222, nats2.example.net:4222,wss://nats3.example.net",
		User:    "tollgate", PasswordEnv: "NATS_PASSWORD",
		TLS: NATSTLS{CAFile: caFile, CertFile: cert, KeyFile: key, ServerName: "nats.example.net"},
		Stream: NATSStream{Name: "EVENTS-gw", Replicas: 3, MaxAge: 0, MaxBytes: 1 << 30, MaxMsgs: 1_000_000,
			DuplicateWindow: time.Hour, Storage: "memory"},
		Publisher: NATSPublisher{MaxInFlight: 1024, Batch: 5000, MaxBackoff: 30 * time.Second},
	}
	if !reflect.DeepEqual(cfg.NATS, want) {
		t.Fatalf("nats = %+v\nwant   %+v", cfg.NATS, want)
	}
	if cfg.Node != "gw-1.fra" {
		t.Errorf("node = %q", cfg.Node)
	}
	if cfg.NATS.Embedded() {
		t.Error("a url is embedded")
	}
	if got := cfg.NATS.URLs(); !reflect.DeepEqual(got, []string{"tls://10.0.0.1:4222", "nats2.example.net:4222", "wss://nats3.example.net"}) {
		t.Errorf("URLs = %q", got)
	}

	// Off, and in-process only.
	cfg, err = Parse("n.yaml", []byte(base+"nats: {enabled: false}\n"))
	if err != nil || cfg.NATS.On() {
		t.Fatalf("enabled false: %v, On %v", err, cfg.NATS.On())
	}
	cfg, err = Parse("n.yaml", []byte(base+"nats: {listen: OFF, sync_always: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := cfg.NATS.ListenAddr(); ok || cfg.NATS.Listen != "off" || !cfg.NATS.SyncAlways {
		t.Errorf("listen off: %+v", cfg.NATS)
	}
	for _, l := range []string{"127.0.0.1:0", "[::1]:14222", "0.0.0.0:4222"} {
		if _, err := Parse("n.yaml", []byte(base+"nats: {listen: \""+l+"\"}\n")); err != nil {
			t.Errorf("listen %s: %v", l, err)
		}
	}
	// Other credentials.
	creds := filepath.Join(dir, "user.creds")
	if err := os.WriteFile(creds, []byte("-----BEGIN NATS USER JWT-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{
		"token_env: NATS_TOKEN", "creds_file: " + creds, "nkey_file: " + creds, "tls: {ca_file: " + caFile + "}",
	} {
		if _, err := Parse("n.yaml", []byte(base+"nats:\n  url: nats://127.0.0.1:4222\n  "+extra+"\n")); err != nil {
			t.Errorf("%s: %v", extra, err)
		}
	}
}

// TestNATSErrors: every bad value is an error naming its field; a zero
// written in the file is an error (max_age 0s excepted), not the default.
func TestNATSErrors(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "nats CA")
	cert, key := ca.Issue(t, "tollgate", "127.0.0.1").Write(t, dir, "client")
	_, otherKey := ca.Issue(t, "other", "127.0.0.1").Write(t, dir, "other")
	ext := "nats:\n  url: nats://127.0.0.1:4222\n"
	cases := []struct{ name, yaml, want string }{
		{"empty node", "node: \"\"\nnats: {}", ""}, // empty means the default
		{"bad node", "node: gw 1", `node: must be 1..64 letters, digits, '-', '_' or '.', got "gw 1"`},
		{"long node", "node: " + strings.Repeat("n", 65), "node: at most 64 characters, got 65"},
		{"bad enabled", "nats: {enabled: maybe}", "nats.enabled: expected"},
		{"unknown field", "nats: {urls: x}", `nats.urls: unknown field "urls"`},
		{"listen not ip:port", "nats: {listen: 4222}", `nats.listen: must be IP:port or off, got "4222"`},
		{"listen host name", "nats: {listen: localhost:4222}", `nats.listen: host must be an IP address, got "localhost"`},
		{"listen bad port", "nats: {listen: 127.0.0.1:70000}", `nats.listen: port must be 0..65535`},
		{"credentials embedded", "nats: {user: u, password_env: P}", "nats.user: only for an external server (set nats.url)"},
		{"tls embedded", "nats: {tls: {ca_file: x}}", "nats.tls.ca_file: only for an external server"},
		{"listen with url", "nats: {url: nats://h:4222, listen: 127.0.0.1:4222}", "nats.listen: only for the embedded server"},
		{"sync_always with url", "nats: {url: nats://h:4222, sync_always: true}", "nats.sync_always: only for the embedded server"},
		{"bad scheme", "nats: {url: \"http://h:4222\"}", `nats.url: scheme must be nats, tls, ws or wss, got "http"`},
		{"empty entry", "nats: {url: \"nats://a:1,,nats://b:2\"}", `nats.url[1]: empty entry`},
		{"second url bad", "nats: {url: \"nats://a:1, nats://b:99999\"}", `nats.url[1]: port must be 1..65535, got "99999"`},
		{"no host", "nats: {url: \"nats://:4222\"}", `nats.url: needs a host`},
		{"two auths", ext + "  token_env: T\n  creds_file: x", "nats: set at most one of user (with password_env), token_env, creds_file and nkey_file"},
		{"user without password", ext + "  user: u", "nats.password_env: required with nats.user"},
		{"password without user", ext + "  password_env: P", "nats.user: required with nats.password_env"},
		{"bad env name", ext + "  token_env: NATS-TOKEN", `nats.token_env: must be an environment variable name`},
		{"missing creds", ext + "  creds_file: " + filepath.Join(dir, "none.creds"), "nats.creds_file: open "},
		{"missing nkey", ext + "  nkey_file: " + filepath.Join(dir, "none.nk"), "nats.nkey_file: open "},
		{"cert without key", ext + "  tls: {cert_file: " + cert + "}", "nats.tls.key_file: required with nats.tls.cert_file"},
		{"key without cert", ext + "  tls: {key_file: " + key + "}", "nats.tls.cert_file: required with nats.tls.key_file"},
		{"mismatched key", ext + "  tls: {cert_file: " + cert + ", key_file: " + otherKey + "}", "nats.tls.key_file: "},
		{"missing ca", ext + "  tls: {ca_file: " + filepath.Join(dir, "none.pem") + "}", "nats.tls.ca_file: open "},
		{"ca not pem", ext + "  tls: {ca_file: " + key + "}", "nats.tls.ca_file: " + key + ": no PEM CERTIFICATE block"},
		{"bad server name", ext + "  tls: {server_name: \"a b\"}", "nats.tls.server_name: must be an IP address or a host name"},
		{"bad stream name", "nats: {stream: {name: tollgate.events}}", `nats.stream.name: must be 1..64 letters, digits, '-' or '_', got "tollgate.events"`},
		{"zero replicas", "nats: {stream: {replicas: 0}}", "nats.stream.replicas: must be 1..5, got 0"},
		{"six replicas", "nats: {stream: {replicas: 6}}", "nats.stream.replicas: must be 1..5, got 6"},
		{"negative max_age", "nats: {stream: {max_age: -1h}}", "nats.stream.max_age: must be >= 0"},
		{"zero max_bytes", "nats: {stream: {max_bytes: 0}}", "nats.stream.max_bytes: must be -1 (unlimited) or a positive number of bytes, got 0"},
		{"max_bytes -2", "nats: {stream: {max_bytes: -2}}", "nats.stream.max_bytes: must be -1"},
		{"zero max_msgs", "nats: {stream: {max_msgs: 0}}", "nats.stream.max_msgs: must be -1 (unlimited) or a positive number of events, got 0"},
		{"zero window", "nats: {stream: {duplicate_window: 0s}}", "nats.stream.duplicate_window: must be at least 1m0s (longer than a restart of the gateway), got 0s"},
		{"short window", "nats: {stream: {duplicate_window: 5s}}", "nats.stream.duplicate_window: must be at least 1m0s"},
		{"window over max_age", "nats: {stream: {max_age: 2m, duplicate_window: 3m}}", "nats.stream.duplicate_window: must be at most nats.stream.max_age (2m0s), got 3m0s"},
		{"bad storage", "nats: {stream: {storage: disk}}", `nats.stream.storage: must be file or memory, got "disk"`},
		{"zero in flight", "nats: {publisher: {max_in_flight: 0}}", "nats.publisher.max_in_flight: must be 1..65536, got 0"},
		{"too many in flight", "nats: {publisher: {max_in_flight: 70000}}", "nats.publisher.max_in_flight: must be 1..65536, got 70000"},
		{"zero batch", "nats: {publisher: {batch: 0}}", "nats.publisher.batch: must be 1..10000, got 0"},
		{"big batch", "nats: {publisher: {batch: 10001}}", "nats.publisher.batch: must be 1..10000, got 10001"},
		{"zero backoff", "nats: {publisher: {max_backoff: 0s}}", "nats.publisher.max_backoff: must be between 100ms and 5m, got 0s"},
		{"short backoff", "nats: {publisher: {max_backoff: 10ms}}", "nats.publisher.max_backoff: must be between 100ms and 5m"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "" {
				if _, err := Parse("ok.yaml", []byte(base+tc.yaml+"\n")); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantParseError(t, base+tc.yaml+"\n", []string{"bad.yaml: ", tc.want})
		})
	}
	// In code (no file), the rules hold too.
	c, err := Parse("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c.NATS.Publisher.MaxInFlight = -1
	if err := c.Validate(); err == nil {
		t.Fatal("max_in_flight -1 accepted")
	} else if path, _, _ := FieldPath(err); path != "nats.publisher.max_in_flight" {
		t.Fatalf("error %v names %q", err, path)
	}
}

// The shipped examples: the demo writes the defaults out; the
// multi-tenant one an external cluster.
func TestNATSExamples(t *testing.T) {
	demo, err := Load("tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(demo.NATS, defaultNATS) {
		t.Errorf("tollgate.yaml nats = %+v, want the defaults", demo.NATS)
	}
	multi, err := Load("example-multi-tenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := multi.NATS
	if multi.Node != "gw-lon-1" || n.Embedded() || len(n.URLs()) != 3 || n.Stream.Replicas != 3 || n.Stream.MaxBytes != 50<<30 ||
		n.Stream.DuplicateWindow != 15*time.Minute || n.Publisher.MaxInFlight != 1024 || n.Publisher.Batch != 256 || n.Listen != "" {
		t.Errorf("example-multi-tenant.yaml: node %q nats %+v", multi.Node, n)
	}
}
