package kafkatest_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
)

func TestStartSeedsTopicsAndReadAll(t *testing.T) {
	brokers := kafkatest.Start(t)
	if len(brokers) != 1 {
		t.Fatalf("brokers = %v", brokers)
	}
	conn, err := kafka.Dial("tcp", brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, topic := range events.EmbeddedTopics {
		ps, err := conn.ReadPartitions(topic)
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if len(ps) != kafkatest.Partitions {
			t.Errorf("%s has %d partitions, want %d", topic, len(ps), kafkatest.Partitions)
		}
	}

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 12 {
		msgs = append(msgs, kafka.Message{Topic: events.TopicFeedback, Key: []byte(fmt.Sprint("k", i%4)), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	got := kafkatest.ReadAll(t, brokers, events.TopicFeedback, 12, 5*time.Second)
	if len(got) != 12 {
		t.Fatalf("ReadAll returned %d messages", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.Partition > b.Partition || (a.Partition == b.Partition && a.Offset >= b.Offset) {
			t.Errorf("not ordered by partition, offset: %d/%d before %d/%d", a.Partition, a.Offset, b.Partition, b.Offset)
		}
	}
	if n := len(kafkatest.ReadAll(t, brokers, events.TopicFeedback, 5, 5*time.Second)); n != 5 {
		t.Errorf("ReadAll(5) returned %d", n)
	}
	if n := len(kafkatest.ReadAvailable(t, brokers, events.TopicFeedback, 300*time.Millisecond)); n != 12 {
		t.Errorf("ReadAvailable returned %d, want 12", n)
	}
	if n := len(kafkatest.ReadAvailable(t, brokers, events.TopicImpressions, 100*time.Millisecond)); n != 0 {
		t.Errorf("empty topic: %d messages", n)
	}
}

func TestFreePortIsUnreachable(t *testing.T) {
	addr := kafkatest.FreePort(t)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s", addr)
	}
}

func TestStartGivesEachTestItsOwnCluster(t *testing.T) {
	a, b := kafkatest.Start(t), kafkatest.Start(t)
	if a[0] == b[0] {
		t.Errorf("two clusters on %s", a[0])
	}
}
