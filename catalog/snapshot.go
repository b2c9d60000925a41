package catalog

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"gonum.org/v1/gonum/blas/gonum"

	"github.com/novarec/novarec/internal/vdot"
)

// IndexThreshold is the catalog size from which Build clusters embeddings for
// approximate nearest-neighbour search (IVF). Below it a full scan is cheaper
// than probing clusters and exact.
const IndexThreshold = 5000

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
	// hot holds, per item, what a decision reads of thousands of items at
	// random (see itemHot).
	hot []itemHot

	// ivf indexes emb; contentIVF indexes content (the same index when
	// there is no learned model). Both are built on first use (or by
	// Prepare), so a snapshot that is only a step towards another, such as
	// the base that WithLearned replaces, never pays for k-means.
	ivf, contentIVF *lazyIVF
	// all lists 0..n-1 for the unindexed scan.
	all []int32

	// content holds the embeddings the catalog gives (or Embed derives);
	// emb is the same slice unless a learned model replaced it.
	content []float32
	// learned is the collaborative model's view; nil without one.
	learned *learnedIndex
}

// itemHot is what a decision reads of an item it only considers: the id
// hash (for the user's consumed filter), the categories as a bit set, the
// popularity feature and the learned topic. A decision reads them for
// thousands of items at random; packed into 32 bytes they cost one cache
// miss an item instead of one per field (with the categories, which are a
// slice of their own, two).
type itemHot struct {
	// hash is the id's 64-bit FNV-1a hash, for per-user filters.
	hash uint64
	// cats has bit c set for each category c < 64 of the item.
	cats uint64
	// pop is log1p(popularity)/log1p(max popularity), in [0,1].
	pop float32
	// topic is the learned topic, -1 without one.
	topic int32
	// wide is set when the item has a category ≥ 64, which cats omits.
	wide bool
}

// lazyIVF builds an index once, on first use.
type lazyIVF struct {
	once  sync.Once
	build func() ivf
	x     ivf
}

func (l *lazyIVF) get() *ivf {
	l.once.Do(func() {
		l.x = l.build()
		l.build = nil
	})
	return &l.x
}

// newLazyIVF indexes s's current embeddings on first use; catalogs below
// IndexThreshold get none (nil centroids: a full scan).
func newLazyIVF(s *Snapshot, seed uint64) *lazyIVF {
	n, d, emb := len(s.items), s.Dim, s.emb
	return &lazyIVF{build: func() ivf {
		if n < IndexThreshold {
			return ivf{}
		}
		return buildIVF(emb, d, int(math.Sqrt(float64(n))), rand.New(rand.NewPCG(seed, uint64(n))))
	}}
}

// ivf is an inverted-file index of embeddings: nil centroids when the
// catalog is small enough to scan.
type ivf struct {
	centroids []float32 // nClusters*Dim, unit length
	members   [][]int32
	// order lists items cluster by cluster, offsets[c]..offsets[c+1] being
	// cluster c; clusterEmb holds their embeddings in that order.
	order      []int32
	offsets    []int32
	clusterEmb []float32
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
	s.internIDs()
	n := len(s.items)
	s.emb = make([]float32, n*dim)
	s.itemCats = make([][]int32, n)
	s.hot = make([]itemHot, n)
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
		h := &s.hot[i]
		h.hash, h.topic = Hash(s.items[i].ID), -1
		if maxPop > 0 {
			h.pop = float32(math.Log1p(s.items[i].Popularity) / math.Log1p(maxPop))
		}
		for _, c := range s.itemCats[i] {
			if c < 64 {
				h.cats |= 1 << c
			} else {
				h.wide = true
			}
		}
	}
	byPop := func(a, b int32) int {
		if c := cmp.Compare(s.items[b].Popularity, s.items[a].Popularity); c != 0 {
			return c
		}
		return cmp.Compare(s.items[a].ID, s.items[b].ID)
	}
	s.all = make([]int32, n)
	for i := range s.all {
		s.all[i] = int32(i)
	}
	s.popRank = slices.Clone(s.all)
	slices.SortFunc(s.popRank, byPop)
	for _, l := range s.byCat {
		slices.SortFunc(l, byPop)
	}
	s.content = s.emb
	s.ivf = newLazyIVF(s, version)
	s.contentIVF = s.ivf
	return s, nil
}

