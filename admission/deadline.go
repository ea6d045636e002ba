package admission

import (
	"container/heap"
	"time"
)

// deadlineHeap is a min-heap of scheduled budgets keyed by (due, seq). Each
// budget knows its index, so rescheduling and removal are O(log n). Keys
// are Unix nanoseconds, exact for every instant between 1678 and 2262.
type deadlineHeap []*budget

// Len implements heap.Interface.
func (h deadlineHeap) Len() int { return len(h) }

// Less orders by due instant, then by budget sequence number.
func (h deadlineHeap) Less(i, j int) bool {
	if h[i].key == h[j].key {
		return h[i].seq < h[j].seq
	}
	return h[i].key < h[j].key
}

// Swap implements heap.Interface and keeps the budgets' indexes.
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}

// Push implements heap.Interface.
func (h *deadlineHeap) Push(x any) {
	b := x.(*budget)
	b.hidx = len(*h)
	*h = append(*h, b)
}

// Pop implements heap.Interface.
func (h *deadlineHeap) Pop() any {
	old := *h
	n := len(old) - 1
	b := old[n]
	old[n] = nil
	b.hidx = -1
	*h = old[:n]
	return b
}

// schedule sets b's deadline, inserting or moving it in the heap.
func (e *Engine) schedule(b *budget, due time.Time) {
	b.due = due
	b.key = due.UnixNano()
	if b.hidx >= 0 {
		heap.Fix(&e.heap, b.hidx)
		return
	}
	heap.Push(&e.heap, b)
}

// unschedule removes b from the heap if it is there.
func (e *Engine) unschedule(b *budget) {
	if b.hidx >= 0 {
		heap.Remove(&e.heap, b.hidx)
	}
}
