// Package binrec reads and writes the compact binary records tollgate
// stores (dialog payloads, call records): a version byte the caller
// checks, then fields as bytes, minimal uvarints and uvarint-length
// prefixed strings. A record has exactly one encoding.
package binrec

import (
	"encoding/binary"
	"fmt"
)

// AppendStr appends s with its uvarint length in front.
func AppendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader reads the fields of one record. The first error sticks: every
// later read returns a zero value, so a decoder reads all its fields and
// checks Err once.
type Reader struct {
	s   string // what is left to read
	n   int    // length of the whole record
	bad error  // wrapped by every error, e.g. "store: bad call record"
	err error
}

// NewReader reads body, the part of a record of n bytes after its version
// byte; bad is wrapped by its errors.
func NewReader(body string, n int, bad error) *Reader {
	return &Reader{s: body, n: n, bad: bad}
}

// Err is the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Fail records an error about what, at the current position.
func (r *Reader) Fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d of %d", r.bad, what, r.n-len(r.s), r.n)
	}
}

// Uvarint reads a minimal unsigned varint.
func (r *Reader) Uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 || c == 0 && i > 0 {
			break // overflows 64 bits, or not minimal
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.s = r.s[i+1:]
			return v
		}
	}
	r.Fail("truncated, oversized or padded " + what)
	return 0
}

// Byte reads one byte.
func (r *Reader) Byte(what string) byte {
	if r.err == nil && len(r.s) == 0 {
		r.Fail("missing " + what)
	}
	if r.err != nil {
		return 0
	}
	c := r.s[0]
	r.s = r.s[1:]
	return c
}

// Str reads a length-prefixed string (sharing the record's memory).
func (r *Reader) Str(what string) string {
	n := r.Uvarint(what + " length")
	if r.err == nil && n > uint64(len(r.s)) {
		r.Fail(fmt.Sprintf("%s of %d bytes past the end", what, n))
	}
	if r.err != nil {
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// Left is the number of bytes not read yet.
func (r *Reader) Left() int { return len(r.s) }

// End fails the record if bytes are left, and returns Err.
func (r *Reader) End() error {
	if r.err == nil && len(r.s) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", r.bad, len(r.s))
	}
	return r.err
}
