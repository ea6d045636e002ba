package store

import (
	"testing"
	"time"

	"github.com/tollgate/tollgate/admission"
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
