// Package intent is the high-level policy of novarec: it turns what is known
// about a user (a static, user-level novelty propensity) and their current
// session (a dynamic, session-level one) into a distribution over intent
// levels, each of which sets the low-level ranker's novelty and diversity
// knobs. It is pure computation: serving, replay and the simulator call the
// same code.
package intent

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
)

// Feature indexes of the state vector s_H. The first four are user-level
// (static), the rest session-level (dynamic).
const (
	FUserNovelRate       = iota // posterior mean of the user's novel-click rate
	FUserConfidence             // evidence behind it: n/(n+10) clicks
	FUserActivity               // log history length, scaled to [0,1]
	FUserEntropy                // normalised category entropy of history
	FSessNovelRate              // smoothed novel-click rate in the session
	FSessClicks                 // log clicks in session, scaled
	FSessSkips                  // log skips in session, scaled
	FSessMinutes                // minutes in session / 30, capped at 1
	FSessEntropy                // normalised entropy of categories clicked in session
	FSessRecentNovelty          // recency-weighted novelty of the last clicks
	FSessSkipRatio              // skips / (clicks + skips + 1)
	FSessNovelPreference        // novel items' share of the session's click-through
	Dim                         // length of the state vector
)

// FeatureNames label the state vector in logs and snapshots.
var FeatureNames = [Dim]string{
	"user_novel_rate", "user_confidence", "user_activity", "user_entropy",
	"session_novel_rate", "session_clicks", "session_skips", "session_minutes",
	"session_entropy", "session_recent_novelty", "session_skip_ratio",
	"session_novel_preference",
}

// Prior is the Beta(α₀, β₀) prior of a user's novel-click rate.
type Prior struct{ Alpha, Beta float64 }

// DefaultPrior expresses a weak belief that about a quarter of clicks are on
// novel items, worth four clicks of evidence.
var DefaultPrior = Prior{Alpha: 1, Beta: 3}

// Observations are the raw facts the state is computed from.
type Observations struct {
	NovelClicks, FamiliarClicks float64
	HistoryLen                  int
	// HistoryEntropy and SessionEntropy are normalised to [0,1].
	HistoryEntropy float64

	SessionClicks, SessionSkips, SessionNovelClicks float64
	SessionMinutes                                  float64
	SessionEntropy                                  float64
	// SessionNovelEWMA is meaningful only when SessionClicks > 0.
	SessionNovelEWMA float64
	// Rho is the user's posterior over ρ_u from their closed sessions
	// (see RhoPosterior); SessionChain is the current session's evidence
	// slate by slate under the ModeModel (its clicks and skips, explicit
	// or inferred from what was shown) with the mode's switches between
	// them. SessionEvidence, a log-likelihood ratio, explore over exploit,
	// stands for a session that keeps its mode when SessionChain is zero.
	Rho             RhoPosterior
	SessionChain    ModeChain
	SessionEvidence float64
	// SessionShown says whether the session has been shown a slate: the
	// next decision is then one step of the mode's chain later than the
	// evidence (ModeModel.Predict).
	SessionShown bool
}

// ModeEvidenceCap bounds the evidence of the session's feedback, in
// log-odds, so that a few items can still turn the estimate when the
// session's mode changes.
const ModeEvidenceCap = 4

// NovelPreference is the probability that the session's latest slate sought
// novelty: the user-level propensity m as the prior of its first, updated
// by the session's evidence through the mode's chain (Observations.
// SessionChain; the shift from m capped at ±ModeEvidenceCap) under the
// two-mode click model (ModeModel). Each click on an item more novel than
// the rest of its slate, or skip of one less novel, is evidence for
// exploring, and the reverse for exploiting; skips of familiar items are
// what tell a novelty-seeking session apart before it clicks anything. It
// starts at m.
func NovelPreference(o Observations, m float64) float64 {
	m = min(max(m, 0.02), 0.98)
	lm := math.Log(m / (1 - m))
	e := o.SessionEvidence
	if o.SessionChain != (ModeChain{}) {
		q := o.SessionChain.Posterior(m)
		e = math.Log(q/(1-q)) - lm
	}
	e = min(max(e, -ModeEvidenceCap), ModeEvidenceCap)
	return 1 / (1 + math.Exp(-(lm + e)))
}

// UserPropensity is the static, user-level novelty propensity: the
// posterior mean of ρ_u given the user's closed sessions, under prior p.
// A user without sessions, or whose sessions offered no choice between
// novel and familiar items, keeps the prior mean.
func (p Prior) UserPropensity(o Observations) float64 {
	return o.Rho.Mean(p)
}

