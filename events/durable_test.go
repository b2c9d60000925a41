package events_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/metrictest"
)

// brokerOn starts a one-broker cluster on port (0 = any) with the event
// topics; the test may close it early (Close is idempotent).
func brokerOn(t *testing.T, port int) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(kafkatest.Partitions, events.EmbeddedTopics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func newDurable(t *testing.T, brokers []string, spool *events.Spool) (*events.Durable, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := newProducer(t, brokers, events.ProducerOptions{WriteTimeout: 2 * time.Second, Registerer: reg})
	d := events.NewDurable(p, events.DurableOptions{Spool: spool, AckTimeout: 300 * time.Millisecond,
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond, Registerer: reg, Logger: testLogger()})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, reg
}

// TestDurableSpoolsWhileTheBrokerIsGone writes events while the broker is
// up, while it is gone (they are spooled and Write still succeeds) and
// after a broker is back on the same address: every written event arrives,
// and one user's events keep their order.
func TestDurableSpoolsWhileTheBrokerIsGone(t *testing.T) {
	c1 := brokerOn(t, 0)
	brokers := c1.ListenAddrs()
	spool, err := events.OpenSpool(t.TempDir(), events.SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, reg := newDurable(t, brokers, spool)
	write := func(i int) {
		t.Helper()
		v := fmt.Sprintf(`{"event_id":"e%03d"}`, i)
		if err := d.Write(t.Context(), events.TopicFeedback, "alice", []byte(v)); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	write(0)
	if d.Spooling() {
		t.Fatal("spooling while the broker is up")
	}
	c1.Close()
	for i := 1; i <= 50; i++ {
		write(i)
	}
	if !d.Spooling() || spool.Stats().Records == 0 {
		t.Fatalf("nothing spooled with the broker gone: %+v", spool.Stats())
	}
	if got := metrictest.MustValue(t, reg, "novarec_events_durable_writes_total", map[string]string{"topic": events.TopicFeedback, "via": "spool"}); got < 50 {
		t.Errorf("writes via the spool counted %v, want 50", got)
	}
	c2 := brokerOn(t, portOf(t, brokers[0]))
	msgs := kafkatest.ReadAll(t, c2.ListenAddrs(), events.TopicFeedback, 50, 60*time.Second)
	for i, m := range msgs {
		if want := fmt.Sprintf(`{"event_id":"e%03d"}`, i+1); string(m.Value) != want {
			t.Fatalf("message %d on the new broker is %s, want %s (in order)", i, m.Value, want)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); d.Spooling(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the spool did not empty")
		}
	}
	write(51) // straight to Kafka again
	if got := metrictest.MustValue(t, reg, "novarec_events_durable_writes_total", map[string]string{"topic": events.TopicFeedback, "via": "kafka"}); got != 2 {
		t.Errorf("writes acknowledged by Kafka counted %v, want 2", got)
	}
}

// TestDurableRefusesWhatItCannotKeep checks the two refusals: no broker and
// no spool, and a full spool.
func TestDurableRefusesWhatItCannotKeep(t *testing.T) {
	gone := []string{kafkatest.FreePort(t)}
	p := newProducer(t, gone, events.ProducerOptions{})
	d := events.NewDurable(p, events.DurableOptions{AckTimeout: 300 * time.Millisecond, Logger: testLogger()})
	if err := d.Write(t.Context(), events.TopicFeedback, "k", []byte(`{}`)); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("no broker, no spool: %v, want ErrUnavailable", err)
	}
	// Right after a failure, the next write is refused without trying
	// Kafka (and waiting for it) again.
	failed := p.Stats().Failed
	if err := d.Write(t.Context(), events.TopicFeedback, "k", []byte(`{}`)); !errors.Is(err, events.ErrUnavailable) || p.Stats().Failed != failed {
		t.Errorf("second write: %v, failed writes %d -> %d; want ErrUnavailable without a Kafka attempt", err, failed, p.Stats().Failed)
	}
	spool, err := events.OpenSpool(t.TempDir(), events.SpoolOptions{MaxBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	d, reg := newDurable(t, gone, spool)
	var full error
	for i := 0; i < 20 && full == nil; i++ {
		full = d.Write(t.Context(), events.TopicFeedback, "k", []byte(`{"event_id":"0123456789"}`))
	}
	if !errors.Is(full, events.ErrSpoolFull) {
		t.Errorf("writing past the spool's bound: %v, want ErrSpoolFull", full)
	}
	if got := metrictest.MustValue(t, reg, "novarec_events_durable_refused_total", map[string]string{"topic": events.TopicFeedback, "reason": "spool_full"}); got != 1 {
		t.Errorf("refusals counted %v, want 1", got)
	}
}

// TestProducerPing: Ping answers whether a broker answers now, not what a
// cached connection remembers.
func TestProducerPing(t *testing.T) {
	c := brokerOn(t, 0)
	p := newProducer(t, c.ListenAddrs(), events.ProducerOptions{WriteTimeout: 5 * time.Second})
	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("broker up: %v", err)
	}
	c.Close()
	if err := p.Ping(t.Context()); err == nil {
		t.Fatal("broker gone, yet Ping succeeded")
	}
}

// TestEmbeddedAtFixedAddress restarts an embedded broker at the address it
// had, as bench/kafka -addr does.
func TestEmbeddedAtFixedAddress(t *testing.T) {
	addr := kafkatest.FreePort(t)
	for round := range 2 {
		k, err := events.StartEmbeddedAt(addr, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Brokers(); len(got) != 1 || got[0] != addr {
			k.Close()
			t.Fatalf("round %d: brokers %v, want [%s]", round, got, addr)
		}
		p := newProducer(t, k.Brokers(), events.ProducerOptions{})
		err = p.Produce(t.Context(), events.TopicFeedback, "k", []byte("x"))
		k.Close()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if _, err := events.StartEmbeddedAt("no-port", 1); err == nil {
		t.Error("an address without a port was accepted")
	}
}
