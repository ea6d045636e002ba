package sip

import (
	"hash/maphash"
	"sync"
)

// serialShards spreads the per-Call-ID queues over independent locks.
const serialShards = 64

// serializer runs the work for one key (a Call-ID) in submission order, one
// item at a time, and work for different keys in parallel. A key's queue
// lives only while it has work: the first item starts a goroutine that
// drains the queue and exits when it is empty. No lock is shared by all
// keys, and none is held while work runs.
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
}

func newSerializer() *serializer {
	s := &serializer{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].queues = make(map[string]*serialQueue)
	}
	return s
}

// submit queues f behind the work already queued for key. It never blocks
// on that work.
func (s *serializer) submit(key string, f func()) {
	sh := &s.shards[maphash.String(s.seed, key)%serialShards]
	sh.mu.Lock()
	if q, ok := sh.queues[key]; ok {
		q.work = append(q.work, f)
		sh.mu.Unlock()
		return
	}
	q := &serialQueue{}
	sh.queues[key] = q
	sh.mu.Unlock()
	go s.drain(sh, key, q, f)
}

func (s *serializer) drain(sh *serialShard, key string, q *serialQueue, f func()) {
	for {
		f()
		sh.mu.Lock()
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
