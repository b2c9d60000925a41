package events_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
)

// TestBeforeCommitVetoesCommit checks the BeforeCommit hook: it runs at
// every commit point (also while idle), a failing hook keeps the offsets
// uncommitted (so a new member gets every message again), and once the hook
// succeeds the marks kept meanwhile are committed.
func TestBeforeCommitVetoesCommit(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	const n = 30
	for i := range n {
		u := "u" + strconv.Itoa(i%5)
		p.Publish(events.TopicFeedback, u, feedbackJSON(t, u, i))
	}
	flush(t, p)

	// First member: the hook always fails, so nothing may be committed,
	// not even by the final commit when Run returns.
	var calls1, handled1 atomic.Int64
	c1 := newConsumer(t, events.ConsumerOptions{
		Brokers: brokers, GroupID: "veto", Topics: []string{events.TopicFeedback}, CommitEvery: 7,
		BeforeCommit: func(ctx context.Context) error {
			if ctx == nil {
				t.Error("BeforeCommit got a nil context")
			}
			calls1.Add(1)
			return errors.New("state not persisted")
		},
	})
	stop1 := run(t, c1, func(context.Context, kafka.Message) error { handled1.Add(1); return nil })
	waitFor(t, 20*time.Second, "all messages handled by the first member", func() bool { return handled1.Load() == n })
	// Idle now: the hook must keep being called every CommitInterval.
	idleFrom := calls1.Load()
	waitFor(t, 5*time.Second, "BeforeCommit calls while idle", func() bool { return calls1.Load() >= idleFrom+3 })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if got := c1.Stats().Commits; got != 0 {
		t.Fatalf("first member committed %d times although BeforeCommit always failed", got)
	}

	// Second member: the hook fails a few times, then succeeds. It must
	// receive all n messages again and then commit them.
	var mu sync.Mutex
	seen := map[string]int{}
	var calls2 atomic.Int64
	var handled2 atomic.Int64
	c2 := newConsumer(t, events.ConsumerOptions{
		Brokers: brokers, GroupID: "veto", Topics: []string{events.TopicFeedback},
		BeforeCommit: func(context.Context) error {
			// Refuse until everything was handled, then twice more.
			if handled2.Load() < n || calls2.Add(1) <= 2 {
				return errors.New("not yet")
			}
			return nil
		},
	})
	stop2 := run(t, c2, func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		seen[string(m.Value)]++
		mu.Unlock()
		handled2.Add(1)
		return nil
	})
	waitFor(t, 20*time.Second, "the second member to commit", func() bool { return c2.Stats().Commits >= 1 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(seen) != n {
		t.Errorf("second member saw %d distinct messages, want all %d redelivered", len(seen), n)
	}
	mu.Unlock()

	// Third member: everything is committed, so only messages written
	// now arrive (one per key, so every partition the first batch used).
	for i := range 5 {
		u := "u" + strconv.Itoa(i)
		p.Publish(events.TopicFeedback, u, feedbackJSON(t, u, 1000+i))
	}
	flush(t, p)
	var mu3 sync.Mutex
	var got3 []events.Feedback
	c3 := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "veto", Topics: []string{events.TopicFeedback}})
	stop3 := run(t, c3, func(_ context.Context, m kafka.Message) error {
		f, err := events.DecodeFeedback(m.Value)
		if err != nil {
			return err
		}
		mu3.Lock()
		got3 = append(got3, f)
		mu3.Unlock()
		return nil
	})
	waitFor(t, 20*time.Second, "the new messages", func() bool {
		mu3.Lock()
		defer mu3.Unlock()
		return len(got3) >= 5
	})
	time.Sleep(300 * time.Millisecond) // room for any redelivery to show up
	if err := stop3(); err != nil {
		t.Fatal(err)
	}
	mu3.Lock()
	defer mu3.Unlock()
	for _, f := range got3 {
		if seqOf(t, f) < 1000 {
			t.Errorf("third member got committed message %s again", f.EventID)
		}
	}
	if len(got3) != 5 {
		t.Errorf("third member got %d messages, want the 5 new ones", len(got3))
	}
}
