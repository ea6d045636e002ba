package store

// Wakeups is how often the commit goroutine woke up (timer, Submit,
// Flush, new work).
func (c *Committer) Wakeups() uint64 { return c.wakeups.Load() }

// OutboxFromDisk is Outbox read from Badger, never from the tail.
func (s *Badger) OutboxFromDisk(after uint64, limit int) (out []OutboxEntry, err error) {
	err = s.view("outbox", func(r kvReader) error {
		out, err = readOutbox(r, after, limit)
		return err
	})
	return out, err
}
