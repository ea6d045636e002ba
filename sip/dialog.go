package sip

import (
	"github.com/tollgate/tollgate/meter"
	"hash/maphash"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
)

// DialogState is the state of a call in the gateway's dialog table.
type DialogState uint8

// Dialog states (RFC 3261 §12).
const (
	Early DialogState = iota + 1
	Confirmed
	Terminated
)

func (s DialogState) String() string {
	switch s {
	case Early:
		return "early"
	case Confirmed:
		return "confirmed"
	case Terminated:
		return "terminated"
	}
	return "unknown"
}

// Leg is what the gateway knows about one party of a call.
type Leg struct {
	Tag       string    // the party's dialog tag
	Contact   sip.Uri   // the party's remote target (Contact)
	RouteSet  []sip.Uri // routes from the gateway toward the party, nearest first
	Source    string    // address the party's messages came from (ip:port)
	Transport string    // UDP or TCP toward the party
	CSeq      uint32    // highest CSeq seen in requests sent by the party
}

// earlyEvent is sent to the INVITE transaction that owns an early dialog.
type earlyEvent struct {
	kind  earlyKind
	cause Cause
}

type earlyKind uint8

const (
	evCancel   earlyKind = iota + 1 // CANCEL from the caller
	evTimerC                        // Timer C fired
	evTeardown                      // the gateway ends the call
)

// Dialog is one call through the gateway. Fields below mu are guarded by it.
type Dialog struct {
	Key       string // Call-ID ";" caller tag: the admission id
	CallID    string
	Tenant    string
	Direction admission.Direction
	Created   time.Time
	Caller    string // caller identity (From user)
	Callee    string // dialled number (Request-URI user)

	// Where the INVITE was forwarded: the callee side's address until its
	// 2xx names the callee's own.
	nextHop, nextTransport string

	// early holds events for the INVITE transaction while the dialog is early.
	early chan earlyEvent

	mu       sync.Mutex
	state    DialogState
	from     *sip.FromHeader // From of the INVITE (caller identity + tag)
	to       *sip.ToHeader   // To of the INVITE; gets the callee tag on answer
	caller   Leg
	callee   Leg
	answered time.Time
	ended    time.Time
	endCause string
	maxTimer Timer
	pending  *Cause         // teardown asked for while early
	media    *meter.Session // the anchored media (media.mode relay), nil when not anchored
}

// State returns the dialog state.
func (d *Dialog) State() DialogState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Legs returns copies of the caller and callee legs.
func (d *Dialog) Legs() (caller, callee Leg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.caller, d.callee
}

// Answered returns when the call was answered (zero if it was not).
func (d *Dialog) Answered() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.answered
}

// confirm moves an early dialog to confirmed with the callee's data. It
// returns the teardown cause if a teardown was asked for while early and
// has not been carried out yet.
func (d *Dialog) confirm(now time.Time, callee Leg, to *sip.ToHeader) *Cause {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != Early {
		return nil
	}
	d.state = Confirmed
	d.answered = now
	d.callee = callee
	d.to = to
	return d.pending
}

// requestTeardown records the cause of a teardown of an early dialog; it
// returns the state the dialog is in.
func (d *Dialog) requestTeardown(c Cause) (state DialogState, first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == Early && d.pending == nil {
		d.pending = &c
		return Early, true
	}
	return d.state, false
}

// pendingCause returns the teardown cause recorded while early.
func (d *Dialog) pendingCause() Cause {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending == nil {
		return CauseShutdown
	}
	return *d.pending
}

// armMaxDuration schedules f once the call has lasted max (no goroutine
// until it fires).
func (d *Dialog) armMaxDuration(c Clock, max time.Duration, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == Confirmed {
		d.maxTimer = c.AfterFunc(max, f)
	}
}

// refreshTarget updates a party's remote target after a 2xx to a target
// refresh request (re-INVITE, UPDATE).
func (d *Dialog) refreshTarget(caller bool, c *sip.ContactHeader) {
	if c == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if caller {
		d.caller.Contact = *c.Address.Clone()
	} else {
		d.callee.Contact = *c.Address.Clone()
	}
}

// terminate marks the dialog terminated; it returns true only the first
// time, so whoever gets true releases the call's slot exactly once.
func (d *Dialog) terminate(now time.Time, cause string) (was DialogState, first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	was = d.state
	if d.state == Terminated {
		return was, false
	}
	d.state = Terminated
	d.ended = now
	d.endCause = cause
	if d.maxTimer != nil {
		d.maxTimer.Stop()
	}
	return was, true
}

// sideOf reports whether a request with From tag fromTag comes from the
// caller (true) or the callee (false).
func (d *Dialog) sideOf(fromTag string) (fromCaller bool) {
	return fromTag == d.caller.Tag
}

// sawCSeq records the CSeq of a request sent by one side.
func (d *Dialog) sawCSeq(fromCaller bool, seq uint32) {
	d.mu.Lock()
	leg := &d.callee
	if fromCaller {
		leg = &d.caller
	}
	if seq > leg.CSeq {
		leg.CSeq = seq
	}
	d.mu.Unlock()
}

// postEarly delivers an event to the INVITE transaction without blocking.
func (d *Dialog) postEarly(ev earlyEvent) {
	select {
	case d.early <- ev:
	default:
	}
}

const dialogShards = 64

type dialogShard struct {
	mu sync.Mutex
	m  map[string]*Dialog
}

// DialogTable holds the gateway's calls, sharded so that no lock is shared by
// all calls. Locks are never held across I/O.
type DialogTable struct {
	seed   maphash.Seed
	shards [dialogShards]dialogShard
}

// NewDialogTable returns an empty table.
func NewDialogTable() *DialogTable {
	t := &DialogTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*Dialog)
	}
	return t
}

func dialogKey(callID, callerTag string) string { return callID + ";" + callerTag }

func (t *DialogTable) shard(key string) *dialogShard {
	return &t.shards[maphash.String(t.seed, key)%dialogShards]
}

// Insert adds d; it returns false if a dialog with the same key exists.
func (t *DialogTable) Insert(d *Dialog) bool {
	s := t.shard(d.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[d.Key]; ok {
		return false
	}
	s.m[d.Key] = d
	return true
}

// Get returns the dialog stored under key.
func (t *DialogTable) Get(key string) *Dialog {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// Lookup finds the dialog of an in-dialog request from its Call-ID and tags,
// whichever side sent it.
func (t *DialogTable) Lookup(callID, fromTag, toTag string) *Dialog {
	if d := t.Get(dialogKey(callID, fromTag)); d != nil {
		return d
	}
	if toTag == "" {
		return nil
	}
	return t.Get(dialogKey(callID, toTag))
}

// Remove deletes the dialog stored under key if it is d.
func (t *DialogTable) Remove(d *Dialog) {
	s := t.shard(d.Key)
	s.mu.Lock()
	if s.m[d.Key] == d {
		delete(s.m, d.Key)
	}
	s.mu.Unlock()
}

// Len returns the number of dialogs in the table.
func (t *DialogTable) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// All returns a snapshot of every dialog.
func (t *DialogTable) All() []*Dialog {
	var out []*Dialog
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, d := range s.m {
			out = append(out, d)
		}
		s.mu.Unlock()
	}
	return out
}
