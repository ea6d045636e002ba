package bus_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/bus"
	"github.com/tollgate/tollgate/bus/bustest"
)

// EnsureStream creates the stream with the config's settings, and
// changes nothing the second time.
func TestEnsureStreamCreates(t *testing.T) {
	_, url := bustest.Start(t, t.TempDir())
	_, js := connect(t, url)
	var logs bytes.Buffer
	ctx := context.Background()
	sc := streamCfg()
	s, err := bus.EnsureStream(ctx, js, sc, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Name != "TOLLGATE_EVENTS" || len(c.Subjects) != 1 || c.Subjects[0] != "tollgate.events.>" ||
		c.Retention != jetstream.LimitsPolicy || c.Discard != jetstream.DiscardOld || c.Storage != jetstream.FileStorage ||
		c.MaxAge != 720*time.Hour || c.MaxBytes != -1 || c.MaxMsgs != -1 || c.Duplicates != 10*time.Minute || c.Replicas != 1 {
		t.Errorf("created %+v", c)
	}
	if !strings.Contains(logs.String(), "NATS stream created") {
		t.Errorf("log: %s", logs.String())
	}
	logs.Reset()
	if _, err := bus.EnsureStream(ctx, js, sc, zerolog.New(&logs)); err != nil || logs.Len() != 0 {
		t.Errorf("second EnsureStream: %v, log %s", err, logs.String())
	}
}

// An existing stream with other updatable settings is brought to the
// config's, keeping what is not tollgate's (here a wider subject).
func TestEnsureStreamUpdates(t *testing.T) {
	_, url := bustest.Start(t, t.TempDir())
	_, js := connect(t, url)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "TOLLGATE_EVENTS", Subjects: []string{"tollgate.>"}, Storage: jetstream.FileStorage,
		MaxAge: time.Hour, MaxMsgs: 10, MaxBytes: 1 << 20, Duplicates: 2 * time.Minute, Discard: jetstream.DiscardNew,
	}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := bus.EnsureStream(ctx, js, streamCfg(), zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.MaxAge != 720*time.Hour || c.MaxMsgs != -1 || c.MaxBytes != -1 || c.Duplicates != 10*time.Minute || c.Discard != jetstream.DiscardOld {
		t.Errorf("after update %+v", c)
	}
	if len(c.Subjects) != 1 || c.Subjects[0] != "tollgate.>" {
		t.Errorf("subjects %v, want the stream's own kept", c.Subjects)
	}
	for _, want := range []string{"NATS stream updated", "max_age 1h0m0s -> 720h0m0s", "max_msgs 10 -> -1", "max_bytes 1048576 -> -1", "duplicate_window 2m0s -> 10m0s", "discard new -> old"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q: %s", want, logs.String())
		}
	}
}

// Settings that cannot be changed: a clear error naming the stream and
// the setting.
func TestEnsureStreamConflicts(t *testing.T) {
	_, url := bustest.Start(t, t.TempDir())
	_, js := connect(t, url)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		have    jetstream.StreamConfig
		setting string
		want    string
	}{
		{"storage", jetstream.StreamConfig{Subjects: []string{"tollgate.events.>"}, Storage: jetstream.MemoryStorage}, "storage",
			"nats: stream TOLLGATE_EVENTS exists with storage memory, config wants file (cannot be changed; delete the stream or set nats.stream.storage)"},
		{"retention", jetstream.StreamConfig{Subjects: []string{"tollgate.events.>"}, Retention: jetstream.InterestPolicy}, "retention",
			"nats: stream TOLLGATE_EVENTS exists with retention interest, config wants limits (cannot be changed; delete the stream or set nats.stream.name to another stream)"},
		{"subjects", jetstream.StreamConfig{Subjects: []string{"orders.>", "tollgate.events.acme.*"}}, "subjects",
			"nats: stream TOLLGATE_EVENTS exists with subjects [orders.> tollgate.events.acme.*], config wants [tollgate.events.>] (they do not cover tollgate.events.>; add it to the stream's subjects or set nats.stream.name to another stream)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.have.Name = "TOLLGATE_EVENTS"
			if _, err := js.CreateStream(ctx, tc.have); err != nil {
				t.Fatal(err)
			}
			defer js.DeleteStream(ctx, "TOLLGATE_EVENTS")
			_, err := bus.EnsureStream(ctx, js, streamCfg(), zerolog.Nop())
			var ce *bus.StreamConflictError
			if !errors.As(err, &ce) || ce.Setting != tc.setting || err.Error() != tc.want {
				t.Fatalf("error %v\nwant        %s", err, tc.want)
			}
		})
	}
	// A stream of another name already taking the subjects: the server's
	// refusal, wrapped.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"tollgate.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := bus.EnsureStream(ctx, js, streamCfg(), zerolog.Nop())
	if err == nil || !strings.HasPrefix(err.Error(), "nats: create stream TOLLGATE_EVENTS: ") || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("overlapping stream: %v", err)
	}
}
