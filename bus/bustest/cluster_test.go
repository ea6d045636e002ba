package bustest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Compare-and-set (kv.Update with a stale revision) errors, as seen with
// nats-server v2.15.2 and nats.go v1.55.0 (checked by the tests below):
//
//   - A stale revision, no other write to the key in flight: on an R1
//     bucket (single server or cluster) and on an R3 bucket alike the
//     server answers JetStream API error 10071, HTTP-like code 400,
//     description "wrong last sequence: <current revision>". The error
//     is a *jetstream.APIError (ErrorCode 10071) wrapped together with
//     jetstream.ErrKeyRevisionMismatch; its text is
//     "nats: API error: code=400 err_code=10071 description=wrong last
//     sequence: 2: nats: key revision mismatch".
//   - Concurrent writers to the same key of a replicated (R>1) bucket:
//     a proposal checked while another write to that key is still in
//     flight through Raft is refused with 10164, code 400, description
//     "wrong last sequence" (no number; JSStreamWrongLastSequenceConstantErr
//     in nats-server's jetstream_batching.go). Writers that lose after
//     the winner is applied still get 10071. R1 buckets never return 10164.
//
// So 10164 is not "the R3 code": an R3 bucket gives both. Detect a CAS
// conflict with errors.Is(err, jetstream.ErrKeyRevisionMismatch) (nats.go
// maps both codes to it) or by ErrorCode 10071 or 10164; not with
// jetstream.ErrKeyExists, which matches 10071 only. kv.Create of an
// existing key wraps ErrKeyExists for both codes.

