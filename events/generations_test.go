package events_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/metrictest"
)

// TestAssignedCommitsBeforeRebalance checks ConsumerOptions.Assigned: a
// member that handled messages without committing them (no commit point
// came: the interval is an hour) commits them when a second member joins,
// before the group hands any partition over, so the newcomer is given
// nothing the first already handled; afterwards both share the partitions
// and every message is handled exactly once.
func TestAssignedCommitsBeforeRebalance(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			u := "u" + strconv.Itoa(i%7)
			p.Publish(events.TopicFeedback, u, feedbackJSON(t, u, i))
		}
		flush(t, p)
	}
	var mu sync.Mutex
	handled := map[string][]int{} // message → the members that handled it
	assigned := [2][]int{}
	commits := [2]int{}
	member := func(i int) (events.ConsumerOptions, events.Handler) {
		opts := events.ConsumerOptions{
			Brokers: brokers, GroupID: "generations", Topics: []string{events.TopicFeedback},
			CommitEvery: 1 << 30, CommitInterval: time.Hour, SessionTimeout: 6 * time.Second,
			BeforeCommit: func(context.Context) error {
				mu.Lock()
				commits[i]++
				mu.Unlock()
				return nil
			},
			Assigned: func(_ context.Context, parts map[string][]int) {
				mu.Lock()
				assigned[i] = parts[events.TopicFeedback]
				mu.Unlock()
			},
		}
		return opts, func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			handled[string(m.Value)] = append(handled[string(m.Value)], i)
			mu.Unlock()
			return nil
		}
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}

	publish(0, 60)
	o1, h1 := member(0)
	stop1 := run(t, newConsumer(t, o1), h1)
	waitFor(t, time.Minute, "the first member to handle everything", func() bool { return distinct() == 60 })

	o2, h2 := member(1)
	stop2 := run(t, newConsumer(t, o2), h2)
	waitFor(t, time.Minute, "the second member to get partitions", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(assigned[1]) > 0 && len(assigned[0])+len(assigned[1]) == kafkatest.Partitions
	})
	publish(60, 120)
	// A message handled twice would be one the second member was given
	// from before the first's commit: on its partitions it would come
	// before the new ones, so once every new one is in, it is in too.
	waitFor(t, time.Minute, "every message to be handled", func() bool { return distinct() == 120 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	by := [2]int{}
	for v, ms := range handled {
		if len(ms) != 1 {
			t.Errorf("%s handled %d times (members %v)", v, len(ms), ms)
		}
		by[ms[0]]++
	}
	if by[1] == 0 {
		t.Errorf("the second member handled nothing (assigned %v)", assigned[1])
	}
	if commits[0] == 0 {
		t.Error("the first member never committed")
	}
	t.Logf("first member: %d messages, %d commits, partitions %v; second: %d, %d, %v", by[0], commits[0], assigned[0], by[1], commits[1], assigned[1])
}

// A member that drives its generations reports its lag, summed over its
// partitions: above zero while it is behind, zero once it has caught up.
func TestAssignedReportsLag(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	for i := range 30 {
		u := "u" + strconv.Itoa(i%5)
		p.Publish(events.TopicFeedback, u, feedbackJSON(t, u, i))
	}
	flush(t, p)
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	var mu sync.Mutex
	handled := 0
	c := newConsumer(t, events.ConsumerOptions{
		Brokers: brokers, GroupID: "lag", Topics: []string{events.TopicFeedback}, Registerer: reg,
		SessionTimeout: 6 * time.Second, Assigned: func(context.Context, map[string][]int) {},
	})
	stop := run(t, c, func(ctx context.Context, _ kafka.Message) error {
		mu.Lock()
		handled++
		first := handled == 1
		mu.Unlock()
		if first {
			select { // hold the first message until the gauge was read
			case <-release:
			case <-ctx.Done():
			}
		}
		return nil
	})
	lag := func() float64 { return metrictest.MustValue(t, reg, "novarec_events_consumer_lag", nil) }
	waitFor(t, time.Minute, "a lag above zero while the first message is held", func() bool { return lag() > 0 })
	close(release)
	waitFor(t, time.Minute, "every message handled and the lag back to zero", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled == 30 && lag() == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
