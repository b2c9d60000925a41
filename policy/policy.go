// Package policy holds the recommendation policies that novarec compares
// offline — popularity, relevance only, fixed MMR diversity, flat RL and the
// two-level (hierarchical) RL policy that serves — behind one interface, so
// the simulator and replay run them identically. Every policy is built on
// the serving code itself (recommend.Engine for decisions, recommend.Learner
// for learning): a baseline differs from the HRL only in its model's levels
// and in which learning rules it applies, never in a re-implementation. The
// package does no I/O.
package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/novarec/novarec/catalog"
	"github.com/novarec/novarec/intent"
	"github.com/novarec/novarec/ranker"
	"github.com/novarec/novarec/recommend"
)

// Policy is one recommendation policy under offline evaluation. A policy is
// stateful (it learns) and not safe for concurrent use: the simulator and
// replay drive one policy from one goroutine.
type Policy interface {
	// Name is the policy's name as New accepts it.
	Name() string
	// Recommend returns a slate of k for the user at time now (Unix ms).
	Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error)
	// Learn feeds back what happened to a decision: the ids clicked, and
	// whether this was the last decision of the session (so the high level
	// can close it). It must follow the Recommend that returned d, before
	// the next Recommend: the policy attributes d to that request's user and
	// session. Ids not in the slate are ignored.
	Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool)
}

// IntentModeler is implemented by policies whose decisions carry a real
// estimate of the user's novelty-seeking intent (Decision.Intent), so an
// evaluation knows when scoring the estimate against ground truth is
// meaningful. Baselines with a fixed level report constant propensities.
type IntentModeler interface {
	ModelsIntent() bool
}

// ModelsIntent reports whether p's decisions carry an intent estimate.
func ModelsIntent(p Policy) bool {
	im, ok := p.(IntentModeler)
	return ok && im.ModelsIntent()
}

// Config configures every policy of a comparison, so baselines and the HRL
// share reward weights, learning rates and engine structure.
type Config struct {
	// Learner holds the reward weights and learning rates of the policies
	// that learn.
	Learner recommend.LearnerConfig `json:"learner"`
	// Engine holds the engine's structural settings (candidates, taste
	// decay, popular share); the popular baseline overrides the popular
	// share.
	Engine recommend.Config `json:"engine"`
	// Model is the starting model of the HRL (nil: recommend.DefaultModel).
	// The baselines take its ranker parameters and derive their levels.
	Model *recommend.Model `json:"-"`
	// Deterministic makes the HRL take argmax decisions, as a request
	// with "deterministic": true is served (MMR and popular always do).
	Deterministic bool `json:"deterministic,omitempty"`
}

// DefaultConfig is the serving defaults: recommend.DefaultLearnerConfig,
// recommend.DefaultConfig and the prior model.
func DefaultConfig() Config {
	return Config{Learner: recommend.DefaultLearnerConfig(), Engine: recommend.DefaultConfig()}
}

// Policy names.
const (
	Popular   = "popular"
	Relevance = "relevance"
	MMR       = "mmr"
	Flat      = "flat"
	HRL       = "hrl"
)

// Names lists the policies New builds, baselines first.
func Names() []string { return []string{Popular, KNN, Relevance, MMR, Flat, HRL} }

// MMRLambda is the MMR baseline's redundancy penalty: large enough that the
// slate spreads over topics even among familiar candidates (the HRL's
// largest level uses 0.4).
const MMRLambda = 0.7

// ErrUnknown is returned by New for a name it does not know.
var ErrUnknown = errors.New("policy: unknown policy")

