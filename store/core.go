package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/configs"
)

// The semantics of the store are written once, over a small ordered
// key-value interface that Badger (a transaction) and Mem (a map with an
// undo log) implement, so both behave the same byte for byte.

// kvReader reads a consistent view.
type kvReader interface {
	// get returns the value of key; ok is false when it is absent.
	get(key []byte) (val []byte, ok bool, err error)
	// scan calls fn for each key with prefix, ascending (reverse:
	// descending), starting at start (forward: the first key >= start;
	// reverse: the last key <= start; nil: the first or last key of the
	// prefix). With keysOnly, v is nil. fn may keep k and v; it returns
	// false to stop. fn must not write.
	scan(prefix, start []byte, reverse, keysOnly bool, fn func(k, v []byte) (bool, error)) error
}

// kvTxn is a write transaction: it reads its own writes.
type kvTxn interface {
	kvReader
	// set writes key; ttl > 0 makes the key expire (Mem ignores it).
	set(key, val []byte, ttl time.Duration) error
	del(key []byte) error
}

// ttls are the resolved retention times (0: keep forever).
type ttls struct {
	usage, audit, outbox, user time.Duration
}

// userTTL is the lifetime of a user record after its last write: user
// records only matter for the current month.
const userTTL = 62 * 24 * time.Hour

// Audit query limits.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
	defaultOutboxPage = 100
	maxOutboxPage     = 10000
)

// reverseEnd is appended to a prefix to seek past its last key in a
// reverse scan (every key suffix of a reverse-scanned prefix is 16 bytes).
var reverseEnd = bytes.Repeat([]byte{0xff}, 32)

