package events

import (
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
)

func qmsg(i int) kafka.Message { return kafka.Message{Topic: "t", Value: []byte(strconv.Itoa(i))} }

func values(ms []kafka.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Value)
	}
	return out
}

// tokens reports whether wake and full hold a token, consuming them.
func tokens(q *queue) (wake, full bool) {
	select {
	case <-q.wake:
		wake = true
	default:
	}
	select {
	case <-q.full:
		full = true
	default:
	}
	return wake, full
}

func TestQueueSignalsAndOrder(t *testing.T) {
	q := newQueue(5, 3)
	if w, f := tokens(q); w || f {
		t.Fatalf("new queue: wake %v full %v, want none", w, f)
	}
	// Wrap around the ring: the order must survive it.
	next, want := 0, 0
	put := func(n int) {
		t.Helper()
		for range n {
			if r := q.put(qmsg(next)); r != putOK {
				t.Fatalf("put %d: %v", next, r)
			}
			next++
		}
	}
	take := func(limit, n int) {
		t.Helper()
		got := values(q.take(nil, limit))
		if len(got) != n {
			t.Fatalf("take(%d) = %v, want %d events", limit, got, n)
		}
		for _, v := range got {
			if v != strconv.Itoa(want) {
				t.Fatalf("take(%d) = %v, want them from %d in order", limit, got, want)
			}
			want++
		}
	}
	tests := []struct {
		name       string
		do         func()
		wake, full bool
		queued     int
	}{
		{"first event wakes", func() { put(1) }, true, false, 1},
		{"more do not", func() { put(1) }, false, false, 2},
		{"a full batch says so", func() { put(1) }, false, true, 3},
		{"past it, nothing", func() { put(2) }, false, false, 5},
		{"take leaves a wake and a full for the rest", func() { take(2, 2) }, true, true, 3},
		{"wrapping puts", func() { put(2) }, false, false, 5},
		{"take over the wrap", func() { take(4, 4) }, true, false, 1},
		{"take the last one", func() { take(3, 1) }, false, false, 0},
		{"empty again: the next put wakes", func() { put(1) }, true, false, 1},
		{"take clears a stale full", func() { put(2); tokens(q); signal(q.full); take(3, 3) }, false, false, 0},
	}
	for _, tc := range tests {
		tc.do()
		if w, f := tokens(q); w != tc.wake || f != tc.full {
			t.Errorf("%s: wake %v full %v, want %v %v", tc.name, w, f, tc.wake, tc.full)
		}
		if n := q.queued(); n != tc.queued {
			t.Errorf("%s: %d queued, want %d", tc.name, n, tc.queued)
		}
	}
}

func TestQueueBoundsAndClose(t *testing.T) {
	q := newQueue(2, 10)
	for i, want := range []putResult{putOK, putOK, putFull} {
		if r := q.put(qmsg(i)); r != want {
			t.Fatalf("put %d = %v, want %v", i, r, want)
		}
	}
	q.close()
	if r := q.put(qmsg(3)); r != putClosed {
		t.Fatalf("put after close = %v, want putClosed", r)
	}
	if got := values(q.take(nil, 10)); len(got) != 2 || got[0] != "0" || got[1] != "1" {
		t.Fatalf("take after close = %v, want [0 1]", got)
	}
	if r := q.put(qmsg(4)); r != putClosed {
		t.Fatalf("put after close and take = %v, want putClosed", r)
	}
}

// TestQueueConcurrent has many goroutines put while one takes as run does
// (waiting for its tokens): every event accepted comes out exactly once, in
// each goroutine's order. Run it with -race.
func TestQueueConcurrent(t *testing.T) {
	const writers, each = 8, 2000
	q := newQueue(64, 16)
	done := make(chan struct{})
	got := make(map[string][]int)
	accepted := make([]int, writers)
	go func() {
		defer close(done)
		var batch []kafka.Message
		for {
			<-q.wake
			batch = q.take(batch[:0], 16)
			for _, m := range batch {
				if m.Topic == "stop" {
					return
				}
				i, _ := strconv.Atoi(string(m.Value))
				got[string(m.Key)] = append(got[string(m.Key)], i)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := []byte(strconv.Itoa(w))
			for i := range each {
				if q.put(kafka.Message{Topic: "t", Key: key, Value: []byte(strconv.Itoa(i))}) == putOK {
					accepted[w]++
				}
			}
		})
	}
	wg.Wait()
	for q.put(kafka.Message{Topic: "stop"}) != putOK {
		runtime.Gosched() // the queue is full: let the taker run
	}
	<-done
	for w := range writers {
		seq := got[strconv.Itoa(w)]
		if len(seq) != accepted[w] {
			t.Errorf("writer %d: %d events out, %d accepted", w, len(seq), accepted[w])
		}
		for j := 1; j < len(seq); j++ {
			if seq[j] <= seq[j-1] {
				t.Fatalf("writer %d: out of order: %v", w, seq[max(0, j-3):j+1])
			}
		}
	}
}
