package sip

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDialogTerminateOnce(t *testing.T) {
	d := &Dialog{Key: "k", state: Early}
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, first := d.terminate(time.Unix(0, 0), "x"); first {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 || d.State() != Terminated {
		t.Fatalf("terminate won %d times, state %s", firsts.Load(), d.State())
	}
}

func TestDialogConfirmOnlyFromEarly(t *testing.T) {
	d := &Dialog{state: Early}
	if p := d.confirm(time.Unix(5, 0), Leg{Tag: "b"}, nil); p != nil || d.State() != Confirmed || d.Answered() != time.Unix(5, 0) {
		t.Fatal("confirm from early failed")
	}
	d2 := &Dialog{state: Early}
	d2.requestTeardown(CauseShutdown)
	if p := d2.confirm(time.Unix(5, 0), Leg{}, nil); p == nil || p.Name != "shutdown" {
		t.Fatal("pending teardown not reported on answer")
	}
	d3 := &Dialog{state: Terminated}
	if d3.confirm(time.Unix(5, 0), Leg{}, nil); d3.State() != Terminated {
		t.Fatal("terminated dialog was confirmed")
	}
}

func TestDialogCSeqAndSides(t *testing.T) {
	d := &Dialog{caller: Leg{Tag: "a", CSeq: 1}, callee: Leg{Tag: "b"}}
	if !d.sideOf("a") || d.sideOf("b") {
		t.Fatal("sideOf wrong")
	}
	d.sawCSeq(true, 5)
	d.sawCSeq(true, 3) // an older request never lowers it
	d.sawCSeq(false, 7)
	caller, callee := d.Legs()
	if caller.CSeq != 5 || callee.CSeq != 7 {
		t.Fatalf("CSeq caller %d callee %d", caller.CSeq, callee.CSeq)
	}
}

func TestDialogTable(t *testing.T) {
	tb := NewDialogTable()
	d := &Dialog{Key: dialogKey("c1", "ta"), CallID: "c1", caller: Leg{Tag: "ta"}}
	if !tb.Insert(d) || tb.Insert(&Dialog{Key: d.Key}) {
		t.Fatal("insert / duplicate insert")
	}
	if tb.Lookup("c1", "ta", "tb") != d { // request from the caller
		t.Fatal("lookup by caller tag")
	}
	if tb.Lookup("c1", "tb", "ta") != d { // request from the callee
		t.Fatal("lookup by callee side")
	}
	if tb.Lookup("c1", "x", "y") != nil || tb.Lookup("c2", "ta", "") != nil {
		t.Fatal("lookup matched a stranger")
	}
	other := &Dialog{Key: d.Key}
	tb.Remove(other) // removing a different dialog under the same key is a no-op
	if tb.Len() != 1 {
		t.Fatal("removed the wrong dialog")
	}
	tb.Remove(d)
	if tb.Len() != 0 || tb.Get(d.Key) != nil {
		t.Fatal("remove")
	}
	for i := 0; i < 1000; i++ {
		tb.Insert(&Dialog{Key: fmt.Sprint(i)})
	}
	if tb.Len() != 1000 || len(tb.All()) != 1000 {
		t.Fatal("sharded count")
	}
}
