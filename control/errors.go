package control

import (
	"fmt"
	"strings"

	"github.com/tollgate/tollgate/api"
)

// opError is an error an operator reads (through the API or the CLI): its
// message stands alone, without a package prefix or the sentinel's text
// repeated (`tenant "x" not found`, not `control: tenant "x": not found`),
// and it matches its API sentinel (api.ErrNotFound, api.ErrConflict) with
// errors.Is, so the API answers the right status.
type opError struct {
	msg   string
	kind  error
	cause error // optional: the error it rephrases, still matched by errors.Is
}

func (e *opError) Error() string { return e.msg }
func (e *opError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// rephrase is an opError of kind for cause, whose message loses the
// package prefix cause carries (`cluster: unknown node "gw-z"` reads
// `unknown node "gw-z"`).
func rephrase(kind, cause error) error {
	msg := cause.Error()
	if i := strings.Index(msg, ": "); i > 0 && !strings.ContainsAny(msg[:i], " \"") {
		msg = msg[i+2:]
	}
	return &opError{msg: msg, kind: kind, cause: cause}
}

// opErr builds an opError of kind.
func opErr(kind error, format string, args ...any) error {
	return &opError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// notFound is the error for an unknown object: `tenant "x" not found`.
func notFound(kind, name string) error {
	return opErr(api.ErrNotFound, "%s %q not found", kind, name)
}

// exists is the error for creating an object that exists.
func existsErr(kind, name string) error {
	return opErr(api.ErrConflict, "%s %q already exists", kind, name)
}
