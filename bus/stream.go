package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
)

// StreamConfig is the JetStream config of the events stream of c:
// subjects tollgate.events.>, retention limits, discard old, acknowledged
// publishes, the limits and duplicate window of c.
func StreamConfig(c configs.NATSStream) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "tollgate usage events (docs/EVENTS.md)",
		Subjects:    []string{Subjects},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     c.MaxMsgs,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
		Storage:     storageType(c.Storage),
	}
}

func storageType(s string) jetstream.StorageType {
	if s == configs.StorageMemory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// EnsureStream makes the events stream match c: it creates it when
// missing. When it exists, the settings tollgate may change are updated
// to c's — max_age, max_bytes, max_msgs, duplicate_window, replicas, and
// discard old, acknowledged publishes — each change logged; the stream's
// other settings (extra subjects, description, placement, ...) are kept.
// Settings that cannot be changed in place, or that are not tollgate's to
// change, are a *StreamConflictError naming the stream and the setting:
// the storage type, a retention other than limits, subjects that do not
// cover tollgate.events.>, a mirror, a sealed stream. Other errors
// (timeouts, no JetStream, the server refusing the config) are returned
// wrapped.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c configs.NATSStream, log zerolog.Logger) (jetstream.Stream, error) {
	want := StreamConfig(c)
	s, err := js.Stream(ctx, c.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("nats: create stream %s: %w", c.Name, err)
		}
		log.Info().Str("stream", c.Name).Str("subjects", Subjects).Str("storage", c.Storage).
			Int("replicas", c.Replicas).Stringer("max_age", c.MaxAge).Stringer("duplicate_window", c.DuplicateWindow).
			Msg("NATS stream created")
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", c.Name, err)
	}
	have := s.CachedInfo().Config
	if err := conflict(have, want, c); err != nil {
		return nil, err
	}
	upd, changes := updated(have, want)
	if len(changes) == 0 {
		return s, nil
	}
	s, err = js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("nats: update stream %s (%s): %w", c.Name, strings.Join(changes, ", "), err)
	}
	log.Warn().Str("stream", c.Name).Strs("changed", changes).Msg("NATS stream updated to the config")
	return s, nil
}

// conflict reports the first setting of have that tollgate cannot bring
// to want.
func conflict(have, want jetstream.StreamConfig, c configs.NATSStream) error {
	e := func(setting, h, w, hint string) error {
		return &StreamConflictError{Stream: want.Name, Setting: setting, Have: h, Want: w, Hint: hint}
	}
	if have.Storage != want.Storage {
		return e("storage", strings.ToLower(have.Storage.String()), strings.ToLower(want.Storage.String()),
			"cannot be changed; delete the stream or set nats.stream.storage")
	}
	if have.Retention != jetstream.LimitsPolicy {
		return e("retention", strings.ToLower(have.Retention.String()), "limits",
			"cannot be changed; delete the stream or set nats.stream.name to another stream")
	}
	if have.Mirror != nil {
		return e("mirror", "of "+have.Mirror.Name, "no mirror",
			"a mirror cannot be published to; set nats.stream.name to another stream")
	}
	if have.Sealed {
		return e("sealed", "true", "false",
			"a sealed stream cannot be published to; set nats.stream.name to another stream")
	}
	for _, s := range have.Subjects {
		if covers(s, Subjects) {
			return nil
		}
	}
	return e("subjects", "["+strings.Join(have.Subjects, " ")+"]", "["+Subjects+"]",
		"they do not cover "+Subjects+"; add it to the stream's subjects or set nats.stream.name to another stream")
}

// updated is have with tollgate's settings of want, and the changes made.
func updated(have, want jetstream.StreamConfig) (jetstream.StreamConfig, []string) {
	var changes []string
	upd := have
	change := func(name string, from, to any) {
		changes = append(changes, fmt.Sprintf("%s %v -> %v", name, from, to))
	}
	if have.MaxAge != want.MaxAge {
		change("max_age", have.MaxAge, want.MaxAge)
		upd.MaxAge = want.MaxAge
	}
	if have.MaxBytes != want.MaxBytes {
		change("max_bytes", have.MaxBytes, want.MaxBytes)
		upd.MaxBytes = want.MaxBytes
	}
	if have.MaxMsgs != want.MaxMsgs {
		change("max_msgs", have.MaxMsgs, want.MaxMsgs)
		upd.MaxMsgs = want.MaxMsgs
	}
	if have.Duplicates != want.Duplicates {
		change("duplicate_window", have.Duplicates, want.Duplicates)
		upd.Duplicates = want.Duplicates
	}
	if have.Replicas != want.Replicas {
		change("replicas", have.Replicas, want.Replicas)
		upd.Replicas = want.Replicas
	}
	if have.Discard != jetstream.DiscardOld {
		change("discard", "new", "old")
		upd.Discard = jetstream.DiscardOld
	}
	if have.NoAck {
		change("no_ack", true, false)
		upd.NoAck = false
	}
	return upd, changes
}

// covers reports whether the subject filter f matches every subject the
// filter sub matches (sub ends in ">"), e.g. "tollgate.>" and ">" cover
// "tollgate.events.>".
func covers(f, sub string) bool {
	ft, st := strings.Split(f, "."), strings.Split(sub, ".")
	for i, t := range ft {
		if t == ">" {
			return true
		}
		if i >= len(st) || st[i] == ">" {
			return false
		}
		if t != "*" && t != st[i] {
			return false
		}
	}
	return false
}
