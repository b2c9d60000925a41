package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
)

// TopicCatalog holds the item catalog where it survives Redis: one message
// per upserted item, keyed by item id, in a compacted topic (cleanup.policy
// compact, see EnsureTopics), so the latest version of every item is kept
// for as long as the topic exists, whatever the retention of the event
// topics. Redis is re-seeded from it (features.CatalogKeeper).
const TopicCatalog = "rec.catalog"

// CatalogLog appends items to TopicCatalog and reads the catalog back.
type CatalogLog struct {
	p       *Producer
	brokers []string
	sec     Security
}

// NewCatalogLog returns a CatalogLog that writes through p and reads from
// brokers with sec.
func NewCatalogLog(p *Producer, brokers []string, sec Security) *CatalogLog {
	return &CatalogLog{p: p, brokers: brokers, sec: sec}
}

// Append writes items to the topic and returns once the brokers have
// acknowledged all of them (from all in-sync replicas).
func (l *CatalogLog) Append(ctx context.Context, items []catalog.Item) error {
	msgs := make([]kafka.Message, len(items))
	for i := range items {
		b, err := json.Marshal(&items[i])
		if err != nil {
			return fmt.Errorf("events: catalog item %q: %w", items[i].ID, err)
		}
		msgs[i] = kafka.Message{Topic: TopicCatalog, Key: []byte(items[i].ID), Value: b}
	}
	if err := l.p.ProduceMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("events: append to the catalog log: %w", err)
	}
	return nil
}

// Items reads the topic from its start to the end it has when Items is
// called and returns the latest version of every item, sorted by id. A
// message with an empty value deletes its item (a tombstone); messages that
// do not decode to a valid item are skipped and counted in skipped.
func (l *CatalogLog) Items(ctx context.Context) (items []catalog.Item, skipped int, err error) {
	latest := map[string]catalog.Item{}
	err = ReadTopic(ctx, l.brokers, l.sec, TopicCatalog, func(_ int, m kafka.Message) error {
		id := string(m.Key)
		if len(m.Value) == 0 {
			delete(latest, id)
			return nil
		}
		var it catalog.Item
		if err := json.Unmarshal(m.Value, &it); err != nil || it.ID != id || it.Validate(len(it.Embedding)) != nil {
			skipped++
			return nil
		}
		latest[id] = it
		return nil
	})
	if err != nil {
		return nil, skipped, err
	}
	items = make([]catalog.Item, 0, len(latest))
	for _, it := range latest {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b catalog.Item) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return items, skipped, nil
}

// ReadTopic calls fn for every message of topic from the first retained
// offset of each partition to the end offset the partition has when
// ReadTopic starts, one partition after the other, in offset order. It
// joins no consumer group and commits nothing. An error from fn stops it.
func ReadTopic(ctx context.Context, brokers []string, sec Security, topic string, fn func(partition int, m kafka.Message) error) error {
	if len(brokers) == 0 {
		return errors.New("events: ReadTopic: no brokers")
	}
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second,
		Transport: &kafka.Transport{ClientID: "novarec", SASL: sec.SASL, TLS: sec.TLS}}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("events: ReadTopic %s: metadata: %w", topic, err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return fmt.Errorf("events: ReadTopic %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return fmt.Errorf("events: ReadTopic %s: no partitions", topic)
	}
	offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return fmt.Errorf("events: ReadTopic %s: list offsets: %w", topic, err)
	}
	parts := offs.Topics[topic]
	slices.SortFunc(parts, func(a, b kafka.PartitionOffsets) int { return a.Partition - b.Partition })
	for _, p := range parts {
		if p.Error != nil {
			return fmt.Errorf("events: ReadTopic %s/%d: %w", topic, p.Partition, p.Error)
		}
		if p.LastOffset <= p.FirstOffset {
			continue
		}
		if err := readPartition(ctx, brokers, sec, topic, p, fn); err != nil {
			return err
		}
	}
	return nil
}

// readPartition reads one partition from p.FirstOffset up to p.LastOffset.
func readPartition(ctx context.Context, brokers []string, sec Security, topic string, p kafka.PartitionOffsets, fn func(int, kafka.Message) error) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: p.Partition, Dialer: sec.dialer(10 * time.Second),
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(p.FirstOffset); err != nil {
		return fmt.Errorf("events: ReadTopic %s/%d: %w", topic, p.Partition, err)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			return fmt.Errorf("events: ReadTopic %s/%d at offset %d of %d: %w", topic, p.Partition, r.Offset(), p.LastOffset, err)
		}
		if m.Offset >= p.LastOffset {
			return nil
		}
		if err := fn(p.Partition, m); err != nil {
			return err
		}
		if m.Offset >= p.LastOffset-1 {
			return nil
		}
	}
}
