package events

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// queue is the Producer's bounded FIFO between Publish (any goroutine) and
// run (the Producer's one writer goroutine).
//
// It replaces a buffered channel, whose every send woke run, parked on the
// channel while it filled a batch: one goroutine hand-off per event, which
// on a busy server put run ahead of the request handlers on their P (the
// largest single source of scheduler delay in recsvc, docs/benchmarks.md).
// Here Publish appends under a mutex and signals run only when the queue
// goes from empty to non-empty (wake) or reaches a full batch (full); run
// takes up to a batch at a time. So run wakes about once per batch, not once
// per event, and an event costs Publish a short critical section.
//
// Ownership: ring, head, n and closed belong to whoever holds mu. Any
// goroutine may call put and close; only run calls take and the receives on
// wake and full. Both channels hold one token, so a signal is never lost
// and never blocks its sender; a token may be stale (run took the events
// another way), which costs run one spurious look, never an event.
type queue struct {
	mu     sync.Mutex
	ring   []kafka.Message // capacity of the queue; events at head, head+1, … (mod len)
	head   int
	n      int
	closed bool
	batch  int // events that make a full batch (ProducerOptions.BatchSize)

	wake chan struct{} // the queue became non-empty
	full chan struct{} // the queue holds a full batch
}

func newQueue(capacity, batch int) *queue {
	return &queue{
		ring:  make([]kafka.Message, capacity),
		batch: batch,
		wake:  make(chan struct{}, 1),
		full:  make(chan struct{}, 1),
	}
}

// putResult says what put did with an event.
type putResult int

const (
	putOK     putResult = iota
	putFull             // the queue was at capacity: the event was not taken
	putClosed           // close was called: the event was not taken
)

// put appends m unless the queue is full or closed. It never blocks beyond
// the mutex, which is held for a copy and at most one non-blocking send.
func (q *queue) put(m kafka.Message) putResult {
	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return putClosed
	case q.n == len(q.ring):
		q.mu.Unlock()
		return putFull
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = m
	q.n++
	switch q.n {
	case 1:
		signal(q.wake)
	case q.batch:
		signal(q.full)
	}
	q.mu.Unlock()
	return putOK
}

// close makes every later put return putClosed. Once it has returned, the
// events take hands out are all there will ever be.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// queued is the number of events queued.
func (q *queue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// take moves up to limit queued events, oldest first, to the end of dst and
// returns it. If events remain, it leaves a wake token so that run comes
// back for them (no put will signal: the queue never became empty). Only
// run calls take.
func (q *queue) take(dst []kafka.Message, limit int) []kafka.Message {
	q.mu.Lock()
	k := min(q.n, limit)
	for k > 0 {
		end := min(q.head+k, len(q.ring))
		part := q.ring[q.head:end]
		dst = append(dst, part...)
		clear(part) // drop references to the values: they are run's now
		k -= len(part)
		q.n -= len(part)
		q.head = end
		if q.head == len(q.ring) {
			q.head = 0
		}
	}
	if q.n == 0 {
		q.head = 0
	}
	// A full token from before this take describes events run now holds.
	select {
	case <-q.full:
	default:
	}
	if q.n >= q.batch {
		signal(q.full)
	}
	if q.n > 0 {
		signal(q.wake)
	}
	q.mu.Unlock()
	return dst
}

// signal leaves a token in c unless one is there already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
