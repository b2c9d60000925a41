package events_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/events"
)

// TestCatalogLog appends items in several upserts (updates, a tombstone, a
// malformed message) and reads back the latest version of each.
func TestCatalogLog(t *testing.T) {
	c := brokerOn(t, 0)
	brokers := c.ListenAddrs()
	p := newProducer(t, brokers, events.ProducerOptions{})
	log := events.NewCatalogLog(p, brokers, events.Security{})
	var want []catalog.Item
	for i := range 40 {
		want = append(want, catalog.Item{ID: fmt.Sprintf("i%02d", i), Categories: []string{"c"}, Popularity: float64(i)})
	}
	if err := log.Append(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	// Updates of some items, a deletion, and garbage.
	want[3] = catalog.Item{ID: "i03", Categories: []string{"new"}, Embedding: []float32{1, 2}}
	want[7].Popularity = 1000
	if err := log.Append(t.Context(), []catalog.Item{want[3], want[7]}); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceMessages(t.Context(),
		kafka.Message{Topic: events.TopicCatalog, Key: []byte("i05")},
		kafka.Message{Topic: events.TopicCatalog, Key: []byte("bad"), Value: []byte("{")},
	); err != nil {
		t.Fatal(err)
	}
	want = append(want[:5], want[6:]...)

	got, skipped, err := log.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 1 || !reflect.DeepEqual(got, want) {
		t.Fatalf("Items: %d items, %d skipped; want %d items and the malformed one skipped\n got %+v", len(got), skipped, len(want), got)
	}
	// ReadTopic sees every message, a partition at a time.
	n, last := 0, -1
	err = events.ReadTopic(t.Context(), brokers, events.Security{}, events.TopicCatalog, func(part int, _ kafka.Message) error {
		if part < last {
			t.Fatalf("partition %d after %d", part, last)
		}
		last = part
		n++
		return nil
	})
	if err != nil || n != 40+2+2 {
		t.Fatalf("ReadTopic: %d messages, %v; want 44", n, err)
	}
}
