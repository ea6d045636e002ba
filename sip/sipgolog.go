package sip

import (
	"context"
	"log/slog"
	"time"

	"github.com/rs/zerolog"
)

// StackErrorObserver is optionally implemented by an Observer: it counts
// the error lines of the SIP stack (sipgo), logged or suppressed.
type StackErrorObserver interface {
	StackError()
}

// sipgoHandler is the slog handler of sipgo's logger: its errors go to
// the gateway's zerolog log as lines of their own (sipgo's message, its
// attributes as fields, source=sipgo), not as a nested JSON blob; at most
// one line per second, with the count suppressed since, so that whatever
// a peer makes sipgo complain about cannot flood the log. Every error is
// counted (StackErrorObserver).
type sipgoHandler struct {
	log   zerolog.Logger
	limit *logLimiter
	count func()
	attrs []slog.Attr
	group string
}

func newSipgoHandler(log zerolog.Logger, metrics Observer) *sipgoHandler {
	h := &sipgoHandler{log: log, limit: &logLimiter{interval: time.Second}, count: func() {}}
	if o, ok := metrics.(StackErrorObserver); ok {
		h.count = o.StackError
	}
	return h
}

func (h *sipgoHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (h *sipgoHandler) Handle(_ context.Context, r slog.Record) error {
	h.count()
	if !h.limit.allow(time.Now()) {
		return nil
	}
	ev := h.log.Error().Str("source", "sipgo").Uint64("suppressed", h.limit.suppressed.Swap(0))
	for _, a := range h.attrs {
		ev = addAttr(ev, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		ev = addAttr(ev, h.group, a)
		return true
	})
	ev.Msg("sipgo: " + r.Message)
	return nil
}

func (h *sipgoHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		if h.group != "" {
			a.Key = h.group + "." + a.Key
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *sipgoHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// addAttr writes one slog attribute as a flat zerolog field: groups as
// dotted keys, errors and everything else as their string.
func addAttr(ev *zerolog.Event, prefix string, a slog.Attr) *zerolog.Event {
	a.Value = a.Value.Resolve()
	key := a.Key
	if prefix != "" {
		key = prefix + "." + key
	}
	switch a.Value.Kind() {
	case slog.KindGroup:
		for _, g := range a.Value.Group() {
			ev = addAttr(ev, key, g)
		}
		return ev
	case slog.KindInt64:
		return ev.Int64(key, a.Value.Int64())
	case slog.KindUint64:
		return ev.Uint64(key, a.Value.Uint64())
	case slog.KindFloat64:
		return ev.Float64(key, a.Value.Float64())
	case slog.KindBool:
		return ev.Bool(key, a.Value.Bool())
	case slog.KindDuration:
		return ev.Dur(key, a.Value.Duration())
	}
	if key == "" {
		return ev
	}
	if key == "error" || key == "err" {
		if err, ok := a.Value.Any().(error); ok {
			return ev.Str("error", err.Error())
		}
	}
	return ev.Str(key, a.Value.String())
}
