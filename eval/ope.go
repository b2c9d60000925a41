package eval

import (
	"errors"
	"fmt"
	"math"
)

// Sample is one logged decision as the off-policy estimators see it: the
// logging policy μ took action a in context x with probability Propensity
// and observed Reward; Target is the probability π(a|x) that the policy
// under evaluation would have taken the same action. Target may also be an
// unbiased estimate of that probability (e.g. the share of Monte Carlo
// draws of π that chose a): every estimator here is linear in it, or a
// ratio of such, so the estimate stays unbiased (IPS, DR) or consistent
// (SNIPS).
//
// Predicted and TargetPredicted serve the doubly robust estimator only:
// Predicted is a reward model's q̂(x,a) for the logged action and
// TargetPredicted its expectation under the target, Σ_a' π(a'|x)·q̂(x,a')
// (or an unbiased estimate of it). Keeping them in the sample lets the
// caller use any reward model — MeanReward, or one of its own.
type Sample struct {
	Reward          float64 `json:"reward"`
	Propensity      float64 `json:"propensity"`
	Target          float64 `json:"target"`
	Predicted       float64 `json:"predicted,omitempty"`
	TargetPredicted float64 `json:"target_predicted,omitempty"`
}

// Options tune the estimators.
type Options struct {
	// Clip caps each importance weight π/μ at Clip when positive (0 = no
	// cap). Clipping trades a downward bias for much lower variance when
	// the logging policy rarely took actions the target favours.
	Clip float64
}

// Errors of the estimators.
var (
	// ErrNoSamples: there is nothing to estimate from.
	ErrNoSamples = errors.New("eval: no samples")
	// ErrPropensity: a sample's logged propensity is not in (0,1] or a
	// target probability not in [0,1]; the estimators would divide by it
	// or weight by nonsense.
	ErrPropensity = errors.New("eval: invalid propensity")
	// ErrNoOverlap: no logged action has positive target probability, so
	// the self-normalised estimate is undefined (the target shares no
	// support with the logs).
	ErrNoOverlap = errors.New("eval: no logged action has positive target probability")
)

// Weight is the importance weight π(a|x)/μ(a|x) of s under o, checking that
// the probabilities are valid.
func (o Options) Weight(s Sample) (float64, error) {
	switch {
	case !(s.Propensity > 0 && s.Propensity <= 1):
		return 0, fmt.Errorf("%w: logged propensity %v", ErrPropensity, s.Propensity)
	case !(s.Target >= 0 && s.Target <= 1):
		return 0, fmt.Errorf("%w: target probability %v", ErrPropensity, s.Target)
	case math.IsNaN(s.Reward) || math.IsInf(s.Reward, 0):
		return 0, fmt.Errorf("eval: non-finite reward %v", s.Reward)
	}
	w := s.Target / s.Propensity
	if o.Clip > 0 && w > o.Clip {
		w = o.Clip
	}
	return w, nil
}

func (o Options) weights(samples []Sample) ([]float64, error) {
	if len(samples) == 0 {
		return nil, ErrNoSamples
	}
	ws := make([]float64, len(samples))
	for i, s := range samples {
		w, err := o.Weight(s)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		ws[i] = w
	}
	return ws, nil
}

// IPS is the inverse propensity score estimate of the target's expected
// reward, V̂ = (1/n) Σ w_i r_i with w_i = π/μ (Horvitz–Thompson). It is
// unbiased when the logging policy gives every action the target may take a
// positive probability and weights are not clipped. Its interval is the
// t-interval of the per-sample terms w_i r_i (normal approximation).
func IPS(samples []Sample, o Options) (Estimate, error) {
	ws, err := o.weights(samples)
	if err != nil {
		return Estimate{}, err
	}
	terms := make([]float64, len(samples))
	for i, s := range samples {
		terms[i] = ws[i] * s.Reward
	}
	return MeanCI(terms), nil
}

