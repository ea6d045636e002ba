package control_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/internal/pike"
)

// TestBlockedAndUnblock: the service lists the limiter's blocks at its
// clock, unblocks with an audit entry naming the actor and the block
// lifted, and answers not found for a source that is not blocked.
func TestBlockedAndUnblock(t *testing.T) {
	f := newFixture(t)
	// Without a limiter: nothing blocked, nothing to unblock.
	if b, err := f.svc.Blocked(ctx); err != nil || b == nil || len(b) != 0 {
		t.Fatalf("Blocked without a limiter = %#v, %v", b, err)
	}
	wantErr(t, f.svc.Unblock(ctx, "ops", netip.MustParseAddr("192.0.2.1")), api.ErrNotFound)

	lim := pike.New(f.cfg.SIP.Flood.PikeConfig())
	f.svc.SetFlood(lim)
	now := f.clock.Now()
	stranger, carrier := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("192.0.2.1")
	for range f.cfg.SIP.Flood.UnknownBurst + 1 {
		lim.Allow(stranger, false, now)
	}
	f.clock.Advance(time.Second)
	for range f.cfg.SIP.Flood.Burst + 1 {
		lim.Allow(carrier, true, f.clock.Now())
	}
	for range 5 {
		lim.Allow(stranger, false, f.clock.Now())
	}
	b, err := f.svc.Blocked(ctx)
	mustNil(t, err)
	want := []api.BlockedView{
		{IP: "203.0.113.7", Since: now, Until: now.Add(time.Minute), Reason: "unknown_rate", Rate: 5, Burst: 10, Dropped: 5},
		{IP: "192.0.2.1", Known: true, Since: now.Add(time.Second), Until: now.Add(61 * time.Second), Reason: "rate", Rate: 2000, Burst: 4000},
	}
	if len(b) != len(want) {
		t.Fatalf("Blocked = %+v", b)
	}
	for i := range want {
		if b[i] != want[i] {
			t.Errorf("Blocked[%d] = %+v\nwant         %+v", i, b[i], want[i])
		}
	}

	// The service's clock decides: once the block ended, it is gone.
	f.clock.Advance(59 * time.Second) // now+60s: the stranger's block ended
	b, _ = f.svc.Blocked(ctx)
	if len(b) != 1 || b[0].IP != "192.0.2.1" {
		t.Fatalf("Blocked after the first block ended = %+v", b)
	}
	wantErr(t, f.svc.Unblock(ctx, "ops", stranger), api.ErrNotFound)

	// Unblock by the IPv4-mapped form.
	mustNil(t, f.svc.Unblock(ctx, "ops", netip.MustParseAddr("::ffff:192.0.2.1")))
	if lim.IsBlocked(carrier, f.clock.Now()) {
		t.Fatal("still blocked in the limiter")
	}
	if v := lim.Allow(carrier, true, f.clock.Now()); v != pike.Allow {
		t.Fatalf("after unblock: %v", v)
	}
	wantErr(t, f.svc.Unblock(ctx, "ops", carrier), api.ErrNotFound)

	es := f.audit(api.AuditQuery{})
	last := es[len(es)-1]
	if last.Actor != "ops" || last.Action != "source.unblock" || last.Resource != "blocked/192.0.2.1" || !last.At.Equal(f.clock.Now()) {
		t.Fatalf("audit entry %+v", last)
	}
	var before api.BlockedView
	mustNil(t, json.Unmarshal(last.Before, &before))
	if before != want[1] {
		t.Fatalf("audit before = %+v, want %+v", before, want[1])
	}
	n := 0
	for _, e := range es {
		if e.Action == "source.unblock" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d unblock entries, want 1 (failed unblocks are not audited)", n)
	}
}

// The limiter satisfies control.Flood.
var _ control.Flood = (*pike.Limiter)(nil)
