// Package ng speaks the subset of rtpengine's NG control protocol the
// relay benchmark needs (offer, answer, delete, ping): a cookie, a space
// and a bencoded dictionary over UDP. Both testbed/cmd/rtpbench (the load)
// and testbed/cmd/relayd (tollgate's meter/ behind the same protocol) use
// it, so one load drives rtpengine and tollgate alike.
package ng

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Encode bencodes a dictionary of strings (values: string or int).
func Encode(m map[string]any) []byte {
	var b bytes.Buffer
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteByte('d')
	for _, k := range keys {
		writeString(&b, k)
		switch v := m[k].(type) {
		case string:
			writeString(&b, v)
		case int:
			fmt.Fprintf(&b, "i%de", v)
		default:
			panic(fmt.Sprintf("ng: cannot encode %T", v))
		}
	}
	b.WriteByte('e')
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

// Decode reads a bencoded dictionary; nested lists and dictionaries are
// skipped, strings and integers kept (as string and int).
func Decode(p []byte) (map[string]any, error) {
	v, rest, err := decode(p)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("ng: trailing data")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("ng: not a dictionary")
	}
	return m, nil
}

func decode(p []byte) (any, []byte, error) {
	if len(p) == 0 {
		return nil, nil, errors.New("ng: short input")
	}
	switch c := p[0]; {
	case c == 'i':
		end := bytes.IndexByte(p, 'e')
		if end < 0 {
			return nil, nil, errors.New("ng: bad integer")
		}
		n, err := strconv.Atoi(string(p[1:end]))
		return n, p[end+1:], err
	case c == 'l':
		p = p[1:]
		var out []any
		for len(p) > 0 && p[0] != 'e' {
			v, rest, err := decode(p)
			if err != nil {
				return nil, nil, err
			}
			out, p = append(out, v), rest
		}
		if len(p) == 0 {
			return nil, nil, errors.New("ng: open list")
		}
		return out, p[1:], nil
	case c == 'd':
		p = p[1:]
		out := map[string]any{}
		for len(p) > 0 && p[0] != 'e' {
			k, rest, err := decode(p)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, errors.New("ng: key not a string")
			}
			v, rest, err := decode(rest)
			if err != nil {
				return nil, nil, err
			}
			out[ks], p = v, rest
		}
		if len(p) == 0 {
			return nil, nil, errors.New("ng: open dictionary")
		}
		return out, p[1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(p, ':')
		if colon < 0 {
			return nil, nil, errors.New("ng: bad string")
		}
		n, err := strconv.Atoi(string(p[:colon]))
		if err != nil || n < 0 || colon+1+n > len(p) {
			return nil, nil, errors.New("ng: bad string length")
		}
		return string(p[colon+1 : colon+1+n]), p[colon+1+n:], nil
	}
	return nil, nil, fmt.Errorf("ng: unexpected %q", p[0])
}

// Split separates a datagram into its cookie and message.
func Split(p []byte) (cookie string, msg map[string]any, err error) {
	i := bytes.IndexByte(p, ' ')
	if i < 0 {
		return "", nil, errors.New("ng: no cookie")
	}
	msg, err = Decode(p[i+1:])
	return string(p[:i]), msg, err
}
