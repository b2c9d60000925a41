package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/metrictest"
)

// testLogger shows warnings and errors on stderr (visible with -v) without
// tying log calls from background goroutines to a *testing.T that may have
// finished.
func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("EVENTS_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func newProducer(t testing.TB, brokers []string, opts events.ProducerOptions) *events.Producer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	p := events.NewProducer(brokers, opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func newConsumer(t testing.TB, opts events.ConsumerOptions) *events.Consumer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if opts.CommitInterval == 0 {
		opts.CommitInterval = 100 * time.Millisecond
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 10 * time.Millisecond
	}
	if opts.MaxRetryBackoff == 0 {
		opts.MaxRetryBackoff = 50 * time.Millisecond
	}
	if opts.MaxWait == 0 {
		// Shorter than the default, so that closing a consumer (which waits
		// for its idle fetches) does not dominate the tests.
		opts.MaxWait = time.Second
	}
	c, err := events.NewConsumer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// run starts c.Run in the background and returns a function that stops it
// (cancel, wait for Run to return, Close) and reports Run's error.
func run(t testing.TB, c *events.Consumer, h events.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				err = errors.New("Run did not return within 10s of cancellation")
			}
			if cerr := c.Close(); cerr != nil && err == nil {
				err = cerr
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds or d passes.
// waitFor polls cond until it holds. d is only a hang guard, raised to at
// least a minute: a loaded two-core machine can be many times slower than
// the one a duration was picked on.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	d = max(d, time.Minute)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func feedbackJSON(t testing.TB, user string, seq int) []byte {
	t.Helper()
	b, err := json.Marshal(events.Feedback{
		Schema: events.SchemaVersion, EventID: fmt.Sprintf("%s-%d", user, seq), UserID: user,
		ItemID: "i" + strconv.Itoa(seq), Type: events.FeedbackClick, TS: int64(1700000000000 + seq),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seqOf extracts the sequence number feedbackJSON put in the event id.
func seqOf(t testing.TB, f events.Feedback) int {
	t.Helper()
	i := strings.LastIndexByte(f.EventID, '-')
	n, err := strconv.Atoi(f.EventID[i+1:])
	if err != nil {
		t.Fatalf("event id %q: %v", f.EventID, err)
	}
	return n
}

func TestEmbeddedAndReadAll(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	for i := range 30 {
		if !p.Publish(events.TopicImpressions, "u"+strconv.Itoa(i%5), []byte(strconv.Itoa(i))) {
			t.Fatalf("publish %d refused", i)
		}
	}
	msgs := kafkatest.ReadAll(t, brokers, events.TopicImpressions, 30, 10*time.Second)
	parts := map[int]bool{}
	for _, m := range msgs {
		parts[m.Partition] = true
	}
	if len(parts) < 2 {
		t.Errorf("5 keys landed on %d partition(s); want them spread over several", len(parts))
	}
	if extra := kafkatest.ReadAvailable(t, brokers, events.TopicImpressions, 300*time.Millisecond); len(extra) != 30 {
		t.Errorf("topic holds %d messages, want 30", len(extra))
	}
	if st := p.Stats(); st.Published != 30 || st.Dropped != 0 || st.Buffered != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestRoundTripKeepsPerKeyOrder publishes interleaved events of many users
// and checks a consumer group sees every event once, each user's in order.
func TestRoundTripKeepsPerKeyOrder(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{BatchSize: 50, BatchTimeout: 5 * time.Millisecond})
	const users, perUser = 20, 50
	for s := range perUser {
		for u := range users {
			user := "user-" + strconv.Itoa(u)
			if !p.PublishJSON(events.TopicFeedback, user, json.RawMessage(feedbackJSON(t, user, s))) {
				t.Fatal("publish refused")
			}
		}
	}

	c := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "rt", Topics: []string{events.TopicFeedback}})
	var mu sync.Mutex
	seen := map[string][]int{}
	partOf := map[string]int{}
	total := 0
	stop := run(t, c, func(_ context.Context, m kafka.Message) error {
		f, err := events.DecodeFeedback(m.Value)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if string(m.Key) != f.UserID {
			t.Errorf("key %q carries user %q", m.Key, f.UserID)
		}
		if p, ok := partOf[f.UserID]; ok && p != m.Partition {
			t.Errorf("user %s on partitions %d and %d", f.UserID, p, m.Partition)
		}
		partOf[f.UserID] = m.Partition
		seen[f.UserID] = append(seen[f.UserID], seqOf(t, f))
		total++
		return nil
	})
	waitFor(t, 20*time.Second, "all events consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return total >= users*perUser
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if total != users*perUser {
		t.Errorf("consumed %d events, want %d", total, users*perUser)
	}
	for u, seqs := range seen {
		if len(seqs) != perUser {
			t.Errorf("%s: %d events, want %d", u, len(seqs), perUser)
		}
		for i, s := range seqs {
			if s != i {
				t.Errorf("%s: event %d has sequence %d (out of order or duplicated): %v", u, i, s, seqs)
				break
			}
		}
	}
	if st := c.Stats(); st.Consumed != users*perUser || st.Commits == 0 {
		t.Errorf("consumer stats = %+v", st)
	}
}

// TestConsumerResumesAfterCommit stops a consumer midway and checks that a
// new member of the same group gets exactly the messages the first did not
// handle: nothing committed is delivered again and nothing is lost.
func TestConsumerResumesAfterCommit(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	const n = 60
	for i := range n {
		p.Publish(events.TopicFeedback, "u"+strconv.Itoa(i%7), feedbackJSON(t, "u"+strconv.Itoa(i%7), i))
	}
	flush(t, p)

	// First member: handles 25 messages, then its context is cancelled
	// from inside the handler; Run must commit those 25 and stop.
	first := map[string]bool{}
	c1 := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "resume", Topics: []string{events.TopicFeedback}, CommitEvery: 10})
	ctx, cancel := context.WithCancel(context.Background())
	var handled1 int
	err := c1.Run(ctx, func(_ context.Context, m kafka.Message) error {
		first[string(m.Value)] = true
		handled1++
		if handled1 == 25 {
			cancel()
		}
		return nil
	})
	cancel()
	if err != nil {
		t.Fatalf("Run = %v, want nil on cancellation", err)
	}
	if handled1 != 25 {
		t.Fatalf("first member handled %d messages after cancellation, want 25", handled1)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}

	// Second member, same group: must start after the committed offsets.
	var mu sync.Mutex
	second := map[string]int{}
	c2 := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "resume", Topics: []string{events.TopicFeedback}})
	stop := run(t, c2, func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		second[string(m.Value)]++
		mu.Unlock()
		return nil
	})
	waitFor(t, 20*time.Second, "the rest consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(second) >= n-25
	})
	time.Sleep(300 * time.Millisecond) // room for any redelivery to show up
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for v, k := range second {
		if first[v] {
			t.Errorf("committed message redelivered: %s", v)
		}
		if k != 1 {
			t.Errorf("message delivered %d times to the second member: %s", k, v)
		}
	}
	if len(first)+len(second) != n {
		t.Errorf("first %d + second %d != %d: messages lost", len(first), len(second), n)
	}
}

