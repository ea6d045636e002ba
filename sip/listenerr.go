package sip

import (
	"errors"
	"net"
)

// ListenError is a socket that could not be bound, phrased once for the
// operator: `sip.listen (udp 127.0.0.1:5060): address already in use`,
// not `sip: listen udp 127.0.0.1:5060: listen udp 127.0.0.1:5060: bind:
// address already in use`. It unwraps to the error of the net package.
type ListenError struct {
	Field     string // the config field: sip.listen, api.listen, debug.listen
	Transport string // udp, tcp, tls
	Address   string
	Err       error
}

func (e *ListenError) Error() string {
	cause := e.Err
	var op *net.OpError
	if errors.As(cause, &op) && op.Err != nil {
		cause = op.Err // without "listen udp ADDR:", which the message says already
	}
	msg := cause.Error()
	// "bind: address already in use": the operation adds nothing either.
	if len(msg) > 6 && msg[:6] == "bind: " {
		msg = msg[6:]
	}
	return e.Field + " (" + e.Transport + " " + e.Address + "): " + msg
}

func (e *ListenError) Unwrap() error { return e.Err }
