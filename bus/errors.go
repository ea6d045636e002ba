package bus

import (
	"errors"
	"fmt"
)

var (
	// ErrNotReady is returned by StartServer when the embedded server
	// does not accept connections in time (e.g. its port is taken).
	ErrNotReady = errors.New("nats: embedded server not ready")
	// ErrNoJetStream is returned by StartServer when the embedded
	// server runs without JetStream (e.g. its store directory is not
	// writable).
	ErrNoJetStream = errors.New("nats: JetStream not enabled")
	// ErrEnv is returned by Connect when an environment variable named by
	// nats.password_env or nats.token_env is unset or empty.
	ErrEnv = errors.New("nats: environment variable not set")
	// ErrClosed is returned by Publisher.Close when called twice.
	ErrClosed = errors.New("nats: publisher closed")
)

// StreamConflictError reports an existing stream whose settings tollgate
// cannot change (storage, retention, subjects, mirror): EnsureStream
// returns it, and serve stops at start with it.
type StreamConflictError struct {
	Stream  string // the stream's name
	Setting string // "storage", "retention", "subjects", "mirror"
	Have    string // the stream's value
	Want    string // what the config asks for
	Hint    string // how to resolve it
}

func (e *StreamConflictError) Error() string {
	return fmt.Sprintf("nats: stream %s exists with %s %s, config wants %s (%s)", e.Stream, e.Setting, e.Have, e.Want, e.Hint)
}