// TestPoisonGoesToDeadLetter checks an undecodable message is written to
// rec.deadletter with its reason and the consumer moves on.
func TestPoisonGoesToDeadLetter(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	// One key, so all three land on one partition, in this order.
	p.Publish(events.TopicFeedback, "u1", feedbackJSON(t, "u1", 1))
	p.Publish(events.TopicFeedback, "u1", []byte(`{"schema":1,"event_id":`))
	p.Publish(events.TopicFeedback, "u1", feedbackJSON(t, "u1", 3))
	flush(t, p)

	dlp := newProducer(t, brokers, events.ProducerOptions{})
	reg := prometheus.NewRegistry()
	c := newConsumer(t, events.ConsumerOptions{
		Brokers: brokers, GroupID: "poison", Topics: []string{events.TopicFeedback},
		DeadLetter: dlp, Registerer: reg,
	})
	var mu sync.Mutex
	var good []int
	var calls int
	stop := run(t, c, func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		f, err := events.DecodeFeedback(m.Value)
		if err != nil {
			return err // a *DecodeError is poison by itself
		}
		good = append(good, seqOf(t, f))
		return nil
	})
	waitFor(t, 15*time.Second, "both good messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(good) == 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if good[0] != 1 || good[1] != 3 || calls != 3 {
		t.Errorf("handled %v in %d calls, want [1 3] in 3 (poison tried once)", good, calls)
	}

	dls := kafkatest.ReadAll(t, brokers, events.TopicDeadLetter, 1, 5*time.Second)
	var dl events.DeadLetter
	if err := json.Unmarshal(dls[0].Value, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Topic != events.TopicFeedback || dl.Offset != 1 || dl.Key != "u1" || string(dls[0].Key) != "u1" ||
		dl.Value != `{"schema":1,"event_id":` || dl.Schema != 1 || dl.TS <= 0 {
		t.Errorf("dead letter = %+v", dl)
	}
	if !strings.Contains(dl.Reason, "truncated JSON") {
		t.Errorf("reason %q should say why", dl.Reason)
	}
	if st := c.Stats(); st.DeadLettered != 1 || st.Consumed != 3 {
		t.Errorf("stats = %+v", st)
	}
	if got := metricValue(t, reg, "novarec_events_deadlettered_total", events.TopicFeedback); got != 1 {
		t.Errorf("deadlettered_total = %v", got)
	}
	if got := metricValue(t, reg, "novarec_events_consumed_total", events.TopicFeedback); got != 3 {
		t.Errorf("consumed_total = %v", got)
	}

	// Nothing is redelivered to the group afterwards: the poison message's
	// offset was committed along with the others.
	c2 := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "poison", Topics: []string{events.TopicFeedback}, DeadLetter: dlp})
	var again atomic.Int64
	stop2 := run(t, c2, func(context.Context, kafka.Message) error { again.Add(1); return nil })
	time.Sleep(700 * time.Millisecond)
	_ = stop2()
	if again.Load() != 0 {
		t.Errorf("%d messages redelivered after all were committed", again.Load())
	}
}

