package sip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/emiago/sipgo/sip"
)

// The dialog payload persisted with every answered call (the store keeps
// it opaque) is a small binary record, not JSON: it is written at every
// answer, on the call path.
//
//	record := version(1 byte, recordV1) callID from to leg(caller) leg(callee)
//	leg    := tag contact routes(uvarint n, n × str) source transport cseq(uvarint)
//	str    := uvarint length, bytes
//
// from and to are the header values (display name, <URI>, parameters),
// contact and routes URIs ("" contact: none). A record is exactly this:
// the decoder rejects an unknown version, a truncated field, a length
// past the end and trailing bytes, with an error wrapping errBadRecord.
// Payloads written before this format are JSON objects; they start with
// '{' and are still read (decodeRecord).

// recordV1 is the version byte of the binary dialog record.
const recordV1 = 1

// errBadRecord is wrapped by every error of decodeRecord.
var errBadRecord = errors.New("sip: bad dialog record")

// legRecord and dialogRecord are the decoded form of a dialog record
// (the JSON tags read the payloads of the first, JSON format).
type legRecord struct {
	Tag       string   `json:"tag"`
	Contact   string   `json:"contact,omitempty"`
	RouteSet  []string `json:"route_set,omitempty"`
	Source    string   `json:"source"`
	Transport string   `json:"transport"`
	CSeq      uint32   `json:"cseq"`
}

type dialogRecord struct {
	CallID string    `json:"call_id"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Caller legRecord `json:"caller"`
	Callee legRecord `json:"callee"`
}

// recordWriter appends a record to b. Header values and URIs are written
// by sipgo's own StringWrite straight into b, so encoding a dialog makes
// no intermediate strings.
type recordWriter struct{ b []byte }

// WriteString makes recordWriter an io.StringWriter (never fails).
func (w *recordWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

func (w *recordWriter) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

// begin starts a field whose length is known once it is written; end
// puts the length in front of it.
func (w *recordWriter) begin() int {
	w.b = append(w.b, 0)
	return len(w.b)
}

func (w *recordWriter) end(start int) {
	n := len(w.b) - start
	if n < 0x80 {
		w.b[start-1] = byte(n)
		return
	}
	var pre [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(pre[:], uint64(n))
	w.b = append(w.b, pre[1:k]...) // room for the longer prefix
	copy(w.b[start-1+k:], w.b[start:start+n])
	copy(w.b[start-1:], pre[:k])
}

// address writes a From/To header value as sipgo formats it.
func (w *recordWriter) address(display string, uri *sip.Uri, params sip.HeaderParams) {
	at := w.begin()
	if display != "" {
		w.WriteString(`"`)
		w.WriteString(display)
		w.WriteString(`" `)
	}
	w.WriteString("<")
	uri.StringWrite(w)
	w.WriteString(">")
	if params != nil && params.Length() > 0 {
		w.WriteString(";")
		params.ToStringWrite(';', w)
	}
	w.end(at)
}

func (w *recordWriter) uri(u *sip.Uri) {
	at := w.begin()
	u.StringWrite(w)
	w.end(at)
}

func (w *recordWriter) leg(l *Leg) {
	w.str(l.Tag)
	if l.Contact.Host != "" {
		w.uri(&l.Contact)
	} else {
		w.str("")
	}
	w.b = binary.AppendUvarint(w.b, uint64(len(l.RouteSet)))
	for i := range l.RouteSet {
		w.uri(&l.RouteSet[i])
	}
	w.str(l.Source)
	w.str(l.Transport)
	w.b = binary.AppendUvarint(w.b, uint64(l.CSeq))
}

// record encodes the confirmed dialog for the store.
func (d *Dialog) record() []byte {
	w := &recordWriter{b: make([]byte, 0, 320)}
	w.b = append(w.b, recordV1)
	d.mu.Lock()
	w.str(d.CallID)
	w.address(d.from.DisplayName, &d.from.Address, d.from.Params)
	w.address(d.to.DisplayName, &d.to.Address, d.to.Params)
	w.leg(&d.caller)
	w.leg(&d.callee)
	d.mu.Unlock()
	return w.b
}

// recordReader reads a record. Its strings are slices of one copy of the
// payload (one allocation for all of them).
type recordReader struct {
	s   string // what is left to read
	n   int    // length of the record
	err error  // the first error
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d of %d", errBadRecord, what, r.n-len(r.s), r.n)
	}
}

func (r *recordReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		if c == 0 && i > 0 {
			break // not minimal: a record has one encoding
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.s = r.s[i+1:]
			return v
		}
	}
	r.fail("truncated, oversized or padded " + what)
	return 0
}

func (r *recordReader) str(what string) string {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)) {
		r.fail(fmt.Sprintf("%s of %d bytes past the end", what, n))
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *recordReader) leg() legRecord {
	l := legRecord{Tag: r.str("tag"), Contact: r.str("contact")}
	n := r.uvarint("route count")
	if n > uint64(len(r.s)) { // every route takes at least one byte
		r.fail(fmt.Sprintf("%d routes in %d bytes", n, len(r.s)))
	}
	if r.err != nil {
		return l
	}
	if n > 0 {
		l.RouteSet = make([]string, n)
		for i := range l.RouteSet {
			l.RouteSet[i] = r.str("route")
		}
	}
	l.Source, l.Transport = r.str("source"), r.str("transport")
	cseq := r.uvarint("cseq")
	if cseq > math.MaxUint32 {
		r.fail("cseq out of range")
	}
	l.CSeq = uint32(cseq)
	return l
}

// decodeRecord decodes a dialog payload: the binary record, or the JSON
// object of the first format.
func decodeRecord(p []byte) (dialogRecord, error) {
	var rec dialogRecord
	switch {
	case len(p) == 0:
		return rec, fmt.Errorf("%w: empty", errBadRecord)
	case p[0] == '{':
		if err := json.Unmarshal(p, &rec); err != nil {
			return dialogRecord{}, fmt.Errorf("%w: %w", errBadRecord, err)
		}
		return rec, nil
	case p[0] != recordV1:
		return rec, fmt.Errorf("%w: unknown version %d", errBadRecord, p[0])
	}
	r := &recordReader{s: string(p[1:]), n: len(p)}
	rec.CallID, rec.From, rec.To = r.str("call-id"), r.str("from"), r.str("to")
	rec.Caller = r.leg()
	rec.Callee = r.leg()
	if r.err == nil && len(r.s) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBadRecord, len(r.s))
	}
	if r.err != nil {
		return dialogRecord{}, r.err
	}
	return rec, nil
}

var _ io.StringWriter = (*recordWriter)(nil)
