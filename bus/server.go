package bus

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
)

// ServerDir is the embedded server's directory under store.data_dir
// (JetStream keeps its files in ServerDir/jetstream).
const ServerDir = "nats"

// readyTimeout bounds the embedded server's start.
const readyTimeout = 10 * time.Second

// Server is the embedded nats-server with JetStream.
type Server struct {
	*server.Server
	dir string // its store directory
	tmp bool   // dir is a temporary directory, removed at Shutdown
}

// StartServer starts the embedded nats-server of cfg (nats.listen,
// nats.sync_always) with JetStream, its store in dataDir/nats; for
// dataDir ":memory:" in a temporary directory removed at Shutdown. node
// is the server's name. A port 0 in listen picks a free port (ClientURL
// tells which). The server's log goes to log: notices at debug, warnings
// and errors at their level. It returns when the server accepts clients.
func StartServer(cfg configs.NATS, node, dataDir string, log zerolog.Logger) (*Server, error) {
	s := &Server{}
	if dataDir == configs.MemoryDataDir {
		d, err := os.MkdirTemp("", "tollgate-nats-")
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		s.dir, s.tmp = d, true
	} else {
		s.dir = filepath.Join(dataDir, ServerDir)
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
	}
	opts := &server.Options{
		ServerName:             node,
		JetStream:              true,
		StoreDir:               s.dir,
		SyncAlways:             cfg.SyncAlways,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
	}
	if host, port, ok := cfg.ListenAddr(); ok {
		opts.Host, opts.Port = host, port
		if port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	} else {
		opts.DontListen = true
	}
	srv, err := startServer(opts, log)
	if err != nil {
		s.removeTmp()
		return nil, err
	}
	s.Server = srv
	return s, nil
}

// startServer starts a nats-server with opts, logging to log, and waits
// until it accepts clients and runs JetStream (when opts asks for it).
func startServer(opts *server.Options, log zerolog.Logger) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	sl := &serverLog{log: log}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()
	// Ready, or failed: a port in use is logged at once (and would keep
	// ReadyForConnections waiting its whole timeout).
	deadline := time.Now().Add(readyTimeout)
	ready := srv.ReadyForConnections(25 * time.Millisecond)
	for !ready && sl.last() == "" && time.Now().Before(deadline) {
		ready = srv.ReadyForConnections(25 * time.Millisecond)
	}
	if !ready {
		srv.Shutdown()
		srv.WaitForShutdown()
		where := net.JoinHostPort(opts.Host, fmt.Sprint(opts.Port))
		if opts.DontListen {
			where = "in process"
		}
		if m := sl.last(); m != "" {
			return nil, fmt.Errorf("%w (%s): %s", ErrNotReady, where, m)
		}
		return nil, fmt.Errorf("%w (%s) after %s", ErrNotReady, where, readyTimeout)
	}
	if opts.JetStream && !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		if m := sl.last(); m != "" {
			return nil, fmt.Errorf("%w (store %s): %s", ErrNoJetStream, opts.StoreDir, m)
		}
		return nil, fmt.Errorf("%w (store %s)", ErrNoJetStream, opts.StoreDir)
	}
	return srv, nil
}

// ClientURL is the URL clients connect to (nats://host:port, the port
// actually bound), "" when the server does not listen (nats.listen off).
func (s *Server) ClientURL() string {
	if s.Addr() == nil {
		return ""
	}
	return s.Server.ClientURL()
}

// Dir is the server's store directory.
func (s *Server) Dir() string { return s.dir }

// Shutdown stops the server, waits until it has, and removes a temporary
// store directory.
func (s *Server) Shutdown() {
	if s == nil || s.Server == nil {
		return
	}
	s.Server.Shutdown()
	s.WaitForShutdown()
	s.removeTmp()
}

func (s *Server) removeTmp() {
	if s.tmp {
		_ = os.RemoveAll(s.dir)
	}
}
