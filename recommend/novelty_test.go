package recommend

import (
	"fmt"
	"math"
	"testing"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
)

// handBuilt is a catalog of six items in 2-d with a learned model of three
// topics: a1, a2 in topic 0 (east), b1 in topic 1 (north), c1 in topic 2
// (west); cold1 and cold2 are not learned (categories only).
func handBuilt(t *testing.T) *catalog.Snapshot {
	t.Helper()
	items := []catalog.Item{
		{ID: "a1", Categories: []string{"drama"}, Embedding: []float32{1, 0}},
		{ID: "a2", Categories: []string{"drama"}, Embedding: []float32{1, 0.1}},
		{ID: "b1", Categories: []string{"drama"}, Embedding: []float32{0, 1}},
		{ID: "c1", Categories: []string{"drama"}, Embedding: []float32{-1, 0}},
		{ID: "cold1", Categories: []string{"drama", "horror"}, Embedding: []float32{1, 1}},
		{ID: "cold2", Categories: []string{"horror"}, Embedding: []float32{1, 1}},
	}
	return withLearned(t, items, &catalog.Learned{
		Version: 1, Dim: 2, IDs: []string{"a1", "a2", "b1", "c1"}, Count: []float32{100, 100, 100, 100},
		Emb:       []float32{1, 0, 0.995, 0.0995, 0, 1, -1, 0},
		Topic:     []int32{0, 0, 1, 2},
		Centroids: []float32{1, 0, 0, 1, -1, 0},
		NbrStart:  []int32{0, 1, 2, 2, 2}, Nbr: []int32{1, 0}, NbrSim: []float32{0.9, 0.9},
	})
}

