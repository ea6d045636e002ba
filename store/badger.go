package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// Options configure Open.
type Options struct {
	// Sync fsyncs every Apply before it returns (the gateway turns it on).
	// Without it a committed batch survives a crash of the process but not
	// one of the machine.
	Sync bool
	// Retention bounds how long usage, audit and outbox rows are kept.
	Retention Retention
	// Logger receives Badger's warnings and errors and the store's own.
	Logger zerolog.Logger
	// Now is the clock for audit entries without a time (nil: time.Now).
	Now func() time.Time
	// MemTableSize is the size of Badger's memtable in bytes (0:
	// DefaultMemTableSize; at least MinMemTableSize). See the Badger
	// tuning constants below.
	MemTableSize int64
	// EncodeEvent, optional, stores each outbox event in its published
	// form (OutboxEntry.Data).
	EncodeEvent EventEncoder
}

// Retention is how long rows are kept after their last write (enforced
// with Badger TTLs). Zero means the default; a negative value keeps rows
// forever.
type Retention struct {
	// Usage is the lifetime of per-day usage rows (default 400 days).
	Usage time.Duration
	// Audit is the lifetime of audit entries (default 400 days).
	Audit time.Duration
	// Outbox is the lifetime of undelivered events (default 30 days).
	Outbox time.Duration
}

// Default retention times.
const (
	DefaultUsageRetention  = 400 * 24 * time.Hour
	DefaultAuditRetention  = 400 * 24 * time.Hour
	DefaultOutboxRetention = 30 * 24 * time.Hour
)

func (r Retention) ttls() ttls {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return ttls{
		usage:  pick(r.Usage, DefaultUsageRetention),
		audit:  pick(r.Audit, DefaultAuditRetention),
		outbox: pick(r.Outbox, DefaultOutboxRetention),
		user:   userTTL,
	}
}

// Badger tuning: a small memtable and caches (the data set is small and
// tests open many stores).
//
// The memtable is a fixed cost that does not grow with calls but is
// resident as it fills: its arena (1.3 × its size, on the Go heap, where
// it also counts towards the collector's goal) and its write-ahead log (a
// memory-mapped file, resident as it is written). At 32 MiB it was the
// largest item of the gateway's heap at 5,000 calls; at 4 MiB it fills in
// about 13 s at 500 calls/s (about 650 bytes a call) and is then flushed
// to a level-0 table of about 0.9 MB (BENCHMARKS.md, issue 8). One
// memtable is written while at most one full one is flushed
// (NumMemtables 1); a second full one before that flush ends stalls
// writes until it does, far beyond any call rate (a flush takes
// milliseconds). One transaction may hold 15 % of a memtable (4 MiB: 629
// kB or 6,553 entries): the committer splits a batch that is too big, and
// Apply itself deletes a big tenant and writes a big seed in parts.
const (
	// DefaultMemTableSize is the memtable size of Options.MemTableSize 0
	// (configs.DefaultMemtableMiB).
	DefaultMemTableSize = 4 << 20
	// MinMemTableSize is the smallest memtable accepted.
	MinMemTableSize = 1 << 20
	// MaxMemTableSize is the largest memtable accepted (Badger maps the
	// log at twice the size, which must stay below 2 GiB).
	MaxMemTableSize = 512 << 20

	numMemtables     = 1
	blockCacheSize   = 16 << 20
	valueLogFileSize = 64 << 20
	gcInterval       = 5 * time.Minute
	gcDiscardRatio   = 0.5
	ackChunkSize     = 1000
	deleteChunkSize  = 1000
)

// Badger is the Store on a Badger database in a directory.
type Badger struct {
	db     *badger.DB
	dir    string
	ttl    ttls
	encode EventEncoder
	tail   *outboxTail // the newest outbox entries (with encode only; nil: none)
	now    func() time.Time
	log    zerolog.Logger
	wmu    sync.Mutex   // one writer at a time: no transaction conflicts
	mu     sync.RWMutex // held for reading by every operation, for writing by Close
	shut   bool
	stop   chan struct{}
	done   chan struct{}
}

var _ Store = (*Badger)(nil)

