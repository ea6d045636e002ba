package control_test

import (
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/store"
)

// OnEvents is called after a commit that wrote events (a suspension's
// tenant.suspended), not after one that wrote none (a plan).
func TestOnEvents(t *testing.T) {
	var calls atomic.Int64
	st := store.NewMem()
	svc, err := control.Open(testConfig(t), st, control.Options{
		Now: newClock(t0).Now, Logger: zerolog.Nop(), Env: env,
		OnEvents: func() { calls.Add(1) },
	})
	mustNil(t, err)
	defer svc.Close()
	before := calls.Load()
	_, err = svc.PutPlan(ctx, "ops", configs.Plan{Name: "gold"}, true)
	mustNil(t, err)
	if n := calls.Load(); n != before {
		t.Fatalf("OnEvents called %d times for a plan change", n-before)
	}
	depth, _ := st.OutboxDepth()
	_, err = svc.Suspend(ctx, "ops", "acme", "test")
	mustNil(t, err)
	eventually(t, "OnEvents after the suspension", func() bool { return calls.Load() > before })
	if d, _ := st.OutboxDepth(); d <= depth {
		t.Fatalf("outbox depth %d -> %d: no event written", depth, d)
	}
}
