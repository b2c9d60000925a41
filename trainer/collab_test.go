package trainer

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/features"
	"github.com/novarec/novarec/internal/kafkatest"
	"github.com/novarec/novarec/internal/redistest"
	"github.com/novarec/novarec/recommend"
)

// TestCollabLearnerFromHistoriesAndStream runs the collaborative learner
// as the trainer does: stored (imported) histories of two planted blocks
// are counted at start, a first model is published that recsvc's catalog
// cache swaps in, and engagements arriving on rec.feedback afterwards
// (items never in any slate) reach the next published version.
func TestCollabLearnerFromHistoriesAndStream(t *testing.T) {
	brokers := kafkatest.Start(t)
	client, prefix := redistest.New(t)
	store := features.NewStore(client, features.Options{Prefix: prefix})
	ctx := context.Background()

	// Items a0..a19 and b0..b19; users of block a consume only a-items.
	var items []catalog.Item
	for _, blk := range []string{"a", "b", "c"} {
		for i := range 20 {
			items = append(items, catalog.Item{ID: fmt.Sprintf("%s%d", blk, i), Categories: []string{"x"}, Popularity: 1})
		}
	}
	if _, err := store.PutItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	for u := range 40 {
		blk := "ab"[u%2 : u%2+1]
		st := recommend.UserState{UserID: fmt.Sprintf("u%d", u)}
		for k := range 12 {
			st.History = append(st.History, recommend.Consumed{ItemID: fmt.Sprintf("%s%d", blk, (u*7+k*3)%20), TS: int64(1000 + k)})
		}
		if err := store.Save(ctx, st); err != nil {
			t.Fatal(err)
		}
	}

	cfg := collab.DefaultConfig()
	cfg.MinCount = 2
	l, err := NewCollabLearner(store, cfg, 50*time.Millisecond, testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- RunCollab(runCtx, l, events.ConsumerOptions{Brokers: brokers, CommitInterval: 50 * time.Millisecond, Logger: testLogger()})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && runCtx.Err() == nil {
			t.Errorf("RunCollab: %v", err)
		}
	}()

	var first *collab.Model
	waitUntil(t, time.Minute, "a first model from the stored histories", func() bool {
		b, err := store.GetCollab(ctx)
		if err != nil {
			return false
		}
		first, err = collab.Decode(b)
		return err == nil
	})
	if first.Version == 0 || len(first.IDs) != 40 {
		t.Fatalf("first model: version %d, %d items (want the 40 of blocks a and b)", first.Version, len(first.IDs))
	}
	for i, id := range first.IDs {
		for _, j := range first.Nbr[first.NbrStart[i]:first.NbrStart[i+1]] {
			if first.IDs[j][0] != id[0] {
				t.Fatalf("%s has neighbour %s across the planted blocks", id, first.IDs[j])
			}
		}
	}
	cache := features.NewCatalogCache(store, catalog.DefaultDim, testLogger(), nil)
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cache.Current().LearnedVersion(); got != first.Version {
		t.Fatalf("the catalog cache serves collaborative version %d, want %d", got, first.Version)
	}

	// Engagements with block c, found outside any slate, on the stream.
	p := newTestProducer(t, brokers)
	for u := range 10 {
		user := fmt.Sprintf("w%d", u)
		for k := range 6 {
			item := fmt.Sprintf("c%d", (u+k)%20)
			fb := feedback(fmt.Sprintf("e-%d-%d", u, k), "", user, item, time.Now().UnixMilli(), "click")
			// The feature updater's effect, which the learner reads.
			st, err := store.Load(ctx, user, "")
			if err != nil {
				t.Fatal(err)
			}
			st.History = slices.Insert(st.History, 0, recommend.Consumed{ItemID: item, TS: fb.TS})
			if err := store.Save(ctx, st); err != nil {
				t.Fatal(err)
			}
			publishJSON(t, p, events.TopicFeedback, user, fb)
		}
	}
	waitUntil(t, time.Minute, "a model that learned block c from the stream", func() bool {
		b, err := store.GetCollab(ctx)
		if err != nil {
			return false
		}
		m, err := collab.Decode(b)
		return err == nil && m.Version > first.Version && slices.Contains(m.IDs, "c0")
	})
}
