package bus

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's replies to a publish, as the publisher reads them: the
// usual PubAck without decoding, a duplicate (the server writes it with a
// space), an API error, no responders and garbage.
func TestParsePubAck(t *testing.T) {
	for _, c := range []struct {
		data   string
		header nats.Header
		dup    bool
		err    error // nil: none; errAny: some error
	}{
		{data: `{"stream":"TOLLGATE_EVENTS","seq":42}`},
		{data: `{"stream":"TOLLGATE_EVENTS","domain":"hub","seq":42}`},
		{data: `{"stream":"TOLLGATE_EVENTS","seq":42,"duplicate": true}`, dup: true},
		{data: `{"stream":"TOLLGATE_EVENTS","seq":42,"duplicate":true}`, dup: true},
		{data: `{"seq":42,"stream":"TOLLGATE_EVENTS"}`},
		{data: `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"TOLLGATE_EVENTS","seq":0}`, err: errAny},
		{data: `{"stream":"x","seq":1,"error":{"code":400,"description":"bad"}}`, err: errAny},
		{header: nats.Header{"Status": []string{"503"}}, err: jetstream.ErrNoStreamResponse},
		{data: `not json`, err: jetstream.ErrInvalidJSAck},
		{data: `{}`, err: jetstream.ErrInvalidJSAck},
	} {
		dup, err := parsePubAck(&nats.Msg{Data: []byte(c.data), Header: c.header})
		switch {
		case c.err == nil && err != nil, c.err != nil && err == nil:
			t.Errorf("%s: error %v, want %v", c.data, err, c.err)
		case c.err != nil && c.err != errAny && !errors.Is(err, c.err):
			t.Errorf("%s: error %v, want %v", c.data, err, c.err)
		case dup != c.dup:
			t.Errorf("%s: duplicate %v, want %v", c.data, dup, c.dup)
		}
		var ae *jetstream.APIError
		if c.err == errAny && !errors.As(err, &ae) {
			t.Errorf("%s: error %T %v, want the API error", c.data, err, err)
		}
	}
}

var errAny = errors.New("any error")
