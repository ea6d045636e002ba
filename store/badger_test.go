package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
	"github.com/tollgate/tollgate/store/storetest"
)

// poll calls cond until it returns true or d passes.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadgerReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Sync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	b := &store.Batch{
		At:         t0,
		PutPlans:   []configs.Plan{storetest.FullPlan("gold"), storetest.FullPlan("basic")},
		PutTenants: []configs.Tenant{storetest.FullTenant("acme", "gold")},
		PutTokens:  []store.Token{{Name: "ops", Scope: "admin", Hash: "ab", Created: t0}},
		Counters:   []admission.TenantRecord{storetest.Counter("acme", time.Hour)},
		Users:      []admission.UserRecord{storetest.User("acme", "1001", time.Minute)},
		PutCalls:   []admission.CallRecord{storetest.Call("c1", "acme", t0), storetest.Call("c2", "acme", t0)},
		Days:       []store.DayDelta{{Tenant: "acme", Day: t0, Calls: 3, Spend: 7}},
		Events:     []admission.Event{storetest.Event(1), storetest.Event(2)},
		Audit:      []store.AuditEntry{{At: t0, Actor: "config", Action: "seed", Tenant: "acme"}},
		Seeded:     true,
	}
	if err := s.Apply(b); err != nil {
		t.Fatal(err)
	}
	want, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBadger(t, dir, true)
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n got %+v\nwant %+v", got, want)
	}
	if !got.Seeded || !got.Clock.Equal(t0) || len(got.Calls) != 2 {
		t.Errorf("reopened state %+v", got)
	}
	days, err := s.Days("acme", time.Time{}, time.Time{})
	if err != nil || len(days) != 1 || days[0].Calls != 3 {
		t.Errorf("days after reopen: %+v, %v", days, err)
	}
	// Sequences continue: the next event is 3, audit ids stay unique.
	if err := s.Apply(&store.Batch{
		Events: []admission.Event{storetest.Event(3)},
		Audit:  []store.AuditEntry{{At: t0, Actor: "ops", Action: "tenant.update", Tenant: "acme"}},
	}); err != nil {
		t.Fatal(err)
	}
	o, err := s.Outbox(2, 10)
	if err != nil || len(o) != 1 || o[0].Seq != 3 {
		t.Errorf("outbox after reopen: %+v, %v", o, err)
	}
	a, err := s.Audit(store.AuditQuery{Tenant: "acme"})
	if err != nil || len(a) != 2 || a[0].ID == a[1].ID || a[0].Action != "tenant.update" {
		t.Errorf("audit after reopen: %+v, %v", a, err)
	}
	if n := s.Size(); n <= 0 {
		t.Errorf("Size = %d", n)
	}
}

func TestBadgerOpenErrors(t *testing.T) {
	dir := t.TempDir()
	openBadger(t, dir, false)
	// The directory is locked while open.
	if s2, err := store.Open(dir, store.Options{Logger: zerolog.Nop()}); err == nil {
		_ = s2.Close()
		t.Fatal("second Open of a locked directory succeeded")
	} else if !strings.HasPrefix(err.Error(), "store: open ") {
		t.Errorf("error %q", err)
	}
	file := dir + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(file, store.Options{Logger: zerolog.Nop()}); err == nil {
		t.Fatal("Open of a file succeeded")
	}
}

// bigCall is a call with a realistic dialog payload.
func bigCall(i int) admission.CallRecord {
	c := storetest.Call(fmt.Sprintf("a84b4c76e66710-%08d@pbx.acme.example;tag=1928301774", i), "acme", storetest.T0)
	c.Payload = []byte(strings.Repeat("route-set-and-tags;", 14)) // 266 bytes
	return c
}