// TestTransientErrorRetried checks that a failing handler is retried on the
// same message and the messages after it wait for it.
func TestTransientErrorRetried(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	for i := range 5 {
		p.Publish(events.TopicFeedback, "same-user", feedbackJSON(t, "same-user", i))
	}
	flush(t, p)

	c := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "retry", Topics: []string{events.TopicFeedback}})
	var mu sync.Mutex
	var order []int
	attempts := map[int]int{}
	errDown := errors.New("redis down")
	stop := run(t, c, func(_ context.Context, m kafka.Message) error {
		f, err := events.DecodeFeedback(m.Value)
		if err != nil {
			return err
		}
		s := seqOf(t, f)
		mu.Lock()
		defer mu.Unlock()
		attempts[s]++
		if s == 2 && attempts[s] <= 3 {
			return fmt.Errorf("apply: %w", errDown)
		}
		order = append(order, s)
		return nil
	})
	waitFor(t, 15*time.Second, "all five handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 5
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[0 1 2 3 4]" {
		t.Errorf("handled in order %v, want [0 1 2 3 4]", order)
	}
	if attempts[2] != 4 || attempts[3] != 1 {
		t.Errorf("attempts = %v, want 4 for message 2 and 1 for the others", attempts)
	}
	if st := c.Stats(); st.Retries != 3 || st.DeadLettered != 0 || st.Consumed != 5 {
		t.Errorf("stats = %+v", st)
	}
	if dl := kafkatest.ReadAvailable(t, brokers, events.TopicDeadLetter, 200*time.Millisecond); len(dl) != 0 {
		t.Errorf("transient failure dead-lettered: %v", dl)
	}
}

// TestTransientErrorNotCommittedPast checks that while a message keeps
// failing, the offsets after it are not committed: a new member starts at
// the failing message.
func TestTransientErrorNotCommittedPast(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	for i := range 4 {
		p.Publish(events.TopicFeedback, "k", feedbackJSON(t, "k", i))
	}
	flush(t, p)

	c := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "stuck", Topics: []string{events.TopicFeedback}, CommitEvery: 1})
	var failing atomic.Int64
	stop := run(t, c, func(_ context.Context, m kafka.Message) error {
		f, err := events.DecodeFeedback(m.Value)
		if err != nil {
			return err
		}
		if seqOf(t, f) == 1 {
			failing.Add(1)
			return errors.New("still down")
		}
		return nil
	})
	waitFor(t, 10*time.Second, "several retries", func() bool { return failing.Load() >= 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	c2 := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "stuck", Topics: []string{events.TopicFeedback}})
	var mu sync.Mutex
	var got []int
	stop2 := run(t, c2, func(_ context.Context, m kafka.Message) error {
		f, _ := events.DecodeFeedback(m.Value)
		mu.Lock()
		got = append(got, seqOf(t, f))
		mu.Unlock()
		return nil
	})
	waitFor(t, 10*time.Second, "redelivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 3
	})
	_ = stop2()
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("after restart got %v, want [1 2 3] (resume at the failing message)", got)
	}
}

