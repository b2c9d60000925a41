package catalog

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// Learned is what a collaborative model (package collab) adds to a catalog
// snapshot: per learned item its embedding, topic and neighbours.
// It is plain data so that the catalog does not depend on how it was
// learned. Rows are indexed like IDs.
type Learned struct {
	// Version identifies the model; it becomes Snapshot.LearnedVersion.
	Version uint64
	IDs     []string
	// Count is the engagements behind each item's row.
	Count []float32
	// Dim is the embedding dimension; Emb holds len(IDs) rows of it, unit
	// length, or all zero for an item without an embedding of its own.
	Dim int
	Emb []float32
	// Topic is each item's topic in [0, len(Centroids)/Dim), or -1.
	Topic []int32
	// Centroids are the topics' unit centroids, Dim each.
	Centroids []float32
	// Neighbours of item i are Nbr[NbrStart[i]:NbrStart[i+1]] (indexes
	// into IDs) with similarities NbrSim, most similar first.
	NbrStart []int32
	Nbr      []int32
	NbrSim   []float32
	// Prior is the evidence (engagements) at which an item's learned
	// embedding and the one mapped from its content weigh equally.
	Prior float64
}

// Validate checks that the shapes agree and the numbers are finite, so a
// corrupt model never reaches serving.
func (l *Learned) Validate() error {
	n := len(l.IDs)
	switch {
	case l.Dim < 1:
		return errors.New("catalog: learned model without dimension")
	case len(l.Count) != n || len(l.Topic) != n || len(l.Emb) != n*l.Dim:
		return fmt.Errorf("catalog: learned model rows disagree (%d ids, %d counts, %d topics, %d embedding values)", n, len(l.Count), len(l.Topic), len(l.Emb))
	case len(l.Centroids)%l.Dim != 0:
		return errors.New("catalog: learned topic centroids are not whole rows")
	case len(l.NbrStart) != n+1 || len(l.Nbr) != len(l.NbrSim):
		return errors.New("catalog: learned neighbour lists are malformed")
	case !(l.Prior >= 0) || math.IsInf(l.Prior, 0):
		return errors.New("catalog: learned prior must be finite and not negative")
	}
	topics := int32(len(l.Centroids) / l.Dim)
	for i, t := range l.Topic {
		if t < -1 || t >= topics {
			return fmt.Errorf("catalog: learned item %d has topic %d of %d", i, t, topics)
		}
	}
	if l.NbrStart[0] != 0 || int(l.NbrStart[n]) != len(l.Nbr) {
		return errors.New("catalog: learned neighbour offsets are malformed")
	}
	for i := 0; i < n; i++ {
		if l.NbrStart[i] > l.NbrStart[i+1] {
			return errors.New("catalog: learned neighbour offsets decrease")
		}
	}
	for _, j := range l.Nbr {
		if j < 0 || int(j) >= n {
			return errors.New("catalog: learned neighbour out of range")
		}
	}
	for _, s := range [][]float32{l.Count, l.Emb, l.Centroids, l.NbrSim} {
		for _, x := range s {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return errors.New("catalog: learned model holds a non-finite number")
			}
		}
	}
	return nil
}

// learnedIndex is a snapshot's view of a Learned model, in catalog indexes.
type learnedIndex struct {
	version uint64
	// base is the hot records of the snapshot without the model (the
	// learned snapshot's carry its topics).
	base      []itemHot
	centroids []float32
	byTopic   [][]int32 // items of each topic by descending popularity
	nbrStart  []int32
	nbr       []int32
	nbrSim    []float32
}

