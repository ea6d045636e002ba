package control_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
)

// Errors an operator reads carry no package prefix and do not repeat
// themselves.
func TestErrorMessages(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.GetTenant(ctx, "nope")
	if !errors.Is(err, api.ErrNotFound) || err.Error() != `tenant "nope" not found` {
		t.Fatalf("GetTenant(nope) = %v, want tenant \"nope\" not found (ErrNotFound)", err)
	}
	_, err = f.svc.PutTenant(ctx, "alice", configs.Tenant{Name: "acme", Plan: "basic", Carrier: "up", Sources: []string{"10.1.0.0/24"}}, true)
	if !errors.Is(err, api.ErrConflict) || err.Error() != `tenant "acme" already exists` {
		t.Fatalf("PutTenant(acme) = %v, want tenant \"acme\" already exists (ErrConflict)", err)
	}
}

func TestRephrase(t *testing.T) {
	cause := fmt.Errorf("%w %q", errUnknownNodeForTest, "gw-z")
	err := control.Rephrase(api.ErrNotFound, cause)
	if err.Error() != `unknown node "gw-z"` || !errors.Is(err, api.ErrNotFound) || !errors.Is(err, errUnknownNodeForTest) {
		t.Fatalf("rephrase = %q (not found %v, cause %v)", err, errors.Is(err, api.ErrNotFound), errors.Is(err, errUnknownNodeForTest))
	}
}

var errUnknownNodeForTest = errors.New("cluster: unknown node")
