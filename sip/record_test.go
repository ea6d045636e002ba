package sip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"

	"github.com/tollgate/tollgate/internal/binrec"
)

func mustURI(tb testing.TB, s string) sip.Uri {
	tb.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		tb.Fatalf("%s: %v", s, err)
	}
	return u
}

// typicalDialog is a confirmed dialog as the proxy builds it for an
// outbound call of SIPp's uac through one Record-Route hop on each side.
func typicalDialog(tb testing.TB) *Dialog {
	tb.Helper()
	from := &sip.FromHeader{Params: sip.NewParams()}
	var err error
	if from.DisplayName, err = sip.ParseAddressValue(`"sipp" <sip:sipp@127.0.0.10:25061>;tag=48213SIPpTag001`, &from.Address, &from.Params); err != nil {
		tb.Fatal(err)
	}
	to := &sip.ToHeader{Params: sip.NewParams()}
	if to.DisplayName, err = sip.ParseAddressValue(`<sip:15550001@127.0.0.1:25060>;tag=27734SIPpTag0112`, &to.Address, &to.Params); err != nil {
		tb.Fatal(err)
	}
	return &Dialog{
		Key: "1-48213@127.0.0.10;48213SIPpTag001", CallID: "1-48213@127.0.0.10", Tenant: "bench",
		Direction: admission.Outbound, Caller: "sipp", Callee: "15550001", state: Confirmed,
		answered: time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC),
		from:     from, to: to,
		caller: Leg{
			Tag: "48213SIPpTag001", Contact: mustURI(tb, "sip:sipp@127.0.0.10:25061"),
			Source: "127.0.0.10:25061", Transport: "UDP", CSeq: 1,
		},
		callee: Leg{
			Tag: "27734SIPpTag0112", Contact: mustURI(tb, "sip:127.0.0.2:25062;transport=UDP"),
			RouteSet: []sip.Uri{mustURI(tb, "sip:10.1.2.3:5060;lr")},
			Source:   "127.0.0.2:25062", Transport: "UDP", CSeq: 1,
		},
	}
}

