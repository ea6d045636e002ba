package store

import (
	"bytes"
	"sort"
	"sync"
	"time"
)

// Mem is the in-memory Store for tests. It keeps the same encoded records
// under the same keys as Badger and runs the same code over them, so it
// behaves the same (nothing it returns aliases what it was given), except
// that nothing expires and Size is 0.
type Mem struct {
	mu   sync.RWMutex
	shut bool
	// kinds maps the first byte of a key to the keys of that kind.
	kinds  map[byte]map[string][]byte
	encode EventEncoder
}

var _ Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	return &Mem{kinds: map[byte]map[string][]byte{}}
}

// WithEventEncoder makes m store outbox events in their published form
// (Options.EncodeEvent of Badger). Call it before m is used.
func (m *Mem) WithEventEncoder(f EventEncoder) *Mem {
	m.encode = f
	return m
}

// update runs fn as one transaction: on error every write is undone.
func (m *Mem) update(op string, fn func(tx kvTxn) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return ErrClosed
	}
	tx := &memTxn{m: m, undo: map[string]memUndo{}}
	if err := fn(tx); err != nil {
		tx.rollback()
		return wrap(op, err)
	}
	return nil
}

// view runs fn under the read lock.
func (m *Mem) view(op string, fn func(r kvReader) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.shut {
		return ErrClosed
	}
	return wrap(op, fn(&memTxn{m: m}))
}

// Apply commits b atomically (same order as Badger's Apply).
func (m *Mem) Apply(b *Batch) error {
	return m.update("apply", func(tx kvTxn) error { return applyBatch(tx, b, ttls{}, time.Now(), m.encode, nil) })
}

// Load returns the whole state.
func (m *Mem) Load() (st *State, err error) {
	err = m.view("load", func(r kvReader) error {
		st, err = loadState(r)
		return err
	})
	return st, err
}

// Days returns the tenant's days whose midnight (UTC) is in [from, to),
// oldest first; a zero from or to is open.
func (m *Mem) Days(tenant string, from, to time.Time) (days []Day, err error) {
	err = m.view("days", func(r kvReader) error {
		days, err = readDays(r, tenant, from, to)
		return err
	})
	return days, err
}

// Audit returns the entries matching q, newest first.
func (m *Mem) Audit(q AuditQuery) (out []AuditEntry, err error) {
	err = m.view("audit", func(r kvReader) error {
		out, err = readAudit(r, q)
		return err
	})
	return out, err
}

// Outbox returns up to limit entries (0: 100) with Seq > after, in order.
func (m *Mem) Outbox(after uint64, limit int) (out []OutboxEntry, err error) {
	err = m.view("outbox", func(r kvReader) error {
		out, err = readOutbox(r, after, limit)
		return err
	})
	return out, err
}

// AckOutbox deletes the entries with Seq <= upTo.
func (m *Mem) AckOutbox(upTo uint64) error {
	return m.update("ack outbox", func(tx kvTxn) error {
		_, err := ackChunk(tx, upTo, int(^uint(0)>>1))
		return err
	})
}

// OutboxDepth is the number of entries waiting.
func (m *Mem) OutboxDepth() (n int, err error) {
	err = m.view("outbox depth", func(r kvReader) error {
		n, err = outboxDepth(r)
		return err
	})
	return n, err
}

// Size is 0: nothing is on disk.
func (m *Mem) Size() int64 { return 0 }

// Close drops the data; further calls return ErrClosed.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shut = true
	m.kinds = nil
	return nil
}

// memUndo is the value a key had before a transaction first wrote it.
type memUndo struct {
	val    []byte
	exists bool
}

// memTxn reads and writes Mem's maps directly (the caller holds the
// lock); undo, nil for reads, restores them on failure.
type memTxn struct {
	m    *Mem
	undo map[string]memUndo
}

func (t *memTxn) get(key []byte) ([]byte, bool, error) {
	v, ok := t.m.kinds[key[0]][string(key)]
	return v, ok, nil
}

func (t *memTxn) scan(prefix, start []byte, reverse, keysOnly bool, fn func(k, v []byte) (bool, error)) error {
	kind := t.m.kinds[prefix[0]]
	keys := make([]string, 0, len(kind))
	for k := range kind {
		if len(k) < len(prefix) || k[:len(prefix)] != string(prefix) {
			continue
		}
		if start != nil {
			c := bytes.Compare([]byte(k), start)
			if !reverse && c < 0 || reverse && c > 0 {
				continue
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if reverse {
		for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
			keys[i], keys[j] = keys[j], keys[i]
		}
	}
	for _, k := range keys {
		var v []byte
		if !keysOnly {
			v = kind[k]
		}
		more, err := fn([]byte(k), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (t *memTxn) remember(k string) {
	if _, done := t.undo[k]; done {
		return
	}
	v, ok := t.m.kinds[k[0]][k]
	t.undo[k] = memUndo{val: v, exists: ok}
}

func (t *memTxn) set(key, val []byte, _ time.Duration) error {
	k := string(key)
	t.remember(k)
	kind := t.m.kinds[k[0]]
	if kind == nil {
		kind = map[string][]byte{}
		t.m.kinds[k[0]] = kind
	}
	kind[k] = bytes.Clone(val)
	return nil
}

func (t *memTxn) del(key []byte) error {
	k := string(key)
	t.remember(k)
	delete(t.m.kinds[k[0]], k)
	return nil
}

func (t *memTxn) rollback() {
	for k, u := range t.undo {
		if u.exists {
			t.m.kinds[k[0]][k] = u.val
		} else {
			delete(t.m.kinds[k[0]], k)
		}
	}
}
