package sip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/emiago/sipgo/sip"

	"github.com/tollgate/tollgate/internal/binrec"
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

func (w *recordWriter) str(s string) { w.b = binrec.AppendStr(w.b, s) }

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

// recordReader reads a dialog record.
type recordReader struct{ *binrec.Reader }

func (r recordReader) leg() legRecord {
	l := legRecord{Tag: r.Str("tag"), Contact: r.Str("contact")}
	n := r.Uvarint("route count")
	if n > uint64(r.Left()) { // every route takes at least one byte
		r.Fail(fmt.Sprintf("%d routes in %d bytes", n, r.Left()))
	}
	if r.Err() != nil {
		return l
	}
	if n > 0 {
		l.RouteSet = make([]string, n)
		for i := range l.RouteSet {
			l.RouteSet[i] = r.Str("route")
		}
	}
	l.Source, l.Transport = r.Str("source"), r.Str("transport")
	cseq := r.Uvarint("cseq")
	if cseq > math.MaxUint32 {
		r.Fail("cseq out of range")
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
	r := recordReader{binrec.NewReader(string(p[1:]), len(p), errBadRecord)}
	rec.CallID, rec.From, rec.To = r.Str("call-id"), r.Str("from"), r.Str("to")
	rec.Caller = r.leg()
	rec.Callee = r.leg()
	if err := r.End(); err != nil {
		return dialogRecord{}, err
	}
	return rec, nil
}

var _ io.StringWriter = (*recordWriter)(nil)
