package sip

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// The first work of an idle key runs on the submitting goroutine: no
// goroutine and no thread handoff per request.
func TestSerializerRunsFirstWorkOnSubmitter(t *testing.T) {
	s := newSerializer()
	ran := false
	s.submit("a", func() { ran = true }) // no synchronisation: same goroutine
	if !ran {
		t.Fatal("first work for an idle key did not run before submit returned")
	}
	if n := s.pending(); n != 0 {
		t.Fatalf("pending = %d after the work finished, want 0", n)
	}
}

func TestSerializerKeepsOrderPerKeyAcrossSubmitters(t *testing.T) {
	s := newSerializer()
	const submitters, each = 4, 500
	var mu sync.Mutex
	seen := map[int][]int{} // submitter -> sequence numbers in run order
	running := map[string]bool{}
	var wg sync.WaitGroup
	for w := 0; w < submitters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				key := []string{"k1", "k2"}[i%2]
				s.submit(key, func() {
					mu.Lock()
					if running[key] {
						t.Errorf("two items of %s ran at once", key)
					}
					running[key] = true
					seen[w] = append(seen[w], i)
					mu.Unlock()
					runtime.Gosched()
					mu.Lock()
					running[key] = false
					mu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	waitPending(t, s)
	for w, got := range seen {
		if len(got) != each {
			t.Fatalf("submitter %d: %d items ran, want %d", w, len(got), each)
		}
		for i := 1; i < len(got); i++ {
			// Items of one submitter and one key keep their order; the two
			// keys interleave.
			if got[i]%2 == got[i-1]%2 && got[i] < got[i-1] {
				t.Fatalf("submitter %d: item %d ran after %d", w, got[i], got[i-1])
			}
		}
	}
}

func TestSerializerDetachRunsBeforeQueuedWorkOffTheSubmitter(t *testing.T) {
	s := newSerializer()
	release := make(chan struct{})
	var order []string
	var mu sync.Mutex
	note := func(x string) { mu.Lock(); order = append(order, x); mu.Unlock() }
	returned := make(chan struct{})
	go func() {
		s.submit("call", func() {
			note("first")
			if !s.detach("call", func() { <-release; note("detached") }) {
				t.Error("detach inside the key's work reported false")
			}
			if s.detach("call", func() {}) {
				t.Error("a second detach in the same work reported true")
			}
		})
		close(returned)
	}()
	select {
	case <-returned: // the submitter is free while the detached work waits
	case <-time.After(5 * time.Second):
		t.Fatal("submit waited for detached work")
	}
	s.submit("call", func() { note("queued") }) // behind the detached work
	close(release)
	waitPending(t, s)
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 3 || order[0] != "first" || order[1] != "detached" || order[2] != "queued" {
		t.Fatalf("order = %v, want [first detached queued]", order)
	}
	if s.detach("call", func() {}) {
		t.Fatal("detach outside any work reported true")
	}
}

func waitPending(t *testing.T, s *serializer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d keys still have work", s.pending())
		}
		time.Sleep(time.Millisecond)
	}
}