// New builds a fresh policy (no learned state) by name:
//
//   - "popular": the most popular items not yet consumed, deterministic; the
//     ranker scores popularity only (θ = [0,0,1]) over a popular-only pool,
//     one level with no novelty, no diversity, no learning.
//   - "relevance": relevance only, the intent level fixed at β = 0 (the
//     HRL's lowest level); the ranker learns from clicks, no high level.
//   - "mmr": fixed diversity, deterministic greedy MMR with λ = MMRLambda and
//     β = 0; no learning.
//   - "flat": flat RL, one level with the middle knobs of the HRL's levels;
//     the ranker learns from clicks with the same reward (including w_nov),
//     but there is no intent level to choose.
//   - "hrl": the full two-level policy that serves: Learner.Click for each
//     click and Learner.Decision for the high level, bootstrapped with the
//     next decision's state in the session (nil at the session's end).
func New(name string, cfg Config) (Policy, error) {
	start := cfg.Model
	if start == nil {
		start = recommend.DefaultModel()
	}
	if err := start.Validate(); err != nil {
		return nil, fmt.Errorf("policy: starting model: %w", err)
	}
	levels := start.Intent.Levels
	engCfg := cfg.Engine
	p := &enginePolicy{name: name}
	var m *recommend.Model
	switch name {
	case Popular, MMR:
		f, err := NewFixed(name, start, engCfg)
		if err != nil {
			return nil, err
		}
		m, engCfg, p.deterministic = f.Model, f.Engine, true
	case Relevance:
		m = fixedModel(start, intent.Level{})
		p.clickLearn = true
	case Flat:
		m = fixedModel(start, levels[len(levels)/2])
		p.clickLearn = true
	case HRL:
		m = start
		p.clickLearn, p.intentLearn = true, true
		p.deterministic = cfg.Deterministic
	case KNN:
		return newKNN(), nil
	default:
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknown, name, Names())
	}
	if name != HRL {
		// Hedging by the intent posterior and greedy serving are the
		// HRL's; the baselines stay the textbook methods they are named
		// for (popular and MMR serve by argmax, relevance and flat sample).
		engCfg.Hedge, engCfg.Greedy = 0, 0
	}
	p.eng = recommend.NewEngine(engCfg)
	lc := cfg.Learner
	lc.Hedge = engCfg.Hedge // the learner scores slates as they were served
	p.l = recommend.NewLearner(lc, m)
	return p, nil
}

// Fixed is a baseline that does not learn, served by argmax: what New
// builds for "popular" and "mmr", and what the service serves to an A/B arm
// that names one of them (experiment.Variant.Policy), so a baseline judged
// online is the same policy as the one judged offline.
type Fixed struct {
	// Model is the baseline's model: start's ranker with one fixed level.
	Model *recommend.Model
	// Engine is the engine configuration it is served with: no hedging and
	// no greedy mixture (a textbook baseline knows no intents), and for
	// "popular" a popular-only pool.
	Engine recommend.Config
}

// FixedNames lists the policies NewFixed builds.
func FixedNames() []string { return []string{Popular, MMR} }

// NewFixed builds the fixed baseline name ("popular" or "mmr", see New) from
// the starting model start and the engine configuration ec it would
// otherwise be served with. Its decisions are to be taken by argmax
// (recommend.Request.Deterministic).
func NewFixed(name string, start *recommend.Model, ec recommend.Config) (Fixed, error) {
	if err := start.Validate(); err != nil {
		return Fixed{}, fmt.Errorf("policy: starting model: %w", err)
	}
	var m *recommend.Model
	switch name {
	case Popular:
		m = fixedModel(start, intent.Level{})
		m.Ranker.Theta = [ranker.NumFeatures]float64{ranker.FPopularity: 1}
		ec.PopularShare = 1
	case MMR:
		m = fixedModel(start, intent.Level{Beta: 0, Lambda: MMRLambda, NovelShare: start.Intent.Levels[0].NovelShare})
	default:
		return Fixed{}, fmt.Errorf("%w %q: not a fixed baseline (known: %v)", ErrUnknown, name, FixedNames())
	}
	m.Version = "baseline-" + name
	ec.Hedge, ec.Greedy = 0, 0
	return Fixed{Model: m, Engine: ec}, nil
}

// fixedModel returns a copy of start whose high level is the single level
// lvl (K = 1): the level is then fixed by construction, with no bias to
// tune and nothing for the high level to learn.
func fixedModel(start *recommend.Model, lvl intent.Level) *recommend.Model {
	m := start.Clone()
	pi := intent.NewPolicy([]intent.Level{lvl}, m.Intent.Kappa)
	pi.Prior = m.Intent.Prior
	m.Intent = pi
	return m
}

// enginePolicy is every policy of New: the serving engine over a learner's
// working model, with the learning rules switched on or off.
type enginePolicy struct {
	name          string
	eng           *recommend.Engine
	l             *recommend.Learner
	deterministic bool
	clickLearn    bool
	intentLearn   bool
	// serve, if set, is the model Recommend decides with (ServeFrom).
	serve *recommend.Model

	// cur is the request of the last Recommend, which Learn attributes its
	// decision to.
	cur request
	// pending is the HRL's last decision of an ongoing session, closed
	// once the next decision's state (its bootstrap) is known.
	pending *pendingDecision
	seq     uint64
	ids     []string
	clicked []int
	// observed, if set, is told of every slate added to the mode window
	// (OnObserve).
	observed func(*recommend.LoggedSlate, []int)
}

type request struct {
	user, session string
	now           int64
}

