package control_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/control"
	"github.com/tollgate/tollgate/store"
)

// restartScenario runs calls, stops the service (Close flushes), and
// opens it again on the same store later: settled usage is kept, the call
// that was running is billed up to the stop, released and handed back as
// Restored, and a further restart bills nothing twice.
func restartScenario(t *testing.T, f *fixture, stop, start func()) {
	reopen := func(down time.Duration) {
		stop()
		f.clock.Advance(down)
		start()
	}
	// User 101 is on a role with a minutes cap: only such users are
	// tracked, and their usage must survive the restart.
	if _, err := f.svc.PutRoles(ctx, "alice", "acme", []configs.Role{{Name: "agents", MaxMonthlyMinutes: i64(100), Users: []string{"101"}}}); err != nil {
		t.Fatal(err)
	}
	f.call("c1", "acme", "100", "200", true)
	f.call("c2", "acme", "101", "200", true)
	f.call("c3", "beta", "100", "200", true)
	f.call("early", "acme", "102", "200", false) // admitted, never answered
	f.clock.Advance(40 * time.Second)
	f.end("c1") // 40 s
	f.clock.Advance(20 * time.Second)
	f.end("c3") // 60 s
	f.clock.Advance(10 * time.Second)
	// c2 has run 70 s and is still running; "early" is still ringing.
	before := f.svc.Runner().Usage(f.clock.Now(), "acme")
	if before.Seconds != 110*time.Second {
		t.Fatalf("acme usage before stop = %v", before.Seconds)
	}
	stopped := f.clock.Now()

	reopen(10 * time.Minute)
	restored := f.svc.Restored()
	if len(restored) != 1 || restored[0].CallID != "c2" || restored[0].Tenant != "acme" || string(restored[0].Payload) != "dialog-c2" {
		t.Fatalf("Restored = %+v", restored)
	}
	if at := f.svc.RestoredAt(); at.Before(stopped) || at.After(stopped.Add(time.Second)) {
		t.Fatalf("RestoredAt = %v, want the stop %v", at, stopped)
	}
	now := f.clock.Now()
	acme := f.svc.Runner().Usage(now, "acme")
	beta := f.svc.Runner().Usage(now, "beta")
	// c2 is billed up to the last durable clock (the stop), not to now.
	if acme.Seconds != 110*time.Second || beta.Seconds != 60*time.Second {
		t.Fatalf("after restart: acme %v beta %v, want 110s 60s (stopped at %v)", acme.Seconds, beta.Seconds, stopped)
	}
	if acme.Spend != 110*1_000_000/60 && acme.Spend != (110*1_000_000+59)/60 {
		t.Fatalf("acme spend = %d", acme.Spend)
	}
	for _, tn := range []string{"acme", "beta"} {
		if n := f.svc.Runner().Active(tn); n != 0 {
			t.Fatalf("%s active after restart = %d", tn, n)
		}
	}
	if u := f.svc.Runner().UserUsage(now, "acme", "101"); u != 70*time.Second {
		t.Fatalf("user 101 usage = %v", u)
	}
	// The restored call is released: ending it now is a no-op.
	if _, ok := f.svc.Runner().End(now, "c2"); ok {
		t.Fatal("restored call still active in the engine")
	}

	// Once more: nothing is billed twice, nothing is restored again.
	reopen(time.Hour)
	if r := f.svc.Restored(); len(r) != 0 {
		t.Fatalf("second restart restored %+v", r)
	}
	acme = f.svc.Runner().Usage(f.clock.Now(), "acme")
	if acme.Seconds != 110*time.Second {
		t.Fatalf("after second restart: acme %v, want 110s", acme.Seconds)
	}
	u, err := f.svc.Usage(ctx, "acme")
	mustNil(t, err)
	if len(u.Days) != 1 || u.Days[0].Calls != 2 || u.Days[0].Seconds != 110 {
		t.Fatalf("days = %+v", u.Days)
	}
}

func TestRestart(t *testing.T) {
	f := newFixture(t)
	restartScenario(t, f, func() { mustNil(t, f.svc.Close()) }, f.open)
}

func TestRestartBadger(t *testing.T) {
	dir := t.TempDir()
	f := &fixture{t: t, cfg: testConfig(t), clock: newClock(t0)}
	openStore := func() {
		st, err := store.Open(dir, store.Options{Sync: true})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		f.st = st
		t.Cleanup(func() { _ = st.Close() })
	}
	openStore()
	f.open()
	restartScenario(t, f, func() {
		mustNil(t, f.svc.Close())
		mustNil(t, f.st.Close())
	}, func() {
		openStore()
		f.open()
	})
}

// A restart in a later month lifts the suspensions caused by monthly caps
// at once, reported in RestoreOutput.
func TestRestoreEventsAtRollover(t *testing.T) {
	f := newFixture(t)
	_, err := f.svc.PatchLimits(ctx, "alice", "acme", api.LimitsPatch{Set: configs.Limits{MaxMonthlyMinutes: i64(1), AutoSuspend: bptr(true)}})
	mustNil(t, err)
	f.call("c1", "acme", "100", "200", true)
	f.clock.Advance(2 * time.Minute)
	f.svc.Runner().Tick(f.clock.Now())
	if v, _ := f.svc.GetTenant(ctx, "acme"); !v.Status.Suspended {
		t.Fatal("not suspended at the minutes cap")
	}
	f.clock.Advance(30 * 24 * time.Hour)
	f.reopen()
	out := f.svc.RestoreOutput()
	found := false
	for _, rd := range out {
		for _, e := range rd.Events {
			if e.Type == admission.EventResumed && e.Tenant == "acme" {
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("restore output = %+v, want a tenant.resumed", out)
	}
	if v, _ := f.svc.GetTenant(ctx, "acme"); v.Status.Suspended {
		t.Fatal("still suspended in the new month")
	}
}

func TestOpenRejectsStoredStateThatDoesNotFit(t *testing.T) {
	f := newFixture(t)
	mustNil(t, f.svc.Close())
	// The config file loses the carrier the stored tenants use.
	cfg := testConfig(t)
	cfg.Carriers[0].Name = "other"
	_, err := control.Open(cfg, f.st, control.Options{Now: f.clock.Now, Logger: zerolog.Nop(), Env: env})
	if err == nil || !strings.Contains(err.Error(), "tenants[0].carrier") {
		t.Fatalf("Open = %v, want an error naming tenants[0].carrier", err)
	}
}
