package sip

import (
	"hash/maphash"
	"sync"
)

// serialShards spreads the per-Call-ID queues over independent locks.
const serialShards = 64

// serializer runs the work for one key (a Call-ID) in submission order, one
// item at a time, and work for different keys in parallel. A key's queue
// lives only while it has work. The first item runs at once on the
// submitting goroutine (a transport's read goroutine), which then drains
// whatever was queued behind it meanwhile: no goroutine and no thread
// handoff per request. Work that may block (a TCP or TLS connection to
// open) hands itself on with detach, so a read goroutine never waits on the
// network. No lock is shared by all keys, and none is held while work runs.
type serializer struct {
	seed   maphash.Seed
	shards [serialShards]serialShard
}

type serialShard struct {
	mu     sync.Mutex
	queues map[string]*serialQueue
}

type serialQueue struct {
	work []func() // guarded by the shard's mu
	cont func()   // set by detach: runs next, in a goroutine of its own
}

func newSerializer() *serializer {
	s := &serializer{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].queues = make(map[string]*serialQueue)
	}
	return s
}

func (s *serializer) shard(key string) *serialShard {
	return &s.shards[maphash.String(s.seed, key)%serialShards]
}

// submit runs f now if key has no work, or queues it behind the work
// already there; it never waits for that work.
func (s *serializer) submit(key string, f func()) {
	sh := s.shard(key)
	sh.mu.Lock()
	if q, ok := sh.queues[key]; ok {
		q.work = append(q.work, f)
		sh.mu.Unlock()
		return
	}
	q := &serialQueue{}
	sh.queues[key] = q
	sh.mu.Unlock()
	s.drain(sh, key, q, f)
}

// detach, called by the work running for key, makes f the key's next work
// and runs it in a goroutine of its own once the caller returns; work
// queued for key meanwhile waits for f. It reports false (and does
// nothing) when called outside the key's work.
func (s *serializer) detach(key string, f func()) bool {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	q, ok := sh.queues[key]
	if !ok || q.cont != nil {
		return false
	}
	q.cont = f
	return true
}

func (s *serializer) drain(sh *serialShard, key string, q *serialQueue, f func()) {
	for {
		f()
		sh.mu.Lock()
		if q.cont != nil {
			f, q.cont = q.cont, nil
			sh.mu.Unlock()
			go s.drain(sh, key, q, f)
			return
		}
		if len(q.work) == 0 {
			delete(sh.queues, key)
			sh.mu.Unlock()
			return
		}
		f = q.work[0]
		q.work[0] = nil
		q.work = q.work[1:]
		sh.mu.Unlock()
	}
}

// pending returns the number of keys with queued or running work.
func (s *serializer) pending() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.queues)
		sh.mu.Unlock()
	}
	return n
}
