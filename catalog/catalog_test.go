package catalog

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		item  Item
		field string
	}{
		{"ok", Item{ID: "a", Categories: []string{"x"}}, ""},
		{"ok with embedding", Item{ID: "a", Embedding: make([]float32, 4)}, ""},
		{"no id", Item{}, "id"},
		{"long id", Item{ID: string(make([]byte, MaxIDLen+1))}, "id"},
		{"newline in id", Item{ID: "a\nb"}, "id"},
		{"wrong dims", Item{ID: "a", Embedding: make([]float32, 3)}, "embedding"},
		{"NaN embedding", Item{ID: "a", Embedding: []float32{0, 0, 0, float32(math.NaN())}}, "embedding[3]"},
		{"huge embedding", Item{ID: "a", Embedding: []float32{0, 2e6, 0, 0}}, "embedding[1]"},
		{"embedding at the bound", Item{ID: "a", Embedding: []float32{0, -MaxEmbeddingValue, 0, 0}}, ""},
		{"negative popularity", Item{ID: "a", Popularity: -1}, "popularity"},
		{"infinite popularity", Item{ID: "a", Popularity: math.Inf(1)}, "popularity"},
		{"huge popularity", Item{ID: "a", Popularity: 1e308}, "popularity"},
		{"popularity at the bound", Item{ID: "a", Popularity: MaxPopularity}, ""},
		{"empty category", Item{ID: "a", Categories: []string{""}}, "categories[0]"},
		{"control character in a category", Item{ID: "a", Categories: []string{"x", "a\x1fb"}}, "categories[1]"},
		{"U+FFFD in id", Item{ID: "a\uFFFD"}, "id"},
		{"C1 control in id", Item{ID: "a\u0085"}, "id"},
		{"invalid UTF-8 id", Item{ID: "a\xff"}, "id"},
		{"URL characters in id", Item{ID: "a/b?c#d%e+f g", Categories: []string{"x/y"}}, ""},
		{"too many categories", Item{ID: "a", Categories: make([]string, MaxCategories+1)}, "categories"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.item.Validate(4)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tc.field {
				t.Fatalf("got %v, want an error on %q", err, tc.field)
			}
		})
	}
}

func TestEmbedIsDeterministicAndReflectsCategories(t *testing.T) {
	a1 := Embed("a1", []string{"drama"}, DefaultDim)
	if !slices.Equal(a1, Embed("a1", []string{"drama"}, DefaultDim)) {
		t.Fatal("Embed is not deterministic")
	}
	a2 := Embed("a2", []string{"drama"}, DefaultDim)
	b := Embed("b", []string{"horror"}, DefaultDim)
	if n := dot(a1, a1); math.Abs(float64(n)-1) > 1e-5 {
		t.Fatalf("|v|² = %v, want 1", n)
	}
	if same, other := dot(a1, a2), dot(a1, b); same < 0.8 || same <= other+0.5 {
		t.Fatalf("same-category cosine %v, cross-category %v", same, other)
	}
}

func TestBuildIndexes(t *testing.T) {
	items := []Item{
		{ID: "b", Categories: []string{"x", "y"}, Popularity: 5},
		{ID: "a", Categories: []string{"y"}, Popularity: 9},
		{ID: "c", Categories: []string{"x"}, Popularity: 1, Embedding: []float32{3, 4}},
		{ID: "b", Categories: []string{"x"}, Popularity: 7}, // replaces the first b
	}
	s, err := Build(4, 2, items)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || s.Version != 4 || s.NumCategories() != 2 {
		t.Fatalf("len %d version %d categories %d", s.Len(), s.Version, s.NumCategories())
	}
	ids := func(l []int32) (out []string) {
		for _, i := range l {
			out = append(out, s.Item(i).ID)
		}
		return out
	}
	if got := ids(s.Popular()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("popular order %v", got)
	}
	x, _ := s.CategoryIndex("x")
	if got := ids(s.PopularIn(x)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("popular in x %v", got)
	}
	c, _ := s.Index("c")
	if e := s.Embedding(c); math.Abs(float64(e[0])-0.6) > 1e-6 || math.Abs(float64(e[1])-0.8) > 1e-6 {
		t.Fatalf("given embedding not normalised: %v", e)
	}
	a, _ := s.Index("a")
	if s.PopularityFeature(a) != 1 || s.PopularityFeature(c) >= s.PopularityFeature(a) {
		t.Fatal("popularity feature not scaled to the maximum")
	}
	for i := int32(0); int(i) < s.Len(); i++ {
		var want uint64
		for _, c := range s.Categories(i) {
			want |= 1 << c
		}
		if m, ok := s.CategoryMask(i); !ok || m != want || s.Hash(i) != Hash(s.Item(i).ID) || s.Topic(i) != -1 {
			t.Fatalf("item %s: hot record %b %v %x %d", s.Item(i).ID, m, ok, s.Hash(i), s.Topic(i))
		}
	}
	if _, err := Build(1, 2, nil); err != ErrNoItems {
		t.Fatalf("empty build: %v", err)
	}
}

