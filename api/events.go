package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Event is one usage event as published (package events): its id (the
// Nats-Msg-Id), type (call.ended, usage.threshold, ...), tenant ("" for
// events of no tenant) and JSON.
type Event struct {
	ID     string
	Type   string
	Tenant string
	Data   []byte
}

// EventSource feeds GET /v1/events: Subscribe streams the events
// published after since (zero: after the call), in order, until ctx ends
// (then it closes the channel; it may close it earlier when the source
// stops). A source that keeps no history answers a non-zero since with
// ErrNoHistory. Source names it for the stream's first comment ("nats"
// or "outbox").
type EventSource interface {
	Subscribe(ctx context.Context, since time.Time) (<-chan Event, error)
	Source() string
}

// ErrNoHistory: the event source cannot replay events already published.
var ErrNoHistory = errors.New("this event source keeps no history: events published before the request come from the NATS events stream (nats.enabled)")

// MaxEventsSince is the longest history GET /v1/events replays.
const MaxEventsSince = 24 * time.Hour

// eventsKeepAlive is the interval of the comment lines that keep an idle
// event stream open through proxies.
var eventsKeepAlive = 15 * time.Second

// eventsHandler serves GET /v1/events as server-sent events.
func eventsHandler(s *server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for name := range q {
			if name != "tenant" && name != "since" {
				s.writeError(w, r, &FieldError{Field: name, Message: fmt.Sprintf("unknown query parameter %q", name)})
				return
			}
		}
		var since time.Time
		if v := q.Get("since"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > MaxEventsSince {
				s.writeError(w, r, &FieldError{Field: "since", Message: fmt.Sprintf("must be a duration in (0, %s], e.g. 15m, got %q", MaxEventsSince, v)})
				return
			}
			since = time.Now().Add(-d)
		}
		tenant := q.Get("tenant")
		if tenant != "" {
			if _, err := s.b.GetTenant(r.Context(), tenant); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if s.events == nil {
			s.writeError(w, r, &statusError{status: http.StatusServiceUnavailable, code: "not_ready", msg: "this server has no event source"})
			return
		}
		rc := http.NewResponseController(w)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		ch, err := s.events.Subscribe(ctx, since)
		if errors.Is(err, ErrNoHistory) {
			s.writeError(w, r, &FieldError{Field: "since", Message: err.Error()})
			return
		}
		if err != nil {
			s.writeError(w, r, &statusError{status: http.StatusServiceUnavailable, code: "not_ready", msg: "event source: " + err.Error()})
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, ": tollgate events from %s\n\n", s.events.Source())
		if rc.Flush() != nil {
			return
		}
		tick := time.NewTicker(eventsKeepAlive)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if tenant != "" && ev.Tenant != tenant {
					continue
				}
				if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\n%s\n", oneLine(ev.ID), oneLine(ev.Type), sseData(ev.Data)); err != nil || rc.Flush() != nil {
					return
				}
			}
		}
	})
}

// sseData writes data as SSE data lines (one per line of data).
func sseData(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	return b.String()
}

// oneLine keeps a field on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
}
