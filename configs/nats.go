package configs

import (
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The values of nats.stream.storage.
const (
	// StorageFile keeps the stream on disk (the default).
	StorageFile = "file"
	// StorageMemory keeps it in the NATS server's memory: lost when the
	// server stops.
	StorageMemory = "memory"
)

// NATSListenOff is the nats.listen value that runs the embedded server
// without a socket: only the gateway itself (in process) can connect.
const NATSListenOff = "off"

// Defaults of the nats section.
const (
	// DefaultNATSListen is where the embedded server accepts clients.
	DefaultNATSListen = "127.0.0.1:4222"
	// DefaultStreamName is the JetStream stream events are stored in.
	DefaultStreamName = "TOLLGATE_EVENTS"
	// DefaultStreamMaxAge: events older than this are removed from the
	// stream (30 days).
	DefaultStreamMaxAge = 720 * time.Hour
	// DefaultDuplicateWindow is the stream's deduplication window: a
	// message whose Nats-Msg-Id was stored less than this long ago is
	// dropped (acknowledged as a duplicate). It must exceed the time a
	// restart of the gateway takes (seconds); docs/CONFIG.md, nats.
	DefaultDuplicateWindow = 10 * time.Minute
	// MinDuplicateWindow is the shortest duplicate_window accepted.
	MinDuplicateWindow = time.Minute
	// DefaultMaxInFlight bounds the events published and not yet
	// acknowledged.
	DefaultMaxInFlight = 256
	// MaxMaxInFlight is the largest publisher.max_in_flight.
	MaxMaxInFlight = 65536
	// DefaultPublisherBatch is the number of outbox entries read at a time.
	DefaultPublisherBatch = 256
	// MaxPublisherBatch is the largest publisher.batch (the store's page).
	MaxPublisherBatch = 10000
	// DefaultMaxBackoff caps the wait between publish attempts while NATS
	// fails (it starts at MinBackoff and doubles).
	DefaultMaxBackoff = 5 * time.Second
	// MinBackoff is the first wait after a failure.
	MinBackoff = 100 * time.Millisecond
	// MaxNodeLen is the longest node name.
	MaxNodeLen = 64
)

// NATS configures the event bus (package bus): the NATS server the
// gateway publishes its events to — an embedded one (the default) or an
// external server or cluster — the JetStream stream that keeps them, and
// the publisher that drains the store's outbox into it. Subjects are
// fixed: tollgate.events.<tenant>.<type>, the stream takes
// tollgate.events.>. Every field is in docs/CONFIG.md, section nats.
type NATS struct {
	// Enabled: false runs no NATS server and no publisher; events stay in
	// the store's outbox (tollgate_outbox_depth grows; entries expire
	// after store.retention.outbox). Default true.
	Enabled *bool `yaml:"enabled" json:"enabled"`
	// URL is the external NATS server or cluster, a comma-separated list
	// of nats://host:port (tls://, ws://, wss:// also; host:port means
	// nats://). Empty (the default): the gateway starts an embedded
	// nats-server with JetStream, its store in <store.data_dir>/nats.
	URL string `yaml:"url" json:"url"`
	// Listen is the embedded server's client address, IP:port (port 0
	// picks a free one, logged at start); "off" accepts no connection
	// from outside the process. Default 127.0.0.1:4222. The embedded
	// server has no authentication: keep it on loopback or a management
	// network. Only without url.
	Listen string `yaml:"listen" json:"listen"`
	// SyncAlways makes the embedded server's JetStream fsync every write
	// before it acknowledges it. Default false: JetStream fsyncs every 2
	// minutes, so a power loss or kernel crash (not a crash of the
	// process: the OS still writes its page cache out) can lose the
	// events acknowledged in the last 2 minutes, which are then gone from
	// the outbox too. The cost of true, measured on a 2 vCPU VM with an
	// ext4 virtual disk (bus/bench_test.go; docs/CONFIG.md): PubAck p50
	// 0.03 ms -> 0.32 ms, p99 0.2 ms -> 0.6 ms, and the publisher's drain
	// rate 52,000 -> 4,100 events/s (each write fsynced in turn). Only
	// without url (an external server's fsync is its own setting).
	SyncAlways bool `yaml:"sync_always" json:"sync_always"`

	// User is the user name for an external server (with password_env).
	User string `yaml:"user" json:"user"`
	// PasswordEnv names the environment variable holding the password of
	// user.
	PasswordEnv string `yaml:"password_env" json:"password_env"`
	// TokenEnv names the environment variable holding an authentication
	// token for an external server.
	TokenEnv string `yaml:"token_env" json:"token_env"`
	// CredsFile is a NATS credentials file (user JWT and NKey seed, as
	// written by nsc) for an external server in operator/JWT mode.
	CredsFile string `yaml:"creds_file" json:"creds_file"`
	// NKeyFile is a file holding an NKey user seed (SU...) for an external
	// server that authenticates NKeys.
	NKeyFile string `yaml:"nkey_file" json:"nkey_file"`
	// TLS configures TLS to an external server (tls:// URLs, or servers
	// that require TLS).
	TLS NATSTLS `yaml:"tls" json:"tls"`

	// Stream is the JetStream stream the events are stored in, created or
	// updated at start.
	Stream NATSStream `yaml:"stream" json:"stream"`
	// Publisher tunes the outbox drain.
	Publisher NATSPublisher `yaml:"publisher" json:"publisher"`
}

// NATSTLS is TLS to an external NATS server.
type NATSTLS struct {
	// CAFile is a PEM file of the CAs that sign the server's certificate.
	// Default: the system's roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are the client certificate (PEM chain, leaf
	// first) and its key, for servers that verify clients. Both or none.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ServerName is the name the server's certificate must be issued for.
	// Default: the host of the URL connected to.
	ServerName string `yaml:"server_name" json:"server_name"`
}

// Set reports whether any TLS field is set.
func (t NATSTLS) Set() bool { return t != NATSTLS{} }

// NATSStream is the JetStream stream of the events (retention: limits;
// discard: old).
type NATSStream struct {
	// Name of the stream. Default TOLLGATE_EVENTS. Letters, digits, - and
	// _, at most 64.
	Name string `yaml:"name" json:"name"`
	// Replicas is the number of copies in a NATS cluster, 1..5. Default 1.
	Replicas int `yaml:"replicas" json:"replicas"`
	// MaxAge: older events are removed. Default 720h (30 days); 0s keeps
	// them until max_bytes or max_msgs.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
	// MaxBytes bounds the stream's size in bytes (oldest removed first);
	// -1 (the default) is unlimited.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes"`
	// MaxMsgs bounds the number of events kept; -1 (the default) is
	// unlimited.
	MaxMsgs int64 `yaml:"max_msgs" json:"max_msgs"`
	// DuplicateWindow: an event whose id (Nats-Msg-Id) the stream stored
	// less than this long ago is acknowledged as a duplicate and not
	// stored again. What makes a republish after a restart or an outage
	// harmless: it must be longer than a restart (seconds) and covers a
	// NATS outage of up to its length without any risk (docs/CONFIG.md).
	// Default 10m; at least 1m and at most max_age. The server keeps
	// every id of the window in memory (about 110 bytes each: at
	// 3,000 events/s the default window holds 1.8 M ids, some 200 MB).
	DuplicateWindow time.Duration `yaml:"duplicate_window" json:"duplicate_window"`
	// Storage is file (the default) or memory. Cannot be changed on an
	// existing stream.
	Storage string `yaml:"storage" json:"storage"`
}

// NATSPublisher tunes the publisher that drains the outbox.
type NATSPublisher struct {
	// MaxInFlight bounds the events published and not yet acknowledged
	// by JetStream, 1..65536. Default 256.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
	// Batch is the number of outbox entries read from the store at a
	// time, 1..10000. Default 256.
	Batch int `yaml:"batch" json:"batch"`
	// MaxBackoff caps the wait between attempts while publishing fails
	// (100ms, doubling, with jitter). Default 5s; 100ms..5m.
	MaxBackoff time.Duration `yaml:"max_backoff" json:"max_backoff"`
}

// On reports whether NATS is enabled (nats.enabled, default true).
func (n *NATS) On() bool { return n.Enabled == nil || *n.Enabled }

// Embedded reports whether the gateway runs its own server (no url).
func (n *NATS) Embedded() bool { return strings.TrimSpace(n.URL) == "" }

// URLs returns the entries of url, trimmed.
func (n *NATS) URLs() []string {
	var out []string
	for _, u := range strings.Split(n.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// ListenAddr returns the embedded server's host and port from listen
// (after Validate); ok is false for "off".
func (n *NATS) ListenAddr() (host string, port int, ok bool) {
	if n.Listen == NATSListenOff {
		return "", 0, false
	}
	h, p, err := net.SplitHostPort(n.Listen)
	if err != nil {
		return "", 0, false
	}
	port, _ = strconv.Atoi(p)
	return h, port, true
}

// hostname is os.Hostname, read once.
var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
})

var nodeRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// DefaultNode is the node name when node is unset: the host name, with
// characters outside letters, digits, '-', '_' and '.' replaced by '-'
// and cut at 64 ("tollgate" when there is none).
func DefaultNode() string { return nodeName(hostname()) }

// nodeName makes a valid node name of a host name.
func nodeName(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	if len(b) > MaxNodeLen {
		b = b[:MaxNodeLen]
	}
	if len(b) == 0 {
		return "tollgate"
	}
	return string(b)
}

func validateNode(node string) error {
	if !nodeRe.MatchString(node) {
		if len(node) > MaxNodeLen {
			return errf("node", "at most %d characters, got %d", MaxNodeLen, len(node))
		}
		return errf("node", "must be 1..%d letters, digits, '-', '_' or '.', got %q", MaxNodeLen, node)
	}
	return nil
}

func (n *NATS) applyDefaults() {
	if n.Enabled == nil {
		n.Enabled = ptrTo(true)
	}
	if n.Embedded() && n.Listen == "" {
		n.Listen = DefaultNATSListen
	}
	n.Listen = strings.ToLower(n.Listen)
	s := &n.Stream
	if s.Name == "" {
		s.Name = DefaultStreamName
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.MaxAge == 0 {
		s.MaxAge = DefaultStreamMaxAge
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = -1
	}
	if s.MaxMsgs == 0 {
		s.MaxMsgs = -1
	}
	if s.DuplicateWindow == 0 {
		s.DuplicateWindow = DefaultDuplicateWindow
	}
	s.Storage = strings.ToLower(s.Storage)
	if s.Storage == "" {
		s.Storage = StorageFile
	}
	p := &n.Publisher
	if p.MaxInFlight == 0 {
		p.MaxInFlight = DefaultMaxInFlight
	}
	if p.Batch == 0 {
		p.Batch = DefaultPublisherBatch
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
}

// keepWrittenZeros undoes ApplyDefaults for the numbers written as 0 in
// the file: max_age 0s means no age limit; any other 0 is an error, not
// the default. present reports whether a field path is in the file.
func (n *NATS) keepWrittenZeros(present func(path string) bool) (restore func()) {
	var undo []func()
	zero := func(path string, isZero bool, set func()) {
		if isZero && present("nats."+path) {
			undo = append(undo, set)
		}
	}
	s, p := &n.Stream, &n.Publisher
	zero("stream.replicas", s.Replicas == 0, func() { s.Replicas = 0 })
	zero("stream.max_age", s.MaxAge == 0, func() { s.MaxAge = 0 })
	zero("stream.max_bytes", s.MaxBytes == 0, func() { s.MaxBytes = 0 })
	zero("stream.max_msgs", s.MaxMsgs == 0, func() { s.MaxMsgs = 0 })
	zero("stream.duplicate_window", s.DuplicateWindow == 0, func() { s.DuplicateWindow = 0 })
	zero("publisher.max_in_flight", p.MaxInFlight == 0, func() { p.MaxInFlight = 0 })
	zero("publisher.batch", p.Batch == 0, func() { p.Batch = 0 })
	zero("publisher.max_backoff", p.MaxBackoff == 0, func() { p.MaxBackoff = 0 })
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

var (
	streamNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	envNameRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (n *NATS) validate() error {
	if n.Embedded() {
		if err := n.validateEmbedded(); err != nil {
			return err
		}
	} else if err := n.validateExternal(); err != nil {
		return err
	}
	s := n.Stream
	if !streamNameRe.MatchString(s.Name) {
		return errf("nats.stream.name", "must be 1..64 letters, digits, '-' or '_', got %q", s.Name)
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		return errf("nats.stream.replicas", "must be 1..5, got %d", s.Replicas)
	}
	if s.MaxAge < 0 {
		return errf("nats.stream.max_age", "must be >= 0 (0s: no age limit), got %s", s.MaxAge)
	}
	if s.MaxBytes != -1 && s.MaxBytes <= 0 {
		return errf("nats.stream.max_bytes", "must be -1 (unlimited) or a positive number of bytes, got %d", s.MaxBytes)
	}
	if s.MaxMsgs != -1 && s.MaxMsgs <= 0 {
		return errf("nats.stream.max_msgs", "must be -1 (unlimited) or a positive number of events, got %d", s.MaxMsgs)
	}
	if s.DuplicateWindow < MinDuplicateWindow {
		return errf("nats.stream.duplicate_window", "must be at least %s (longer than a restart of the gateway), got %s", MinDuplicateWindow, s.DuplicateWindow)
	}
	if s.MaxAge > 0 && s.DuplicateWindow > s.MaxAge {
		return errf("nats.stream.duplicate_window", "must be at most nats.stream.max_age (%s), got %s", s.MaxAge, s.DuplicateWindow)
	}
	switch s.Storage {
	case StorageFile, StorageMemory:
	default:
		return errf("nats.stream.storage", "must be file or memory, got %q", s.Storage)
	}
	p := n.Publisher
	if p.MaxInFlight < 1 || p.MaxInFlight > MaxMaxInFlight {
		return errf("nats.publisher.max_in_flight", "must be 1..%d, got %d", MaxMaxInFlight, p.MaxInFlight)
	}
	if p.Batch < 1 || p.Batch > MaxPublisherBatch {
		return errf("nats.publisher.batch", "must be 1..%d, got %d", MaxPublisherBatch, p.Batch)
	}
	if p.MaxBackoff < MinBackoff || p.MaxBackoff > 5*time.Minute {
		return errf("nats.publisher.max_backoff", "must be between %s and 5m, got %s", MinBackoff, p.MaxBackoff)
	}
	return nil
}

func (n *NATS) validateEmbedded() error {
	for _, f := range []struct{ name, v string }{
		{"user", n.User}, {"password_env", n.PasswordEnv}, {"token_env", n.TokenEnv},
		{"creds_file", n.CredsFile}, {"nkey_file", n.NKeyFile},
		{"tls.ca_file", n.TLS.CAFile}, {"tls.cert_file", n.TLS.CertFile}, {"tls.key_file", n.TLS.KeyFile}, {"tls.server_name", n.TLS.ServerName},
	} {
		if f.v != "" {
			return errf("nats."+f.name, "only for an external server (set nats.url); the embedded server needs no credentials")
		}
	}
	if n.Listen == NATSListenOff {
		return nil
	}
	host, port, err := net.SplitHostPort(n.Listen)
	if err != nil {
		return errf("nats.listen", "must be IP:port or off, got %q", n.Listen)
	}
	if ip := net.ParseIP(host); ip == nil {
		return errf("nats.listen", "host must be an IP address, got %q", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return errf("nats.listen", "port must be 0..65535 (0: any free port), got %q", port)
	}
	return nil
}

func (n *NATS) validateExternal() error {
	if n.Listen != "" {
		return errf("nats.listen", "only for the embedded server (nats.url is set)")
	}
	if n.SyncAlways {
		return errf("nats.sync_always", "only for the embedded server (an external server's fsync is its own setting)")
	}
	for i, raw := range strings.Split(n.URL, ",") {
		p := "nats.url"
		if strings.Contains(n.URL, ",") {
			p += "[" + strconv.Itoa(i) + "]"
		}
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return errf(p, "empty entry in the comma-separated list %q", n.URL)
		}
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return errf(p, "not a URL: %q", raw)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return errf(p, "scheme must be nats, tls, ws or wss, got %q", u.Scheme)
		}
		if u.Hostname() == "" {
			return errf(p, "needs a host, got %q", raw)
		}
		if ps := u.Port(); ps != "" {
			if v, err := strconv.Atoi(ps); err != nil || v < 1 || v > 65535 {
				return errf(p, "port must be 1..65535, got %q", ps)
			}
		}
	}
	auth := 0
	for _, set := range []bool{n.User != "", n.TokenEnv != "", n.CredsFile != "", n.NKeyFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		return errf("nats", "set at most one of user (with password_env), token_env, creds_file and nkey_file")
	}
	if n.User != "" && n.PasswordEnv == "" {
		return errf("nats.password_env", "required with nats.user (the environment variable holding the password)")
	}
	if n.PasswordEnv != "" && n.User == "" {
		return errf("nats.user", "required with nats.password_env")
	}
	for _, f := range []struct{ name, v string }{{"password_env", n.PasswordEnv}, {"token_env", n.TokenEnv}} {
		if f.v != "" && !envNameRe.MatchString(f.v) {
			return errf("nats."+f.name, "must be an environment variable name (letters, digits, _), got %q", f.v)
		}
	}
	for _, f := range []struct{ name, v string }{{"creds_file", n.CredsFile}, {"nkey_file", n.NKeyFile}} {
		if f.v == "" {
			continue
		}
		if _, err := os.ReadFile(f.v); err != nil {
			return errf("nats."+f.name, "%v", err)
		}
	}
	t := n.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			return errf("nats.tls.cert_file", "required with nats.tls.key_file")
		}
		return errf("nats.tls.key_file", "required with nats.tls.cert_file")
	}
	if t.CertFile != "" {
		if _, err := LoadKeyPair(t.CertFile, t.KeyFile); err != nil {
			if fe, ok := err.(*fileError); ok {
				return errf("nats.tls."+fe.field+"_file", "%s", fe.msg)
			}
			return errf("nats.tls.cert_file", "%s", err.Error())
		}
	}
	if t.CAFile != "" {
		if _, err := LoadCertPool(t.CAFile); err != nil {
			return errf("nats.tls.ca_file", "%s", err.Error())
		}
	}
	if t.ServerName != "" {
		if msg := checkAdvertise(t.ServerName); msg != "" {
			return errf("nats.tls.server_name", "%s (the name the server's certificate is issued for)", msg)
		}
	}
	return nil
}