// WithLearned returns a snapshot of the same items whose embeddings,
// topics and neighbours come from a collaborative model. An item the model
// has learned gets its learned embedding, blended with its content
// embedding mapped into the learned space by evidence w = n/(n+Prior); an
// item it has not learned (cold) gets the mapped content embedding alone.
// The map is a ridge regression from content to learned embeddings over
// the items that have both, so a cold item lands where learned items of
// its categories (or its given embedding) sit. The IVF index is rebuilt
// over the new embeddings. The receiver is not changed; items keep their
// dense indexes.
func (s *Snapshot) WithLearned(l *Learned) (*Snapshot, error) {
	if l == nil {
		return s.base(), nil
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if l.Dim != s.Dim {
		return nil, fmt.Errorf("catalog: learned dimension %d, catalog %d", l.Dim, s.Dim)
	}
	out := *s.base()
	n, d := len(out.items), out.Dim
	toCat := make([]int32, len(l.IDs))
	for j, id := range l.IDs {
		toCat[j] = -1
		if i, ok := out.byID[id]; ok {
			toCat[j] = i
		}
	}
	lx := &learnedIndex{version: l.Version, base: out.hot, centroids: l.Centroids}
	out.hot = slices.Clone(out.hot) // topics -1 in the base
	learnedRow := make([]int32, n)
	for i := range learnedRow {
		learnedRow[i] = -1
	}
	var warm []int32 // learned rows of catalog items with an embedding
	for j, i := range toCat {
		if i < 0 {
			continue
		}
		learnedRow[i] = int32(j)
		out.hot[i].topic = l.Topic[j]
		if !zero(l.Emb[j*d : (j+1)*d]) {
			warm = append(warm, int32(j))
		}
	}
	mapped := out.mapContent(l, warm, toCat)
	emb := make([]float32, n*d)
	for i := 0; i < n; i++ {
		e := emb[i*d : (i+1)*d]
		copy(e, mapped[i*d:(i+1)*d])
		if j := learnedRow[i]; j >= 0 && !zero(l.Emb[int(j)*d:int(j+1)*d]) {
			w := float64(l.Count[j]) / (float64(l.Count[j]) + l.Prior)
			le := l.Emb[int(j)*d : int(j+1)*d]
			for x := range e {
				e[x] = float32(w)*le[x] + float32(1-w)*e[x]
			}
		}
		copy(e, Normalize(e))
	}
	out.emb = emb

	// Neighbours, in catalog indexes; those outside the catalog dropped.
	lx.nbrStart = make([]int32, n+1)
	for i := 0; i < n; i++ {
		if j := learnedRow[i]; j >= 0 {
			for p := l.NbrStart[j]; p < l.NbrStart[j+1]; p++ {
				if c := toCat[l.Nbr[p]]; c >= 0 {
					lx.nbr = append(lx.nbr, c)
					lx.nbrSim = append(lx.nbrSim, l.NbrSim[p])
				}
			}
		}
		lx.nbrStart[i+1] = int32(len(lx.nbr))
	}
	lx.byTopic = make([][]int32, len(l.Centroids)/d)
	for _, i := range out.popRank {
		if t := out.hot[i].topic; t >= 0 {
			lx.byTopic[t] = append(lx.byTopic[t], i)
		}
	}
	out.learned = lx
	out.ivf = newLazyIVF(&out, out.Version^l.Version)
	return &out, nil
}

// base returns the snapshot without a learned model (the receiver itself
// when it has none).
func (s *Snapshot) base() *Snapshot {
	if s.learned == nil {
		return s
	}
	b := *s
	b.emb, b.hot, b.learned = s.content, s.learned.base, nil
	b.ivf = s.contentIVF
	return &b
}

// ridgeLambda regularises the content-to-learned map.
const ridgeLambda = 1.0

// mapContent maps every item's content embedding into the learned space by
// the ridge regression W = argmin ‖C W − L‖² + λ‖W‖² fitted on the warm
// rows, returning n×d values (unit rows). With fewer warm items than
// dimensions the map would be noise, so content embeddings are used as
// they are.
func (s *Snapshot) mapContent(l *Learned, warm []int32, toCat []int32) []float32 {
	n, d := len(s.items), s.Dim
	out := make([]float32, n*d)
	if len(warm) < 2*d {
		copy(out, s.content)
		return out
	}
	c := mat.NewDense(len(warm), d, nil)
	y := mat.NewDense(len(warm), d, nil)
	for r, j := range warm {
		i := toCat[j]
		for x := 0; x < d; x++ {
			c.Set(r, x, float64(s.content[int(i)*d+x]))
			y.Set(r, x, float64(l.Emb[int(j)*d+x]))
		}
	}
	var ctc, cty mat.Dense
	ctc.Mul(c.T(), c)
	for x := 0; x < d; x++ {
		ctc.Set(x, x, ctc.At(x, x)+ridgeLambda)
	}
	cty.Mul(c.T(), y)
	var w mat.Dense
	if err := w.Solve(&ctc, &cty); err != nil {
		copy(out, s.content)
		return out
	}
	raw := w.RawMatrix()
	row := make([]float64, d)
	for i := 0; i < n; i++ {
		clear(row)
		ci := s.content[i*d : (i+1)*d]
		for a := 0; a < d; a++ {
			if ci[a] == 0 {
				continue
			}
			wa := raw.Data[a*raw.Stride : a*raw.Stride+d]
			for b := range row {
				row[b] += float64(ci[a]) * wa[b]
			}
		}
		var norm float64
		for _, x := range row {
			norm += x * x
		}
		if norm == 0 {
			copy(out[i*d:], ci)
			continue
		}
		inv := 1 / math.Sqrt(norm)
		for b, x := range row {
			out[i*d+b] = float32(x * inv)
		}
	}
	return out
}

func zero(v []float32) bool {
	return !slices.ContainsFunc(v, func(x float32) bool { return x != 0 })
}

// LearnedVersion is the version of the collaborative model folded in, 0
// when there is none.
func (s *Snapshot) LearnedVersion() uint64 {
	if s.learned == nil {
		return 0
	}
	return s.learned.version
}

// NumTopics is the number of learned topics (0 without a learned model).
func (s *Snapshot) NumTopics() int {
	if s.learned == nil {
		return 0
	}
	return len(s.learned.byTopic)
}

// Topic is item i's learned topic, -1 when it has none (a cold item, or no
// learned model): novelty then falls back to its categories.
func (s *Snapshot) Topic(i int32) int32 { return s.hot[i].topic }

// PopularInTopic lists the items of topic t by descending popularity (a
// view; do not modify).
func (s *Snapshot) PopularInTopic(t int32) []int32 { return s.learned.byTopic[t] }

// TopicSims appends q's inner product with every topic's unit centroid
// (one matrix-vector product) to dst.
func (s *Snapshot) TopicSims(dst []float32, q []float32) []float32 {
	if s.learned == nil {
		return dst
	}
	return s.gemv(dst, s.learned.centroids, q)
}

// Neighbors returns item i's learned neighbours and their similarities,
// most similar first (views; do not modify). Empty without a model.
func (s *Snapshot) Neighbors(i int32) ([]int32, []float32) {
	if s.learned == nil {
		return nil, nil
	}
	lo, hi := s.learned.nbrStart[i], s.learned.nbrStart[i+1]
	return s.learned.nbr[lo:hi], s.learned.nbrSim[lo:hi]
}
