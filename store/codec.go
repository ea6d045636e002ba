package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/internal/binrec"
)

// Key layout (see README.md). Every key starts with a one-byte kind and a
// slash; names are stored verbatim (tenant and user names contain no NUL).
const (
	pfxPlan    = "p/" // p/<plan>                       configs.Plan JSON
	pfxTenant  = "t/" // t/<tenant>                     configs.Tenant JSON
	pfxToken   = "k/" // k/<token>                      Token JSON
	pfxCounter = "c/" // c/<tenant>                     counterRec JSON
	pfxUser    = "u/" // u/<tenant>\x00<user>           userRec JSON (TTL)
	pfxCall    = "a/" // a/<call id>                    binary call record (encodeCall)
	pfxDay     = "d/" // d/<tenant>\x00<YYYYMMDD>       dayRec JSON (TTL)
	pfxOutbox  = "o/" // o/<seq u64 BE>                 eventRec JSON (TTL)
	pfxAudit   = "l/" // l/<ts u64 BE><seq u64 BE>      AuditEntry JSON (TTL)
	pfxAuditT  = "L/" // L/<tenant>\x00<ts><seq>        primary audit key (TTL)
	pfxUnrepl  = "r/" // r/<kind>\x00<name>             Unreplicated JSON

	keyClock    = "m/clock"    // UnixNano u64 BE of the last non-zero Batch.At
	keySeeded   = "m/seeded"   // "1" once seeded
	keyOutSeq   = "m/outseq"   // last outbox seq, u64 BE
	keyOutAck   = "m/outack"   // outbox acknowledged up to this seq, u64 BE
	keyAuditSeq = "m/auditseq" // last audit seq, u64 BE
	keyVersion  = "m/version"  // layout version (Badger only)
	keyInstance = "m/instance" // 8 random bytes, written with the first event: the event id prefix
)

// layoutVersion is the value of keyVersion. Version 2 stores calls as
// binary records; a version 1 store (JSON calls) is read and marked 2
// when opened, since its calls are rewritten in the new form.
const (
	layoutVersion   = "2"
	layoutVersionV1 = "1"
)

func strKey(prefix, name string) []byte {
	k := make([]byte, 0, len(prefix)+len(name))
	k = append(k, prefix...)
	return append(k, name...)
}