// State computes s_H into dst (len Dim) and returns it. Session features fall
// back to the user-level estimate while the session has no clicks, so a new
// session starts from what the user usually wants.
func (p Prior) State(dst []float64, o Observations) []float64 {
	if cap(dst) < Dim {
		dst = make([]float64, Dim)
	}
	x := dst[:Dim]
	m := p.UserPropensity(o)
	n := o.NovelClicks + o.FamiliarClicks
	x[FUserNovelRate] = m
	x[FUserConfidence] = n / (n + 10)
	x[FUserActivity] = math.Min(math.Log1p(float64(o.HistoryLen))/math.Log1p(ActivityCap), 1)
	x[FUserEntropy] = o.HistoryEntropy
	x[FSessNovelRate] = (o.SessionNovelClicks + 2*m) / (o.SessionClicks + 2)
	x[FSessClicks] = math.Min(math.Log1p(o.SessionClicks)/math.Log1p(20), 1)
	x[FSessSkips] = math.Min(math.Log1p(o.SessionSkips)/math.Log1p(20), 1)
	x[FSessMinutes] = math.Min(math.Max(o.SessionMinutes, 0)/30, 1)
	x[FSessEntropy] = o.SessionEntropy
	if o.SessionClicks > 0 {
		x[FSessRecentNovelty] = o.SessionNovelEWMA
	} else {
		x[FSessRecentNovelty] = m
	}
	x[FSessSkipRatio] = o.SessionSkips / (o.SessionClicks + o.SessionSkips + 1)
	x[FSessNovelPreference] = NovelPreference(o, m)
	return x
}

// Level is what an intent level asks of the low-level ranker.
type Level struct {
	// Beta weighs item novelty against relevance (unhedged slates only:
	// ranker.Knobs.Beta).
	Beta float64 `json:"beta"`
	// Lambda penalises similarity to items already in the slate.
	Lambda float64 `json:"lambda"`
	// NovelShare is the share of candidates drawn from the novel pool.
	NovelShare float64 `json:"novel_share"`
}

// DefaultLevels are K=5 levels from "more of the same" to "show me something
// new". Relevance of a familiar item is around 0.6–0.9 and of a novel one
// near 0, so the top levels' Beta is large enough to lift novel items above
// familiar ones. Beta and NovelShare act only on slates that are not hedged
// (recommend.Config.Hedge = 0): a hedged slate takes its novel share from
// the session's belief and fills the novel seats by relevance, so there a
// level sets Lambda alone.
//
// Every level keeps a diversity term: the lowest uses the MMR baseline's
// λ = 0.7, so that "more of the same" is at least as good a slate as MMR's,
// and λ falls towards the novel levels, whose novel pool is diverse by
// construction (it spans the unseen categories).
var DefaultLevels = []Level{
	{Beta: 0, Lambda: 0.7, NovelShare: 0},
	{Beta: 0.25, Lambda: 0.6, NovelShare: 0.15},
	{Beta: 0.5, Lambda: 0.5, NovelShare: 0.3},
	{Beta: 0.8, Lambda: 0.4, NovelShare: 0.5},
	{Beta: 1.2, Lambda: 0.4, NovelShare: 0.7},
}

// Policy is the high-level policy π_H(z|s_H), an ordinal softmax: the
// state sets a target novelty t(s) = T·s + T₀ on the level scale [0,1], and
// level z (at z' = z/(K−1)) has the logit κ(2z't(s) − z'²) + B_z, i.e.
// −κ(z' − t)² up to a constant plus a free per-level bias. This is a linear
// softmax W s + b whose rows are tied by the levels' order, so evidence that
// one level beats its neighbours moves the whole distribution the same way
// and learning does not have to discover each level separately (a free W
// collapses onto whichever level it tries first). V(s) is the baseline of
// its policy-gradient update.
type Policy struct {
	Levels []Level `json:"levels"`
	// T holds the target's weights: Dim weights then T₀.
	T []float64 `json:"t"`
	// Kappa is the sharpness κ of the distribution around the target.
	Kappa float64 `json:"kappa"`
	// B holds the per-level biases.
	B []float64 `json:"b"`
	// V holds the baseline's weights: Dim weights then a bias.
	V []float64 `json:"v"`
	// Q is the critic: per level, Dim weights then a bias of a linear
	// estimate of the return of taking that level in a state (nil before
	// the first update: all zeros). QP holds, per level, the (Dim+1)² matrix
	// of its recursive least-squares fit.
	Q  []float64 `json:"q,omitempty"`
	QP []float64 `json:"qp,omitempty"`
	// QForgets counts, per level, the fit's forgetting steps (updates that
	// discounted the old evidence by CriticForget), so that fits learned
	// apart can be combined with the shared one discounted as the local
	// one was. Nil in snapshots from before it was kept: zero.
	QForgets []int64 `json:"qforgets,omitempty"`
	// Prior is the population's Beta prior of ρ_u, and Mode the click
	// model that reads each session's evidence; both can be fitted to
	// logged sessions (ModeLog.Fit; the trainer publishes a fitted Prior
	// only when asked: fits misread it on traffic the service was not
	// built for). A zero Mode (a snapshot from before it was fitted)
	// means DefaultModeModel.
	Prior Prior     `json:"prior"`
	Mode  ModeModel `json:"mode,omitzero"`
	// Worth is the trainer's latest fit of the mode model, whose verdict
	// on whether novel items pay at all the decisions take
	// (ModeModel.NoveltyPays). It is Mode too unless the trainer runs
	// with -mode-belief=false, where Mode and Prior, which read the
	// evidence, stay the defaults. Zero: no fit yet; the verdict is then
	// Mode's.
	Worth ModeModel `json:"worth,omitzero"`
}

