package features

import (
	"fmt"
	"slices"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/recommend"
)

// blockModel fits a collaborative model on items b0..bN-1 where users
// consume items of one parity only, so the model has structure to carry.
func blockModel(t *testing.T, items int, version uint64) *collab.Model {
	t.Helper()
	cfg := collab.DefaultConfig()
	cfg.Dim = catalog.DefaultDim
	c, err := collab.NewCounts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for u := 0; u < 200; u++ {
		var hist []string
		for k := 0; k < 20; k++ {
			id := fmt.Sprint("b", (u%2+2*((u*7+k*13)%(items/2)))%items)
			c.Add(id, hist)
			hist = append([]string{id}, hist...)
		}
	}
	m := collab.Fit(c, version)
	if len(m.Centroids) == 0 {
		t.Fatal("test model has no topics")
	}
	return m
}

// A published collaborative model is folded into the catalog snapshot; a
// corrupt one is rejected and the previous one keeps serving.
func TestCatalogCacheFoldsCollabModel(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	var items []catalog.Item
	for i := 0; i < 120; i++ {
		items = append(items, catalog.Item{ID: fmt.Sprint("b", i), Categories: []string{"drama"}})
	}
	if _, err := s.PutItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	cache := NewCatalogCache(s, catalog.DefaultDim, nil, nil)
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if v := cache.Current().LearnedVersion(); v != 0 {
		t.Fatalf("learned version %d before any model", v)
	}
	m := blockModel(t, 120, 5)
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCollab(ctx, 5, b); err != nil {
		t.Fatal(err)
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	snap := cache.Current()
	if snap.LearnedVersion() != 5 || snap.NumTopics() == 0 {
		t.Fatalf("after publishing: learned version %d, %d topics", snap.LearnedVersion(), snap.NumTopics())
	}
	i, _ := snap.Index("b0")
	if nbr, _ := snap.Neighbors(i); len(nbr) == 0 {
		t.Error("b0 has no neighbours")
	}
	// Novelty now follows topics: an item of b0's topic is familiar to a
	// user who consumed b0, though every item shares the one category.
	seen := recommend.SeenOf(snap, []recommend.Consumed{{ItemID: "b0"}})
	familiar, novel := 0, 0
	for j := int32(0); int(j) < snap.Len(); j++ {
		if _, isNovel := seen.Novelty(snap, j); isNovel {
			novel++
		} else {
			familiar++
		}
	}
	if novel == 0 || familiar == 0 {
		t.Errorf("%d novel and %d familiar items for a user of one item: topics not in use", novel, familiar)
	}

	corrupt := slices.Clone(b)
	corrupt[len(corrupt)/2] ^= 0xff
	if err := s.PutCollab(ctx, 6, corrupt); err != nil {
		t.Fatal(err)
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if v := cache.Current().LearnedVersion(); v != 5 {
		t.Errorf("after a corrupt model: learned version %d, want the previous 5", v)
	}
	var hist []string
	if err := s.ScanHistories(ctx, func(user string, h []recommend.Consumed) error {
		hist = append(hist, user)
		return nil
	}); err != nil || len(hist) != 0 {
		t.Errorf("scan of a store without users: %v, %v", hist, err)
	}
}

func TestScanHistories(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, Options{})
	ctx := t.Context()
	want := map[string]int{}
	for u := 0; u < 700; u++ { // several SCAN batches and pipelines
		id := fmt.Sprint("user{", u, "}")
		st := recommend.UserState{UserID: id}
		for k := 0; k <= u%5; k++ {
			st.History = append(st.History, recommend.Consumed{ItemID: fmt.Sprint("i", k), TS: int64(k)})
		}
		want[id] = len(st.History)
		if err := s.Save(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	if err := s.ScanHistories(ctx, func(user string, h []recommend.Consumed) error {
		got[user] += len(h)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("scanned %d users, want %d", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("%s: %d entries, want %d", id, got[id], n)
		}
	}
	recent, err := s.RecentHistory(ctx, "user{4}", 2)
	if err != nil || len(recent) != 2 {
		t.Errorf("recent history: %v, %v", recent, err)
	}
}