// TestNearestRecall checks that the IVF index finds most of the true
// nearest neighbours that an exact scan finds.
func TestNearestRecall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 30k-item index")
	}
	s, err := Build(1, DefaultDim, Sample(IndexThreshold+10000, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Indexed() {
		t.Fatal("large catalog not indexed")
	}
	const k = 50
	hits, total, hitsCapped := 0, 0, 0
	for q := int32(0); q < 200; q += 10 {
		query := s.Embedding(q)
		exact := make([]int32, s.Len())
		for i := range exact {
			exact[i] = int32(i)
		}
		slices.SortFunc(exact, func(a, b int32) int {
			da, db := s.Dot(query, a), s.Dot(query, b)
			if da > db {
				return -1
			}
			if da < db {
				return 1
			}
			return 0
		})
		ids, sims := s.Nearest(nil, nil, query, 8, 0)
		if len(ids) != len(sims) || len(ids) >= s.Len()/4 {
			t.Fatalf("probe returned %d ids, %d sims of %d items", len(ids), len(sims), s.Len())
		}
		for j, i := range ids {
			if math.Abs(float64(sims[j]-s.Dot(query, i))) > 1e-4 {
				t.Fatalf("similarity of %d is %v, want %v", i, sims[j], s.Dot(query, i))
			}
		}
		got := map[int32]bool{}
		for _, i := range ids {
			got[i] = true
		}
		// The engine's setting: stop once 600 items are scored.
		capped, _ := s.Nearest(nil, nil, query, 8, 600)
		gotCapped := map[int32]bool{}
		for _, i := range capped {
			gotCapped[i] = true
		}
		for _, i := range exact[:k] {
			if got[i] {
				hits++
			}
			if gotCapped[i] {
				hitsCapped++
			}
			total++
		}
	}
	recall, recallCapped := float64(hits)/float64(total), float64(hitsCapped)/float64(total)
	t.Logf("recall@%d of the IVF probe: %.3f with 8 clusters, %.3f stopping at 600 items", k, recall, recallCapped)
	if recall < 0.8 || recallCapped < 0.7 {
		t.Fatalf("recall %.3f / %.3f below 0.8 / 0.7", recall, recallCapped)
	}
}

// TestBestCentroids: Nearest's choice of the clusters to probe is the
// nprobe best scores, best first, ties and NaN scores ordered as a binary
// search with cmp.Compare and an insert (the implementation before it)
// order them, so the items probed do not change.
func TestBestCentroids(t *testing.T) {
	reference := func(csim []float32, nprobe int) []int {
		var best []int
		for c, sim := range csim {
			if len(best) == nprobe && sim <= csim[best[nprobe-1]] {
				continue
			}
			pos, _ := slices.BinarySearchFunc(best, sim, func(e int, t float32) int { return cmp.Compare(t, csim[e]) })
			best = slices.Insert(best, pos, c)
			if len(best) > nprobe {
				best = best[:nprobe]
			}
		}
		return best
	}
	nan := float32(math.NaN())
	r := rand.New(rand.NewPCG(1, 2))
	cases := [][]float32{
		nil,
		{0.5},
		{0.1, 0.9, 0.5, 0.9, 0.3},
		{0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2},
		{0.3, nan, 0.7, nan, 0.1, 0.9, 0.2, 0.4, 0.8, 0.6},
		{nan, nan, nan, 0.1},
		{0.9, 0.1, 0.5, 0.7, nan},
	}
	for range 200 {
		csim := make([]float32, r.IntN(400))
		for c := range csim {
			csim[c] = float32(r.IntN(20)) / 20 // many ties
			if r.IntN(50) == 0 {
				csim[c] = nan
			}
		}
		cases = append(cases, csim)
	}
	for _, csim := range cases {
		for _, nprobe := range []int{1, 3, 8, 16} {
			if got, want := bestCentroids(nil, csim, nprobe), reference(csim, nprobe); !slices.Equal(got, want) {
				t.Fatalf("%v, nprobe %d: %v, want %v", csim, nprobe, got, want)
			}
		}
	}
}
