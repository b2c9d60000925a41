package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopics creates the named topics on a real cluster if they do not
// exist yet, so that a fresh deployment works without a separate admin step
// and the producer never waits on a topic that is missing (it retries unknown
// topics rather than dropping events). Topics that already exist are left
// as they are, whatever their partition count. It asks the first reachable
// broker for the controller and sends CreateTopics there.
//
// sec is the same Security the producer and consumers use. partitions and
// replication must be at least 1, and replication at most the number of
// brokers (the controller refuses more); ctx bounds the whole call (10s
// when ctx has no deadline).
func EnsureTopics(ctx context.Context, brokers []string, sec Security, partitions, replication int, topics ...string) error {
	if len(brokers) == 0 {
		return errors.New("events: EnsureTopics: no brokers")
	}
	if partitions < 1 || replication < 1 {
		return fmt.Errorf("events: EnsureTopics: partitions (%d) and replication (%d) must be at least 1", partitions, replication)
	}
	if len(topics) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	var errs []error
	for _, b := range brokers {
		err := ensureTopicsVia(ctx, sec.dialer(0), b, partitions, replication, topics)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("events: EnsureTopics %v: %w", topics, errors.Join(errs...))
}

// topicConfigs are the settings EnsureTopics gives the topics it creates.
// The catalog keeps the latest version of every item forever (compaction
// instead of time-based deletion), so Redis can always be re-seeded.
var topicConfigs = map[string][]kafka.ConfigEntry{
	TopicCatalog: {{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
}

func ensureTopicsVia(ctx context.Context, d *kafka.Dialer, broker string, partitions, replication int, topics []string) error {
	conn, err := d.DialContext(ctx, "tcp", broker)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find controller: %w", err)
	}
	cconn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dial controller: %w", err)
	}
	defer cconn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = cconn.SetDeadline(dl)
	}
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replication, ConfigEntries: topicConfigs[t]}
	}
	// kafka-go's Conn.CreateTopics already treats TopicAlreadyExists as success.
	if err := cconn.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topics: %w", err)
	}
	return nil
}
