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
// engaged user has not seen them all. Its topic's novelty is 0 for a
// consumed topic, else 0.5 + (1 − cos)/2 capped at 1, growing with its
// distance from the user's taste, so an unseen topic next to the user's
// favourites counts less than one far away.
//
// The catalog's categories weigh in for as long as they still tell new
// from familiar: nov(u,i) = (1 − w)·topic novelty + w·(the share of the
// item's categories the user never consumed), w the share of the catalog's
// categories the user never consumed, and the item is novel when its topic
// is new and nov(u,i) ≥ ½. To a user who has met a few of the catalog's
// categories, a new topic within them is not new in the terms a client
// sees items in (the item route shows categories, not topics): through the
// HTTP API, a client that took new categories for novelty saw 36–50% of
// slates flag as novel an item of a category its user had clicked, and its
// loyal users' clicks on such items read as exploring
// (docs/evaluation-http.md). To a user who has met nearly every category
// (MovieLens's 20 genres, which is why topics were brought in), w is small
// and the topics decide. A cold item (no learned topic yet) is scored by
// categories alone: the share of its categories absent from the history,
// novel when that share is 1.
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
	// catWeight is w of nov(u,i): the share of the catalog's categories
	// the user has not consumed (0 for a catalog without categories).
	catWeight float64
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
	s.catWeight = 0
	if n := len(s.cats); n > 0 {
		seen := 0
		for _, c := range s.cats {
			if c {
				seen++
			}
		}
		s.catWeight = float64(n-seen) / float64(n)
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
	cs, ok := s.categoryShare(snap, i)
	t := snap.Topic(i)
	if t < 0 {
		return cs, ok && cs == 1
	}
	if s.TopicSeen(t) {
		return s.catWeight * cs, false
	}
	nov = (1-s.catWeight)*s.topicNovelty(snap, i) + s.catWeight*cs
	return nov, nov >= 0.5
}

// topicNovelty is the novelty of item i, of a topic the user has not
// consumed: by its distance from the taste, in [0.5, 1].
func (s *Seen) topicNovelty(snap *catalog.Snapshot, i int32) float64 {
	if s.taste == nil {
		return 1
	}
	return min(1, 0.5+(1-float64(catalog.Dot(s.taste, snap.Embedding(i))))/2)
}

// categoryShare is the share of item i's categories the user has not
// consumed, and false for an item without categories.
func (s *Seen) categoryShare(snap *catalog.Snapshot, i int32) (float64, bool) {
	if m, ok := snap.CategoryMask(i); ok {
		n := bits.OnesCount64(m)
		if n == 0 {
			return 0, false
		}
		return float64(bits.OnesCount64(m&^s.catMask)) / float64(n), true
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
	return float64(unseen) / float64(len(cats)), true
}

// IsNovel reports whether item i is novel: Novelty's second result,
// without the distance from the taste where the categories settle it
// (the novel pool's scan asks it of many items it rejects).
func (s *Seen) IsNovel(snap *catalog.Snapshot, i int32) bool {
	cs, ok := s.categoryShare(snap, i)
	t := snap.Topic(i)
	switch {
	case t < 0:
		return ok && cs == 1
	case s.TopicSeen(t):
		return false
	}
	// The topic's novelty lies in [0.5, 1]: nov ≥ ½ for certain when the
	// categories' share is at least ½, never when even a topic novelty
	// of 1 falls short.
	w := s.catWeight
	switch {
	case w == 0 || cs >= 0.5:
		return true
	case (1-w)+w*cs < 0.5:
		return false
	}
	return (1-w)*s.topicNovelty(snap, i)+w*cs >= 0.5
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
