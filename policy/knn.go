package policy

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/collab"
	"github.com/novarec/novarec/internal/topk"
	"github.com/novarec/novarec/recommend"
)

// KNN is the name of the item-to-item kNN baseline.
const KNN = "knn"

// knnPolicy is textbook item-based collaborative filtering, kept apart from
// novarec's engine so that it is a reference, not a variant: co-occurrence
// counts over every pair of positive engagements within a user's last 200
// (cosine, no decay), updated by every event of the stream; a user's slate
// is the items of highest summed similarity to their last 50 engaged
// items, from the live counts (never stale), excluding what the user
// consumed, filled with popular items. Deterministic; it learns nothing
// from its own slates.
type knnPolicy struct {
	counts  *collab.Counts
	recent  []string
	history map[string]bool
	cands   []knnCand
}

type knnCand struct {
	i int32
	s float64
}

// knnOrder ranks by score, ties by catalog index, so slates are
// deterministic whatever the order Similar visits items in.
func knnOrder(a, b knnCand) int {
	if c := cmp.Compare(b.s, a.s); c != 0 {
		return c
	}
	return cmp.Compare(a.i, b.i)
}

func newKNN() *knnPolicy {
	cfg := collab.DefaultConfig()
	cfg.Window, cfg.Decay, cfg.RowCap, cfg.Alpha, cfg.Shrink = recommend.DefaultHistory, 1, 1<<30, 0.5, 0
	counts, err := collab.NewCounts(cfg)
	if err != nil {
		panic(err) // a constant configuration
	}
	return &knnPolicy{counts: counts, history: map[string]bool{}}
}

func (p *knnPolicy) Name() string { return KNN }

// Observe counts one event of the stream (replay.Observer): an engagement
// pairs the item with the user's earlier engagements.
func (p *knnPolicy) Observe(st *recommend.UserState, fb recommend.Feedback) {
	if !fb.Engaged() {
		return
	}
	p.recent = p.recent[:0]
	for _, h := range st.History {
		p.recent = append(p.recent, h.ItemID)
	}
	p.counts.Add(fb.ItemID, p.recent)
}

// knnRecent is how many of the user's latest engagements score candidates.
const knnRecent = 50

func (p *knnPolicy) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, _ int64, _ *rand.Rand) (recommend.Decision, error) {
	if st == nil || snap == nil {
		return recommend.Decision{}, errors.New("policy: knn needs a user state and a catalog")
	}
	p.recent = p.recent[:0]
	for _, h := range st.History[:min(len(st.History), knnRecent)] {
		p.recent = append(p.recent, h.ItemID)
	}
	clear(p.history)
	for _, h := range st.History {
		p.history[h.ItemID] = true
	}
	excluded := func(i int32) bool {
		return st.Consumed.Has(snap.Hash(i)) || p.history[snap.Item(i).ID]
	}
	cands := p.cands[:0]
	p.counts.Similar(p.recent, func(id string, s float64) {
		if i, ok := snap.Index(id); ok && !excluded(i) {
			cands = append(cands, knnCand{i, s})
		}
	})
	p.cands = cands
	topk.Select(cands, k, func(a, b knnCand) bool { return knnOrder(a, b) < 0 })
	cands = cands[:min(k, len(cands))]
	slices.SortFunc(cands, knnOrder)
	var d recommend.Decision
	add := func(i int32, s float64) {
		d.Items = append(d.Items, recommend.Scored{Item: i, ItemID: snap.Item(i).ID, Position: len(d.Items), Score: s, Propensity: 1})
	}
	for _, c := range cands {
		add(c.i, c.s)
	}
	for _, i := range snap.Popular() {
		if len(d.Items) >= k {
			break
		}
		if !excluded(i) && !slices.ContainsFunc(d.Items, func(s recommend.Scored) bool { return s.Item == i }) {
			add(i, 0)
		}
	}
	return d, nil
}

func (p *knnPolicy) Learn(*catalog.Snapshot, *recommend.Decision, []string, bool) {}