// TestPublishNeverBlocks points a producer at a port nobody listens on and
// checks Publish returns at once, the bounded buffer fills, and the rest is
// dropped and counted. No broker ever answers, so the buffer never frees
// up: a Publish that waited for room would never return, and one that
// waited a while for it would still find the buffer full. That 90 of the
// 100 calls return false proves they did not wait, without timing them.
func TestPublishNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := events.NewProducer([]string{kafkatest.FreePort(t)}, events.ProducerOptions{
		Buffer: 10, BatchSize: 5, Registerer: reg, Logger: testLogger(),
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
	})
	accepted := 0
	for i := range 100 {
		if p.Publish(events.TopicFeedback, "u", []byte(strconv.Itoa(i))) {
			accepted++
		}
	}
	st := p.Stats()
	// The buffer holds 10 and run may have taken up to one batch (5) out.
	if accepted < 10 || accepted > 15 || st.Dropped != uint64(100-accepted) {
		t.Errorf("accepted %d, stats %+v; want 10..15 accepted and the rest dropped", accepted, st)
	}
	if got := metricValue(t, reg, "novarec_events_dropped_total", events.TopicFeedback); got != float64(st.Dropped) {
		t.Errorf("dropped_total = %v, want %d", got, st.Dropped)
	}
	waitFor(t, 5*time.Second, "failed writes counted", func() bool { return p.Stats().Failed > 0 })
	if got := metricValue(t, reg, "novarec_events_failed_writes_total", events.TopicFeedback); got == 0 {
		t.Error("failed_writes_total not counted")
	}
	if st := p.Stats(); st.Buffered != accepted || st.Published != 0 {
		t.Errorf("while the broker is down: %+v; want all %d accepted still buffered", st, accepted)
	}

	// Close cannot flush to a dead broker, which would keep it retrying
	// forever: it must give up at its deadline. (A minute is only the hang
	// guard; the deadline is 200ms.)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	var err error
	select {
	case err = <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not give up at its deadline")
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want a deadline error", err)
	}
	if st := p.Stats(); st.Dropped != 100 || st.Buffered != 0 {
		t.Errorf("after Close: %+v; want all 100 dropped, none buffered", st)
	}
	if p.Publish(events.TopicFeedback, "u", []byte("late")) {
		t.Error("Publish after Close accepted")
	}
	if err := p.Produce(context.Background(), events.TopicFeedback, "u", []byte("late")); !errors.Is(err, events.ErrProducerClosed) {
		t.Errorf("Produce after Close = %v", err)
	}
}