// internIDs moves the item ids into one string, in index order, and keys
// byID with them. A decision looks up hundreds of ids (the user's
// history); the map compares the id looked up with its key's bytes, and
// keys scattered over the heap made that compare a cache miss each, a
// tenth of a request's CPU at 100k items. Packed, they take about 1 MB.
func (s *Snapshot) internIDs() {
	n := 0
	for i := range s.items {
		n += len(s.items[i].ID)
	}
	var b strings.Builder
	b.Grow(n)
	for i := range s.items {
		b.WriteString(s.items[i].ID)
	}
	arena, off := b.String(), 0
	clear(s.byID)
	for i := range s.items {
		id := arena[off : off+len(s.items[i].ID)]
		off += len(id)
		s.items[i].ID = id
		s.byID[id] = int32(i)
	}
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
func (s *Snapshot) PopularityFeature(i int32) float32 { return s.hot[i].pop }

// CategoryMask returns item i's categories as a bit set (bit c for
// category c), with ok false when the item has a category of index 64 or
// more, which the set cannot hold (use Categories then). It reads the
// item's hot record, which Topic, Hash and PopularityFeature share.
func (s *Snapshot) CategoryMask(i int32) (mask uint64, ok bool) {
	h := &s.hot[i]
	return h.cats, !h.wide
}

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

// Indexed reports whether the snapshot has an IVF index (building it if
// it was not yet).
func (s *Snapshot) Indexed() bool { return s.ivf.get().centroids != nil }

// Prepare builds what the snapshot otherwise builds on first use (the IVF
// index), so that a server can pay for it before swapping the snapshot in
// rather than on a request.
func (s *Snapshot) Prepare() { s.ivf.get() }

// Nearest scores q against candidate items for the familiar pool, appending
// their indexes and inner products to ids and sims. With an index it scores
// the members of the nprobe clusters whose centroids are most similar to q,
// most similar first, stopping early once it has scored want items (0 = no
// limit); without an index, every item. Cluster members are stored
// contiguously so each cluster is scored by one matrix-vector product
// (vdot.MulRows, gonum's arithmetic in one loop over the rows).
func (s *Snapshot) Nearest(ids []int32, sims []float32, q []float32, nprobe, want int) ([]int32, []float32) {
	var buf [16]int32
	return s.NearestIn(ids, sims, q, s.Probe(buf[:0], q, nprobe), want)
}

// Probe appends to clusters the nprobe clusters whose centroids are most
// similar to q, most similar first: Nearest's first step, which depends on
// q alone, so that a caller who asks for the same q again (the engine, for
// a returning user's taste) can keep it. Without an index it appends
// nothing.
func (s *Snapshot) Probe(clusters []int32, q []float32, nprobe int) []int32 {
	x := s.ivf.get()
	if x.centroids == nil {
		return clusters
	}
	nprobe = min(max(nprobe, 1), len(x.members))
	buf := centroidSims.Get().(*[]float32)
	defer centroidSims.Put(buf)
	csim := s.gemv((*buf)[:0], x.centroids, q)
	*buf = csim
	var bestBuf [16]int
	best := bestBuf[:0]
	if nprobe >= len(bestBuf) {
		best = make([]int, 0, nprobe+1)
	}
	for _, c := range bestCentroids(best, csim, nprobe) {
		clusters = append(clusters, int32(c))
	}
	return clusters
}

// NearestIn is Nearest with the clusters to score given, as Probe(q)
// returned them for this snapshot.
func (s *Snapshot) NearestIn(ids []int32, sims []float32, q []float32, clusters []int32, want int) ([]int32, []float32) {
	x := s.ivf.get()
	if x.centroids == nil {
		return append(ids, s.all...), s.gemv(sims, s.emb, q)
	}
	start := len(ids)
	for _, c := range clusters {
		lo, hi := x.offsets[c], x.offsets[c+1]
		ids = append(ids, x.order[lo:hi]...)
		sims = s.gemv(sims, x.clusterEmb[int(lo)*s.Dim:int(hi)*s.Dim], q)
		if want > 0 && len(ids)-start >= want {
			break
		}
	}
	return ids, sims
}

// bestCentroids appends to best (empty) the nprobe centroids of highest
// score in csim, best first: a centroid goes before those it scores at
// least as well as (cmp.Compare's order), one that only ties the last
// does not enter. By insertion, which Nearest spends less on than on a
// binary search and an insert through function values.
func bestCentroids(best []int, csim []float32, nprobe int) []int {
	for c, sim := range csim {
		if len(best) == nprobe && (sim <= csim[best[nprobe-1]] || cmp.Compare(sim, csim[best[nprobe-1]]) < 0) {
			continue
		}
		if len(best) < nprobe {
			best = append(best, 0)
		}
		pos := len(best) - 1
		for pos > 0 && cmp.Compare(sim, csim[best[pos-1]]) >= 0 {
			best[pos] = best[pos-1]
			pos--
		}
		best[pos] = c
	}
	return best
}

// centroidSims holds Nearest's scores of the centroids between calls.
var centroidSims = sync.Pool{New: func() any { return new([]float32) }}

// gemv appends m·q for the row-major matrix m with Dim columns.
func (s *Snapshot) gemv(dst []float32, m []float32, q []float32) []float32 {
	rows := len(m) / s.Dim
	n := len(dst)
	dst = slices.Grow(dst, rows)[:n+rows]
	vdot.MulRows(dst[n:], m, q[:s.Dim])
	return dst
}

// buildIVF clusters the unit rows of emb (dimension d) with spherical
// k-means for the approximate nearest-neighbour index.
func buildIVF(emb []float32, d, k int, rng *rand.Rand) ivf {
	n := len(emb) / d
	// A sample of 16 points per cluster trains centroids good enough to
	// route a query; the index is rebuilt with every learned model.
	cent, assign := KMeans(emb, d, k, 16*k, rng)
	x := ivf{centroids: cent, members: make([][]int32, k)}
	for i := 0; i < n; i++ {
		c := assign[i]
		x.members[c] = append(x.members[c], int32(i))
	}
	x.offsets = make([]int32, k+1)
	x.order = make([]int32, 0, n)
	x.clusterEmb = make([]float32, 0, n*d)
	for c, m := range x.members {
		x.offsets[c+1] = x.offsets[c] + int32(len(m))
		x.order = append(x.order, m...)
		for _, i := range m {
			x.clusterEmb = append(x.clusterEmb, emb[int(i)*d:int(i+1)*d]...)
		}
	}
	return x
}

// KMeans clusters the unit rows of emb (dimension d) into k clusters by
// spherical k-means: centroids are trained on a random sample of at most
// sample rows (0 = all) for a few iterations, then every row is assigned
// to its most similar centroid, which keeps it to about a second at 100k
// rows. Centroids start by k-means++ seeding (Arthur and Vassilvitskii,
// 2007), so well-separated clusters are not merged by an unlucky start. It returns the unit centroids (k×d) and each row's cluster. k is
// capped at the number of rows.
func KMeans(emb []float32, d, k, sample int, rng *rand.Rand) (centroids []float32, assign []int32) {
	n := len(emb) / d
	k = min(k, n)
	if k < 1 {
		return nil, make([]int32, n)
	}
	row := func(i int) []float32 { return emb[i*d : (i+1)*d] }
	pts := rng.Perm(n)
	if sample > 0 && len(pts) > sample {
		pts = pts[:max(sample, k)]
	}
	cent := make([]float32, k*d)
	// dist holds each sample point's 1 − cos to its nearest chosen centroid.
	dist := make([]float64, len(pts))
	for j := range dist {
		dist[j] = math.Inf(1)
	}
	copy(cent, row(pts[0]))
	for c := 1; c < k; c++ {
		prev := cent[(c-1)*d : c*d]
		total := 0.0
		for j, i := range pts {
			dist[j] = min(dist[j], math.Max(1-float64(dot(prev, row(i))), 0))
			total += dist[j] * dist[j]
		}
		pick := rng.IntN(len(pts))
		if total > 0 {
			u := rng.Float64() * total
			for j := range pts {
				u -= dist[j] * dist[j]
				if u <= 0 {
					pick = j
					break
				}
			}
		}
		copy(cent[c*d:], row(pts[pick]))
	}
	near := make([]int, len(pts))
	sums := make([]float64, k*d)
	sims := make([]float32, k)
	for iter := 0; iter < 8; iter++ {
		for j, i := range pts {
			near[j] = nearest(cent, row(i), sims, k, d)
		}
		clear(sums)
		for j, i := range pts {
			e := row(i)
			acc := sums[near[j]*d : (near[j]+1)*d]
			for x := range acc {
				acc[x] += float64(e[x])
			}
		}
		for c := 0; c < k; c++ {
			acc := sums[c*d : (c+1)*d]
			var norm float64
			for _, x := range acc {
				norm += x * x
			}
			if norm == 0 { // empty cluster: reseed from a random sample point
				copy(cent[c*d:], row(pts[rng.IntN(len(pts))]))
				continue
			}
			norm = math.Sqrt(norm)
			for x := range acc {
				cent[c*d+x] = float32(acc[x] / norm)
			}
		}
	}
	assign = make([]int32, n)
	for i := 0; i < n; i++ {
		assign[i] = int32(nearest(cent, row(i), sims, k, d))
	}
	return cent, assign
}

// nearest is the centroid most similar to e, from one matrix-vector product
// of the k×d centroids (a fifth of the k-means time of k separate dot
// products); sims is scratch space of length k.
func nearest(cent, e, sims []float32, k, d int) int {
	vdot.MulRows(sims[:k], cent, e[:d])
	best, bestSim := 0, float32(math.Inf(-1))
	for c, sim := range sims[:k] {
		if sim > bestSim {
			best, bestSim = c, sim
		}
	}
	return best
}

// Dot is the inner product of two vectors of equal length.
func Dot(a, b []float32) float32 { return dot(a, b) }

// dot uses gonum's assembly kernel, about twice as fast as a Go loop at d=32.
func dot(a, b []float32) float32 {
	return blasImpl.Sdot(len(a), a, 1, b, 1)
}

var blasImpl gonum.Implementation

// Hash is item i's id hash (see Hash).
func (s *Snapshot) Hash(i int32) uint64 { return s.hot[i].hash }
