package sip

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/admission"
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