func TestBadgerLargeBatch(t *testing.T) {
	s := openBadger(t, t.TempDir(), false) // the default memtable: 15 % of it, 629 kB, is one transaction
	b := &store.Batch{At: storetest.T0}
	for i := 0; i < 1000; i++ {
		b.PutCalls = append(b.PutCalls, bigCall(i))
	}
	if err := s.Apply(b); err != nil {
		t.Fatalf("a batch of 1,000 calls: %v", err)
	}
	st, err := s.Load()
	if err != nil || len(st.Calls) != 1000 {
		t.Fatalf("loaded %d calls, %v", len(st.Calls), err)
	}
	// Far too big: refused whole, with ErrTooBig.
	huge := &store.Batch{At: storetest.T0.Add(time.Hour)}
	for i := 0; i < 15000; i++ {
		huge.PutCalls = append(huge.PutCalls, bigCall(10000+i))
	}
	huge.Days = []store.DayDelta{{Tenant: "acme", Day: storetest.T0, Calls: 1}}
	err = s.Apply(huge)
	if !errors.Is(err, store.ErrTooBig) || !strings.HasPrefix(err.Error(), "store: ") {
		t.Fatalf("Apply of 15,000 calls: %v, want ErrTooBig", err)
	}
	st, err = s.Load()
	if err != nil || len(st.Calls) != 1000 || !st.Clock.Equal(storetest.T0) {
		t.Fatalf("after a refused batch: %d calls, clock %v, %v", len(st.Calls), st.Clock, err)
	}
	// The committer splits it.
	c := store.NewCommitter(s, store.CommitterOptions{Interval: time.Hour, Checkpoint: time.Hour})
	defer c.Close()
	if err := c.Submit(huge); err != nil {
		t.Fatalf("Submit of 15,000 calls: %v", err)
	}
	st, err = s.Load()
	if err != nil || len(st.Calls) != 16000 {
		t.Fatalf("after Submit: %d calls, %v", len(st.Calls), err)
	}
	if days, _ := s.Days("acme", time.Time{}, time.Time{}); len(days) != 1 || days[0].Calls != 1 {
		t.Errorf("days after split commit: %+v", days)
	}
	if c.Stats().Commits < 2 {
		t.Errorf("commits = %d, want the batch split", c.Stats().Commits)
	}
}

