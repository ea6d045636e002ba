package store

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
)

// CommitterOptions configure a Committer.
type CommitterOptions struct {
	// Interval is the group commit interval: what is pending is committed
	// this long after the first of it was recorded (default 10ms).
	Interval time.Duration
	// Checkpoint: while answered calls are in the store (put and not yet
	// deleted), commit at least this often even when nothing is pending,
	// to move the store clock forward (default 1s). With no such call the
	// clock bills nothing, and an idle committer does not wake up.
	Checkpoint time.Duration
	// Now is the clock of the seal times (Batch.At); nil: time.Now.
	Now func() time.Time
	// Logger receives commit failures.
	Logger zerolog.Logger
	// OnCommit, optional, is called after each successful Apply with its
	// duration and the batch (read only), from the commit goroutine.
	OnCommit func(d time.Duration, b *Batch)
}

// Default committer timings.
const (
	DefaultCommitInterval   = 10 * time.Millisecond
	DefaultCheckpoint       = time.Second
	maxRetryBackoff         = time.Second
	closeAttempts           = 3
	closeRetryDelay         = 50 * time.Millisecond
	committerClosedErrorMsg = "store: committer closed"
)

// ErrCommitterClosed is returned by Submit and Flush after Close.
var ErrCommitterClosed = errors.New(committerClosedErrorMsg)

// CommitStats describe a Committer.
type CommitStats struct {
	// Commits counts successful Applies.
	Commits uint64
	// Failures counts failed commit attempts.
	Failures uint64
	// LastError is the error of the last commit attempt; nil when it
	// succeeded.
	LastError error
	// Pending counts the items (records, calls, charges, events, ...)
	// waiting for a commit, a failed batch kept for retry included.
	Pending int
	// Dropped counts the steps recorded after Close (not stored).
	Dropped uint64
	// LastCommit is the seal time (the store clock) of the last successful
	// commit.
	LastCommit time.Time
}

// Committer is the group commit in front of a Store and the engine's
// admission.Journal: Record and Submit merge into one pending batch, which
// a goroutine seals and applies Interval after its first item arrived
// (and at least every Checkpoint while calls are in the store). A failed
// batch is kept and retried, merged in front of what was recorded since;
// nothing is dropped before Close. The goroutine sleeps on one timer,
// armed only when a commit is due: an idle committer never wakes up.
type Committer struct {
	s    Store
	o    CommitterOptions
	kick chan struct{} // Submit, Flush: commit now
	wake chan struct{} // the pending batch got its first item: arm the timer
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	cur     *pending
	curAt   time.Time // when cur got its first item
	grp     *group
	retry   *Batch            // failed batch; written by the commit goroutine only
	live    map[string]string // call id -> tenant of the calls put and not deleted
	closing bool
	stats   CommitStats

	wakeups  atomic.Uint64 // times the goroutine woke up (for tests)
	closeErr error         // set by the goroutine before done is closed
}

// group is the outcome of one commit, awaited by Submit and Flush.
type group struct {
	done chan struct{}
	err  error
}

func newGroup() *group { return &group{done: make(chan struct{})} }

var _ admission.Journal = (*Committer)(nil)

// NewCommitter starts a Committer on s.
func NewCommitter(s Store, o CommitterOptions) *Committer {
	if o.Interval <= 0 {
		o.Interval = DefaultCommitInterval
	}
	if o.Checkpoint <= 0 {
		o.Checkpoint = DefaultCheckpoint
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Committer{
		s:    s,
		o:    o,
		kick: make(chan struct{}, 1),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		cur:  newPending(),
		grp:  newGroup(),
		live: map[string]string{},
	}
	go c.run()
	return c
}

// Record copies the step into the pending batch (admission.Journal). It
// never waits for I/O. After Close the step is dropped (logged once,
// counted in Stats.Dropped).
func (c *Committer) Record(st *admission.Step) { c.RecordWith(st, nil) }

// RecordWith is Record plus audit entries that must land in the same
// batch as the step (e.g. the audit of an automatic suspension).
func (c *Committer) RecordWith(st *admission.Step, audit []AuditEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		c.stats.Dropped++
		if c.stats.Dropped == 1 {
			c.o.Logger.Error().Msg("store: step recorded after the committer was closed: dropped")
		}
		return
	}
	idle := c.cur.empty()
	c.cur.addStep(st)
	if len(audit) > 0 {
		c.cur.addBatch(&Batch{Audit: slices.Clone(audit)})
	}
	for _, a := range st.Answered {
		c.live[a.CallID] = a.Tenant
	}
	for _, id := range st.Released {
		delete(c.live, id)
	}
	if idle && !c.cur.empty() {
		c.curAt = time.Now()
		signal(c.wake)
	}
}

// trackBatch updates the live calls with b (under mu).
func (c *Committer) trackBatch(b *Batch) {
	for _, name := range b.DeleteTenants {
		for id, tenant := range c.live {
			if tenant == name {
				delete(c.live, id)
			}
		}
	}
	for _, id := range b.DeleteCalls {
		delete(c.live, id)
	}
	for _, call := range b.PutCalls {
		c.live[call.CallID] = call.Tenant
	}
}

// Submit merges a copy of b into the pending batch (b.At is ignored: the
// commit's seal time is the clock) and waits until the commit holding it
// is durable, returning the Apply error. After an error the data is kept
// and retried with the next commits. A batch that cannot be stored (e.g.
// a plan that would not load back) is refused before it is merged.
func (c *Committer) Submit(b *Batch) error {
	cb, err := cloneBatch(b)
	if err != nil {
		return wrap("submit", err)
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrCommitterClosed
	}
	if c.cur.empty() {
		c.curAt = time.Now()
	}
	c.cur.addBatch(cb)
	c.trackBatch(cb)
	g := c.grp
	c.mu.Unlock()
	signal(c.kick)
	<-g.done
	return g.err
}