func getU64(r kvReader, key string) (uint64, error) {
	v, ok, err := r.get([]byte(key))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%s: bad value of %d bytes", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// applyBatch writes b in this order (the order matters when one batch
// touches a key twice): deletes of plans, tenants (with their counters,
// users and calls), tokens and calls; then puts of plans, tenants, tokens,
// counters, users and calls; then day deltas, outbox events, audit
// entries, the seeded mark and the clock. A zero b.At leaves the clock.
// wrote, when not nil, receives the outbox entries written in the
// published form (enc), as Outbox would read them.
func applyBatch(tx kvTxn, b *Batch, ttl ttls, now time.Time, enc EventEncoder, wrote *[]OutboxEntry) error {
	for _, name := range b.DeletePlans {
		if err := tx.del(strKey(pfxPlan, name)); err != nil {
			return err
		}
	}
	if err := deleteTenants(tx, b.DeleteTenants); err != nil {
		return err
	}
	for _, name := range b.DeleteTokens {
		if err := tx.del(strKey(pfxToken, name)); err != nil {
			return err
		}
	}
	for _, id := range b.DeleteCalls {
		if err := tx.del(strKey(pfxCall, id)); err != nil {
			return err
		}
	}
	for _, p := range b.PutPlans {
		v, err := encodePlan(p)
		if err != nil {
			return err
		}
		if err := tx.set(strKey(pfxPlan, p.Name), v, 0); err != nil {
			return err
		}
	}
	for _, t := range b.PutTenants {
		v, err := encodeTenant(t)
		if err != nil {
			return err
		}
		if err := tx.set(strKey(pfxTenant, t.Name), v, 0); err != nil {
			return err
		}
	}
	for _, t := range b.PutTokens {
		v, err := encodeToken(t)
		if err != nil {
			return err
		}
		if err := tx.set(strKey(pfxToken, t.Name), v, 0); err != nil {
			return err
		}
	}
	for _, r := range b.Counters {
		v, err := encodeCounter(r)
		if err != nil {
			return err
		}
		if err := tx.set(strKey(pfxCounter, r.Tenant), v, 0); err != nil {
			return err
		}
	}
	for _, r := range b.Users {
		v, err := encodeUser(r)
		if err != nil {
			return err
		}
		if err := tx.set(pairKey(pfxUser, r.Tenant, r.User), v, ttl.user); err != nil {
			return err
		}
	}
	for _, c := range b.PutCalls {
		v, err := encodeCall(c)
		if err != nil {
			return err
		}
		if err := tx.set(strKey(pfxCall, c.CallID), v, 0); err != nil {
			return err
		}
	}
	for _, d := range b.Days {
		if err := addDay(tx, d, ttl.usage); err != nil {
			return err
		}
	}
	if len(b.Events) > 0 {
		inst, err := ensureInstance(tx)
		if err != nil {
			return err
		}
		seq, err := getU64(tx, keyOutSeq)
		if err != nil {
			return err
		}
		prefix := hex.EncodeToString(inst) + "-"
		for _, e := range b.Events {
			seq++
			var v []byte
			id := ""
			if enc != nil {
				id = prefix + strconv.FormatUint(seq, 10)
				v, err = encodeWireEvent(e, id, enc)
			} else {
				v, err = encodeEvent(e)
			}
			if err != nil {
				return err
			}
			if err := tx.set(seqKey(pfxOutbox, seq), v, ttl.outbox); err != nil {
				return err
			}
			if wrote != nil && enc != nil {
				ev, data, err := decodeWireEvent(v)
				if err != nil {
					return err
				}
				*wrote = append(*wrote, OutboxEntry{Seq: seq, ID: id, Event: ev, Data: data})
			}
		}
		if err := tx.set([]byte(keyOutSeq), u64(seq), 0); err != nil {
			return err
		}
	}
	if len(b.Audit) > 0 {
		if err := appendAudit(tx, b, ttl.audit, now); err != nil {
			return err
		}
	}
	for _, u := range b.Unreplicated {
		k := pairKey(pfxUnrepl, u.Kind, u.Name)
		if u.Done {
			if err := tx.del(k); err != nil {
				return err
			}
			continue
		}
		v, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if err := tx.set(k, v, 0); err != nil {
			return err
		}
	}
	if b.Seeded {
		if err := tx.set([]byte(keySeeded), []byte("1"), 0); err != nil {
			return err
		}
	}
	if !b.At.IsZero() {
		if err := tx.set([]byte(keyClock), u64(uint64(b.At.UnixNano())), 0); err != nil {
			return err
		}
	}
	return nil
}

// deleteTenants deletes the tenants with their counters, users and calls.
func deleteTenants(tx kvTxn, names []string) error {
	if len(names) == 0 {
		return nil
	}
	gone := map[string]bool{}
	var doomed [][]byte
	for _, name := range names {
		gone[name] = true
		doomed = append(doomed, strKey(pfxTenant, name), strKey(pfxCounter, name))
		err := tx.scan(pairKey(pfxUser, name, ""), nil, false, true, func(k, _ []byte) (bool, error) {
			doomed = append(doomed, k)
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	// Calls are keyed by id: scan them all (tenant deletion is rare).
	err := tx.scan([]byte(pfxCall), nil, false, false, func(k, v []byte) (bool, error) {
		c, err := decodeCall(v)
		if err != nil {
			return false, fmt.Errorf("call %q: %w", k[len(pfxCall):], err)
		}
		if gone[c.Tenant] {
			doomed = append(doomed, k)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range doomed {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteTenantRows deletes up to limit of the user and call rows of the
// tenants in names (not their tenant and counter rows, which
// deleteTenants deletes with them) and returns how many it deleted: the
// rows of a tenant too big to delete in one transaction go first, in
// transactions of their own.
func deleteTenantRows(tx kvTxn, names []string, limit int) (int, error) {
	gone := map[string]bool{}
	var doomed [][]byte
	for _, name := range names {
		gone[name] = true
		err := tx.scan(pairKey(pfxUser, name, ""), nil, false, true, func(k, _ []byte) (bool, error) {
			doomed = append(doomed, k)
			return len(doomed) < limit, nil
		})
		if err != nil {
			return 0, err
		}
	}
	if len(doomed) < limit {
		err := tx.scan([]byte(pfxCall), nil, false, false, func(k, v []byte) (bool, error) {
			c, err := decodeCall(v)
			if err != nil {
				return false, fmt.Errorf("call %q: %w", k[len(pfxCall):], err)
			}
			if gone[c.Tenant] {
				doomed = append(doomed, k)
			}
			return len(doomed) < limit, nil
		})
		if err != nil {
			return 0, err
		}
	}
	for _, k := range doomed {
		if err := tx.del(k); err != nil {
			return 0, err
		}
	}
	return len(doomed), nil
}

// addDay adds d to the stored day.
func addDay(tx kvTxn, d DayDelta, ttl time.Duration) error {
	k := dayKey(d.Tenant, utcDay(d.Day))
	var r dayRec
	v, ok, err := tx.get(k)
	if err != nil {
		return err
	}
	if ok {
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("day %s of %q: %w", utcDay(d.Day).Format(time.DateOnly), d.Tenant, err)
		}
	}
	r.Calls += d.Calls
	r.Seconds += d.Seconds
	r.Spend += d.Spend
	r.EmergencySeconds += d.EmergencySeconds
	if v, err = json.Marshal(r); err != nil {
		return err
	}
	return tx.set(k, v, ttl)
}

// appendAudit stores b.Audit under l/<ts><seq> with the tenant index.
func appendAudit(tx kvTxn, b *Batch, ttl time.Duration, now time.Time) error {
	seq, err := getU64(tx, keyAuditSeq)
	if err != nil {
		return err
	}
	for _, e := range b.Audit {
		if e.At.IsZero() {
			e.At = b.At
			if e.At.IsZero() {
				e.At = now
			}
		}
		seq++
		ts := tsOrder(e.At)
		if e.ID == "" {
			e.ID = fmt.Sprintf("%016x%016x", ts, seq)
		}
		v, err := encodeAudit(e)
		if err != nil {
			return err
		}
		k := make([]byte, 0, len(pfxAudit)+16)
		k = append(k, pfxAudit...)
		k = binary.BigEndian.AppendUint64(k, ts)
		k = binary.BigEndian.AppendUint64(k, seq)
		if err := tx.set(k, v, ttl); err != nil {
			return err
		}
		if e.Tenant != "" {
			ik := pairKey(pfxAuditT, e.Tenant, "")
			ik = append(ik, k[len(pfxAudit):]...)
			if err := tx.set(ik, k, ttl); err != nil {
				return err
			}
		}
	}
	return tx.set([]byte(keyAuditSeq), u64(seq), 0)
}

// loadState reads the whole durable state.
func loadState(r kvReader) (*State, error) {
	st := &State{}
	v, ok, err := r.get([]byte(keySeeded))
	if err != nil {
		return nil, err
	}
	st.Seeded = ok && len(v) > 0
	ns, err := getU64(r, keyClock)
	if err != nil {
		return nil, err
	}
	if ns != 0 {
		st.Clock = time.Unix(0, int64(ns)).UTC()
	}
	type section struct {
		prefix string
		what   string
		fn     func(v []byte) error
	}
	sections := []section{
		{pfxPlan, "plan", func(v []byte) error {
			var p configs.Plan
			err := json.Unmarshal(v, &p)
			st.Plans = append(st.Plans, p)
			return err
		}},
		{pfxTenant, "tenant", func(v []byte) error {
			var t configs.Tenant
			err := json.Unmarshal(v, &t)
			st.Tenants = append(st.Tenants, t)
			return err
		}},
		{pfxToken, "token", func(v []byte) error {
			var t Token
			err := json.Unmarshal(v, &t)
			st.Tokens = append(st.Tokens, t)
			return err
		}},
		{pfxCounter, "counters", func(v []byte) error {
			c, err := decodeCounter(v)
			st.Counters = append(st.Counters, c)
			return err
		}},
		{pfxUser, "user", func(v []byte) error {
			u, err := decodeUser(v)
			st.Users = append(st.Users, u)
			return err
		}},
		{pfxCall, "call", func(v []byte) error {
			c, err := decodeCall(v)
			st.Calls = append(st.Calls, c)
			return err
		}},
		{pfxUnrepl, "replication mark", func(v []byte) error {
			var u Unreplicated
			err := json.Unmarshal(v, &u)
			st.Unreplicated = append(st.Unreplicated, u)
			return err
		}},
	}
	for _, s := range sections {
		err := r.scan([]byte(s.prefix), nil, false, false, func(k, v []byte) (bool, error) {
			if err := s.fn(v); err != nil {
				return false, fmt.Errorf("%s %q: %w", s.what, displayKey(k), err)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

// displayKey is the name part of a key, NULs shown as "/".
func displayKey(k []byte) string {
	return strings.ReplaceAll(string(k[2:]), "\x00", "/")
}

// readDays returns the tenant's days whose midnight is in [from, to)
// (zero from or to: open).
func readDays(r kvReader, tenant string, from, to time.Time) ([]Day, error) {
	prefix := pairKey(pfxDay, tenant, "")
	var start []byte
	if !from.IsZero() {
		start = dayKey(tenant, utcDay(from))
	}
	var out []Day
	err := r.scan(prefix, start, false, false, func(k, v []byte) (bool, error) {
		day, err := time.Parse("20060102", string(k[len(prefix):]))
		if err != nil {
			return false, fmt.Errorf("day key %q: %w", displayKey(k), err)
		}
		if !to.IsZero() && !day.Before(to) {
			return false, nil
		}
		if day.Before(from) {
			return true, nil
		}
		var d dayRec
		if err := json.Unmarshal(v, &d); err != nil {
			return false, fmt.Errorf("day %q: %w", displayKey(k), err)
		}
		out = append(out, Day{Tenant: tenant, Day: day, Calls: d.Calls, Seconds: d.Seconds, Spend: d.Spend, EmergencySeconds: d.EmergencySeconds})
		return true, nil
	})
	return out, err
}

// readAudit answers q, newest first.
func readAudit(r kvReader, q AuditQuery) ([]AuditEntry, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	if limit > maxAuditLimit {
		limit = maxAuditLimit
	}
	prefix := []byte(pfxAudit)
	if q.Tenant != "" {
		prefix = pairKey(pfxAuditT, q.Tenant, "")
	}
	start := append(append([]byte(nil), prefix...), reverseEnd...)
	if !q.To.IsZero() {
		// The last key <= prefix+ts(To) has ts < To: To is exclusive.
		start = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), tsOrder(q.To))
	}
	var from uint64
	if !q.From.IsZero() {
		from = tsOrder(q.From)
	}
	var out []AuditEntry
	err := r.scan(prefix, start, true, false, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+16 {
			return false, fmt.Errorf("audit key %q: bad length", displayKey(k))
		}
		if binary.BigEndian.Uint64(k[len(prefix):]) < from {
			return false, nil
		}
		if q.Tenant != "" {
			pv, ok, err := r.get(v)
			if err != nil {
				return false, err
			}
			if !ok {
				return true, nil // expired between index and entry
			}
			v = pv
		}
		var e AuditEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return false, fmt.Errorf("audit entry: %w", err)
		}
		out = append(out, e)
		return len(out) < limit, nil
	})
	return out, err
}

// outboxPage is the number of entries a read of limit returns at most.
func outboxPage(limit int) int {
	if limit <= 0 {
		return defaultOutboxPage
	}
	return min(limit, maxOutboxPage)
}

// readOutbox returns up to limit entries with Seq > after.
func readOutbox(r kvReader, after uint64, limit int) ([]OutboxEntry, error) {
	limit = outboxPage(limit)
	if after == ^uint64(0) {
		return nil, nil
	}
	inst, _, err := r.get([]byte(keyInstance))
	if err != nil {
		return nil, err
	}
	prefix := hex.EncodeToString(inst) + "-"
	var out []OutboxEntry
	err = r.scan([]byte(pfxOutbox), seqKey(pfxOutbox, after+1), false, false, func(k, v []byte) (bool, error) {
		seq := binary.BigEndian.Uint64(k[len(pfxOutbox):])
		entry := OutboxEntry{Seq: seq, ID: prefix + strconv.FormatUint(seq, 10)}
		var err error
		if isWireEvent(v) {
			entry.Event, entry.Data, err = decodeWireEvent(v)
		} else {
			entry.Event, err = decodeEvent(v)
		}
		if err != nil {
			return false, fmt.Errorf("outbox entry %d: %w", seq, err)
		}
		out = append(out, entry)
		return len(out) < limit, nil
	})
	return out, err
}

// ensureInstance draws the store's instance id (the prefix of its event
// ids) the first time an event is written. Random, so two stores — two
// nodes, or a node whose data directory was wiped — never reuse an id
// inside a JetStream dedup window.
func ensureInstance(tx kvTxn) ([]byte, error) {
	v, ok, err := tx.get([]byte(keyInstance))
	if err != nil || ok {
		return v, err
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("instance id: %w", err)
	}
	return b, tx.set([]byte(keyInstance), b, 0)
}

// ackChunk deletes up to max outbox entries with Seq <= upTo and reports
// how many it deleted. The scan starts after the last acknowledged seq
// (keyOutAck): from the front of the outbox it would walk every entry
// deleted before and not yet compacted away, a cost that grew with the
// events published (14 % of the gateway's CPU at 1,000 calls/s).
func ackChunk(tx kvTxn, upTo uint64, max int) (int, error) {
	acked, err := getU64(tx, keyOutAck)
	if err != nil {
		return 0, err
	}
	if upTo <= acked {
		return 0, nil
	}
	var keys [][]byte
	err = tx.scan([]byte(pfxOutbox), seqKey(pfxOutbox, acked+1), false, true, func(k, _ []byte) (bool, error) {
		if binary.BigEndian.Uint64(k[len(pfxOutbox):]) > upTo {
			return false, nil
		}
		keys = append(keys, k)
		return len(keys) < max, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return 0, err
		}
	}
	// Acknowledged up to upTo, or to the last entry deleted when the
	// chunk stopped early; never past the last seq assigned (a later
	// event must not count as acknowledged).
	last, err := getU64(tx, keyOutSeq)
	if err != nil {
		return 0, err
	}
	done := min(upTo, last)
	if len(keys) == max {
		done = binary.BigEndian.Uint64(keys[len(keys)-1][len(pfxOutbox):])
	}
	if done > acked {
		if err := tx.set([]byte(keyOutAck), u64(done), 0); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// outboxDepth is the number of entries from the oldest present one to the
// last assigned seq (entries are deleted from the front only: by ack or,
// being the oldest, by expiry). The oldest is sought after the last
// acknowledged seq, not walked to from the front.
func outboxDepth(r kvReader) (int, error) {
	last, err := getU64(r, keyOutSeq)
	if err != nil {
		return 0, err
	}
	acked, err := getU64(r, keyOutAck)
	if err != nil {
		return 0, err
	}
	var first uint64
	found := false
	err = r.scan([]byte(pfxOutbox), seqKey(pfxOutbox, acked+1), false, true, func(k, _ []byte) (bool, error) {
		first, found = binary.BigEndian.Uint64(k[len(pfxOutbox):]), true
		return false, nil
	})
	if err != nil || !found || first > last {
		return 0, err
	}
	return int(last - first + 1), nil
}

// ErrTooBig is returned (wrapped) by Apply when a batch does not fit in
// one transaction. The Committer splits such batches.
var ErrTooBig = errors.New("store: batch too big for one transaction")

// wrap prefixes an error of operation op.
func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrTooBig) {
		return err
	}
	return fmt.Errorf("store: %s: %w", op, err)
}