// K is the number of intent levels.
func (p *Policy) K() int { return len(p.Levels) }

// NewPolicy returns the prior policy that serves before any learning: the
// target is t = 3·q + 0.2·recent session novelty − 1.05, q the session's
// novel preference (NovelPreference, which starts at the user-level
// propensity), so the lowest level serves while q ≲ 0.3 and the top one
// once q ≳ 0.7: switching to novelty costs an exploiting session more clicks
// than it wins from an exploring one, so it needs a confident estimate.
func NewPolicy(levels []Level, kappa float64) *Policy {
	p := &Policy{
		Levels: append([]Level(nil), levels...),
		T:      make([]float64, Dim+1),
		Kappa:  kappa,
		B:      make([]float64, len(levels)),
		V:      make([]float64, Dim+1),
		Prior:  DefaultPrior,
		Mode:   DefaultModeModel(),
	}
	p.T[FSessNovelPreference] = 3
	p.T[FSessRecentNovelty] = 0.2
	p.T[Dim] = -1.05
	return p
}

// DefaultKappa sets how sharply the prior policy concentrates on the target level.
const DefaultKappa = 8

// Validate rejects a policy whose shapes or numbers would make serving fail,
// so a corrupt snapshot never replaces a working one.
func (p *Policy) Validate() error {
	k := len(p.Levels)
	switch {
	case k < 1:
		return errors.New("intent: policy has no levels")
	case len(p.T) != Dim+1:
		return fmt.Errorf("intent: T has %d weights, want %d", len(p.T), Dim+1)
	case len(p.B) != k:
		return fmt.Errorf("intent: b has %d entries, want %d", len(p.B), k)
	case len(p.V) != Dim+1:
		return fmt.Errorf("intent: V has %d entries, want %d", len(p.V), Dim+1)
	case len(p.Q) != 0 && len(p.Q) != k*(Dim+1):
		return fmt.Errorf("intent: Q has %d entries, want %d", len(p.Q), k*(Dim+1))
	case len(p.QP) != 0 && len(p.QP) != k*(Dim+1)*(Dim+1):
		return fmt.Errorf("intent: QP has %d entries, want %d", len(p.QP), k*(Dim+1)*(Dim+1))
	case len(p.QForgets) != 0 && len(p.QForgets) != k:
		return fmt.Errorf("intent: QForgets has %d entries, want %d", len(p.QForgets), k)
	case p.Prior.Alpha <= 0 || p.Prior.Beta <= 0:
		return errors.New("intent: prior must be positive")
	case !(p.Kappa > 0) || math.IsInf(p.Kappa, 0):
		return errors.New("intent: kappa must be positive and finite")
	}
	if err := p.Mode.OrDefault().Validate(); err != nil {
		return err
	}
	if err := p.Worth.OrDefault().Validate(); err != nil {
		return err
	}
	for _, s := range [][]float64{p.T, p.B, p.V, p.Q, p.QP} {
		if !finite(s) {
			return errors.New("intent: non-finite parameter")
		}
	}
	for _, l := range p.Levels {
		if !finite([]float64{l.Beta, l.Lambda, l.NovelShare}) || l.NovelShare < 0 || l.NovelShare > 1 {
			return errors.New("intent: invalid level")
		}
	}
	return nil
}

