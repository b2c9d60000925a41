package events_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
)

// BenchmarkProducer measures end-to-end producer throughput into the embedded
// cluster: b.N events of ~200 bytes over 1000 users, published as fast as the
// buffer accepts them, timed until Close has flushed them all (so msgs/s is
// acknowledged events per second, not enqueues).
func BenchmarkProducer(b *testing.B) {
	brokers := kafkatest.Start(b)
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger()})
	values := make([][]byte, 1000)
	for i := range values {
		values[i] = feedbackJSON(b, "user-"+strconv.Itoa(i), i)
	}
	b.SetBytes(int64(len(values[0])))
	b.ResetTimer()
	start := time.Now()
	retries := 0
	for i := 0; i < b.N; i++ {
		for !p.Publish(events.TopicFeedback, "user-"+strconv.Itoa(i%1000), values[i%1000]) {
			// Count the refusal as a drop in Stats, but retry so every
			// event is delivered and throughput is not inflated.
			retries++
			runtime.Gosched()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if st := p.Stats(); st.Published != uint64(b.N) {
		b.Fatalf("published %d of %d", st.Published, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(retries)/float64(b.N), "buffer-full/op")
}

// BenchmarkPublish measures the cost Publish adds to a request (enqueue
// only), from parallel goroutines, while the background writer drains into
// the embedded cluster. Events refused by a full buffer still cost an op.
func BenchmarkPublish(b *testing.B) {
	brokers := kafkatest.Start(b)
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger()})
	value := feedbackJSON(b, "u", 1)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			p.Publish(events.TopicFeedback, "user", value)
			i++
		}
	})
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = p.Close(ctx)
	st := p.Stats()
	b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/op")
}

// BenchmarkProduceSync measures one synchronous write (the dead-letter path).
func BenchmarkProduceSync(b *testing.B) {
	brokers := kafkatest.Start(b)
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger()})
	defer p.Close(context.Background())
	value := feedbackJSON(b, "u", 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Produce(ctx, events.TopicDeadLetter, "u", value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumer measures consumer-group throughput: b.N events are
// written first (untimed); the timer covers joining the group, fetching,
// a handler that decodes each event, and the batched commits.
func BenchmarkConsumer(b *testing.B) {
	brokers := kafkatest.Start(b)
	p := events.NewProducer(brokers, events.ProducerOptions{Logger: testLogger(), Buffer: 100000})
	for i := 0; i < b.N; i++ {
		user := "user-" + strconv.Itoa(i%1000)
		for !p.Publish(events.TopicFeedback, user, feedbackJSON(b, user, i)) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	c, err := events.NewConsumer(events.ConsumerOptions{
		Brokers: brokers, GroupID: "bench", Topics: []string{events.TopicFeedback}, Logger: testLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	var n atomic.Int64
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() {
		_ = c.Run(runCtx, func(_ context.Context, m kafka.Message) error {
			if _, err := events.DecodeFeedback(m.Value); err != nil {
				return err
			}
			if n.Add(1) == int64(b.N) {
				close(done)
			}
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("consumed %d of %d", n.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}