// BenchmarkDialogRecord: the dialog payload written at every answer
// (encode) and read back by a restarted gateway (decode).
func BenchmarkDialogRecord(b *testing.B) {
	d := typicalDialog(b)
	rec := admission.CallRecord{CallID: d.Key, Tenant: d.Tenant, Direction: d.Direction, AnsweredAt: d.answered}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec.Payload = d.record()
		}
		b.ReportMetric(float64(len(rec.Payload)), "bytes")
	})
	rec.Payload = d.record()
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := restoreDialog(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec.Payload = d.record()
			if _, err := restoreDialog(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// legacyTypicalPayload is what the first (JSON) format wrote for
// typicalDialog: stores written before the binary record hold these.
const legacyTypicalPayload = `{"call_id":"1-48213@127.0.0.10","from":"\"sipp\" \u003csip:sipp@127.0.0.10:25061\u003e;tag=48213SIPpTag001","to":"\u003csip:15550001@127.0.0.1:25060\u003e;tag=27734SIPpTag0112","caller":{"tag":"48213SIPpTag001","contact":"sip:sipp@127.0.0.10:25061","source":"127.0.0.10:25061","transport":"UDP","cseq":1},"callee":{"tag":"27734SIPpTag0112","contact":"sip:127.0.0.2:25062;transport=UDP","route_set":["sip:10.1.2.3:5060;lr"],"source":"127.0.0.2:25062","transport":"UDP","cseq":1}}`

// appendRecord encodes r in the binary format (the decoder's inverse,
// for the tests: the gateway encodes from the live dialog).
func appendRecord(b []byte, r dialogRecord) []byte {
	w := &recordWriter{b: append(b, recordV1)}
	w.str(r.CallID)
	w.str(r.From)
	w.str(r.To)
	for _, l := range []legRecord{r.Caller, r.Callee} {
		w.str(l.Tag)
		w.str(l.Contact)
		w.b = binary.AppendUvarint(w.b, uint64(len(l.RouteSet)))
		for _, u := range l.RouteSet {
			w.str(u)
		}
		w.str(l.Source)
		w.str(l.Transport)
		w.b = binary.AppendUvarint(w.b, uint64(l.CSeq))
	}
	return w.b
}

// sameDialog compares what a restored dialog needs for the BYEs.
func sameDialog(t *testing.T, got, want *Dialog) {
	t.Helper()
	legs := func(l Leg) string {
		s := fmt.Sprintf("tag=%s contact=%s source=%s transport=%s cseq=%d routes=", l.Tag, l.Contact.String(), l.Source, l.Transport, l.CSeq)
		for _, u := range l.RouteSet {
			s += "[" + u.String() + "]"
		}
		return s
	}
	for _, c := range []struct{ what, got, want string }{
		{"call-id", got.CallID, want.CallID},
		{"from", got.from.Value(), want.from.Value()},
		{"to", got.to.Value(), want.to.Value()},
		{"from tag", got.from.Params.GetOr("tag", ""), want.from.Params.GetOr("tag", "")},
		{"caller", legs(got.caller), legs(want.caller)},
		{"callee", legs(got.callee), legs(want.callee)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func restoreFrom(t *testing.T, d *Dialog, payload []byte) *Dialog {
	t.Helper()
	got, err := restoreDialog(admission.CallRecord{CallID: d.Key, Tenant: d.Tenant, Direction: d.Direction, AnsweredAt: d.answered, Payload: payload})
	if err != nil {
		t.Fatalf("restoreDialog: %v", err)
	}
	if got.Key != d.Key || got.Tenant != d.Tenant || got.State() != Confirmed || !got.Answered().Equal(d.answered) {
		t.Fatalf("restored %+v", got)
	}
	return got
}

// The binary record brings back every field a BYE needs, and is smaller
// than the JSON it replaces.
func TestDialogRecordRoundTrip(t *testing.T) {
	d := typicalDialog(t)
	p := d.record()
	if p[0] != recordV1 {
		t.Fatalf("version byte %d", p[0])
	}
	if len(p) >= len(legacyTypicalPayload) {
		t.Errorf("record %d bytes, JSON was %d", len(p), len(legacyTypicalPayload))
	}
	sameDialog(t, restoreFrom(t, d, p), d)

	// No display name, no header parameters, no callee contact, several
	// routes, fields longer than a one-byte length (128 and 16384 bytes).
	d.from.DisplayName = ""
	d.to.Params = sip.NewParams()
	d.callee.Contact = sip.Uri{}
	long := strings.Repeat("x", 200)
	d.CallID = strings.Repeat("c", 20000) + "@host"
	d.caller.Tag = long
	d.from.Params = sip.NewParams()
	d.from.Params.Add("tag", strings.Repeat("t", 20000)) // a three-byte length written after the field
	d.caller.CSeq = math.MaxUint32
	d.callee.RouteSet = []sip.Uri{mustURI(t, "sip:10.1.2.3:5060;lr"), mustURI(t, "sip:"+long+".example.com;lr;transport=tcp"), mustURI(t, "sips:[2001:db8::1]:5061;lr")}
	sameDialog(t, restoreFrom(t, d, d.record()), d)
}

// The encoder writes From and To exactly as sipgo formats them.
func TestRecordAddressMatchesSipgo(t *testing.T) {
	for _, v := range []string{
		`"sipp" <sip:sipp@127.0.0.10:25061>;tag=48213SIPpTag001`,
		`<sip:15550001@127.0.0.1:25060>`,
		`"A \"quoted\" name" <sip:+15550001@[2001:db8::1]:5060;user=phone>;tag=x;foo`,
		`<tel:+15550001>;tag=1`,
	} {
		var h sip.FromHeader
		h.Params = sip.NewParams()
		var err error
		if h.DisplayName, err = sip.ParseAddressValue(v, &h.Address, &h.Params); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		w := &recordWriter{}
		w.address(h.DisplayName, &h.Address, h.Params)
		r := binrec.NewReader(string(w.b), len(w.b), errBadRecord)
		if got := r.Str("from"); got != h.Value() || r.End() != nil {
			t.Errorf("address %q, sipgo %q (%v)", got, h.Value(), r.Err())
		}
	}
}

// Stores written before the binary record hold JSON payloads: they are
// still restored.
func TestDialogRecordLegacyJSON(t *testing.T) {
	d := typicalDialog(t)
	sameDialog(t, restoreFrom(t, d, []byte(legacyTypicalPayload)), d)
}

// Truncated, padded and garbage records are errors, never a panic and
// never a half-restored dialog.
func TestDialogRecordRejectsBadInput(t *testing.T) {
	p := typicalDialog(t).record()
	for i := 0; i < len(p); i++ {
		if _, err := decodeRecord(p[:i]); !errors.Is(err, errBadRecord) {
			t.Fatalf("record cut at %d of %d: err %v", i, len(p), err)
		}
	}
	bad := map[string][]byte{
		"trailing byte":    append(slices.Clone(p), 0),
		"unknown version":  append([]byte{2}, p[1:]...),
		"length past end":  {recordV1, 0x7f, 'a'},
		"huge length":      {recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"varint overflow":  {recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"padded varint":    {recordV1, 0x80, 0x00},
		"huge route count": appendHugeRoutes(),
		"cseq over 32 bit": cseqOver32(t),
		"bad json":         []byte(`{"call_id":`),
		"empty":            {},
	}
	for name, b := range bad {
		if _, err := decodeRecord(b); !errors.Is(err, errBadRecord) {
			t.Errorf("%s: err %v", name, err)
		}
		if _, err := restoreDialog(admission.CallRecord{CallID: "x", Payload: b}); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
}

// appendHugeRoutes is a record whose caller claims 2^40 routes.
func appendHugeRoutes() []byte {
	w := &recordWriter{b: []byte{recordV1}}
	w.str("cid")
	w.str("<sip:a@b>;tag=1")
	w.str("<sip:c@d>")
	w.str("tag")
	w.str("")
	w.b = binary.AppendUvarint(w.b, 1<<40)
	return w.b
}

func cseqOver32(t *testing.T) []byte {
	r, err := decodeRecord(typicalDialog(t).record())
	if err != nil {
		t.Fatal(err)
	}
	b := appendRecord(nil, r)
	// The callee's cseq is the last field: replace it with 2^32.
	b = b[:len(b)-1]
	return binary.AppendUvarint(b, 1<<32)
}

// FuzzDialogRecord: decoding any bytes returns a record or an error,
// never panics; a binary record that decodes has exactly one encoding
// (the decoder reads every byte), and restoring it does not panic either.
func FuzzDialogRecord(f *testing.F) {
	p := typicalDialog(f).record()
	f.Add(p)
	f.Add(p[:len(p)/2])
	f.Add([]byte(legacyTypicalPayload))
	f.Add([]byte{recordV1})
	f.Add([]byte{recordV1, 0x80, 0x00})
	f.Add(appendHugeRoutes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("error %v does not wrap errBadRecord", err)
			}
			return
		}
		if b[0] == recordV1 {
			if again := appendRecord(nil, r); !bytes.Equal(again, b) {
				t.Fatalf("decoded %+v re-encodes as %x, not %x", r, again, b)
			}
		}
		_, _ = restoreDialog(admission.CallRecord{CallID: "x", Payload: b})
	})
}