func pairKey(prefix, a, b string) []byte {
	k := make([]byte, 0, len(prefix)+len(a)+1+len(b))
	k = append(k, prefix...)
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func seqKey(prefix string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+8)
	k = append(k, prefix...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// tsOrder maps a time to a uint64 that sorts like the time (UnixNano with
// the sign bit flipped, so instants before 1970 sort first).
func tsOrder(t time.Time) uint64 { return uint64(t.UnixNano()) ^ (1 << 63) }

// dayKey is d/<tenant>\x00<YYYYMMDD>.
func dayKey(tenant string, day time.Time) []byte {
	return pairKey(pfxDay, tenant, day.Format("20060102"))
}

// utcDay is the midnight UTC of the day of t.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// counterRec is the stored form of admission.TenantRecord.
type counterRec struct {
	Tenant           string        `json:"tenant"`
	Cycle            time.Time     `json:"cycle"`
	Seconds          time.Duration `json:"seconds,omitempty"`
	Spend            int64         `json:"spend,omitempty"`
	EmergencySeconds time.Duration `json:"emergency_seconds,omitempty"`
	Flags            uint8         `json:"flags,omitempty"`
	Suspended        bool          `json:"suspended,omitempty"`
	SuspendReason    string        `json:"suspend_reason,omitempty"`
	SuspendCap       string        `json:"suspend_cap,omitempty"`
	SuspendedAt      time.Time     `json:"suspended_at,omitzero"`
}

// userRec is the stored form of admission.UserRecord.
type userRec struct {
	Tenant  string        `json:"tenant"`
	User    string        `json:"user"`
	Cycle   time.Time     `json:"cycle"`
	Seconds time.Duration `json:"seconds,omitempty"`
	Flags   uint8         `json:"flags,omitempty"`
}

// callRec is the stored form of admission.CallRecord in layout version 1
// (JSON, read only: calls are now written by encodeCall).
type callRec struct {
	CallID     string              `json:"call_id"`
	Tenant     string              `json:"tenant"`
	Direction  admission.Direction `json:"direction"`
	Caller     string              `json:"caller,omitempty"`
	Callee     string              `json:"callee,omitempty"`
	Emergency  bool                `json:"emergency,omitempty"`
	AnsweredAt time.Time           `json:"answered_at"`
	Payload    []byte              `json:"payload"` // no omitempty: keeps nil and empty apart
}

// dayRec is the stored usage of one tenant's day (tenant and day are in
// the key).
type dayRec struct {
	Calls            int64         `json:"calls,omitempty"`
	Seconds          time.Duration `json:"seconds,omitempty"`
	Spend            int64         `json:"spend,omitempty"`
	EmergencySeconds time.Duration `json:"emergency_seconds,omitempty"`
}

// eventRec is the stored form of admission.Event.
type eventRec struct {
	Type   string    `json:"type"`
	Tenant string    `json:"tenant,omitempty"`
	User   string    `json:"user,omitempty"`
	CallID string    `json:"call_id,omitempty"`
	Cap    string    `json:"cap,omitempty"`
	Value  int64     `json:"value,omitempty"`
	Limit  int64     `json:"limit,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	// Call and Limits are stored by their Go field names (the engine's
	// types, no tags): renaming a field of admission.CallInfo, End,
	// Media, MediaLeg or Limits changes this format.
	Call   *admission.CallInfo `json:"call,omitempty"`
	Limits *admission.Limits   `json:"limits,omitempty"`
}

func encodePlan(p configs.Plan) ([]byte, error) {
	v, err := json.Marshal(p)
	if err == nil {
		// Refuse what could not be loaded back (e.g. a negative amount other than -1).
		var back configs.Plan
		err = json.Unmarshal(v, &back)
	}
	if err != nil {
		return nil, fmt.Errorf("plan %q: %w", p.Name, err)
	}
	return v, nil
}

func encodeTenant(t configs.Tenant) ([]byte, error) {
	v, err := json.Marshal(t)
	if err == nil {
		var back configs.Tenant
		err = json.Unmarshal(v, &back)
	}
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", t.Name, err)
	}
	return v, nil
}

func encodeToken(t Token) ([]byte, error) {
	t.Created = t.Created.UTC()
	v, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", t.Name, err)
	}
	return v, nil
}

func encodeAudit(e AuditEntry) ([]byte, error) {
	e.At = e.At.UTC()
	v, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit entry %s %s: %w", e.Action, e.Resource, err)
	}
	return v, nil
}

func encodeCounter(r admission.TenantRecord) ([]byte, error) {
	v, err := json.Marshal(counterRec{
		Tenant: r.Tenant, Cycle: r.Cycle.UTC(), Seconds: r.Seconds, Spend: r.Spend,
		EmergencySeconds: r.EmergencySeconds, Flags: r.Flags, Suspended: r.Suspended,
		SuspendReason: r.SuspendReason, SuspendCap: r.SuspendCap, SuspendedAt: r.SuspendedAt.UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("counters of %q: %w", r.Tenant, err)
	}
	return v, nil
}

func decodeCounter(v []byte) (admission.TenantRecord, error) {
	var r counterRec
	if err := json.Unmarshal(v, &r); err != nil {
		return admission.TenantRecord{}, err
	}
	return admission.TenantRecord{
		Tenant: r.Tenant, Cycle: r.Cycle, Seconds: r.Seconds, Spend: r.Spend,
		EmergencySeconds: r.EmergencySeconds, Flags: r.Flags, Suspended: r.Suspended,
		SuspendReason: r.SuspendReason, SuspendCap: r.SuspendCap, SuspendedAt: r.SuspendedAt,
	}, nil
}

func encodeUser(r admission.UserRecord) ([]byte, error) {
	v, err := json.Marshal(userRec{Tenant: r.Tenant, User: r.User, Cycle: r.Cycle.UTC(), Seconds: r.Seconds, Flags: r.Flags})
	if err != nil {
		return nil, fmt.Errorf("user %q of %q: %w", r.User, r.Tenant, err)
	}
	return v, nil
}

func decodeUser(v []byte) (admission.UserRecord, error) {
	var r userRec
	if err := json.Unmarshal(v, &r); err != nil {
		return admission.UserRecord{}, err
	}
	return admission.UserRecord{Tenant: r.Tenant, User: r.User, Cycle: r.Cycle, Seconds: r.Seconds, Flags: r.Flags}, nil
}

// Calls are stored in a binary record, not JSON: one is written for every
// answered call, and its dialog payload would otherwise be base64 inside
// the JSON.
//
//	call  := version(1 byte, callV1) call_id tenant direction(1 byte) caller callee
//	         flags(1 byte) answered_sec(varint) answered_nsec(uvarint) [payload]
//	flags := 1 emergency | 2 payload present (nil and empty are kept apart)
//	str   := uvarint length, bytes (payload too)
//
// answered_sec and answered_nsec are the Unix seconds and nanoseconds of
// AnsweredAt (UTC). Records of layout version 1 are JSON objects (callRec,
// payload base64); they start with '{' and are still read.
const callV1 = 1

const (
	callEmergency  = 1 << 0
	callHasPayload = 1 << 1
)

// errBadCall is wrapped by the errors of decodeCall.
var errBadCall = errors.New("store: bad call record")

func encodeCall(c admission.CallRecord) ([]byte, error) {
	n := 1 + 5*binary.MaxVarintLen16 + len(c.CallID) + len(c.Tenant) + len(c.Caller) + len(c.Callee) +
		2 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen32 + len(c.Payload)
	b := make([]byte, 0, n)
	b = append(b, callV1)
	b = binrec.AppendStr(b, c.CallID)
	b = binrec.AppendStr(b, c.Tenant)
	b = append(b, byte(c.Direction))
	b = binrec.AppendStr(b, c.Caller)
	b = binrec.AppendStr(b, c.Callee)
	var flags byte
	if c.Emergency {
		flags |= callEmergency
	}
	if c.Payload != nil {
		flags |= callHasPayload
	}
	b = append(b, flags)
	at := c.AnsweredAt.UTC()
	b = binary.AppendVarint(b, at.Unix())
	b = binary.AppendUvarint(b, uint64(at.Nanosecond()))
	if c.Payload != nil {
		b = append(binary.AppendUvarint(b, uint64(len(c.Payload))), c.Payload...)
	}
	return b, nil
}

func decodeCall(v []byte) (admission.CallRecord, error) {
	switch {
	case len(v) == 0:
		return admission.CallRecord{}, fmt.Errorf("%w: empty", errBadCall)
	case v[0] == '{':
		return decodeCallJSON(v)
	case v[0] != callV1:
		return admission.CallRecord{}, fmt.Errorf("%w: unknown version %d", errBadCall, v[0])
	}
	r := binrec.NewReader(string(v[1:]), len(v), errBadCall)
	c := admission.CallRecord{CallID: r.Str("call id"), Tenant: r.Str("tenant")}
	c.Direction = admission.Direction(r.Byte("direction"))
	c.Caller, c.Callee = r.Str("caller"), r.Str("callee")
	flags := r.Byte("flags")
	if flags&^(callEmergency|callHasPayload) != 0 {
		r.Fail(fmt.Sprintf("unknown flags %#x", flags))
	}
	c.Emergency = flags&callEmergency != 0
	u := r.Uvarint("answer seconds")
	sec := int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint
	nsec := r.Uvarint("answer nanoseconds")
	if r.Err() == nil && nsec >= 1e9 {
		r.Fail("answer nanoseconds out of range")
	}
	c.AnsweredAt = time.Unix(sec, int64(nsec)).UTC()
	if flags&callHasPayload != 0 {
		c.Payload = []byte(r.Str("payload"))
	}
	if err := r.End(); err != nil {
		return admission.CallRecord{}, err
	}
	return c, nil
}

// decodeCallJSON reads a call stored by layout version 1.
func decodeCallJSON(v []byte) (admission.CallRecord, error) {
	var r callRec
	if err := json.Unmarshal(v, &r); err != nil {
		return admission.CallRecord{}, fmt.Errorf("%w: %w", errBadCall, err)
	}
	return admission.CallRecord{
		CallID: r.CallID, Tenant: r.Tenant, Direction: r.Direction, Caller: r.Caller, Callee: r.Callee,
		Emergency: r.Emergency, AnsweredAt: r.AnsweredAt, Payload: r.Payload,
	}, nil
}

func encodeEvent(e admission.Event) ([]byte, error) {
	v, err := json.Marshal(eventRec{
		Type: e.Type, Tenant: e.Tenant, User: e.User, CallID: e.CallID, Cap: e.Cap,
		Value: e.Value, Limit: e.Limit, Reason: e.Reason, At: e.At.UTC(), Call: e.Call, Limits: e.Limits,
	})
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.Type, err)
	}
	return v, nil
}

// wireEventVersion marks an outbox value in its published form: the
// version byte, the event's type and tenant (uvarint-length strings) and
// its instant (UnixNano, 8 bytes BE), then the published bytes. A JSON
// eventRec (a store without an encoder, or written before) starts with
// '{'.
const wireEventVersion = 0x01

var errBadWireEvent = errors.New("bad published event record")

func encodeWireEvent(e admission.Event, id string, enc EventEncoder) ([]byte, error) {
	data, err := enc(id, e)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.Type, err)
	}
	v := make([]byte, 0, 1+2+len(e.Type)+len(e.Tenant)+8+len(data))
	v = append(v, wireEventVersion)
	v = binrec.AppendStr(v, e.Type)
	v = binrec.AppendStr(v, e.Tenant)
	v = binary.BigEndian.AppendUint64(v, uint64(e.At.UnixNano()))
	return append(v, data...), nil
}

func isWireEvent(v []byte) bool { return len(v) > 0 && v[0] == wireEventVersion }

func decodeWireEvent(v []byte) (admission.Event, []byte, error) {
	r := binrec.NewReader(string(v[1:]), len(v), errBadWireEvent)
	typ, tenant := r.Str("type"), r.Str("tenant")
	if err := r.Err(); err != nil {
		return admission.Event{}, nil, err
	}
	rest := v[len(v)-r.Left():]
	if len(rest) < 8 {
		return admission.Event{}, nil, fmt.Errorf("%w: no instant", errBadWireEvent)
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC()
	data := rest[8:] // v is the caller's copy (Badger) or immutable (Mem)
	return admission.Event{Type: typ, Tenant: tenant, At: at}, data, nil
}

func decodeEvent(v []byte) (admission.Event, error) {
	var r eventRec
	if err := json.Unmarshal(v, &r); err != nil {
		return admission.Event{}, err
	}
	return admission.Event{
		Type: r.Type, Tenant: r.Tenant, User: r.User, CallID: r.CallID, Cap: r.Cap,
		Value: r.Value, Limit: r.Limit, Reason: r.Reason, At: r.At, Call: r.Call, Limits: r.Limits,
	}, nil
}

// cloneBatch deep-copies b through the store's encoding (so the copy is
// what a store would keep: times in UTC, audit JSON compacted) and checks
// that everything in it can be stored.
func cloneBatch(b *Batch) (*Batch, error) {
	c := &Batch{
		At:            b.At,
		DeletePlans:   append([]string(nil), b.DeletePlans...),
		DeleteTenants: append([]string(nil), b.DeleteTenants...),
		DeleteTokens:  append([]string(nil), b.DeleteTokens...),
		DeleteCalls:   append([]string(nil), b.DeleteCalls...),
		Counters:      append([]admission.TenantRecord(nil), b.Counters...),
		Users:         append([]admission.UserRecord(nil), b.Users...),
		Days:          append([]DayDelta(nil), b.Days...),
		Events:        append([]admission.Event(nil), b.Events...),
		Unreplicated:  append([]Unreplicated(nil), b.Unreplicated...),
		Seeded:        b.Seeded,
	}
	for _, p := range b.PutPlans {
		v, err := encodePlan(p)
		if err != nil {
			return nil, err
		}
		var back configs.Plan
		if err := json.Unmarshal(v, &back); err != nil {
			return nil, err
		}
		c.PutPlans = append(c.PutPlans, back)
	}
	for _, t := range b.PutTenants {
		v, err := encodeTenant(t)
		if err != nil {
			return nil, err
		}
		var back configs.Tenant
		if err := json.Unmarshal(v, &back); err != nil {
			return nil, err
		}
		c.PutTenants = append(c.PutTenants, back)
	}
	for _, t := range b.PutTokens {
		if _, err := encodeToken(t); err != nil {
			return nil, err
		}
		c.PutTokens = append(c.PutTokens, t)
	}
	for _, call := range b.PutCalls {
		if _, err := encodeCall(call); err != nil {
			return nil, err
		}
		call.Payload = cloneBytes(call.Payload)
		c.PutCalls = append(c.PutCalls, call)
	}
	for _, e := range b.Audit {
		v, err := encodeAudit(e)
		if err != nil {
			return nil, err
		}
		var back AuditEntry
		if err := json.Unmarshal(v, &back); err != nil {
			return nil, err
		}
		back.At = e.At // keep the caller's instant (a zero At is filled in at Apply)
		c.Audit = append(c.Audit, back)
	}
	for _, r := range b.Counters {
		if _, err := encodeCounter(r); err != nil {
			return nil, err
		}
	}
	for _, r := range b.Users {
		if _, err := encodeUser(r); err != nil {
			return nil, err
		}
	}
	for _, e := range b.Events {
		if _, err := encodeEvent(e); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// cloneBytes copies b, keeping nil and empty apart.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