// Open opens (creating it if needed) the Badger store in dir.
func Open(dir string, opts Options) (*Badger, error) {
	mts := opts.MemTableSize
	if mts == 0 {
		mts = DefaultMemTableSize
	}
	if mts < MinMemTableSize || mts > MaxMemTableSize {
		return nil, fmt.Errorf("store: open %s: memtable size %d not in [%d, %d]", dir, mts, int64(MinMemTableSize), int64(MaxMemTableSize))
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithLoggingLevel(badger.WARNING).
		WithSyncWrites(opts.Sync).
		WithMemTableSize(mts).
		WithNumMemtables(numMemtables).
		// Badger refuses a value threshold above the largest transaction
		// (15 % of the memtable); its default is 1 MiB. Every value of the
		// store is far below either, so all stay in the LSM tree.
		WithValueThreshold(min(1<<20, 15*mts/100)).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(0).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithDetectConflicts(false)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s := &Badger{
		db:     db,
		dir:    dir,
		ttl:    opts.Retention.ttls(),
		encode: opts.EncodeEvent,
		now:    opts.Now,
		log:    opts.Logger,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.checkVersion(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if s.encode != nil {
		var last uint64
		err := db.View(func(txn *badger.Txn) (err error) {
			last, err = getU64(badgerTxn{txn}, keyOutSeq)
			return err
		})
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
		s.tail = newOutboxTail(last, tailSize)
	}
	go s.gcLoop()
	return s, nil
}

// checkVersion writes the layout version into a new store, marks a
// version 1 store (whose JSON call records are still read) as version 2,
// and refuses a store written with any other layout.
func (s *Badger) checkVersion() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(keyVersion))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set([]byte(keyVersion), []byte(layoutVersion))
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		switch string(v) {
		case layoutVersion:
			return nil
		case layoutVersionV1: // JSON calls, still read; new ones are binary
			return txn.Set([]byte(keyVersion), []byte(layoutVersion))
		}
		return fmt.Errorf("layout version %q, want %q", v, layoutVersion)
	})
}

// gcLoop runs the value log GC every gcInterval until Close.
func (s *Badger) gcLoop() {
	defer close(s.done)
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for n := 0; ; n++ {
			select {
			case <-s.stop:
				return
			default:
			}
			if err := s.db.RunValueLogGC(gcDiscardRatio); err != nil {
				if n > 0 {
					s.log.Debug().Int("files", n).Msg("store: value log gc")
				}
				break
			}
		}
	}
}

// update runs fn in one write transaction.
func (s *Badger) update(op string, fn func(tx kvTxn) error) error {
	return s.updateThen(op, fn, nil)
}

// updateThen is update, and runs committed (when not nil) once the
// transaction has committed, still as the only writer.
func (s *Badger) updateThen(op string, fn func(tx kvTxn) error, committed func()) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shut {
		return ErrClosed
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.db.Update(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) })
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%w: %w", ErrTooBig, err)
	}
	if err == nil && committed != nil {
		committed()
	}
	return wrap(op, err)
}

