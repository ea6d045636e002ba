package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"

	"github.com/tollgate/tollgate/internal/binrec"
)

// typicalCall is an answered call record with a dialog payload of the
// size the SIP layer writes for a call through one proxy hop (~300 bytes).
func typicalCall() admission.CallRecord {
	payload := make([]byte, 300)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	return admission.CallRecord{
		CallID: "1-48213@127.0.0.10;48213SIPpTag001", Tenant: "bench", Direction: admission.Outbound,
		Caller: "sipp", Callee: "15550001", AnsweredAt: time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC),
		Payload: payload,
	}
}

// BenchmarkCallCodec: the stored form of an answered call, written by
// every group commit that holds an answer (encode) and read at start
// (decode).
func BenchmarkCallCodec(b *testing.B) {
	c := typicalCall()
	var v []byte
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if v, err = encodeCall(c); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(v)), "bytes")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCall(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := encodeCall(c)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeCall(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// legacyCall is a call as layout version 1 stored it (JSON, payload base64).
func legacyCall(t testing.TB, c admission.CallRecord) []byte {
	t.Helper()
	v, err := json.Marshal(callRec{
		CallID: c.CallID, Tenant: c.Tenant, Direction: c.Direction, Caller: c.Caller, Callee: c.Callee,
		Emergency: c.Emergency, AnsweredAt: c.AnsweredAt.UTC(), Payload: c.Payload,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func codecCalls() map[string]admission.CallRecord {
	long := strings.Repeat("é", 100) // 200 bytes: two-byte lengths
	return map[string]admission.CallRecord{
		"typical":       typicalCall(),
		"nil payload":   {CallID: "a;1", Tenant: "t", Direction: admission.Inbound, AnsweredAt: time.Unix(1, 0).UTC()},
		"empty payload": {CallID: "a;2", Tenant: "t", Direction: admission.Outbound, Payload: []byte{}, AnsweredAt: time.Unix(1, 999999999).UTC()},
		"zero answer":   {CallID: "a;3", Tenant: "t", Payload: []byte{0}},
		"pre-1970":      {CallID: "a;4", Tenant: "t", AnsweredAt: time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC)},
		"emergency":     {CallID: "a;5", Tenant: "t", Emergency: true, Caller: "100", Callee: "112", AnsweredAt: time.Unix(1e9, 5).UTC()},
		"long fields":   {CallID: long, Tenant: long, Caller: long, Callee: long, Payload: []byte(long), AnsweredAt: time.Unix(1e9, 0).UTC()},
	}
}

// Every field comes back; nil and empty payloads stay apart; answer
// instants keep their nanoseconds and come back in UTC.
func TestCallCodecRoundTrip(t *testing.T) {
	for name, c := range codecCalls() {
		v, err := encodeCall(c)
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != callV1 {
			t.Fatalf("%s: version byte %d", name, v[0])
		}
		got, err := decodeCall(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: got %+v, want %+v", name, got, c)
		}
	}
	local := typicalCall()
	local.AnsweredAt = local.AnsweredAt.In(time.FixedZone("x", 3600))
	v, _ := encodeCall(local)
	if got, _ := decodeCall(v); got.AnsweredAt.Location() != time.UTC || !got.AnsweredAt.Equal(local.AnsweredAt) {
		t.Errorf("answered %v, want %v in UTC", got.AnsweredAt, local.AnsweredAt)
	}
	// The binary record is smaller than the JSON it replaces.
	c := typicalCall()
	if v, _ := encodeCall(c); len(v) >= len(legacyCall(t, c)) {
		t.Errorf("binary %d bytes, JSON %d", len(v), len(legacyCall(t, c)))
	}
}

// Calls stored by layout version 1 (JSON) are still read.
func TestCallCodecLegacyJSON(t *testing.T) {
	for name, c := range codecCalls() {
		got, err := decodeCall(legacyCall(t, c))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: got %+v, want %+v", name, got, c)
		}
	}
}

func TestCallCodecRejectsBadInput(t *testing.T) {
	v, _ := encodeCall(typicalCall())
	for i := 0; i < len(v); i++ {
		if _, err := decodeCall(v[:i]); !errors.Is(err, errBadCall) {
			t.Fatalf("record cut at %d of %d: err %v", i, len(v), err)
		}
	}
	flags := func(f byte) []byte {
		b := []byte{callV1}
		for range 2 {
			b = binrec.AppendStr(b, "x")
		}
		b = append(b, 1)
		for range 2 {
			b = binrec.AppendStr(b, "x")
		}
		return append(b, f, 0, 0)
	}
	if _, err := decodeCall(flags(0)); err != nil {
		t.Fatalf("minimal record: %v", err)
	}
	for name, b := range map[string][]byte{
		"trailing byte":   append(slices.Clone(v), 0),
		"unknown version": append([]byte{2}, v[1:]...),
		"unknown flags":   flags(4),
		"nanoseconds":     append(flags(0)[:len(flags(0))-1], 0x80, 0x94, 0xeb, 0xdc, 0x03), // 1e9
		"padded varint":   {callV1, 0x81, 0x00},
		"varint overflow": {callV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"length past end": {callV1, 0x7f, 'a'},
		"bad json":        []byte(`{"call_id":1}`),
		"empty":           {},
	} {
		if _, err := decodeCall(b); !errors.Is(err, errBadCall) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// A store of layout version 1 opens: its JSON calls load and cascade with
// their tenant, new calls are binary, and the store is marked version 2
// (a gateway of the old layout refuses it instead of failing on a call).
func TestBadgerReadsLayoutV1(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	old := typicalCall()
	gone := admission.CallRecord{CallID: "gone;1", Tenant: "doomed", AnsweredAt: old.AnsweredAt, Payload: []byte(`{"call_id":"gone"}`)}
	err = s.update("v1", func(tx kvTxn) error {
		for _, c := range []admission.CallRecord{old, gone} {
			if err := tx.set(strKey(pfxCall, c.CallID), legacyCall(t, c), 0); err != nil {
				return err
			}
		}
		return tx.set([]byte(keyVersion), []byte(layoutVersionV1), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatalf("open a version 1 store: %v", err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Calls) != 2 || !reflect.DeepEqual(st.Calls[0], old) || !reflect.DeepEqual(st.Calls[1], gone) {
		t.Fatalf("%d calls: %v", len(st.Calls), callIDs(st.Calls))
	}
	fresh := admission.CallRecord{CallID: "new;1", Tenant: "bench", Payload: []byte{1, 2}, AnsweredAt: time.Unix(5, 0).UTC()}
	if err := s.Apply(&Batch{PutCalls: []admission.CallRecord{fresh}, DeleteTenants: []string{"doomed"}}); err != nil {
		t.Fatal(err)
	}
	var version, raw []byte
	err = s.view("check", func(r kvReader) (err error) {
		if version, _, err = r.get([]byte(keyVersion)); err != nil {
			return err
		}
		raw, _, err = r.get(strKey(pfxCall, fresh.CallID))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(version) != layoutVersion || len(raw) == 0 || raw[0] != callV1 {
		t.Errorf("version %q, new call stored as %q", version, raw)
	}
	st, _ = s.Load()
	if len(st.Calls) != 2 || st.Calls[0].CallID != old.CallID || st.Calls[1].CallID != fresh.CallID {
		t.Errorf("after the tenant delete: %v", callIDs(st.Calls))
	}
}

// FuzzCallRecord: decoding any bytes gives a record or an error wrapping
// errBadCall, never a panic; a binary record that decodes has exactly one
// encoding.
func FuzzCallRecord(f *testing.F) {
	for _, c := range codecCalls() {
		v, _ := encodeCall(c)
		f.Add(v)
	}
	f.Add(legacyCall(f, typicalCall()))
	f.Add([]byte{callV1, 0x81, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCall(b)
		if err != nil {
			if !errors.Is(err, errBadCall) {
				t.Fatalf("error %v does not wrap errBadCall", err)
			}
			return
		}
		if b[0] == callV1 {
			if again, _ := encodeCall(c); !bytes.Equal(again, b) {
				t.Fatalf("decoded %+v re-encodes as %x, not %x", c, again, b)
			}
		}
	})
}

func callIDs(calls []admission.CallRecord) []string {
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.CallID)
	}
	return ids
}