func TestStartClusterSingle(t *testing.T) {
	c := StartCluster(t, 1)
	if c.Server(0) == nil || c.Server(0).JetStreamIsClustered() {
		t.Fatal("want one plain, unclustered server")
	}
	nc, js := Connect(t, c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	kv := createKV(t, js, "single", 1)
	ctx := testCtx(t)
	rev := put(t, kv, "k", "v1")
	checkStaleUpdate(t, kv, "k", rev, 10071)

	c.Stop(0)
	if c.Server(0) != nil {
		t.Fatal("Server of a stopped server is not nil")
	}
	c.Restart(0)
	waitConnected(t, nc)
	e := getEventually(t, kv, "k", "v2")
	if e.Revision() != rev+1 {
		t.Fatalf("revision after restart %d, want %d", e.Revision(), rev+1)
	}
	if _, err := kv.Put(ctx, "k", []byte("v3")); err != nil {
		t.Fatal(err)
	}
}

func TestClusterCompareAndSet(t *testing.T) {
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("StartCluster(3) took %v", time.Since(start))
	_, js := Connect(t, c.URLs())

	for _, replicas := range []int{3, 1} {
		t.Run(fmt.Sprintf("R%d", replicas), func(t *testing.T) {
			kv := createKV(t, js, fmt.Sprintf("cas%d", replicas), replicas)
			rev := put(t, kv, "k", "v1")
			rev = checkStaleUpdate(t, kv, "k", rev, 10071)

			// Create of an existing key.
			_, err := kv.Create(testCtx(t), "k", []byte("again"))
			if !errors.Is(err, jetstream.ErrKeyExists) {
				t.Fatalf("Create of an existing key: %v, want ErrKeyExists", err)
			}
			t.Logf("R%d Create existing: %v", replicas, err)

			// Concurrent writers with the same, current revision: one wins.
			codes := raceUpdates(t, kv, "k", rev, 8)
			t.Logf("R%d concurrent Update losers by error code: %v", replicas, codes)
			if replicas == 1 && codes[10164] > 0 {
				t.Errorf("R1 bucket returned 10164: %v", codes)
			}
		})
	}
}

func TestClusterStopRestart(t *testing.T) {
	c := StartCluster(t, 3)
	nc, js := Connect(t, c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	kv := createKV(t, js, "outage", 3)
	put(t, kv, "k", "v1")

	// Stop the server the client is on: it reconnects to another and the
	// bucket, with 2 of 3 replicas, stays readable and writable.
	i := serverIndex(t, c, nc)
	urls := c.URLs()
	t0 := time.Now()
	c.Stop(i)
	if c.URLs() != urls {
		t.Fatal("URLs changed by Stop")
	}
	rev := putEventually(t, kv, "k", "v2")
	getEventually(t, kv, "k", "v2")
	t.Logf("one server stopped: written and read again after %v", time.Since(t0))
	waitConnected(t, nc)
	if j := serverIndex(t, c, nc); j == i {
		t.Fatalf("client still on stopped server %d", i)
	}

	t0 = time.Now()
	c.Restart(i)
	c.WaitStream(t, "KV_outage")
	t.Logf("Restart and WaitStream took %v", time.Since(t0))
	_, jsi := Connect(t, c.URL(i))
	kvi, err := jsi.KeyValue(testCtx(t), "outage")
	if err != nil {
		t.Fatal(err)
	}
	getEventually(t, kvi, "k", "v2")

	// Full outage: all servers down, all up again, the data is there.
	t0 = time.Now()
	c.StopAll()
	t.Logf("StopAll took %v", time.Since(t0))
	for j := 0; j < c.N(); j++ {
		if c.Server(j) != nil {
			t.Fatalf("server %d running after StopAll", j)
		}
	}
	t0 = time.Now()
	c.RestartAll()
	t.Logf("RestartAll took %v", time.Since(t0))
	c.WaitStream(t, "KV_outage")
	t.Logf("RestartAll and WaitStream took %v", time.Since(t0))
	e := getEventually(t, kv, "k", "v2")
	if e.Revision() != rev {
		t.Fatalf("revision after full restart %d, want %d", e.Revision(), rev)
	}
	if _, err := putEventuallyErr(t, kv, "k", "v3"); err != nil {
		t.Fatal(err)
	}
}

func TestClusterIsolate(t *testing.T) {
	c := StartCluster(t, 3)
	_, js := Connect(t, c.URLs())
	kv := createKV(t, js, "part", 3)
	put(t, kv, "k", "v1")
	c.WaitStream(t, "KV_part")

	// Isolate a server that leads neither the meta group nor the stream,
	// so the majority keeps working without an election.
	i := -1
	for j := 0; j < c.N(); j++ {
		s := c.Server(j)
		if !s.JetStreamIsLeader() && !s.JetStreamIsStreamLeader("$G", "KV_part") {
			i = j
			break
		}
	}
	if i < 0 {
		t.Fatal("no follower")
	}
	var others []string
	for j := 0; j < c.N(); j++ {
		if j != i {
			others = append(others, c.URL(j))
		}
	}
	_, jsm := Connect(t, strings.Join(others, ","))
	kvm, err := jsm.KeyValue(testCtx(t), "part")
	if err != nil {
		t.Fatal(err)
	}
	nci, jsi := Connect(t, c.URL(i))
	kvi, err := jsi.KeyValue(testCtx(t), "part")
	if err != nil {
		t.Fatal(err)
	}

	c.Isolate(i)
	s := c.Server(i)
	if s == nil || s.NumRoutes() != 0 {
		t.Fatalf("isolated server: %v", s)
	}
	// The isolated server loses its meta leader.
	waitFor(t, "isolated server's JetStream not current", func() bool { return !s.JetStreamIsCurrent() })
	// The majority still works; the isolated side cannot write.
	put(t, kvm, "k", "v2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := kvi.Put(ctx, "k", []byte("minority")); err == nil {
		t.Fatal("write through the isolated server succeeded")
	} else {
		t.Logf("write through the isolated server: %v", err)
	}
	// No route came back meanwhile.
	if n := s.NumRoutes(); n != 0 {
		t.Fatalf("isolated server has %d routes again", n)
	}

	c.Heal(i)
	c.WaitStream(t, "KV_part")
	getEventually(t, kvi, "k", "v2")
	if _, err := kvi.Put(testCtx(t), "k", []byte("v3")); err != nil {
		t.Fatal(err)
	}
	if r := nci.Stats().Reconnects; r != 0 {
		t.Fatalf("client of the isolated server reconnected %d times", r)
	}
}

func createKV(t *testing.T, js jetstream.JetStream, bucket string, replicas int) jetstream.KeyValue {
	t.Helper()
	kv, err := js.CreateKeyValue(testCtx(t), jetstream.KeyValueConfig{Bucket: bucket, Replicas: replicas, History: 5})
	if err != nil {
		t.Fatalf("CreateKeyValue %s R%d: %v", bucket, replicas, err)
	}
	return kv
}

func put(t *testing.T, kv jetstream.KeyValue, key, val string) uint64 {
	t.Helper()
	rev, err := kv.Put(testCtx(t), key, []byte(val))
	if err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
	return rev
}

// checkStaleUpdate updates key at rev (succeeds, "v2"), then at rev again
// (fails), checks the failure's API error code and returns the new revision.
func checkStaleUpdate(t *testing.T, kv jetstream.KeyValue, key string, rev uint64, wantCode jetstream.ErrorCode) uint64 {
	t.Helper()
	ctx := testCtx(t)
	rev2, err := kv.Update(ctx, key, []byte("v2"), rev)
	if err != nil {
		t.Fatalf("Update at current revision: %v", err)
	}
	_, err = kv.Update(ctx, key, []byte("v3"), rev)
	if err == nil {
		t.Fatal("Update at stale revision succeeded")
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("stale Update: %T %v, no *jetstream.APIError", err, err)
	}
	t.Logf("%s stale Update: %v (ErrorCode %d, Code %d, Description %q)", kv.Bucket(), err, apiErr.ErrorCode, apiErr.Code, apiErr.Description)
	if apiErr.ErrorCode != wantCode {
		t.Errorf("stale Update: error code %d, want %d", apiErr.ErrorCode, wantCode)
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Errorf("stale Update: %v is not ErrKeyRevisionMismatch", err)
	}
	e, err := kv.Get(ctx, key)
	if err != nil || string(e.Value()) != "v2" || e.Revision() != rev2 {
		t.Fatalf("after stale Update: %v %v", e, err)
	}
	return rev2
}

// raceUpdates runs n concurrent Updates of key at rev; exactly one must win,
// every loser a revision mismatch. It returns the losers' error codes.
func raceUpdates(t *testing.T, kv jetstream.KeyValue, key string, rev uint64, n int) map[jetstream.ErrorCode]int {
	t.Helper()
	ctx := testCtx(t)
	var (
		mu    sync.Mutex
		wins  int
		codes = map[jetstream.ErrorCode]int{}
		wg    sync.WaitGroup
		begin = make(chan struct{})
	)
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			_, err := kv.Update(ctx, key, []byte(fmt.Sprintf("w%d", w)), rev)
			mu.Lock()
			defer mu.Unlock()
			var apiErr *jetstream.APIError
			switch {
			case err == nil:
				wins++
			case errors.As(err, &apiErr) && errors.Is(err, jetstream.ErrKeyRevisionMismatch):
				codes[apiErr.ErrorCode]++
				if apiErr.ErrorCode == 10164 && codes[10164] == 1 {
					t.Logf("%s concurrent Update: %v (Code %d, Description %q)", kv.Bucket(), err, apiErr.Code, apiErr.Description)
				}
			default:
				t.Errorf("concurrent Update: %T %v", err, err)
			}
		}()
	}
	close(begin)
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent Updates at the same revision won, want 1", wins)
	}
	return codes
}

