package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/store/storetest"
)

// hookStore is a Mem that records the batches applied and can fail or
// hold Apply.
type hookStore struct {
	*store.Mem
	mu      sync.Mutex
	applied []*store.Batch
	fail    func(b *store.Batch) error // non-nil error: Apply fails, nothing stored
	hold    chan struct{}              // when set, Apply waits for it to be closed
	entered chan struct{}              // when set, Apply sends on it first
}

func newHookStore() *hookStore { return &hookStore{Mem: store.NewMem()} }

func (h *hookStore) Apply(b *store.Batch) error {
	h.mu.Lock()
	fail, hold, entered := h.fail, h.hold, h.entered
	h.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	if fail != nil {
		if err := fail(b); err != nil {
			return err
		}
	}
	if err := h.Mem.Apply(b); err != nil {
		return err
	}
	h.mu.Lock()
	h.applied = append(h.applied, b)
	h.mu.Unlock()
	return nil
}

func (h *hookStore) batches() []*store.Batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*store.Batch(nil), h.applied...)
}

func (h *hookStore) set(f func(h *hookStore)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// manual is a committer that commits only on Flush, Submit and Close.
func manual(s store.Store, now func() time.Time) *store.Committer {
	return store.NewCommitter(s, store.CommitterOptions{Interval: time.Hour, Checkpoint: time.Hour, Now: now, Logger: zerolog.Nop()})
}

func mustLoad(t *testing.T, s store.Store) *store.State {
	t.Helper()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func callIDs(st *store.State) []string {
	out := []string{}
	for _, c := range st.Calls {
		out = append(out, c.CallID)
	}
	return out
}

func batchItems(b *store.Batch) int {
	return len(b.DeletePlans) + len(b.DeleteTenants) + len(b.DeleteTokens) + len(b.DeleteCalls) +
		len(b.PutPlans) + len(b.PutTenants) + len(b.PutTokens) + len(b.Counters) + len(b.Users) +
		len(b.PutCalls) + len(b.Days) + len(b.Events) + len(b.Audit)
}

var day1 = time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)

func TestCommitterCoalescing(t *testing.T) {
	h := newHookStore()
	seal := day1.Add(12 * time.Hour)
	c := manual(h, func() time.Time { return seal })
	defer c.Close()

	// The caller reuses its Step and slices (as the Runner does).
	st := &admission.Step{}
	payload := []byte("dialog-1")
	rec := func(fill func(st *admission.Step)) {
		*st = admission.Step{Tenants: st.Tenants[:0], Users: st.Users[:0], Answered: st.Answered[:0],
			Released: st.Released[:0], Charges: st.Charges[:0], Events: st.Events[:0]}
		fill(st)
		c.Record(st)
	}
	rec(func(st *admission.Step) {
		st.Tenants = append(st.Tenants, storetest.Counter("t1", time.Second), storetest.Counter("t2", time.Second))
		st.Users = append(st.Users, storetest.User("t1", "u1", time.Second))
		call := storetest.Call("c2", "t1", day1)
		call.Payload = payload
		st.Answered = append(st.Answered, storetest.Call("c1", "t1", day1), call)
		st.Events = append(st.Events, storetest.Event(1))
	})
	payload[0] = 'X' // the committer copied the payload
	rec(func(st *admission.Step) {
		st.Tenants = append(st.Tenants, storetest.Counter("t1", time.Minute)) // last wins
		st.Users = append(st.Users, storetest.User("t1", "u1", time.Minute), storetest.User("t1", "u2", time.Second))
		st.Released = append(st.Released, "c1", "c9") // c1 put here: the delete replaces it; c9 not pending
		st.Charges = append(st.Charges,
			admission.Charge{Tenant: "t1", CallID: "c1", Seconds: 60 * time.Second, Spend: 100, At: day1.Add(time.Hour), Final: true},
			admission.Charge{Tenant: "t1", CallID: "e1", Seconds: 30 * time.Second, Spend: 0, At: day1.Add(2 * time.Hour), Final: true, Emergency: true},
			// The rollover part of a running call: not final, on the previous day.
			admission.Charge{Tenant: "t1", CallID: "c2", Seconds: 5 * time.Second, Spend: 7, At: day1.Add(-time.Nanosecond)},
			admission.Charge{Tenant: "t2", CallID: "x", Seconds: time.Second, Spend: 1, At: day1, Final: true},
		)
		st.Events = append(st.Events, storetest.Event(2))
	})
	rec(func(st *admission.Step) {
		st.Charges = append(st.Charges, admission.Charge{Tenant: "t1", CallID: "c3", Seconds: 10 * time.Second, Spend: 3, At: day1.Add(23 * time.Hour), Final: true})
		st.Events = append(st.Events, storetest.Event(3))
	})
	// Overwrite the caller's slices: nothing recorded may change.
	st.Tenants = st.Tenants[:cap(st.Tenants)]
	for i := range st.Tenants {
		st.Tenants[i] = admission.TenantRecord{Tenant: "garbage"}
	}
	st.Events = st.Events[:cap(st.Events)]
	for i := range st.Events {
		st.Events[i] = admission.Event{Type: "garbage"}
	}
	if got := c.Stats().Pending; got == 0 {
		t.Error("Stats.Pending = 0 with steps pending")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	bs := h.batches()
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	b := bs[0]
	c2 := storetest.Call("c2", "t1", day1)
	c2.Payload = []byte("dialog-1")
	want := &store.Batch{
		At:          seal,
		Counters:    []admission.TenantRecord{storetest.Counter("t1", time.Minute), storetest.Counter("t2", time.Second)},
		Users:       []admission.UserRecord{storetest.User("t1", "u1", time.Minute), storetest.User("t1", "u2", time.Second)},
		PutCalls:    []admission.CallRecord{c2},
		DeleteCalls: []string{"c1", "c9"},
		Days: []store.DayDelta{
			{Tenant: "t1", Day: day1.AddDate(0, 0, -1), Seconds: 5 * time.Second, Spend: 7},
			{Tenant: "t1", Day: day1, Calls: 3, Seconds: 70 * time.Second, EmergencySeconds: 30 * time.Second, Spend: 103},
			{Tenant: "t2", Day: day1, Calls: 1, Seconds: time.Second, Spend: 1},
		},
		Events: []admission.Event{storetest.Event(1), storetest.Event(2), storetest.Event(3)},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("batch:\n got %+v\nwant %+v", b, want)
	}
	stt := mustLoad(t, h)
	if !reflect.DeepEqual(callIDs(stt), []string{"c2"}) || !stt.Clock.Equal(seal) {
		t.Errorf("stored calls %v clock %v", callIDs(stt), stt.Clock)
	}
	if s := c.Stats(); s.Commits != 1 || s.Pending != 0 || s.LastError != nil || !s.LastCommit.Equal(seal) {
		t.Errorf("stats %+v", s)
	}
}

func TestCommitterPutAfterDelete(t *testing.T) {
	h := newHookStore()
	c := manual(h, nil)
	defer c.Close()
	if err := h.Apply(&store.Batch{PutCalls: []admission.CallRecord{storetest.Call("c1", "t1", day1)}}); err != nil {
		t.Fatal(err)
	}
	c.Record(&admission.Step{Released: []string{"c1"}})
	again := storetest.Call("c1", "t1", day1.Add(time.Hour))
	c.Record(&admission.Step{Answered: []admission.CallRecord{again}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	st := mustLoad(t, h)
	if len(st.Calls) != 1 || !reflect.DeepEqual(st.Calls[0], again) {
		t.Errorf("calls %+v, want the second answer", st.Calls)
	}
}

func TestCommitterSubmit(t *testing.T) {
	h := newHookStore()
	c := manual(h, nil)
	defer c.Close()
	// Engine records for tenant t1 pending, then an API deletion of t1
	// and its re-creation: the pending t1 rows go with the deletion.
	c.Record(&admission.Step{
		Tenants:  []admission.TenantRecord{storetest.Counter("t1", time.Hour), storetest.Counter("t2", time.Hour)},
		Users:    []admission.UserRecord{storetest.User("t1", "u", time.Hour)},
		Answered: []admission.CallRecord{storetest.Call("c1", "t1", day1), storetest.Call("c2", "t2", day1)},
	})
	plan := storetest.FullPlan("p")
	b := &store.Batch{
		PutPlans:   []configs.Plan{plan},
		PutTenants: []configs.Tenant{storetest.FullTenant("t1", "p")},
		PutTokens:  []store.Token{{Name: "ops", Scope: "admin", Created: day1}},
		Audit:      []store.AuditEntry{{At: day1, Actor: "ops", Action: "plan.create", Resource: "plans/p"}},
	}
	if err := c.Submit(b); err != nil {
		t.Fatal(err)
	}
	// Durable when Submit returns.
	st := mustLoad(t, h)
	if len(st.Plans) != 1 || len(st.Tenants) != 1 || len(st.Tokens) != 1 || len(st.Counters) != 2 || len(st.Calls) != 2 {
		t.Fatalf("after Submit: %+v", st)
	}
	// Submit copied the batch: changing it now changes nothing pending.
	*b.PutPlans[0].Limits.MaxParallelCalls = 1
	c.Record(&admission.Step{Tenants: []admission.TenantRecord{storetest.Counter("t1", 2*time.Hour)}})
	err := c.Submit(&store.Batch{
		DeletePlans:   []string{"p"},
		DeleteTokens:  []string{"ops"},
		DeleteTenants: []string{"t1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Record(&admission.Step{Tenants: []admission.TenantRecord{storetest.Counter("t1", 3*time.Hour)}}) // after the deletion
	if err := c.Submit(&store.Batch{PutPlans: []configs.Plan{plan}, PutTenants: []configs.Tenant{storetest.FullTenant("t1", "p")}}); err != nil {
		t.Fatal(err)
	}
	st = mustLoad(t, h)
	if len(st.Tokens) != 0 || len(st.Plans) != 1 || !reflect.DeepEqual(st.Plans[0], plan) || len(st.Tenants) != 1 {
		t.Errorf("config after delete and re-create: %+v", st)
	}
	if !reflect.DeepEqual(st.Counters, []admission.TenantRecord{storetest.Counter("t1", 3*time.Hour), storetest.Counter("t2", time.Hour)}) {
		t.Errorf("counters %+v", st.Counters)
	}
	if !reflect.DeepEqual(callIDs(st), []string{"c2"}) || len(st.Users) != 0 {
		t.Errorf("calls %v users %v", callIDs(st), st.Users)
	}
	a, err := h.Audit(store.AuditQuery{})
	if err != nil || len(a) != 1 {
		t.Errorf("audit %+v %v", a, err)
	}
	// The same within one pending batch: record, delete and re-create
	// commit together.
	c.Record(&admission.Step{Users: []admission.UserRecord{storetest.User("t1", "old", time.Hour)}})
	done := make(chan error, 1)
	h.set(func(h *hookStore) { h.hold = make(chan struct{}) })
	go func() { done <- c.Flush() }() // holds a commit in Apply
	poll(t, 5*time.Second, "the commit to start", func() bool { return c.Stats().Pending == 0 })
	c.Record(&admission.Step{
		Tenants:  []admission.TenantRecord{storetest.Counter("t1", 4*time.Hour)},
		Users:    []admission.UserRecord{storetest.User("t1", "old", time.Hour)},
		Answered: []admission.CallRecord{storetest.Call("c3", "t1", day1)},
	})
	sub := make(chan error, 1)
	go func() { sub <- c.Submit(&store.Batch{DeleteTenants: []string{"t1"}}) }()
	poll(t, 5*time.Second, "the deletion to be pending", func() bool { return c.Stats().Pending == 4 })
	c.Record(&admission.Step{Users: []admission.UserRecord{storetest.User("t1", "new", time.Hour)}})
	h.set(func(h *hookStore) { close(h.hold); h.hold = nil })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-sub; err != nil {
		t.Fatal(err)
	}
	st = mustLoad(t, h)
	if len(st.Users) != 1 || st.Users[0].User != "new" || len(st.Tenants) != 0 {
		t.Errorf("after delete in a group: users %+v tenants %d", st.Users, len(st.Tenants))
	}
	if !reflect.DeepEqual(st.Counters, []admission.TenantRecord{storetest.Counter("t2", time.Hour)}) || !reflect.DeepEqual(callIDs(st), []string{"c2"}) {
		t.Errorf("after delete in a group: counters %+v calls %v", st.Counters, callIDs(st))
	}
	// A batch that could not be stored is refused up front.
	bad := storetest.FullPlan("bad")
	bad.Rates[0].PerMinute = new(configs.Money)
	*bad.Rates[0].PerMinute = -5 // cannot be loaded back
	if err := c.Submit(&store.Batch{PutPlans: []configs.Plan{bad}}); err == nil {
		t.Error("Submit of an unstorable plan succeeded")
	}
	if s := c.Stats(); s.Pending != 0 || s.LastError != nil {
		t.Errorf("stats after a refused Submit: %+v", s)
	}
}

// quiet is how long the idle tests watch a committer for wakeups: many
// Intervals and Checkpoints of the committers below (an absence can only
// be observed over a window).
const quiet = 100 * time.Millisecond

// While an answered call is in the store the clock keeps moving, at the
// checkpoint interval (not at the commit interval), with empty batches;
// once the call is released the committer stops waking up.
func TestCommitterCheckpoint(t *testing.T) {
	h := newHookStore()
	var ticks atomic.Int64
	now := func() time.Time { return day1.Add(time.Duration(ticks.Add(1)) * time.Second) }
	const checkpoint = 20 * time.Millisecond
	c := store.NewCommitter(h, store.CommitterOptions{Interval: time.Millisecond, Checkpoint: checkpoint, Now: now, Logger: zerolog.Nop()})
	defer c.Close()
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c1", "t", day1)}})
	var first time.Time
	poll(t, 10*time.Second, "the answer committed", func() bool { first = mustLoad(t, h).Clock; return len(mustLoad(t, h).Calls) == 1 })
	start, commits := time.Now(), c.Stats().Commits
	poll(t, 10*time.Second, "three checkpoints", func() bool { return mustLoad(t, h).Clock.After(first) && c.Stats().Commits >= commits+3 })
	elapsed, n := time.Since(start), c.Stats().Commits-commits
	for _, b := range h.batches()[1:] {
		if !b.Empty() {
			t.Errorf("checkpoint wrote %+v", b)
		}
	}
	if max := uint64(elapsed/checkpoint) + 2; n > max {
		t.Errorf("%d checkpoints in %v, want at most %d (one per %v)", n, elapsed, max, checkpoint)
	}

	c.Record(&admission.Step{Released: []string{"c1"}})
	poll(t, 10*time.Second, "the release committed", func() bool { return len(mustLoad(t, h).Calls) == 0 && c.Stats().Pending == 0 })
	// Let a commit in flight finish, then nothing wakes the committer.
	poll(t, 10*time.Second, "the last commit", func() bool { return len(h.batches()) == int(c.Stats().Commits) })
	// A checkpoint timer armed before the release may still fire once, as
	// a wake with nothing due (timers are never stopped: see run); after
	// it, nothing.
	time.Sleep(2 * checkpoint)
	w, commits := c.Wakeups(), c.Stats().Commits
	time.Sleep(quiet)
	if got := c.Wakeups(); got != w || c.Stats().Commits != commits {
		t.Errorf("after the last call: %d wakeups, %d commits in %v, want none", got-w, c.Stats().Commits-commits, quiet)
	}
}

// An idle committer (nothing pending, no call in the store) never wakes
// up; a step wakes it, is committed once, and it sleeps again.
func TestCommitterIdleNoWakeups(t *testing.T) {
	h := newHookStore()
	c := store.NewCommitter(h, store.CommitterOptions{Interval: time.Millisecond, Checkpoint: 2 * time.Millisecond, Logger: zerolog.Nop()})
	defer c.Close()
	time.Sleep(quiet)
	if w := c.Wakeups(); w != 0 || c.Stats().Commits != 0 {
		t.Fatalf("idle for %v: %d wakeups, %d commits, want none", quiet, w, c.Stats().Commits)
	}
	// A settled call (its answer and end in one step): no call stays in
	// the store, so one commit and back to sleep.
	answer, st := callSteps("t", "u", "c1", day1, 30)
	st.Answered = answer.Answered
	c.Record(&st)
	poll(t, 10*time.Second, "the commit", func() bool { return c.Stats().Commits == 1 && c.Stats().Pending == 0 })
	if st := mustLoad(t, h); len(st.Calls) != 0 || len(st.Counters) != 1 {
		t.Fatalf("stored %d calls, %d counters", len(st.Calls), len(st.Counters))
	}
	w := c.Wakeups()
	if w > 3 {
		t.Errorf("%d wakeups for one commit", w)
	}
	time.Sleep(quiet)
	if got := c.Wakeups(); got != w || c.Stats().Commits != 1 {
		t.Errorf("idle after the commit: %d more wakeups, %d commits", got-w, c.Stats().Commits)
	}
	// Flush still commits the clock on demand.
	if err := c.Flush(); err != nil || c.Stats().Commits != 2 {
		t.Fatalf("Flush: %v, commits %d", err, c.Stats().Commits)
	}
}

// Calls put by Submit keep the checkpoint running too, until deleted
// (here by deleting their tenant).
func TestCommitterCheckpointSubmittedCalls(t *testing.T) {
	h := newHookStore()
	c := store.NewCommitter(h, store.CommitterOptions{Interval: time.Millisecond, Checkpoint: 5 * time.Millisecond, Logger: zerolog.Nop()})
	defer c.Close()
	if err := c.Submit(&store.Batch{PutCalls: []admission.CallRecord{storetest.Call("s1", "gone", day1)}}); err != nil {
		t.Fatal(err)
	}
	commits := c.Stats().Commits
	poll(t, 10*time.Second, "checkpoints", func() bool { return c.Stats().Commits >= commits+2 })
	if err := c.Submit(&store.Batch{DeleteTenants: []string{"gone"}}); err != nil {
		t.Fatal(err)
	}
	w, commits := c.Wakeups(), c.Stats().Commits
	time.Sleep(quiet)
	if got := c.Wakeups(); got > w+1 || c.Stats().Commits > commits+1 { // one checkpoint may have been armed already
		t.Errorf("after the tenant delete: %d wakeups, %d commits", got-w, c.Stats().Commits-commits)
	}
}

func TestCommitterInterval(t *testing.T) {
	h := newHookStore()
	c := store.NewCommitter(h, store.CommitterOptions{Interval: 5 * time.Millisecond, Checkpoint: time.Hour, Logger: zerolog.Nop()})
	defer c.Close()
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c1", "t", day1)}})
	poll(t, 10*time.Second, "the interval commit", func() bool { return len(mustLoad(t, h).Calls) == 1 })
}

func TestCommitterSealTime(t *testing.T) {
	h := newHookStore()
	var clock atomic.Int64
	now := func() time.Time { return day1.Add(time.Duration(clock.Load())) }
	c := manual(h, now)
	defer c.Close()

	clock.Store(int64(time.Second))
	c.Record(&admission.Step{At: now(), Answered: []admission.CallRecord{storetest.Call("s1", "t", day1)}})
	h.set(func(h *hookStore) {
		h.hold = make(chan struct{})
		h.entered = make(chan struct{}, 1)
	})
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush() }()
	<-h.entered // commit 1 is sealed (its At is 1s) and held in Apply
	clock.Store(int64(2 * time.Second))
	// Record does not wait for the commit in progress.
	recorded := make(chan struct{})
	go func() {
		c.Record(&admission.Step{At: now(), Answered: []admission.CallRecord{storetest.Call("s2", "t", day1)}})
		close(recorded)
	}()
	select {
	case <-recorded:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked while a commit was in Apply")
	}
	clock.Store(int64(3 * time.Second))
	h.set(func(h *hookStore) { close(h.hold); h.hold, h.entered = nil, nil })
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	bs := h.batches()
	if len(bs) != 2 {
		t.Fatalf("%d batches", len(bs))
	}
	if !bs[0].At.Equal(day1.Add(time.Second)) || len(bs[0].PutCalls) != 1 || bs[0].PutCalls[0].CallID != "s1" {
		t.Errorf("commit 1: %+v", bs[0])
	}
	if !bs[1].At.Equal(day1.Add(3*time.Second)) || len(bs[1].PutCalls) != 1 || bs[1].PutCalls[0].CallID != "s2" {
		t.Errorf("commit 2: %+v", bs[1])
	}
}

func TestCommitterRetry(t *testing.T) {
	h := newHookStore()
	boom := errors.New("disk on fire")
	var fails atomic.Int64
	h.set(func(h *hookStore) {
		h.fail = func(*store.Batch) error {
			fails.Add(1)
			return boom
		}
	})
	c := manual(h, nil)
	defer c.Close()
	c.Record(&admission.Step{
		Answered: []admission.CallRecord{storetest.Call("c1", "t", day1), storetest.Call("c2", "t", day1)},
		Charges:  []admission.Charge{{Tenant: "t", Seconds: time.Second, At: day1, Final: true}},
		Events:   []admission.Event{storetest.Event(1)},
	})
	if err := c.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want the Apply error", err)
	}
	sub := make(chan error, 1)
	go func() {
		sub <- c.Submit(&store.Batch{PutPlans: []configs.Plan{storetest.FullPlan("p")}})
	}()
	if err := <-sub; !errors.Is(err, boom) {
		t.Fatalf("Submit: %v, want the Apply error", err)
	}
	s := c.Stats()
	if !errors.Is(s.LastError, boom) || s.Failures < 2 || s.Pending == 0 || s.Commits != 0 {
		t.Errorf("stats after failures: %+v", s)
	}
	// Recorded after the failure: merged behind the failed batch.
	c.Record(&admission.Step{
		Released: []string{"c1"},
		Charges:  []admission.Charge{{Tenant: "t", Seconds: 2 * time.Second, At: day1, Final: true}},
		Events:   []admission.Event{storetest.Event(2)},
	})
	h.set(func(h *hookStore) { h.fail = nil })
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	st := mustLoad(t, h)
	if !reflect.DeepEqual(callIDs(st), []string{"c2"}) || len(st.Plans) != 1 {
		t.Errorf("after retry: calls %v plans %d", callIDs(st), len(st.Plans))
	}
	days, _ := h.Days("t", time.Time{}, time.Time{})
	if len(days) != 1 || days[0].Calls != 2 || days[0].Seconds != 3*time.Second {
		t.Errorf("days after retry (each charge once): %+v", days)
	}
	o, _ := h.Outbox(0, 10)
	if len(o) != 2 || o[0].Event.CallID != "call-1" || o[1].Event.CallID != "call-2" {
		t.Errorf("outbox after retry: %+v", o)
	}
	if s := c.Stats(); s.LastError != nil || s.Pending != 0 || s.Commits != 1 {
		t.Errorf("stats after recovery: %+v", s)
	}
}

func TestCommitterRetryBackoff(t *testing.T) {
	// With a failing store the interval loop keeps retrying on its own.
	h := newHookStore()
	var fails atomic.Int64
	h.set(func(h *hookStore) {
		h.fail = func(*store.Batch) error {
			if fails.Add(1) <= 3 {
				return errors.New("transient")
			}
			return nil
		}
	})
	c := store.NewCommitter(h, store.CommitterOptions{Interval: time.Millisecond, Checkpoint: time.Hour, Logger: zerolog.Nop()})
	defer c.Close()
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c1", "t", day1)}})
	poll(t, 10*time.Second, "the retried commit", func() bool { return len(mustLoad(t, h).Calls) == 1 })
	if s := c.Stats(); s.Failures != 3 || s.LastError != nil {
		t.Errorf("stats %+v", s)
	}
}

func TestCommitterSplitsTooBig(t *testing.T) {
	h := newHookStore()
	h.set(func(h *hookStore) {
		h.fail = func(b *store.Batch) error {
			if batchItems(b) > 10 {
				return fmt.Errorf("%w: fake", store.ErrTooBig)
			}
			return nil
		}
	})
	at := day1.Add(time.Hour)
	c := manual(h, func() time.Time { return at })
	defer c.Close()
	// Delete then re-create a tenant in one batch: the order must survive
	// the split.
	if err := h.Apply(&store.Batch{PutCalls: []admission.CallRecord{storetest.Call("old", "t0", day1)}}); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.DeleteTenants = []string{"t0"}
	for i := 0; i < 25; i++ {
		b.PutCalls = append(b.PutCalls, storetest.Call(fmt.Sprintf("c%02d", i), "t0", day1))
		b.Events = append(b.Events, storetest.Event(i))
	}
	b.Seeded = true
	if err := c.Submit(&b); err != nil {
		t.Fatal(err)
	}
	bs := h.batches()[1:]
	if len(bs) < 6 {
		t.Fatalf("%d batches, want the 51 items split in parts of at most 10", len(bs))
	}
	for i, p := range bs {
		last := i == len(bs)-1
		if last != !p.At.IsZero() || last != p.Seeded {
			t.Errorf("part %d of %d: At %v Seeded %v (only the last sets them)", i, len(bs), p.At, p.Seeded)
		}
	}
	st := mustLoad(t, h)
	if len(st.Calls) != 25 || st.Calls[0].CallID != "c00" || !st.Clock.Equal(at) || !st.Seeded {
		t.Errorf("after split: %d calls, clock %v, seeded %v", len(st.Calls), st.Clock, st.Seeded)
	}
	o, _ := h.Outbox(0, 100)
	for i, e := range o {
		if e.Event.CallID != fmt.Sprintf("call-%d", i) {
			t.Fatalf("outbox order broken at %d: %+v", i, e)
		}
	}
	if len(o) != 25 {
		t.Errorf("%d events", len(o))
	}
}

func TestCommitterSplitPartialFailure(t *testing.T) {
	// Parts that committed are not applied again when a later part fails.
	h := newHookStore()
	var parts atomic.Int64
	h.set(func(h *hookStore) {
		h.fail = func(b *store.Batch) error {
			if batchItems(b) > 4 {
				return fmt.Errorf("%w: fake", store.ErrTooBig)
			}
			if parts.Add(1) == 2 {
				return errors.New("second part fails")
			}
			return nil
		}
	})
	c := manual(h, nil)
	defer c.Close()
	var st admission.Step
	for i := 0; i < 8; i++ {
		st.Charges = append(st.Charges, admission.Charge{Tenant: fmt.Sprintf("t%d", i), Seconds: time.Second, At: day1, Final: true})
	}
	c.Record(&st)
	if err := c.Flush(); err == nil {
		t.Fatal("Flush succeeded with a failing part")
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		days, _ := h.Days(fmt.Sprintf("t%d", i), time.Time{}, time.Time{})
		if len(days) != 1 || days[0].Calls != 1 {
			t.Errorf("t%d: %+v (want exactly one call)", i, days)
		}
	}
}

func TestCommitterClose(t *testing.T) {
	h := newHookStore()
	c := manual(h, nil)
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c1", "t", day1)}})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := mustLoad(t, h); len(st.Calls) != 1 {
		t.Errorf("Close did not commit the pending step: %+v", st)
	}
	// Later steps are dropped, not stored; API calls fail.
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c2", "t", day1)}})
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c3", "t", day1)}})
	if s := c.Stats(); s.Dropped != 2 || s.Pending != 0 {
		t.Errorf("stats after Close: %+v", s)
	}
	if err := c.Submit(&store.Batch{Seeded: true}); !errors.Is(err, store.ErrCommitterClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	if err := c.Flush(); !errors.Is(err, store.ErrCommitterClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := mustLoad(t, h); len(st.Calls) != 1 || st.Seeded {
		t.Errorf("stored after Close: %+v", st)
	}
	if n := len(h.batches()); n != 1 {
		t.Errorf("%d commits, want 1", n)
	}
}

func TestCommitterCloseError(t *testing.T) {
	h := newHookStore()
	boom := errors.New("gone")
	h.set(func(h *hookStore) { h.fail = func(*store.Batch) error { return boom } })
	c := manual(h, nil)
	c.Record(&admission.Step{Answered: []admission.CallRecord{storetest.Call("c1", "t", day1)}})
	if err := c.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: %v, want the Apply error", err)
	}
	if err := c.Close(); !errors.Is(err, boom) {
		t.Errorf("second Close: %v", err)
	}
}

// callSteps returns the two steps of one call: answer, then end with its
// charge, counters, user and settlement.
func callSteps(tenant, user, id string, at time.Time, secs int) (answer, end admission.Step) {
	call := admission.CallRecord{CallID: id, Tenant: tenant, Direction: admission.Outbound, Caller: user,
		Callee: "+442071838750", AnsweredAt: at, Payload: []byte("v=SIP/2.0;tag=" + id + ";route=<sip:10.0.0.1;lr>;cseq=1")}
	answer = admission.Step{At: at, Answered: []admission.CallRecord{call}}
	endAt := at.Add(time.Duration(secs) * time.Second)
	end = admission.Step{
		At:       endAt,
		Tenants:  []admission.TenantRecord{{Tenant: tenant, Cycle: time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC), Seconds: time.Duration(secs) * time.Second}},
		Users:    []admission.UserRecord{{Tenant: tenant, User: user, Seconds: time.Duration(secs) * time.Second}},
		Released: []string{id},
		Charges:  []admission.Charge{{Tenant: tenant, User: user, CallID: id, Direction: admission.Outbound, Seconds: time.Duration(secs) * time.Second, Spend: int64(secs) * 100, At: endAt, Final: true}},
	}
	return answer, end
}

func TestCommitterConcurrent(t *testing.T) {
	h := newHookStore()
	c := store.NewCommitter(h, store.CommitterOptions{Interval: time.Millisecond, Checkpoint: 5 * time.Millisecond, Logger: zerolog.Nop()})
	const workers, calls = 8, 300
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var step admission.Step // reused, like the Runner's
			for i := 0; i < calls; i++ {
				a, e := callSteps(fmt.Sprintf("t%d", w%2), fmt.Sprintf("u%d", w), fmt.Sprintf("w%d-%d", w, i), day1.Add(time.Hour), 1)
				step = a
				c.Record(&step)
				step = e
				c.Record(&step)
				if i%100 == 0 {
					if err := c.Flush(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // an API writer in between
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if err := c.Submit(&store.Batch{Audit: []store.AuditEntry{{At: day1, Actor: "ops", Action: "x"}}}); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	st := mustLoad(t, h)
	if len(st.Calls) != 0 {
		t.Errorf("%d calls left, every call ended", len(st.Calls))
	}
	var total int64
	for _, tn := range []string{"t0", "t1"} {
		days, _ := h.Days(tn, time.Time{}, time.Time{})
		if len(days) != 1 || days[0].Seconds != time.Duration(days[0].Calls)*time.Second || days[0].Spend != days[0].Calls*100 {
			t.Errorf("%s days %+v", tn, days)
		} else {
			total += days[0].Calls
		}
	}
	if total != workers*calls {
		t.Errorf("%d calls counted, want %d", total, workers*calls)
	}
	if len(st.Users) != workers {
		t.Errorf("%d users", len(st.Users))
	}
	if a, _ := h.Audit(store.AuditQuery{}); len(a) != 20 {
		t.Errorf("%d audit entries", len(a))
	}
}

func TestCommitterBadger(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Sync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	var commits atomic.Int64
	c := store.NewCommitter(s, store.CommitterOptions{Logger: zerolog.Nop(), OnCommit: func(d time.Duration, b *store.Batch) {
		if d <= 0 || b.At.IsZero() {
			t.Errorf("OnCommit(%v, At %v)", d, b.At)
		}
		commits.Add(1)
	}})
	for i := 0; i < 200; i++ {
		a, e := callSteps("acme", "1001", fmt.Sprintf("call-%d", i), day1.Add(time.Duration(i)*time.Minute), 30)
		c.Record(&a)
		if i%2 == 0 {
			c.Record(&e) // odd calls stay up
		}
	}
	if err := c.Submit(&store.Batch{PutTenants: []configs.Tenant{storetest.FullTenant("acme", "gold")}, Seeded: true}); err != nil {
		t.Fatal(err)
	}
	c.Record(&admission.Step{Events: []admission.Event{storetest.Event(1)}})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if commits.Load() == 0 || uint64(commits.Load()) != c.Stats().Commits {
		t.Errorf("OnCommit called %d times, %d commits", commits.Load(), c.Stats().Commits)
	}
	clock := c.Stats().LastCommit
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, true)
	st := mustLoad(t, s)
	if len(st.Calls) != 100 || len(st.Tenants) != 1 || !st.Seeded || len(st.Counters) != 1 || !st.Clock.Equal(clock) {
		t.Errorf("reopened: %d calls, %d tenants, seeded %v, clock %v (want %v)", len(st.Calls), len(st.Tenants), st.Seeded, st.Clock, clock)
	}
	days, _ := s.Days("acme", time.Time{}, time.Time{})
	var n int64
	for _, d := range days {
		n += d.Calls
	}
	if n != 100 {
		t.Errorf("%d calls counted in %+v", n, days)
	}
	if d, _ := s.OutboxDepth(); d != 1 {
		t.Errorf("outbox depth %d", d)
	}
}