// TestCloseFlushes checks Close writes everything queued, even when the
// batch timer would not have fired yet.
func TestCloseFlushes(t *testing.T) {
	brokers := kafkatest.Start(t)
	reg := prometheus.NewRegistry()
	p := events.NewProducer(brokers, events.ProducerOptions{
		BatchSize: 1000, BatchTimeout: time.Hour, Registerer: reg, Logger: testLogger(),
	})
	for i := range 250 {
		if !p.Publish(events.TopicImpressions, "u"+strconv.Itoa(i), []byte(strconv.Itoa(i))) {
			t.Fatal("refused")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if st := p.Stats(); st.Published != 0 || st.Buffered != 250 {
		t.Fatalf("before Close: %+v; want everything still buffered (batch timeout 1h)", st)
	}
	if got := metricValue(t, reg, "novarec_events_buffered", ""); got != 250 {
		t.Errorf("buffered gauge = %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Published != 250 || st.Buffered != 0 || st.Dropped != 0 {
		t.Errorf("after Close: %+v", st)
	}
	if got := metricValue(t, reg, "novarec_events_published_total", events.TopicImpressions); got != 250 {
		t.Errorf("published_total = %v", got)
	}
	kafkatest.ReadAll(t, brokers, events.TopicImpressions, 250, 10*time.Second)
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestProduceIsSynchronous checks Produce returns only after the broker has
// answered the produce request (the broker holds it until the test lets
// it go), and reports an unreachable broker as an error once its context
// ends.
func TestProduceIsSynchronous(t *testing.T) {
	c := brokerOn(t, 0)
	brokers := c.ListenAddrs()
	p := newProducer(t, brokers, events.ProducerOptions{BatchTimeout: time.Hour})
	held, release := make(chan struct{}), make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(held)
		c.SleepControl(func() { <-release })
		return nil, nil, false // now let the broker handle it
	})
	done := make(chan error, 1)
	go func() { done <- p.Produce(context.Background(), events.TopicDeadLetter, "k", []byte("x")) }()
	<-held
	select {
	case err := <-done:
		t.Fatalf("Produce returned (%v) while the broker held its request", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs := kafkatest.ReadAll(t, brokers, events.TopicDeadLetter, 1, 30*time.Second)
	if string(msgs[0].Value) != "x" || string(msgs[0].Key) != "k" {
		t.Errorf("got %q=%q", msgs[0].Key, msgs[0].Value)
	}

	dead := newProducer(t, []string{kafkatest.FreePort(t)}, events.ProducerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := dead.Produce(ctx, events.TopicDeadLetter, "k", []byte("x")); err == nil {
		t.Error("Produce to a dead broker succeeded")
	}
}

// TestProducerRecoversWhenBrokerReturns stops the cluster, publishes while it
// is down, restarts a cluster on the same port and checks the events that
// were accepted during the outage are delivered.
func TestProducerRecoversWhenBrokerReturns(t *testing.T) {
	start := func(port int) *kfake.Cluster {
		t.Helper()
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port),
			kfake.SeedTopics(3, events.TopicFeedback))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := start(0)
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	brokers := []string{addr}

	p := newProducer(t, brokers, events.ProducerOptions{
		Buffer: 100, BatchTimeout: 5 * time.Millisecond,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 100 * time.Millisecond,
		WriteTimeout: 2 * time.Second,
	})
	for i := range 10 {
		p.Publish(events.TopicFeedback, "u"+strconv.Itoa(i), []byte("before-"+strconv.Itoa(i)))
	}
	waitFor(t, 5*time.Second, "first events written", func() bool { return p.Stats().Published == 10 })

	c1.Close()
	for i := range 10 {
		if !p.Publish(events.TopicFeedback, "u"+strconv.Itoa(i), []byte("during-"+strconv.Itoa(i))) {
			t.Fatal("refused while buffer has room")
		}
	}
	waitFor(t, 5*time.Second, "failed writes", func() bool { return p.Stats().Failed > 0 })
	if st := p.Stats(); st.Published != 10 || st.Buffered != 10 {
		t.Fatalf("during outage: %+v", st)
	}

	c2 := start(port)
	t.Cleanup(c2.Close)
	waitFor(t, 15*time.Second, "delivery after the broker returned", func() bool { return p.Stats().Published == 20 })
	msgs := kafkatest.ReadAll(t, brokers, events.TopicFeedback, 10, 5*time.Second)
	for _, m := range msgs {
		if !strings.HasPrefix(string(m.Value), "during-") {
			t.Errorf("new cluster holds %q", m.Value)
		}
	}
	if st := p.Stats(); st.Dropped != 0 {
		t.Errorf("dropped %d", st.Dropped)
	}
}

func TestEnsureTopics(t *testing.T) {
	brokers := kafkatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// rec.feedback exists already; the new one is created.
	if err := events.EnsureTopics(ctx, brokers, events.Security{}, 4, 1, events.TopicFeedback, "rec.extra"); err != nil {
		t.Fatal(err)
	}
	if err := events.EnsureTopics(ctx, brokers, events.Security{}, 4, 1, "rec.extra"); err != nil {
		t.Fatalf("second call: %v", err)
	}
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for topic, want := range map[string]int{"rec.extra": 4, events.TopicFeedback: kafkatest.Partitions} {
		ps, err := conn.ReadPartitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != want {
			t.Errorf("%s has %d partitions, want %d", topic, len(ps), want)
		}
	}
	if err := events.EnsureTopics(ctx, []string{kafkatest.FreePort(t)}, events.Security{}, 1, 1, "x"); err == nil {
		t.Error("EnsureTopics against a dead broker succeeded")
	}
}

func TestNewConsumerValidates(t *testing.T) {
	for _, o := range []events.ConsumerOptions{
		{GroupID: "g", Topics: []string{"t"}},
		{Brokers: []string{"b"}, Topics: []string{"t"}},
		{Brokers: []string{"b"}, GroupID: "g"},
	} {
		if _, err := events.NewConsumer(o); err == nil {
			t.Errorf("NewConsumer(%+v) succeeded", o)
		}
	}
	c, err := events.NewConsumer(events.ConsumerOptions{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background(), func(context.Context, kafka.Message) error { return nil }); !errors.Is(err, events.ErrConsumerClosed) {
		t.Errorf("Run after Close = %v", err)
	}
}

// TestCloseStopsRun checks Close ends a running Run and commits.
func TestCloseStopsRun(t *testing.T) {
	brokers := kafkatest.Start(t)
	p := newProducer(t, brokers, events.ProducerOptions{})
	for i := range 10 {
		p.Publish(events.TopicFeedback, "u", feedbackJSON(t, "u", i))
	}
	flush(t, p)
	c := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "close", Topics: []string{events.TopicFeedback}, CommitInterval: time.Hour})
	var n atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- c.Run(context.Background(), func(context.Context, kafka.Message) error { n.Add(1); return nil })
	}()
	waitFor(t, 10*time.Second, "messages handled", func() bool { return n.Load() == 10 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run still running after Close")
	}
	if st := c.Stats(); st.Commits != 1 {
		t.Errorf("stats %+v; want exactly the final commit", st)
	}
}

func TestPoisonHelper(t *testing.T) {
	reason := errors.New("no such item")
	err := events.Poison(reason)
	if !errors.Is(err, events.ErrPoison) || !errors.Is(err, reason) || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("Poison(reason) = %v", err)
	}
	if !errors.Is(events.Poison(nil), events.ErrPoison) {
		t.Error("Poison(nil) is not ErrPoison")
	}
	if events.Poison(err) != err {
		t.Error("Poison wraps twice")
	}
	if errors.Is(fmt.Errorf("x: %w", reason), events.ErrPoison) {
		t.Error("plain error matches ErrPoison")
	}
}

// flush waits until p has written everything it accepted.
func flush(t testing.TB, p *events.Producer) {
	t.Helper()
	waitFor(t, 10*time.Second, "producer flush", func() bool { return p.Stats().Buffered == 0 })
}

// metricValue reads the value of series name{topic=topic} (no labels when
// topic is empty) back from reg, so tests check what /metrics would show.
func metricValue(t testing.TB, reg *prometheus.Registry, name, topic string) float64 {
	t.Helper()
	return metrictest.MustValue(t, reg, name, map[string]string{"topic": topic})
}

// TestMetricsShareRegistry checks two producers on one registry (recsvc and,
// in embedded mode, the trainer's dead-letter producer) share the series.
func TestMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	dead := []string{kafkatest.FreePort(t)}
	opts := events.ProducerOptions{Registerer: reg, Logger: testLogger(), BatchTimeout: time.Hour, BatchSize: 100}
	a := newProducer(t, dead, opts)
	b := newProducer(t, dead, opts)
	for range 3 {
		a.Publish(events.TopicFeedback, "u", []byte("x"))
	}
	for range 4 {
		b.Publish(events.TopicFeedback, "u", []byte("x"))
	}
	a.Publish("", "u", []byte("no topic"))
	b.Publish("", "u", []byte("no topic"))
	if got := metricValue(t, reg, "novarec_events_buffered", ""); got != 7 {
		t.Errorf("buffered = %v, want 7", got)
	}
	if got := metricValue(t, reg, "novarec_events_dropped_total", ""); got != 2 {
		t.Errorf("dropped{topic=\"\"} = %v, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = a.Close(ctx)
	if got := metricValue(t, reg, "novarec_events_buffered", ""); got != 4 {
		t.Errorf("buffered after closing one = %v, want 4", got)
	}
	_ = b.Close(ctx) // the broker is dead: do not let cleanup wait 5s
}
