package store

// Wakeups is how often the commit goroutine woke up (timer, Submit,
// Flush, new work).
func (c *Committer) Wakeups() uint64 { return c.wakeups.Load() }