func TestBadgerMemTableSize(t *testing.T) {
	if store.DefaultMemTableSize != configs.DefaultMemtableMiB<<20 {
		t.Errorf("store's default memtable %d bytes, store.memtable_mib's default %d MiB", store.DefaultMemTableSize, configs.DefaultMemtableMiB)
	}
	for _, n := range []int64{store.MinMemTableSize - 1, store.MaxMemTableSize + 1, -1} {
		if s, err := store.Open(t.TempDir(), store.Options{Logger: zerolog.Nop(), MemTableSize: n}); err == nil {
			s.Close()
			t.Errorf("memtable of %d bytes accepted", n)
		}
	}
	// The smallest memtable works through many flushes, and what was
	// written survives a reopen.
	dir := t.TempDir()
	s, err := store.Open(dir, store.Options{Logger: zerolog.Nop(), MemTableSize: store.MinMemTableSize})
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewCommitter(s, store.CommitterOptions{Logger: zerolog.Nop()})
	for i := 0; i < 20000; i++ {
		a, e := callSteps("acme", fmt.Sprintf("user%d", i%50), callID(i), storetest.T0.Add(time.Duration(i)*time.Millisecond), 60)
		c.Record(&a)
		if i%2 == 0 {
			c.Record(&e)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, false)
	st, err := s.Load()
	if err != nil || len(st.Calls) != 10000 {
		t.Fatalf("after reopen: %d calls, %v", len(st.Calls), err)
	}
}

// A tenant with more users and calls than one transaction holds is
// deleted: its rows go first, in transactions of their own.
func TestBadgerDeleteTenantBeyondOneTransaction(t *testing.T) {
	s, err := store.Open(t.TempDir(), store.Options{Logger: zerolog.Nop(), MemTableSize: store.MinMemTableSize}) // 1,638 entries a transaction
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Apply(&store.Batch{PutPlans: []configs.Plan{storetest.FullPlan("basic")},
		PutTenants: []configs.Tenant{storetest.FullTenant("big", "basic"), storetest.FullTenant("small", "basic")}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		b := &store.Batch{}
		for j := 0; j < 1000; j++ {
			n := i*1000 + j
			b.Users = append(b.Users, storetest.User("big", fmt.Sprintf("+1555%07d", n), time.Minute))
			if j%5 == 0 {
				b.PutCalls = append(b.PutCalls, storetest.Call(fmt.Sprintf("call-%d", n), "big", storetest.T0))
			}
		}
		b.Users = append(b.Users, storetest.User("small", fmt.Sprintf("u%d", i), time.Minute))
		b.PutCalls = append(b.PutCalls, storetest.Call(fmt.Sprintf("small-%d", i), "small", storetest.T0))
		if err := s.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Apply(&store.Batch{At: storetest.T0, DeleteTenants: []string{"big"}}); err != nil {
		t.Fatalf("delete a tenant with 5,000 users and 1,000 calls: %v", err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Tenants) != 1 || st.Tenants[0].Name != "small" || len(st.Users) != 5 || len(st.Calls) != 5 {
		t.Fatalf("after the delete: %d tenants, %d users, %d calls; want only small's 1, 5, 5", len(st.Tenants), len(st.Users), len(st.Calls))
	}
	if !st.Clock.Equal(storetest.T0) {
		t.Errorf("clock %v", st.Clock)
	}
}

// A seed bigger than one transaction is written in parts, Seeded last.
func TestBadgerSeedBeyondOneTransaction(t *testing.T) {
	s, err := store.Open(t.TempDir(), store.Options{Logger: zerolog.Nop(), MemTableSize: store.MinMemTableSize}) // 157 kB a transaction
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := &store.Batch{At: storetest.T0, PutPlans: []configs.Plan{storetest.FullPlan("basic")}, Seeded: true}
	for i := 0; i < 400; i++ {
		tn := storetest.FullTenant(fmt.Sprintf("t%03d", i), "basic")
		b.PutTenants = append(b.PutTenants, tn)
		b.Audit = append(b.Audit, store.AuditEntry{At: storetest.T0, Actor: "config", Action: "seed",
			Resource: "tenants/" + tn.Name, Tenant: tn.Name, After: []byte(`{"note":"` + strings.Repeat("x", 400) + `"}`)})
	}
	if err := s.Apply(b); err != nil {
		t.Fatalf("seed of 400 tenants: %v", err)
	}
	st, err := s.Load()
	if err != nil || !st.Seeded || len(st.Tenants) != 400 || !st.Clock.Equal(storetest.T0) {
		t.Fatalf("after the seed: seeded %v, %d tenants, clock %v, %v", st.Seeded, len(st.Tenants), st.Clock, err)
	}
	// Anything else that big is still refused whole.
	big := &store.Batch{}
	for i := 0; i < 3000; i++ {
		big.Users = append(big.Users, storetest.User("t000", fmt.Sprintf("u%d", i), time.Minute))
	}
	if err := s.Apply(big); !errors.Is(err, store.ErrTooBig) {
		t.Fatalf("3,000 users in one batch: %v, want ErrTooBig", err)
	}
}

func TestBadgerRetention(t *testing.T) {
	// Badger TTLs have a granularity of one second.
	s, err := store.Open(t.TempDir(), store.Options{
		Logger:    zerolog.Nop(),
		Retention: store.Retention{Usage: time.Second, Audit: time.Second, Outbox: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	keep, err := store.Open(t.TempDir(), store.Options{
		Logger:    zerolog.Nop(),
		Retention: store.Retention{Usage: -1, Audit: -1, Outbox: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	b := &store.Batch{
		At:       storetest.T0,
		Counters: []admission.TenantRecord{storetest.Counter("t", time.Hour)},
		Days:     []store.DayDelta{{Tenant: "t", Day: storetest.T0, Calls: 1}},
		Events:   []admission.Event{storetest.Event(1)},
		Audit:    []store.AuditEntry{{At: storetest.T0, Actor: "a", Action: "b", Tenant: "t"}},
	}
	for _, st := range []store.Store{s, keep} {
		if err := st.Apply(b); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(st store.Store) (n int) {
		days, err := st.Days("t", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := st.Audit(store.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		at, err := st.Audit(store.AuditQuery{Tenant: "t"})
		if err != nil {
			t.Fatal(err)
		}
		o, err := st.Outbox(0, 10)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.OutboxDepth()
		if err != nil {
			t.Fatal(err)
		}
		return len(days) + len(a) + len(at) + len(o) + d
	}
	if n := rows(s); n != 5 {
		t.Fatalf("%d rows right after Apply, want 5", n)
	}
	poll(t, 10*time.Second, "usage, audit and outbox rows to expire", func() bool { return rows(s) == 0 })
	if st, err := s.Load(); err != nil || len(st.Counters) != 1 {
		t.Errorf("counters expired too: %+v, %v", st, err)
	}
	if n := rows(keep); n != 5 {
		t.Errorf("%d rows with retention off, want 5", n)
	}
}

// The crash test: a child process applies numbered batches with Sync and
// reports each acknowledged one; the parent kills it with SIGKILL and
// checks that every acknowledged batch survived.

const crashEnv = "TOLLGATE_STORE_CRASH_DIR"

func TestBadgerCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child of TestBadgerCrash")
	}
	s, err := store.Open(dir, store.Options{Sync: true, Logger: zerolog.Nop()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for n := 1; ; n++ {
		err := s.Apply(&store.Batch{
			At:       storetest.T0.Add(time.Duration(n) * time.Millisecond),
			Days:     []store.DayDelta{{Tenant: "acme", Day: storetest.T0, Calls: 1}},
			PutCalls: []admission.CallRecord{storetest.Call(fmt.Sprintf("c%d", n), "acme", storetest.T0)},
		})
		if err != nil {
			fmt.Println("apply:", err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "acked %d\n", n)
		w.Flush()
	}
}

func TestBadgerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	const target = 300
	acked := 0
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "acked "); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v != acked+1 {
				t.Fatalf("bad ack line %q after %d", line, acked)
			}
			acked = v
			if acked == target {
				break
			}
		} else if strings.HasPrefix(line, "open:") || strings.HasPrefix(line, "apply:") {
			t.Fatalf("child: %s", line)
		}
	}
	if acked < target {
		t.Fatalf("child stopped after %d acks: %v", acked, sc.Err())
	}
	// Kill it mid-stream: it is applying batch target+1 or later.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", cmd.ProcessState)
	}

	s := openBadger(t, dir, true)
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, c := range st.Calls {
		ids[c.CallID] = true
	}
	for n := 1; n <= acked; n++ {
		if !ids[fmt.Sprintf("c%d", n)] {
			t.Fatalf("acked batch %d lost (%d calls stored)", n, len(st.Calls))
		}
	}
	days, err := s.Days("acme", time.Time{}, time.Time{})
	if err != nil || len(days) != 1 {
		t.Fatalf("days: %+v, %v", days, err)
	}
	// Every batch is whole: as many day increments as calls, and the clock
	// of the last one.
	if days[0].Calls != int64(len(st.Calls)) || days[0].Calls < int64(acked) {
		t.Errorf("day calls %d, %d calls stored, %d acked", days[0].Calls, len(st.Calls), acked)
	}
	if want := storetest.T0.Add(time.Duration(len(st.Calls)) * time.Millisecond); !st.Clock.Equal(want) {
		t.Errorf("clock %v, want %v (batch %d)", st.Clock, want, len(st.Calls))
	}
	t.Logf("acked %d, found %d after SIGKILL", acked, len(st.Calls))
}
