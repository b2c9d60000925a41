package recommend

import (
	"math"
	"math/bits"
	"slices"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/novarec/novarec/catalog"
)

// Seen is what a user has consumed, in the terms novelty is measured in: the
// learned topics of their history's items, the categories of all of them,
// and their taste vector. It is the one definition of user novelty that the
// engine (candidates, the ranker's novelty term, the API's novel flag),
// Observe (history, statistics, the reward's surprise), replay and the
// simulator share.
//
// An item is novel to a user, as Chen et al. (RecSys 2021) define it, when
// its topic is one the user has never consumed; topics are clusters of the
// learned item embeddings (catalog.Snapshot.Topic), fine enough that an
// engaged user has not seen them all. Its novelty nov(u,i) ∈ [0.5, 1] then
// grows with its distance from the user's taste, 0.5 + (1 − cos)/2 capped
// at 1, so an unseen topic next to the user's favourites counts less than
// one far away; an item of a consumed topic has novelty 0. A cold item
// (no learned topic yet) falls back to categories: the share of its
// categories absent from the history, novel when that share is 1.
type Seen struct {
	// topics has bit t%64 of word t/64 set for each seen topic t: a bit
	// set, not a bool per topic, as views are cached (an eighth of the
	// memory: 512 bytes for 4,096 topics).
	topics []uint64
	cats   []bool
	// catMask has bit c set for each seen category c < 64 (cats holds
	// them all): Novelty scores most items from it and the item's
	// category bit set, without reading the item's category list.
	catMask uint64
	// taste is the user's unit taste vector, nil without history.
	taste []float32
}

// SeenOf builds the Seen of a history, with the taste vector of
// DefaultConfig's TasteDecay (the engine builds its own with its decay).
func SeenOf(snap *catalog.Snapshot, history []Consumed) *Seen {
	hist := make([]int32, len(history))
	for k, h := range history {
		hist[k] = -1
		if i, ok := snap.Index(h.ItemID); ok {
			hist[k] = i
		}
	}
	var s Seen
	s.build(snap, hist, Taste(snap, hist, DefaultConfig().TasteDecay, nil))
	return &s
}

// build marks the topics and categories of the history (snapshot indexes,
// -1 for unknown items), reusing s's memory.
func (s *Seen) build(snap *catalog.Snapshot, hist []int32, taste []float32) {
	nw := (snap.NumTopics() + 63) / 64
	s.topics = slices.Grow(s.topics[:0], nw)[:nw]
	clear(s.topics)
	s.cats = resetBools(s.cats, snap.NumCategories())
	s.catMask = 0
	s.taste = taste
	for _, i := range hist {
		if i < 0 {
			continue
		}
		if t := snap.Topic(i); t >= 0 {
			s.topics[t/64] |= 1 << (t % 64)
		}
		if m, ok := snap.CategoryMask(i); ok {
			s.catMask |= m
			continue
		}
		for _, c := range snap.Categories(i) {
			s.cats[c] = true
			if c < 64 {
				s.catMask |= 1 << c
			}
		}
	}
	for m := s.catMask; m != 0; m &= m - 1 {
		s.cats[bits.TrailingZeros64(m)] = true
	}
}

func resetBools(b []bool, n int) []bool {
	b = slices.Grow(b[:0], n)[:n]
	clear(b)
	return b
}

// TopicSeen reports whether the user has consumed topic t.
func (s *Seen) TopicSeen(t int32) bool {
	return t >= 0 && int(t/64) < len(s.topics) && s.topics[t/64]&(1<<(t%64)) != 0
}

// CategorySeen reports whether the user has consumed category c.
func (s *Seen) CategorySeen(c int32) bool { return int(c) < len(s.cats) && s.cats[c] }

// Novelty is nov(u,i) of item i and whether the item is novel (see Seen).
func (s *Seen) Novelty(snap *catalog.Snapshot, i int32) (nov float64, novel bool) {
	if t := snap.Topic(i); t >= 0 {
		if s.TopicSeen(t) {
			return 0, false
		}
		if s.taste == nil {
			return 1, true
		}
		return min(1, 0.5+(1-float64(catalog.Dot(s.taste, snap.Embedding(i))))/2), true
	}
	if m, ok := snap.CategoryMask(i); ok {
		n := bits.OnesCount64(m)
		if n == 0 {
			return 0, false
		}
		unseen := bits.OnesCount64(m &^ s.catMask)
		return float64(unseen) / float64(n), unseen == n
	}
	cats := snap.Categories(i)
	if len(cats) == 0 {
		return 0, false
	}
	unseen := 0
	for _, c := range cats {
		if !s.CategorySeen(c) {
			unseen++
		}
	}
	nov = float64(unseen) / float64(len(cats))
	return nov, unseen == len(cats)
}

// IsNovel reports whether item i is novel: Novelty's second result,
// without the distance from the taste that its first one needs.
func (s *Seen) IsNovel(snap *catalog.Snapshot, i int32) bool {
	if t := snap.Topic(i); t >= 0 {
		return !s.TopicSeen(t)
	}
	if m, ok := snap.CategoryMask(i); ok {
		return m != 0 && m&^s.catMask == m
	}
	cats := snap.Categories(i)
	for _, c := range cats {
		if s.CategorySeen(c) {
			return false
		}
	}
	return len(cats) > 0
}

// Taste is the recency-weighted mean of the embeddings of the history's
// items (snapshot indexes, newest first, -1 for unknown ones): the k-th
// weighs decay^k. The result is unit length, written into dst when it has
// room; nil for a history without known items.
func Taste(snap *catalog.Snapshot, hist []int32, decay float64, dst []float32) []float32 {
	var u []float32
	w := float32(1)
	for _, i := range hist {
		if i >= 0 {
			if u == nil {
				u = slices.Grow(dst[:0], snap.Dim)[:snap.Dim]
				clear(u)
			}
			blas32.Axpy(w, blas32.Vector{N: snap.Dim, Inc: 1, Data: snap.Embedding(i)}, blas32.Vector{N: snap.Dim, Inc: 1, Data: u})
		}
		w *= float32(decay)
	}
	if u == nil {
		return nil
	}
	n := catalog.Dot(u, u)
	if n == 0 {
		return nil
	}
	inv := float32(1 / math.Sqrt(float64(n)))
	for x := range u {
		u[x] *= inv
	}
	return u
}
