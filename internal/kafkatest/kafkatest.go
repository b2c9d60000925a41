// Package kafkatest gives tests a Kafka to talk to: an in-process
// Kafka-protocol cluster (events.StartEmbedded, backed by kfake) on a random
// loopback port, reached over real TCP by the same kafka-go code production
// uses, so producer, consumer-group and offset-commit behaviour is exercised
// without installing a broker. Each call to Start gets a fresh, empty
// cluster, so tests can use the real topic names and never see each other's
// data.
package kafkatest

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/events"
)

// Partitions is the partition count of every topic of a Start cluster. More
// than one, so that tests see keys spread over partitions and per-key
// ordering actually means something.
const Partitions = 3

// Start starts an embedded cluster with events.EmbeddedTopics of Partitions
// partitions each, stops it when the test ends, and returns its bootstrap
// addresses.
func Start(t testing.TB) []string {
	t.Helper()
	e, err := events.StartEmbedded(Partitions)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Brokers()
}

// ReadAll reads n messages from every partition of topic, starting at the
// beginning and without a consumer group (nothing is committed, so it does
// not disturb the consumers under test). It fails the test if fewer than n
// arrive within timeout (at least a minute). The result holds exactly n messages, ordered by
// partition and then offset (so per-key order can be checked); if more than
// n are available the extra ones are left out, so assert "no more" with a
// separate, short ReadAvailable.
func ReadAll(t testing.TB, brokers []string, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	// The timeout only guards against a hang (ReadAll returns as soon as n
	// messages are in): at least a minute, since a loaded machine can be
	// many times slower than the one a timeout was picked on.
	timeout = max(timeout, time.Minute)
	msgs, err := read(brokers, topic, n, timeout)
	if err != nil {
		t.Fatalf("kafkatest: ReadAll(%s, %d): %v", topic, n, err)
	}
	if len(msgs) < n {
		t.Fatalf("kafkatest: ReadAll(%s): got %d of %d messages within %v", topic, len(msgs), n, timeout)
	}
	return msgs
}

// ReadAvailable returns every message written to topic before the call
// (up to each partition's end offset at that moment), ordered by partition
// and offset: for asserting that nothing beyond what is expected was
// written. It counts by offsets, not by waiting, so a slow machine cannot
// make it return less; wait only guards against a hang (at least a minute).
func ReadAvailable(t testing.TB, brokers []string, topic string, wait time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), max(wait, time.Minute))
	defer cancel()
	var msgs []kafka.Message
	err := events.ReadTopic(ctx, brokers, events.Security{}, topic, func(_ int, m kafka.Message) error {
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		t.Fatalf("kafkatest: ReadAvailable(%s): %v", topic, err)
	}
	return msgs
}

// read collects up to n messages from all partitions of topic until timeout.
func read(brokers []string, topic string, n int, timeout time.Duration) ([]kafka.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	parts, err := partitions(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		got  []kafka.Message
		full = make(chan struct{})
		wg   sync.WaitGroup
	)
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:     brokers,
			Topic:       topic,
			Partition:   p,
			StartOffset: kafka.FirstOffset,
			MinBytes:    1,
			MaxBytes:    10 << 20,
			MaxWait:     100 * time.Millisecond,
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				if len(got) < n {
					got = append(got, m)
					if len(got) == n {
						close(full)
					}
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-full:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	slices.SortFunc(got, func(a, b kafka.Message) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return int(a.Offset - b.Offset)
	})
	return got, nil
}

// partitions lists topic's partition ids.
func partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	var errs []error
	for _, b := range brokers {
		conn, err := (&kafka.Dialer{}).DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		ps, err := conn.ReadPartitions(topic)
		_ = conn.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids := make([]int, 0, len(ps))
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		if len(ids) == 0 {
			return nil, errors.New("topic " + topic + " has no partitions")
		}
		return ids, nil
	}
	if len(errs) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	return nil, errors.Join(errs...)
}

// FreePort returns a loopback address on which nothing listens (a port
// that was just free), for tests of an unreachable broker.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	_ = ln.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port))
}