// SNIPS is the self-normalised IPS estimate, V̂ = Σ w_i r_i / Σ w_i. It is
// biased in small samples but consistent, invariant to adding a constant to
// rewards, and always within the range of the observed rewards, which
// tames IPS's variance when weights are large. Its interval comes from the
// delta method: the ratio's variance is approximately
// Var(w(r − V̂)) / (n·mean(w)²).
func SNIPS(samples []Sample, o Options) (Estimate, error) {
	ws, err := o.weights(samples)
	if err != nil {
		return Estimate{}, err
	}
	n := len(samples)
	var sw, swr float64
	for i, s := range samples {
		sw += ws[i]
		swr += ws[i] * s.Reward
	}
	if sw <= 0 {
		return Estimate{N: n}, ErrNoOverlap
	}
	v := swr / sw
	if n < 2 {
		return Estimate{Value: v, Lo: v, Hi: v, N: n}, nil
	}
	ss := 0.0
	for i, s := range samples {
		d := ws[i] * (s.Reward - v)
		ss += d * d
	}
	meanW := sw / float64(n)
	se := math.Sqrt(ss/float64(n-1)/float64(n)) / meanW
	h := TQuantile(n) * se
	return Estimate{Value: v, Lo: v - h, Hi: v + h, N: n}, nil
}

// DR is the doubly robust estimate (Dudík et al., 2011),
// V̂ = (1/n) Σ [ q̂_π(x_i) + w_i (r_i − q̂(x_i,a_i)) ], with q̂_π the reward
// model's expectation under the target (TargetPredicted) and q̂(x,a) its
// prediction for the logged action (Predicted). It is unbiased if either
// the propensities or the reward model are right, and has lower variance
// than IPS when the model is good. Its interval is the t-interval of the
// per-sample terms.
func DR(samples []Sample, o Options) (Estimate, error) {
	terms, err := DRTerms(samples, o)
	if err != nil {
		return Estimate{}, err
	}
	return MeanCI(terms), nil
}

// DRTerms returns the per-sample terms whose mean is the DR estimate. Two
// targets scored on the same logged samples can be compared by the mean of
// their terms' differences: a paired estimate whose interval is much
// narrower than the two separate intervals suggest, because most of the
// noise (which items were clicked) is shared.
func DRTerms(samples []Sample, o Options) ([]float64, error) {
	ws, err := o.weights(samples)
	if err != nil {
		return nil, err
	}
	terms := make([]float64, len(samples))
	for i, s := range samples {
		if math.IsNaN(s.Predicted) || math.IsInf(s.Predicted, 0) || math.IsNaN(s.TargetPredicted) || math.IsInf(s.TargetPredicted, 0) {
			return nil, fmt.Errorf("eval: sample %d: non-finite reward model prediction", i)
		}
		terms[i] = s.TargetPredicted + ws[i]*(s.Reward-s.Predicted)
	}
	return terms, nil
}

// EffectiveSampleSize is (Σw)²/Σw², the number of on-policy samples the
// weighted logs are worth: far below n means the target strays from the
// logging policy and the intervals will be wide. 0 when no weight is
// positive or a sample is invalid.
func EffectiveSampleSize(samples []Sample, o Options) float64 {
	ws, err := o.weights(samples)
	if err != nil {
		return 0
	}
	var s, s2 float64
	for _, w := range ws {
		s += w
		s2 += w * w
	}
	if s2 == 0 {
		return 0
	}
	return s * s / s2
}

// MeanReward is the simplest reward model for DR: q̂(k) is the mean logged
// reward of key k (a context–action pair, or an action alone), shrunk
// toward the mean of all rewards by Prior pseudo-observations, and that
// global mean for keys never logged. It is cheap, needs no features, and
// DR stays unbiased however poor it is.
type MeanReward[K comparable] struct {
	// Prior is the number of pseudo-observations at the global mean added
	// to every key (0 = the plain per-key mean).
	Prior float64

	sum   map[K]float64
	n     map[K]float64
	total float64
	count float64
}

// NewMeanReward returns an empty model with the given prior weight.
func NewMeanReward[K comparable](prior float64) *MeanReward[K] {
	return &MeanReward[K]{Prior: max(prior, 0), sum: map[K]float64{}, n: map[K]float64{}}
}

// Add records one observed reward for key k.
func (m *MeanReward[K]) Add(k K, r float64) {
	if m.sum == nil {
		m.sum, m.n = map[K]float64{}, map[K]float64{}
	}
	m.sum[k] += r
	m.n[k]++
	m.total += r
	m.count++
}

// Global is the mean of all rewards added (0 when none).
func (m *MeanReward[K]) Global() float64 {
	if m.count == 0 {
		return 0
	}
	return m.total / m.count
}

// Predict is q̂(k).
func (m *MeanReward[K]) Predict(k K) float64 {
	g := m.Global()
	n := m.n[k]
	if n+m.Prior == 0 {
		return g
	}
	return (m.sum[k] + m.Prior*g) / (n + m.Prior)
}
