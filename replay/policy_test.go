package replay

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/recommend"
)

// learnCall records one Learn call of a test policy.
type learnCall struct {
	user    string
	clicked []string
	ended   bool
}

// popularPolicy is a tiny deterministic test policy: the k most popular
// items the user has not consumed, ties by id (the snapshot's order). It
// checks replay's contract: Learn right after Recommend, for its decision.
type popularPolicy struct {
	lastUser string
	pending  bool
	calls    []learnCall
	// violations counts Learn calls without a Recommend before them.
	violations int
	err        error // Recommend fails with it when set
}

func (p *popularPolicy) Name() string { return "test-popular" }

func (p *popularPolicy) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, _ *rand.Rand) (recommend.Decision, error) {
	if p.err != nil {
		return recommend.Decision{}, p.err
	}
	if p.pending {
		return recommend.Decision{}, errors.New("test policy: Recommend twice without Learn")
	}
	var d recommend.Decision
	for _, i := range snap.Popular() {
		if len(d.Items) == k {
			break
		}
		id := snap.Item(i).ID
		if slices.ContainsFunc(st.History, func(c recommend.Consumed) bool { return c.ItemID == id }) {
			continue
		}
		d.Items = append(d.Items, recommend.Scored{Item: i, ItemID: id, Position: len(d.Items), Propensity: 1})
	}
	p.lastUser, p.pending = st.UserID, true
	return d, nil
}

func (p *popularPolicy) Learn(_ *catalog.Snapshot, d *recommend.Decision, clicked []string, ended bool) {
	if !p.pending {
		p.violations++
	}
	p.pending = false
	p.calls = append(p.calls, learnCall{user: p.lastUser, clicked: slices.Clone(clicked), ended: ended})
}

// enginePolicy is the serving engine with a learner, in sampling mode: the
// shape of the real HRL policy, without depending on package policy.
type enginePolicy struct {
	l    *recommend.Learner
	user string
	n    int
}

func newEnginePolicy() *enginePolicy {
	return &enginePolicy{
		l: recommend.NewLearner(recommend.DefaultLearnerConfig(), recommend.DefaultModel()),
	}
}

func (p *enginePolicy) Name() string { return "test-engine" }

func (p *enginePolicy) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	p.user = st.UserID
	// A fresh engine per decision: recommend.Engine reuses pooled scratch
	// and, for a cold user, leaves the previous decision's ⟨u,v⟩ feature
	// in the candidates, so its decisions depend on whether sync.Pool
	// (which drops items at random under -race) returned a used scratch.
	// The determinism test below must not inherit that.
	eng := recommend.NewEngine(recommend.DefaultConfig())
	return eng.Decide(recommend.Request{K: k, Now: now}, st, snap, p.l.Model(), rng)
}

func (p *enginePolicy) Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, ended bool) {
	p.n++
	s := d.Logged("r", p.user, "", 0)
	var pos []int
	for _, id := range clicked {
		p.l.SeedEmbeddings(snap, &s)
		if _, err := p.l.Click(&s, id); err == nil {
			pos = append(pos, slices.IndexFunc(s.Items, func(it recommend.LoggedItem) bool { return it.ItemID == id }))
		}
	}
	ids := make([]string, len(d.Items))
	for i := range d.Items {
		ids[i] = d.Items[i].ItemID
	}
	_, _ = p.l.Decision(&s, p.l.Reward(&s, pos, recommend.Diversity(snap, ids)), nil, 0)
}
