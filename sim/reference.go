package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/policy"
	"github.com/novarec/novarec/recommend"
)

// Reference policy names: bounds for the comparison, not candidates to
// serve.
const (
	// Oracle knows each step's true mode and serves the HRL's most novel
	// level to exploring users and its least novel to exploiting ones.
	Oracle = "oracle"
	// Random draws one of the HRL's levels uniformly for every decision.
	Random = "random"
)

// NewPolicy builds a policy by name: the reference policies Oracle and
// Random, or any of policy.Names.
func NewPolicy(name string, cfg policy.Config) (policy.Policy, error) {
	switch name {
	case Oracle, Random:
		start := cfg.Model
		if start == nil {
			start = recommend.DefaultModel()
		}
		levels := start.Intent.Levels
		// The references choose the level by the mode alone: no hedging.
		// Their slates are served as the HRL's are (greedy), so the
		// oracle's lead is the mode's worth alone.
		engCfg := cfg.Engine
		engCfg.Hedge = 0
		ref := &reference{name: name, eng: recommend.NewEngine(engCfg)}
		for _, l := range levels {
			m := start.Clone()
			m.Intent = intent.NewPolicy([]intent.Level{l}, m.Intent.Kappa)
			ref.levels = append(ref.levels, m)
		}
		return ref, nil
	}
	p, err := policy.New(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (or %s, %s)", err, Oracle, Random)
	}
	return p, nil
}

// reference is a non-learning policy choosing among the levels of the
// HRL's model per decision: by the true mode (Oracle) or at random.
type reference struct {
	name    string
	eng     *recommend.Engine
	levels  []*recommend.Model
	explore bool
}

func (p *reference) Name() string { return p.name }

// SetMode tells the oracle the user's true mode for the next decision.
func (p *reference) SetMode(explore bool) { p.explore = explore }

func (p *reference) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	z := 0
	switch {
	case p.name == Random:
		z = rng.IntN(len(p.levels))
	case p.explore:
		z = len(p.levels) - 1
	}
	d, err := p.eng.Decide(recommend.Request{K: k, Now: now}, st, snap, p.levels[z], rng)
	d.Intent.Level = z
	if p.name == Oracle && p.explore {
		d.Intent.SessionPropensity = 1
	}
	return d, err
}

func (p *reference) Learn(*catalog.Snapshot, *recommend.Decision, []string, bool) {}
