package control

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/admission"
	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// committer is what the service needs of store.Committer: the runner's
// steps (Record, never blocking), operator batches (Submit, waits until
// durable), Flush and Close.
type committer interface {
	RecordWith(s *admission.Step, audit []store.AuditEntry)
	Submit(b *store.Batch) error
	Flush() error
	Close() error
}

var _ committer = (*store.Committer)(nil)

// newCommitter starts the store's group committer with the config's
// intervals. onCommit gets every commit's latency, onEvents is called
// after a commit that wrote events; either may be nil.
func newCommitter(st store.Store, cfg *configs.Config, now func() time.Time, log zerolog.Logger, onCommit func(time.Duration), onEvents func()) committer {
	o := store.CommitterOptions{
		Interval:   cfg.Store.CommitInterval,
		Checkpoint: cfg.Store.CheckpointInterval,
		Now:        now,
		Logger:     log,
	}
	if onCommit != nil || onEvents != nil {
		o.OnCommit = func(d time.Duration, b *store.Batch) {
			if onCommit != nil {
				onCommit(d)
			}
			if onEvents != nil && len(b.Events) > 0 {
				onEvents()
			}
		}
	}
	return store.NewCommitter(st, o)
}