type pendingDecision struct {
	req    request
	slate  recommend.LoggedSlate
	reward float64
}

func (p *enginePolicy) Name() string { return p.name }

// ModelsIntent is true for the HRL only: the baselines have one level.
func (p *enginePolicy) ModelsIntent() bool { return p.intentLearn }

// Model returns the policy's current working model (read-only; it changes
// with the next Learn).
func (p *enginePolicy) Model() *recommend.Model { return p.l.Model() }

// ServeFrom makes Recommend decide with m instead of the working model (nil:
// the working model, the default), as the service serves the last published
// snapshot while its trainer learns on: trainer.Replicated serves every
// replica's users from the shared model. m must not change while served.
func (p *enginePolicy) ServeFrom(m *recommend.Model) { p.serve = m }

// OnObserve has f told of every slate the policy adds to its learner's
// mode window, with its clicked positions (neither kept by f's caller):
// trainer.Replicated passes them to the other replicas, as the trainer's
// replicas share their mode observations.
func (p *enginePolicy) OnObserve(f func(*recommend.LoggedSlate, []int)) { p.observed = f }

// ObserveSlate adds a slate another replica saw to the mode window
// (recommend.Learner.ObserveSlate).
func (p *enginePolicy) ObserveSlate(s *recommend.LoggedSlate, clicked []int) {
	p.l.ObserveSlate(s, clicked)
}

func (p *enginePolicy) Recommend(st *recommend.UserState, snap *catalog.Snapshot, k int, now int64, rng *rand.Rand) (recommend.Decision, error) {
	if st == nil {
		return recommend.Decision{}, errors.New("policy: no user state")
	}
	req := recommend.Request{K: k, Now: now, Deterministic: p.deterministic}
	m := p.l.Model()
	if p.serve != nil {
		m = p.serve
	}
	d, err := p.eng.Decide(req, st, snap, m, rng)
	if err != nil {
		return d, err
	}
	p.cur = request{user: st.UserID, session: st.Session.ID, now: now}
	if p.pending != nil {
		var next []float64
		if p.pending.req.user == p.cur.user && p.pending.req.session == p.cur.session {
			next = d.Intent.State
		}
		p.closePending(next)
	}
	return d, nil
}

// closePending applies the high level's update to the pending decision,
// bootstrapping from next (nil when its session ended).
func (p *enginePolicy) closePending(next []float64) {
	pd := p.pending
	p.pending = nil
	// Errors only flag a malformed logged state, which the engine never
	// produces; a decision that cannot be learned from is skipped.
	_, _ = p.l.Decision(&pd.slate, pd.reward, next, 0)
}

func (p *enginePolicy) Learn(snap *catalog.Snapshot, d *recommend.Decision, clicked []string, sessionEnded bool) {
	if d == nil || len(d.Items) == 0 || (!p.clickLearn && !p.intentLearn) {
		return
	}
	p.seq++
	s := d.Logged(strconv.FormatUint(p.seq, 10), p.cur.user, p.cur.session, p.cur.now)
	p.clicked = p.clicked[:0]
	seeded := false
	for _, id := range clicked {
		pos := slices.IndexFunc(s.Items, func(it recommend.LoggedItem) bool { return it.ItemID == id })
		if pos < 0 || slices.Contains(p.clicked, s.Items[pos].Position) {
			continue // not shown, or a repeated click: credited once
		}
		p.clicked = append(p.clicked, s.Items[pos].Position)
		if p.clickLearn {
			if !seeded {
				p.l.SeedEmbeddings(snap, &s)
				seeded = true
			}
			_, _ = p.l.Click(&s, id) // the item is in the slate
		}
	}
	if !p.intentLearn {
		return
	}
	p.ids = p.ids[:0]
	for _, it := range s.Items {
		p.ids = append(p.ids, it.ItemID)
	}
	r := p.l.Reward(&s, p.clicked, recommend.Diversity(snap, p.ids))
	p.l.ObserveSlate(&s, p.clicked)
	if p.observed != nil {
		p.observed(&s, p.clicked)
	}
	if p.pending != nil { // Learn without a Recommend in between
		p.closePending(nil)
	}
	p.pending = &pendingDecision{req: p.cur, slate: s, reward: r}
	if sessionEnded {
		p.closePending(nil)
	}
}

// Flush closes a decision still waiting for its successor, as if its
// session had ended; call it when a run stops mid-session.
func (p *enginePolicy) Flush() {
	if p.pending != nil {
		p.closePending(nil)
	}
}

// Flusher is implemented by policies that hold back an update until they
// see what follows a decision.
type Flusher interface{ Flush() }