// putEventually retries Put while the cluster recovers from an outage.
func putEventually(t *testing.T, kv jetstream.KeyValue, key, val string) uint64 {
	t.Helper()
	rev, err := putEventuallyErr(t, kv, key, val)
	if err != nil {
		t.Fatalf("Put %s after outage: %v", key, err)
	}
	return rev
}

func putEventuallyErr(t *testing.T, kv jetstream.KeyValue, key, val string) (uint64, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rev, err := kv.Put(ctx, key, []byte(val))
		cancel()
		if err == nil || time.Now().After(deadline) {
			return rev, err
		}
		time.Sleep(pollInterval)
	}
}

// getEventually polls until key has value val.
func getEventually(t *testing.T, kv jetstream.KeyValue, key, val string) jetstream.KeyValueEntry {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		e, err := kv.Get(ctx, key)
		cancel()
		if err == nil && string(e.Value()) == val {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get %s: %v %v, want %q", key, e, err, val)
		}
		time.Sleep(pollInterval)
	}
}

func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	waitFor(t, "client reconnected", nc.IsConnected)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(pollInterval)
	}
}

// serverIndex is the index of the server nc is connected to.
func serverIndex(t *testing.T, c *Cluster, nc *nats.Conn) int {
	t.Helper()
	name := nc.ConnectedServerName()
	for i := 0; i < c.N(); i++ {
		if c.Name(i) == name {
			return i
		}
	}
	t.Fatalf("client connected to unknown server %q", name)
	return -1
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