// view runs fn in one read transaction.
func (s *Badger) view(op string, fn func(r kvReader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shut {
		return ErrClosed
	}
	return wrap(op, s.db.View(func(txn *badger.Txn) error { return fn(badgerTxn{txn}) }))
}

// Apply commits b in one transaction (see the order in README.md). A zero
// b.At leaves the clock as it is. A batch too big for one transaction
// (15 % of the memtable) fails with an error wrapping ErrTooBig (the
// committer then applies it in parts), with two exceptions whose parts
// can be applied again without harm:
//
//   - a batch that deletes tenants: the users and calls of those tenants
//     are deleted first, in transactions of deleteChunkSize rows, and the
//     batch is tried again. (A crash in between leaves the tenants with
//     fewer users and calls, and the deletion still to be done.)
//   - the seed (b.Seeded): it is applied in parts, Seeded and At with the
//     last, so an interrupted seed is done again at the next start.
func (s *Badger) Apply(b *Batch) error {
	err := s.applyOnce(b)
	if !errors.Is(err, ErrTooBig) {
		return err
	}
	switch {
	case len(b.DeleteTenants) > 0:
		for {
			var n int
			err := s.update("delete tenant rows", func(tx kvTxn) (err error) {
				n, err = deleteTenantRows(tx, b.DeleteTenants, deleteChunkSize)
				return err
			})
			if err != nil {
				return err
			}
			if n < deleteChunkSize {
				break
			}
		}
		return s.applyOnce(b)
	case b.Seeded:
		return s.applyInParts(b)
	}
	return err
}

func (s *Badger) applyOnce(b *Batch) error {
	if s.tail == nil || len(b.Events) == 0 {
		return s.update("apply", func(tx kvTxn) error { return applyBatch(tx, b, s.ttl, s.now(), s.encode, nil) })
	}
	var wrote []OutboxEntry
	return s.updateThen("apply", func(tx kvTxn) error {
		wrote = wrote[:0]
		return applyBatch(tx, b, s.ttl, s.now(), s.encode, &wrote)
	}, func() {
		var expires time.Time
		if s.ttl.outbox > 0 {
			// Badger's TTLs are in whole seconds, rounded down.
			expires = time.Now().Add(s.ttl.outbox - time.Second)
		}
		s.tail.add(wrote, expires)
	})
}

// applyInParts applies b, cut in halves while a part is too big.
func (s *Badger) applyInParts(b *Batch) error {
	err := s.applyOnce(b)
	if n := batchLen(b); !errors.Is(err, ErrTooBig) || n < 2 {
		return err
	}
	first, rest := splitBatch(b, batchLen(b)/2)
	if err := s.applyInParts(first); err != nil {
		return err
	}
	return s.applyInParts(rest)
}

// Load returns the whole durable state, from one consistent snapshot.
func (s *Badger) Load() (st *State, err error) {
	err = s.view("load", func(r kvReader) error {
		st, err = loadState(r)
		return err
	})
	return st, err
}

// Days returns the tenant's days whose midnight (UTC) is in [from, to),
// oldest first; a zero from or to is open.
func (s *Badger) Days(tenant string, from, to time.Time) (days []Day, err error) {
	err = s.view("days", func(r kvReader) error {
		days, err = readDays(r, tenant, from, to)
		return err
	})
	return days, err
}

// Audit returns the entries matching q, newest first.
func (s *Badger) Audit(q AuditQuery) (out []AuditEntry, err error) {
	err = s.view("audit", func(r kvReader) error {
		out, err = readAudit(r, q)
		return err
	})
	return out, err
}

// Outbox returns up to limit entries (0: 100) with Seq > after, in order:
// from the tail of what this process committed when it holds them,
// else from Badger.
func (s *Badger) Outbox(after uint64, limit int) (out []OutboxEntry, err error) {
	if out, ok := s.readTail(after, limit); ok {
		return out, nil
	}
	err = s.view("outbox", func(r kvReader) error {
		out, err = readOutbox(r, after, limit)
		return err
	})
	return out, err
}

// readTail is Outbox from the tail; false: not there, or the store is
// closed.
func (s *Badger) readTail(after uint64, limit int) ([]OutboxEntry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shut {
		return nil, false
	}
	return s.tail.read(after, outboxPage(limit), time.Now())
}

// AckOutbox deletes the entries with Seq <= upTo (in transactions of up
// to 1000 deletions).
func (s *Badger) AckOutbox(upTo uint64) error {
	for {
		var n int
		err := s.update("ack outbox", func(tx kvTxn) (err error) {
			n, err = ackChunk(tx, upTo, ackChunkSize)
			return err
		})
		if err != nil {
			return err
		}
		if n < ackChunkSize {
			s.tail.ack(upTo)
			return nil
		}
	}
}

// OutboxDepth is the number of entries waiting.
func (s *Badger) OutboxDepth() (n int, err error) {
	err = s.view("outbox depth", func(r kvReader) error {
		n, err = outboxDepth(r)
		return err
	})
	return n, err
}

// Size is the disk space used by the store's files (allocated blocks,
// measured now; Badger's own DB.Size is refreshed once a minute and skips
// the memtable logs). 0 after Close.
func (s *Badger) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shut {
		return 0
	}
	return dirUsage(s.dir)
}

// Flatten compacts the whole LSM tree into one level and runs the value
// log GC (maintenance and measurement; not needed in normal operation).
func (s *Badger) Flatten() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.shut {
		return ErrClosed
	}
	if err := s.db.Flatten(2); err != nil {
		return wrap("flatten", err)
	}
	for s.db.RunValueLogGC(gcDiscardRatio) == nil {
	}
	return nil
}

// Close stops the value log GC, flushes and closes the database. Further
// calls return ErrClosed; Close itself is idempotent.
func (s *Badger) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return nil
	}
	s.shut = true
	close(s.stop)
	<-s.done
	return wrap("close", s.db.Close())
}

// dirUsage sums the disk usage of the files in dir.
func dirUsage(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += diskUsage(info)
		}
		return nil
	})
	return total
}

// badgerTxn is a Badger transaction as a kvTxn.
type badgerTxn struct{ txn *badger.Txn }

func (t badgerTxn) get(key []byte) ([]byte, bool, error) {
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, err == nil, err
}

func (t badgerTxn) scan(prefix, start []byte, reverse, keysOnly bool, fn func(k, v []byte) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.Reverse = reverse
	o.PrefetchValues = !keysOnly
	o.PrefetchSize = 16
	it := t.txn.NewIterator(o)
	defer it.Close()
	if start == nil {
		start = prefix
		if reverse {
			start = append(append([]byte(nil), prefix...), reverseEnd...)
		}
	}
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		var v []byte
		if !keysOnly {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (t badgerTxn) set(key, val []byte, ttl time.Duration) error {
	e := badger.NewEntry(key, val)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return t.txn.SetEntry(e)
}

func (t badgerTxn) del(key []byte) error { return t.txn.Delete(key) }

// badgerLogger routes Badger's log to zerolog: errors and warnings only.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error().Str("component", "badger").Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn().Str("component", "badger").Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
