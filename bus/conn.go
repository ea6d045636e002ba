package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
)

// ReconnectWait is the pause between two reconnection attempts to a
// server (nats.go adds up to 100 ms of jitter, 1 s with TLS).
const ReconnectWait = 500 * time.Millisecond

// Connect opens the gateway's NATS connection: in process to srv when it
// is not nil (the embedded server), else to the servers of nats.url with
// the credentials and TLS of cfg. env looks up the variables named by
// nats.password_env and nats.token_env (nil: os.Getenv). extra options
// are applied last (tests).
//
// It does not wait for a server: an unreachable one at start is retried
// for ever (RetryOnFailedConnect, MaxReconnects -1), and the connection
// is returned after one attempt in the reconnecting state; a lost one is
// retried likewise. A server that is reached at start and refuses the
// credentials or a certificate is an error (a config error, not an
// outage); later refusals are logged and retried.
// Publishes while disconnected fail at once rather than being buffered
// (ReconnectBufSize -1): the Publisher then republishes from its oldest
// unacknowledged event, in order, instead of nats.go replaying a buffer
// behind its back. Connection changes are logged.
func Connect(cfg configs.NATS, node string, srv *Server, log zerolog.Logger, env func(string) string, extra ...nats.Option) (*nats.Conn, error) {
	if env == nil {
		env = os.Getenv
	}
	opts := []nats.Option{
		nats.Name("tollgate " + node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS connected")
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // Close, at shutdown
			}
			ev := log.Warn()
			if err != nil {
				ev = ev.Err(err)
			}
			ev.Msg("NATS disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			log.Error().Err(err).Msg("NATS error")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				log.Error().Err(err).Msg("NATS connection closed")
			}
		}),
	}
	url := strings.Join(cfg.URLs(), ",")
	if srv != nil {
		url = srv.ClientURL()
		if url == "" {
			url = nats.DefaultURL // unused: the connection is in process
		}
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		auth, err := authOptions(cfg, env)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
		if cfg.TLS.Set() {
			tc, err := tlsConfig(cfg.TLS)
			if err != nil {
				return nil, err
			}
			opts = append(opts, nats.Secure(tc))
		}
	}
	opts = append(opts, extra...)
	// One attempt first, for its error: a server that refuses us is a
	// config error; one that cannot be reached is an outage, retried in
	// the background (RetryOnFailedConnect hides the first error).
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		return nc, nil
	}
	if refused(err) {
		return nil, fmt.Errorf("nats: connect %s: %w (check the credentials and TLS settings of nats)", redact(url), err)
	}
	nc, err = nats.Connect(url, append(opts, nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", redact(url), err)
	}
	return nc, nil
}

// refused reports errors of a server that was reached and refused the
// connection: bad credentials, or a certificate that does not verify
// (either way).
func refused(err error) bool {
	if err == nil {
		return false
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) ||
		errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return true
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "authorization violation") || strings.Contains(m, "remote error: tls")
}

// authOptions are the credentials of an external server.
func authOptions(cfg configs.NATS, env func(string) string) ([]nats.Option, error) {
	switch {
	case cfg.User != "":
		pw := env(cfg.PasswordEnv)
		if pw == "" {
			return nil, fmt.Errorf("%w: nats.password_env: %s is empty or unset", ErrEnv, cfg.PasswordEnv)
		}
		return []nats.Option{nats.UserInfo(cfg.User, pw)}, nil
	case cfg.TokenEnv != "":
		tok := env(cfg.TokenEnv)
		if tok == "" {
			return nil, fmt.Errorf("%w: nats.token_env: %s is empty or unset", ErrEnv, cfg.TokenEnv)
		}
		return []nats.Option{nats.Token(tok)}, nil
	case cfg.CredsFile != "":
		return []nats.Option{nats.UserCredentials(cfg.CredsFile)}, nil
	case cfg.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nats.nkey_file: %w", err)
		}
		return []nats.Option{o}, nil
	}
	return nil, nil
}

// tlsConfig is the client TLS config of nats.tls.
func tlsConfig(t configs.NATSTLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pool, err := configs.LoadCertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nats.tls.ca_file: %w", err)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		pair, err := configs.LoadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats: nats.tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// redact drops user:password@ from URLs for logs and errors.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme := ""
			if j := strings.Index(u, "://"); j >= 0 && j < at {
				scheme = u[:j+3]
			}
			parts[i] = scheme + "***@" + u[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// Where describes the server a connection goes to, for the start log: the
// embedded server's address ("in process" with nats.listen off) or the
// URL list (without credentials).
func Where(cfg configs.NATS, srv *Server) string {
	if srv != nil {
		if u := srv.ClientURL(); u != "" {
			return "embedded " + u
		}
		return "embedded, in process"
	}
	return redact(strings.Join(cfg.URLs(), ","))
}