// Flush commits what is pending now (at least the clock) and waits.
func (c *Committer) Flush() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrCommitterClosed
	}
	g := c.grp
	c.mu.Unlock()
	signal(c.kick)
	<-g.done
	return g.err
}

// Close commits what is pending (retrying a failure a few times), stops
// the goroutine and returns the last commit's error. It is idempotent.
func (c *Committer) Close() error {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		close(c.stop)
	}
	c.mu.Unlock()
	<-c.done
	return c.closeErr
}

// Stats returns the counters.
func (c *Committer) Stats() CommitStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Pending = c.cur.n
	if c.retry != nil {
		s.Pending += batchLen(c.retry)
	}
	return s
}

// signal posts to a one-slot channel without waiting.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// due is when the next commit is due, and false when none is: nothing
// pending, nothing to retry, no call in the store. last is the time of
// the last commit attempt, next the earliest retry after a failure.
func (c *Committer) due(last, next time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.cur.empty():
		return later(c.curAt.Add(c.o.Interval), next), true
	case c.retry != nil:
		return next, true
	case len(c.live) > 0:
		return later(last.Add(c.o.Checkpoint), next), true
	}
	return time.Time{}, false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// run is the commit goroutine. It sleeps until a commit is due (its
// timer armed only then), a Submit or Flush asks for one, or new work
// arrives on an idle committer.
func (c *Committer) run() {
	defer close(c.done)
	// Timers are AfterFuncs that are never reset, moved or stopped: an
	// earlier instant gets a timer of its own and the later one fires as a
	// harmless spurious wake. Resetting a pending or stopped Go timer (a
	// stopped one stays in the heap until the runtime cleans it) counts as
	// a modification, and the runtime then rescans the process's whole
	// timer heap — tens of thousands of sipgo timers under load — when its
	// instant comes: at one batch per 10 ms moving the 1 s checkpoint
	// earlier, that was 29 % of the gateway's CPU.
	fired := make(chan struct{}, 1)
	wake := func() {
		select {
		case fired <- struct{}{}:
		default:
		}
	}
	last := time.Now()
	var backoff time.Duration
	var next time.Time  // no retry before, after a failure
	var armed time.Time // when t fires; zero: not armed
	for {
		select {
		case <-c.wake: // stale: due sees the work it announced
		default:
		}
		if at, ok := c.due(last, next); ok && (armed.IsZero() || at.Before(armed)) {
			time.AfterFunc(time.Until(at), wake)
			armed = at
		}
		force := false
		select {
		case <-c.stop:
			for i := 0; i < closeAttempts; i++ {
				if c.closeErr = c.commit(); c.closeErr == nil {
					return
				}
				time.Sleep(min(c.o.Interval, closeRetryDelay))
			}
			c.o.Logger.Error().Err(c.closeErr).Int("items", c.Stats().Pending).Msg("store: committer closed with data not stored")
			return
		case <-c.kick:
			force = true
		case <-c.wake:
			c.wakeups.Add(1)
			continue // arm the timer for the new batch
		case <-fired:
			armed = time.Time{}
		}
		c.wakeups.Add(1)
		if at, ok := c.due(last, next); !force && (!ok || time.Now().Before(at)) {
			continue
		}
		if err := c.commit(); err != nil {
			backoff = min(max(2*backoff, c.o.Interval), maxRetryBackoff)
			next = time.Now().Add(backoff)
		} else {
			backoff = 0
		}
		last = time.Now()
	}
}

// commit seals the pending batch (merged behind a failed one) and applies
// it. Only the goroutine calls it.
func (c *Committer) commit() error {
	c.mu.Lock()
	p, g := c.cur, c.grp
	c.cur, c.grp = newPending(), newGroup()
	at := c.o.Now()
	retry := c.retry
	c.mu.Unlock()

	b := p.seal(at)
	if retry != nil {
		m := newPending()
		m.addBatch(retry)
		m.addBatch(b)
		b = m.seal(at)
	}
	done, err := c.apply(b)

	c.mu.Lock()
	if err != nil {
		_, c.retry = splitBatch(b, done)
		c.stats.Failures++
		c.stats.LastError = err
	} else {
		c.retry = nil
		c.stats.LastError = nil
		c.stats.LastCommit = at
	}
	c.mu.Unlock()
	if err != nil {
		c.o.Logger.Error().Err(err).Int("items", batchLen(b)-done).Msg("store: commit failed; will retry")
	}
	g.err = err
	close(g.done)
	return err
}

// apply applies b, cutting it in halves while the store finds it too big
// (the parts before the last leave the clock). It returns how many leading
// items (in Apply's order) were committed.
func (c *Committer) apply(b *Batch) (int, error) {
	start := time.Now()
	err := c.s.Apply(b)
	n := batchLen(b)
	if err == nil {
		c.mu.Lock()
		c.stats.Commits++
		c.mu.Unlock()
		if c.o.OnCommit != nil {
			c.o.OnCommit(time.Since(start), b)
		}
		return n, nil
	}
	if !errors.Is(err, ErrTooBig) || n < 2 {
		return 0, err
	}
	first, rest := splitBatch(b, n/2)
	done, err := c.apply(first)
	if err != nil {
		return done, err
	}
	more, err := c.apply(rest)
	return done + more, err
}
