package catalog

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// IndexThreshold is the catalog size from which Build clusters embeddings for
// approximate nearest-neighbour search (IVF). Below it a full scan is cheaper
// than probing clusters and exact.
const IndexThreshold = 20000

// Snapshot is an immutable, indexed view of the catalog. It is built once per
// catalog change and shared read-only by every request, so readers need no
// locks; a new catalog is a new Snapshot swapped in atomically.
type Snapshot struct {
	// Version identifies the catalog state the snapshot was built from.
	Version uint64
	// Dim is the embedding dimension.
	Dim int

	items []Item
	byID  map[string]int32
	// emb holds unit-length embeddings, row-major, len(items)*Dim.
	emb []float32
	// cats names the categories; itemCats holds each item's category indexes.
	cats     []string
	catIndex map[string]int32
	itemCats [][]int32
	// popRank lists items by descending popularity; byCat does so per category.
	popRank []int32
	byCat   [][]int32
	// popFeature is log1p(popularity)/log1p(max popularity), in [0,1].
	popFeature []float32

	// IVF index; nil when the catalog is small enough to scan.
	centroids []float32 // nClusters*Dim, unit length
	members   [][]int32
}

// Build indexes items into a snapshot. Items must be valid (see
// Item.Validate); those without an embedding get one from Embed. Later
// duplicates of an id replace earlier ones.
func Build(version uint64, dim int, items []Item) (*Snapshot, error) {
	if len(items) == 0 {
		return nil, ErrNoItems
	}
	s := &Snapshot{Version: version, Dim: dim, byID: make(map[string]int32, len(items)), catIndex: map[string]int32{}}
	for _, it := range items {
		if j, ok := s.byID[it.ID]; ok {
			s.items[j] = it
			continue
		}
		s.byID[it.ID] = int32(len(s.items))
		s.items = append(s.items, it)
	}
	n := len(s.items)
	s.emb = make([]float32, n*dim)
	s.itemCats = make([][]int32, n)
	s.popFeature = make([]float32, n)
	maxPop := 0.0
	for i := range s.items {
		it := &s.items[i]
		e := it.Embedding
		if len(e) != dim {
			e = Embed(it.ID, it.Categories, dim)
		} else {
			e = Normalize(e)
		}
		copy(s.emb[i*dim:], e)
		for _, c := range it.Categories {
			ci, ok := s.catIndex[c]
			if !ok {
				ci = int32(len(s.cats))
				s.catIndex[c] = ci
				s.cats = append(s.cats, c)
				s.byCat = append(s.byCat, nil)
			}
			if !slices.Contains(s.itemCats[i], ci) {
				s.itemCats[i] = append(s.itemCats[i], ci)
				s.byCat[ci] = append(s.byCat[ci], int32(i))
			}
		}
		maxPop = math.Max(maxPop, it.Popularity)
	}
	for i := range s.items {
		if maxPop > 0 {
			s.popFeature[i] = float32(math.Log1p(s.items[i].Popularity) / math.Log1p(maxPop))
		}
	}
	byPop := func(a, b int32) int {
		if c := cmp.Compare(s.items[b].Popularity, s.items[a].Popularity); c != 0 {
			return c
		}
		return cmp.Compare(s.items[a].ID, s.items[b].ID)
	}
	s.popRank = make([]int32, n)
	for i := range s.popRank {
		s.popRank[i] = int32(i)
	}
	slices.SortFunc(s.popRank, byPop)
	for _, l := range s.byCat {
		slices.SortFunc(l, byPop)
	}
	if n >= IndexThreshold {
		s.buildIVF(int(math.Sqrt(float64(n))), rand.New(rand.NewPCG(version, uint64(n))))
	}
	return s, nil
}

// Len is the number of items.
func (s *Snapshot) Len() int { return len(s.items) }

// Index returns the dense index of an item id.
func (s *Snapshot) Index(id string) (int32, bool) {
	i, ok := s.byID[id]
	return i, ok
}

// Item returns the item at dense index i. The caller must not modify it.
func (s *Snapshot) Item(i int32) *Item { return &s.items[i] }

// Embedding returns the unit embedding of item i (a view; do not modify).
func (s *Snapshot) Embedding(i int32) []float32 {
	return s.emb[int(i)*s.Dim : int(i+1)*s.Dim]
}

// Categories returns the category indexes of item i (a view; do not modify).
func (s *Snapshot) Categories(i int32) []int32 { return s.itemCats[i] }

// NumCategories is the number of distinct categories.
func (s *Snapshot) NumCategories() int { return len(s.cats) }