func finite(s []float64) bool {
	for _, x := range s {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// level returns z' = z/(K−1), the level's place on [0,1].
func (p *Policy) level(z int) float64 { return float64(z) / float64(max(p.K()-1, 1)) }

// Target is t(s), the novelty the policy aims at in state x: T·x + T₀
// clamped to the levels' scale [0,1] widened by one level on each side
// (targetMargin). A target far beyond the last level would
// only sharpen the distribution onto it; clamping keeps the policy's
// uncertainty between neighbouring levels, so learning cannot talk itself
// into a deterministic extreme on a few lucky returns.
func (p *Policy) Target(x []float64) float64 {
	m := p.targetMargin()
	return min(max(p.rawTarget(x), -m), 1+m)
}

// targetMargin lets the target go one level beyond either end, far enough
// for the end level to dominate (π ≈ 0.8 at the default κ) but not to
// become certain.
func (p *Policy) targetMargin() float64 { return 1 / float64(max(p.K()-1, 1)) }

func (p *Policy) rawTarget(x []float64) float64 { return floats.Dot(p.T[:Dim], x) + p.T[Dim] }

// Distribution writes π_H(·|x) into dst (len K) and returns it.
func (p *Policy) Distribution(dst, x []float64) []float64 {
	k := p.K()
	if cap(dst) < k {
		dst = make([]float64, k)
	}
	dst = dst[:k]
	t := p.Target(x)
	for z := range dst {
		zz := p.level(z)
		dst[z] = p.Kappa*(2*zz*t-zz*zz) + p.B[z]
	}
	lse := floats.LogSumExp(dst)
	for z := range dst {
		dst[z] = math.Exp(dst[z] - lse)
	}
	return dst
}

// Sample draws a level from probs using u ∈ [0,1).
func Sample(probs []float64, u float64) int {
	acc := 0.0
	for z, q := range probs {
		acc += q
		if u < acc {
			return z
		}
	}
	return len(probs) - 1
}

// Argmax is the deterministic mode's choice.
func Argmax(probs []float64) int { return floats.MaxIdx(probs) }

// SessionPropensity is the policy's estimate that this session seeks novelty:
// the expected level scaled to [0,1].
func SessionPropensity(probs []float64) float64 {
	if len(probs) < 2 {
		return 0
	}
	e := 0.0
	for z, q := range probs {
		e += float64(z) * q
	}
	return e / float64(len(probs)-1)
}

// Baseline is V(s_H), the expected return from state x.
func (p *Policy) Baseline(x []float64) float64 {
	return floats.Dot(p.V[:Dim], x) + p.V[Dim]
}

// Clone returns a deep copy, so a learner can update parameters while the
// served copy stays immutable.
func (p *Policy) Clone() *Policy {
	return &Policy{
		Levels:   append([]Level(nil), p.Levels...),
		T:        append([]float64(nil), p.T...),
		Kappa:    p.Kappa,
		B:        append([]float64(nil), p.B...),
		V:        append([]float64(nil), p.V...),
		Q:        append([]float64(nil), p.Q...),
		QP:       append([]float64(nil), p.QP...),
		QForgets: append([]int64(nil), p.QForgets...),
		Prior:    p.Prior,
		Mode:     p.Mode,
		Worth:    p.Worth,
	}
}

// Entropy returns the Shannon entropy of counts normalised by the log of
// their number, in [0,1]: 0 when all mass is on one category, 1 when spread
// evenly over every category (so it measures breadth against the catalog).
func Entropy(counts []float64) float64 {
	total := floats.Sum(counts)
	if total <= 0 || len(counts) < 2 {
		return 0
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			q := c / total
			h -= q * math.Log(q)
		}
	}
	return h / math.Log(float64(len(counts)))
}

// Step configures one update of the high level.
type Step struct {
	// LR and BaselineLR are the step sizes of the policy and of V.
	LR, BaselineLR float64
	// Clip caps the importance weight π/π_logged.
	Clip float64
	// Entropy weighs an entropy bonus that keeps the policy from
	// collapsing onto one level before the others have been tried.
	Entropy float64
}

// Value is the critic's estimate Q(x, z) of the return of level z in state
// x (0 before the critic has been fitted).
func (p *Policy) Value(x []float64, z int) float64 {
	if len(p.Q) == 0 {
		return 0
	}
	w := p.Q[z*(Dim+1) : (z+1)*(Dim+1)]
	return floats.Dot(w[:Dim], x) + w[Dim]
}

// criticPrior is the initial diagonal of each level's least-squares
// matrix: a ridge of 1/criticPrior on the critic's weights.
const criticPrior = 10

// CriticForget is the least-squares fit's forgetting factor: returns
// drift as the ranker learns and users change, so old evidence fades with
// a memory of about 1/(1−CriticForget) decisions per level.
const CriticForget = 0.999

// fitCritic moves Q(·, z) toward ret at x by one step of recursive least
// squares: unlike a gradient step it is invariant to the features' scale
// and offset, so the fit learns the state's weights as fast as its bias.
func (p *Policy) fitCritic(x []float64, z int, ret float64) {
	const n = Dim + 1
	k := p.K()
	if len(p.Q) == 0 {
		p.Q = make([]float64, k*n)
		p.QP = make([]float64, k*n*n)
		for l := range k {
			for i := range n {
				p.QP[l*n*n+i*n+i] = criticPrior
			}
		}
	}
	w := p.Q[z*n : (z+1)*n]
	P := p.QP[z*n*n : (z+1)*n*n]
	var xa, px [n]float64
	copy(xa[:], x)
	xa[Dim] = 1
	den := CriticForget
	for i := range n {
		px[i] = floats.Dot(P[i*n:(i+1)*n], xa[:])
		den += xa[i] * px[i]
	}
	err := ret - floats.Dot(w, xa[:])
	for i := range n {
		w[i] += px[i] / den * err
	}
	// P ← (P − Px·xᵀP/den)/forget; P is symmetric, so xᵀP = (Px)ᵀ. The
	// forgetting is skipped once P is large, so a level that is rarely
	// taken cannot wind its matrix up without bound.
	forget := CriticForget
	if tr := traceOf(P, n); tr > criticPrior*n {
		forget = 1
	} else {
		if len(p.QForgets) != k { // a fit from before the counts were kept
			p.QForgets = make([]int64, k)
		}
		p.QForgets[z]++
	}
	for i := range n {
		for j := range n {
			P[i*n+j] = (P[i*n+j] - px[i]*px[j]/den) / forget
		}
	}
}

func traceOf(P []float64, n int) float64 {
	t := 0.0
	for i := range n {
		t += P[i*n+i]
	}
	return t
}

// Update is one step of the high level's learning rule, an actor-critic
// with an action-value critic. The critic Q(x, ·) regresses the return of
// the level taken (recursive least squares, fitCritic), the baseline V(x)
// the return of the state, and the policy moves along
// w·A·∇log π(z|x) + c_H·∇H(π(·|x)) with the critic's advantage
// A = Q(x,z) − Σ_k π(k|x) Q(x,k) in place of the sampled return − V(x):
// the critic averages the return's noise out (the levels differ by a few
// tenths of a click per slate, the returns of one slate by several), which
// the sampled return fed straight into the step. w = min(π(z|x)/logged,
// clip) corrects for the policy having changed since the decision was
// logged, and the entropy term keeps exploring. It returns ret − V(x).
func (p *Policy) Update(x []float64, z int, logged, ret float64, st Step) float64 {
	adv := ret - p.Baseline(x)
	p.fitCritic(x, z, ret)
	var buf [16]float64
	probs := p.Distribution(buf[:0], x)
	w := 1.0
	if logged > 0 {
		w = math.Min(probs[z]/logged, st.Clip)
	}
	a := p.Value(x, z)
	for k, pk := range probs {
		a -= pk * p.Value(x, k)
	}
	h := 0.0
	for _, pk := range probs {
		if pk > 0 {
			h -= pk * math.Log(pk)
		}
	}
	// g[k] = ∂objective/∂logit_k; the target gets Σ_k g[k]·∂logit_k/∂t.
	gt := 0.0
	for k, pk := range probs {
		g := -pk
		if k == z {
			g += 1
		}
		g *= w * a
		if st.Entropy > 0 && pk > 0 {
			g -= st.Entropy * pk * (math.Log(pk) + h) // ∂H/∂logit_k
		}
		p.B[k] += st.LR * g
		gt += g * 2 * p.Kappa * p.level(k)
	}
	// Through the clamp: no step that pushes an out-of-range target
	// further out; one that brings it back is taken.
	if raw, m := p.rawTarget(x), p.targetMargin(); (raw >= 1+m && gt > 0) || (raw <= -m && gt < 0) {
		gt = 0
	}
	floats.AddScaled(p.T[:Dim], st.LR*gt, x)
	p.T[Dim] += st.LR * gt
	floats.AddScaled(p.V[:Dim], st.BaselineLR*adv, x)
	p.V[Dim] += st.BaselineLR * adv
	return adv
}