// withLearned builds a 2-d catalog of items and folds l into it.
func withLearned(t *testing.T, items []catalog.Item, l *catalog.Learned) *catalog.Snapshot {
	t.Helper()
	base, err := catalog.Build(1, 2, items)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := base.WithLearned(l)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestTopicNovelty(t *testing.T) {
	snap := handBuilt(t)
	idx := func(id string) int32 { i, _ := snap.Index(id); return i }
	// a1 is a drama: the user has consumed one of the catalog's two
	// categories, which then weigh half (w = ½).
	seen := SeenOf(snap, []Consumed{{ItemID: "a1"}})
	for _, tc := range []struct {
		id       string
		min, max float64
		novel    bool
	}{
		{"a2", 0, 0, false},        // a topic and a category the user consumed
		{"b1", 0.5, 0.5, true},     // unseen topic, orthogonal to the taste (1), a seen category (0): ½·1 + ½·0
		{"c1", 0.5, 0.5, true},     // unseen topic, opposite: capped at 1, ½·1 + ½·0
		{"cold1", 0.5, 0.5, false}, // cold: half its categories unseen
		{"cold2", 1, 1, true},      // cold: no category seen
	} {
		nov, novel := seen.Novelty(snap, idx(tc.id))
		if nov < tc.min-1e-6 || nov > tc.max+1e-6 || novel != tc.novel {
			t.Errorf("%s: novelty %.3f novel %v, want [%.2f, %.2f] %v", tc.id, nov, novel, tc.min, tc.max, tc.novel)
		}
		if got := seen.IsNovel(snap, idx(tc.id)); got != tc.novel {
			t.Errorf("%s: IsNovel %v, want %v", tc.id, got, tc.novel)
		}
	}
	// Graded: an unseen topic near the taste is less novel than a far one.
	seenB := SeenOf(snap, []Consumed{{ItemID: "b1"}})
	near, _ := seenB.Novelty(snap, idx("a2"))
	far, _ := SeenOf(snap, []Consumed{{ItemID: "c1"}}).Novelty(snap, idx("a2"))
	if !(near < far) {
		t.Errorf("novelty of a2 for a north-facing user %.3f, for a west-facing one %.3f: want the first smaller", near, far)
	}
	// Without history everything learned is novel.
	if nov, novel := SeenOf(snap, nil).Novelty(snap, idx("a1")); nov != 1 || !novel {
		t.Errorf("cold user: %.2f %v", nov, novel)
	}
}

// categorised is a learned catalog of four categories over three topics:
// t0 holds a1 (drama) and w1 (war), t1 holds b1 (drama), b2 (horror) and
// b3 (horror and comedy), t2 holds d1 (drama, horror and war).
func categorised(t *testing.T) *catalog.Snapshot {
	t.Helper()
	items := []catalog.Item{
		{ID: "a1", Categories: []string{"drama"}},
		{ID: "w1", Categories: []string{"war"}},
		{ID: "b1", Categories: []string{"drama"}},
		{ID: "b2", Categories: []string{"horror"}},
		{ID: "b3", Categories: []string{"horror", "comedy"}},
		{ID: "d1", Categories: []string{"drama", "horror", "war"}},
	}
	return withLearned(t, items, &catalog.Learned{
		Version: 1, Dim: 2, IDs: []string{"a1", "w1", "b1", "b2", "b3", "d1"}, Count: []float32{100, 100, 100, 100, 100, 100},
		Emb:       []float32{1, 0, 1, 0, 0, 1, 0, 1, 0, 1, -1, 0},
		Topic:     []int32{0, 0, 1, 1, 1, 2},
		Centroids: []float32{1, 0, 0, 1, -1, 0},
		NbrStart:  []int32{0, 0, 0, 0, 0, 0, 0},
	})
}

// TestNoveltyWeighsCategories: the catalog's categories weigh by the
// share of them the user has not consumed, and a new topic within the
// user's categories is not novel while that share is large.
func TestNoveltyWeighsCategories(t *testing.T) {
	snap := categorised(t)
	idx := func(id string) int32 { i, _ := snap.Index(id); return i }
	for _, tc := range []struct {
		name    string
		history []string
		id      string
		nov     float64
		novel   bool
	}{
		// After a1 (drama): w = ¾, and every unseen topic is orthogonal
		// to the taste (topic novelty 1) or opposite (1, capped).
		{"new topic, seen category", []string{"a1"}, "b1", 0.25, false},
		{"new topic, new category", []string{"a1"}, "b2", 1, true},
		{"new topic, two new categories", []string{"a1"}, "b3", 1, true},
		{"new topic, two of three categories new", []string{"a1"}, "d1", 0.25 + 0.75*2.0/3, true},
		{"seen topic, new category", []string{"a1"}, "w1", 0.75, false},
		{"seen topic, seen category", []string{"a1"}, "a1", 0, false},
		// After a1, b2 and b3 (drama, horror, comedy): w = ¼, the topics
		// decide; d1's topic is new, west of a taste between east and
		// north (topic novelty capped at 1), one of its three categories
		// new.
		{"few categories left: new topic, mostly seen categories", []string{"a1", "b2", "b3"}, "d1", 0.75 + 0.25/3, true},
		{"few categories left: seen topic, new category", []string{"a1", "b2", "b3"}, "w1", 0.25, false},
	} {
		hist := make([]Consumed, len(tc.history))
		for k, id := range tc.history {
			hist[k] = Consumed{ItemID: id}
		}
		seen := SeenOf(snap, hist)
		nov, novel := seen.Novelty(snap, idx(tc.id))
		if math.Abs(nov-tc.nov) > 1e-6 || novel != tc.novel {
			t.Errorf("%s: %s after %v: novelty %.4f novel %v, want %.4f %v", tc.name, tc.id, tc.history, nov, novel, tc.nov, tc.novel)
		}
	}
}

// TestIsNovelIsNoveltysFlag: IsNovel, which skips the taste's distance
// where the categories settle it, agrees with Novelty on every item for
// histories across the categories' weights.
func TestIsNovelIsNoveltysFlag(t *testing.T) {
	for _, snap := range []*catalog.Snapshot{handBuilt(t), categorised(t)} {
		ids := make([]string, snap.Len())
		for i := range ids {
			ids[i] = snap.Item(int32(i)).ID
		}
		// Every history of up to two items.
		hists := [][]Consumed{nil}
		for _, a := range ids {
			hists = append(hists, []Consumed{{ItemID: a}})
			for _, b := range ids {
				hists = append(hists, []Consumed{{ItemID: a}, {ItemID: b}})
			}
		}
		for _, h := range hists {
			seen := SeenOf(snap, h)
			for i := range ids {
				nov, novel := seen.Novelty(snap, int32(i))
				if got := seen.IsNovel(snap, int32(i)); got != novel || nov < 0 || nov > 1 {
					t.Errorf("%s after %v: IsNovel %v, Novelty %.3f %v", ids[i], h, got, nov, novel)
				}
			}
		}
	}
}

// Observe adds every consumption, however rated, to the consumed filter,
// and the engine then never serves it, though the history (engaged items
// only) does not hold it.
func TestConsumedExcluded(t *testing.T) {
	snap := sampleSnapshot(t, 300)
	st := UserState{UserID: "u"}
	e := NewEngine(Config{})
	m := DefaultModel()
	first, err := e.Decide(Request{K: 10, Deterministic: true}, &st, snap, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, it := range first.Items {
		v := 1.0 // a poor rating: consumed, not engaged
		if k%2 == 0 {
			v = 5
		}
		Observe(&st, snap, Feedback{UserID: "u", ItemID: it.ItemID, Type: Rating, Value: v, TS: int64(k + 1)}, 0, intent.ModeModel{})
	}
	if len(st.History) != 5 || st.Consumed.N != 10 {
		t.Fatalf("history %d, consumed %d after 5 good and 5 poor ratings", len(st.History), st.Consumed.N)
	}
	st.Session = Session{}
	for trial := 0; trial < 5; trial++ {
		d, err := e.Decide(Request{K: 10, Deterministic: true}, &st, snap, m, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range d.Items {
			for _, old := range first.Items {
				if it.ItemID == old.ItemID {
					t.Fatalf("consumed item %s served again", it.ItemID)
				}
			}
		}
	}
}

// The neighbour pool brings in the learned neighbours of the user's recent
// items, and the collaborative score ranks them.
func TestNeighborPool(t *testing.T) {
	snap := handBuilt(t)
	st := UserState{UserID: "u", History: []Consumed{{ItemID: "a1"}}}
	m := DefaultModel()
	m.Ranker.Theta = [ranker.NumFeatures]float64{ranker.FCollab: 1} // collaborative score only
	d, err := NewEngine(Config{Candidates: 4}).Decide(Request{K: 1, Deterministic: true}, &st, snap, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Items) != 1 || d.Items[0].ItemID != "a2" || d.Items[0].Features[ranker.FCollab] != 1 {
		t.Errorf("slate %+v, want a2 (a1's only neighbour) with collaborative score 1", d.Items)
	}
}

// TestNoveltyOfManyCategories: items whose categories lie beyond the 64
// of the catalog's bit sets score as the definition says (the share of
// their categories absent from the history), like those within them.
func TestNoveltyOfManyCategories(t *testing.T) {
	cat := func(c int) string { return fmt.Sprintf("c%02d", c) }
	var items []catalog.Item
	for i := 0; i < 300; i++ {
		cats := []string{cat(i % 70), cat((i * 7) % 70)}
		if i%5 == 0 {
			cats = append(cats, cat(65+i%5))
		}
		items = append(items, catalog.Item{ID: fmt.Sprint("i", i), Categories: cats})
	}
	snap, err := catalog.Build(1, 8, items)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hist []int
	}{
		{"empty", nil},
		{"narrow", []int{1, 2, 3}},
		{"with wide items", []int{0, 5, 64, 66, 130}},
		{"broad", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 40, 69}},
	} {
		var hist []Consumed
		seen := map[int32]bool{}
		for _, i := range tc.hist {
			hist = append(hist, Consumed{ItemID: items[i].ID})
			idx, _ := snap.Index(items[i].ID)
			for _, c := range snap.Categories(idx) {
				seen[c] = true
			}
		}
		s := SeenOf(snap, hist)
		for i := int32(0); int(i) < snap.Len(); i++ {
			cats := snap.Categories(i)
			unseen := 0
			for _, c := range cats {
				if !seen[c] {
					unseen++
				}
			}
			want := float64(unseen) / float64(len(cats))
			if nov, novel := s.Novelty(snap, i); nov != want || novel != (unseen == len(cats)) {
				t.Fatalf("%s: item %s (categories %v): novelty %v %v, want %v", tc.name, snap.Item(i).ID, cats, nov, novel, want)
			}
			if s.IsNovel(snap, i) != (unseen == len(cats)) {
				t.Fatalf("%s: item %s (categories %v): IsNovel %v, want %v", tc.name, snap.Item(i).ID, cats, s.IsNovel(snap, i), unseen == len(cats))
			}
		}
		for c := int32(0); int(c) < snap.NumCategories(); c++ {
			if s.CategorySeen(c) != seen[c] {
				t.Fatalf("%s: category %s seen %v, want %v", tc.name, snap.CategoryName(c), s.CategorySeen(c), seen[c])
			}
		}
	}
}