// CategoryName returns the name of category index c.
func (s *Snapshot) CategoryName(c int32) string { return s.cats[c] }

// CategoryIndex returns the index of a category name.
func (s *Snapshot) CategoryIndex(name string) (int32, bool) {
	c, ok := s.catIndex[name]
	return c, ok
}

// PopularityFeature is the item's normalised log popularity in [0,1].
func (s *Snapshot) PopularityFeature(i int32) float32 { return s.popFeature[i] }

// Popular lists items by descending popularity (a view; do not modify).
func (s *Snapshot) Popular() []int32 { return s.popRank }

// PopularIn lists the items of category c by descending popularity (a view).
func (s *Snapshot) PopularIn(c int32) []int32 { return s.byCat[c] }

// Dot is the inner product of a query vector with item i's embedding.
func (s *Snapshot) Dot(q []float32, i int32) float32 {
	return dot(q, s.emb[int(i)*s.Dim:int(i+1)*s.Dim])
}

// Cos is the cosine similarity of items i and j (embeddings are unit length).
func (s *Snapshot) Cos(i, j int32) float32 {
	return dot(s.Embedding(i), s.Embedding(j))
}

// Indexed reports whether the snapshot has an IVF index.
func (s *Snapshot) Indexed() bool { return s.centroids != nil }

// Probe returns the members of the nprobe clusters whose centroids are most
// similar to q, appended to dst; without an index it returns every item. It
// is the candidate-generation step for the familiar pool at catalog sizes
// where scoring every item would dominate request latency.
func (s *Snapshot) Probe(dst []int32, q []float32, nprobe int) []int32 {
	if s.centroids == nil {
		for i := range s.items {
			dst = append(dst, int32(i))
		}
		return dst
	}
	nc := len(s.members)
	nprobe = min(max(nprobe, 1), nc)
	type cs struct {
		c   int
		sim float32
	}
	best := make([]cs, 0, nprobe+1)
	for c := 0; c < nc; c++ {
		sim := dot(q, s.centroids[c*s.Dim:(c+1)*s.Dim])
		if len(best) == nprobe && sim <= best[nprobe-1].sim {
			continue
		}
		pos, _ := slices.BinarySearchFunc(best, sim, func(e cs, t float32) int { return cmp.Compare(t, e.sim) })
		best = slices.Insert(best, pos, cs{c, sim})
		if len(best) > nprobe {
			best = best[:nprobe]
		}
	}
	for _, b := range best {
		dst = append(dst, s.members[b.c]...)
	}
	return dst
}

// buildIVF clusters the embeddings with spherical k-means, trained on a sample
// and then assigning every item, which keeps the build to about a second at
// 100k items.
func (s *Snapshot) buildIVF(k int, rng *rand.Rand) {
	n, d := len(s.items), s.Dim
	sample := rng.Perm(n)
	if len(sample) > 50*k {
		sample = sample[:50*k]
	}
	cent := make([]float32, k*d)
	for c := 0; c < k; c++ {
		copy(cent[c*d:], s.Embedding(int32(sample[c])))
	}
	assign := make([]int, len(sample))
	sums := make([]float64, k*d)
	for iter := 0; iter < 8; iter++ {
		for j, i := range sample {
			assign[j] = nearest(cent, s.Embedding(int32(i)), k, d)
		}
		clear(sums)
		for j, i := range sample {
			e := s.Embedding(int32(i))
			row := sums[assign[j]*d : (assign[j]+1)*d]
			for x := range row {
				row[x] += float64(e[x])
			}
		}
		for c := 0; c < k; c++ {
			row := sums[c*d : (c+1)*d]
			var norm float64
			for _, x := range row {
				norm += x * x
			}
			if norm == 0 { // empty cluster: reseed from a random sample point
				copy(cent[c*d:], s.Embedding(int32(sample[rng.IntN(len(sample))])))
				continue
			}
			norm = math.Sqrt(norm)
			for x := range row {
				cent[c*d+x] = float32(row[x] / norm)
			}
		}
	}
	s.centroids = cent
	s.members = make([][]int32, k)
	for i := 0; i < n; i++ {
		c := nearest(cent, s.Embedding(int32(i)), k, d)
		s.members[c] = append(s.members[c], int32(i))
	}
}

func nearest(cent, e []float32, k, d int) int {
	best, bestSim := 0, float32(math.Inf(-1))
	for c := 0; c < k; c++ {
		if sim := dot(e, cent[c*d:(c+1)*d]); sim > bestSim {
			best, bestSim = c, sim
		}
	}
	return best
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
