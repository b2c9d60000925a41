package intent

import (
	"errors"
	"fmt"
	"math"

	"github.com/novarec/novarec/internal/vexp"
)

// ModeModel is the two-mode click model behind the session and user
// propensities: a session either explores or exploits, and an examined item
// is clicked with probability
//
//	P(click | explore) = σ(Base + (Shift + Contrast)·d − Routine·f),
//	P(click | exploit) = σ(Base + (Shift − Contrast)·d + Routine·f),
//
// where d = nov(u,i) − n̄ is the item's novelty relative to n̄, the mean
// novelty of the slate it was shown in, and f = 1 − n̄ how familiar the
// slate is as a whole. Centring d on the slate is the exposure correction:
// which kind of item the user chose among those offered says which mode
// they are in, whatever the policy chose to offer, and a policy that shows
// few novel items cannot make a user look like an exploiter.
//
// Routine is the other half of a mode: an exploring session is bored by a
// slate of more of the same and clicks less of it, an exploiting one is at
// home there. It is what an all-familiar slate, the one an exploiting
// session should get, reveals about the mode, so evidence keeps arriving
// without showing novel items for the sake of it. It is measured against
// familiarity, not novelty, on purpose: to a cold user everything is
// "novel" only because nothing is known, and a slate that is all novel
// (f = 0) still carries no evidence beyond which items were chosen, however
// much it is clicked.
//
// Shift is what every user does with novelty whatever the mode: novel
// items are usually less relevant and clicked less by everyone, so a click
// on one says more about exploring than a skip of one says about
// exploiting. Contrast is how much the mode matters: near zero, slates
// carry no evidence and the propensities stay at the population prior;
// Shift + Contrast is an exploring session's own taste for novelty.
//
// Examine and ExamineClick are the cascade's continuation rates: after
// passing over an item the user looks at the next one with probability
// Examine, after clicking one with probability ExamineClick. The items
// above a slate's deepest click were examined for certain; below it, and
// below the top item of a slate without a click, the depth is summed over.
//
// Base, Shift, Contrast, Routine and both rates are fitted to logged
// sessions (ModeLog.Fit) and travel with the policy in the model snapshot;
// DefaultModeModel is the prior a new deployment serves with.
type ModeModel struct {
	Base     float64 `json:"base"`
	Shift    float64 `json:"shift"`
	Contrast float64 `json:"contrast"`
	Routine  float64 `json:"routine,omitempty"`
	// ToExploit and ToExplore are the probabilities that a session's mode
	// switches after a slate, from exploring to exploiting and back. Zero
	// (the default) is a session that keeps its mode.
	ToExploit    float64 `json:"to_exploit,omitempty"`
	ToExplore    float64 `json:"to_explore,omitempty"`
	Examine      float64 `json:"examine"`
	ExamineClick float64 `json:"examine_click"`
	// NoveltySE is the fit's standard error of Shift + Contrast, an
	// exploring session's taste for novelty; zero for a model no fit set
	// (the default). NoveltyPays asks the fit for evidence, not a sign.
	NoveltySE float64 `json:"novelty_se,omitempty"`
}

// DefaultModeModel keeps the symmetric 0.75/0.25 rates of the policy's
// earlier click model: an item that matches the mode is clicked three times
// as often as one that does not (Contrast = 2·ln 3 over a unit novelty
// difference), at a base rate of one half; a user goes on looking after an
// item with probability 0.7, clicked or not.
func DefaultModeModel() ModeModel {
	return ModeModel{Base: 0, Contrast: 2 * math.Log(3), Examine: 0.7, ExamineClick: 0.7}
}

// OrDefault is m, or DefaultModeModel for the zero value: a snapshot
// written before the model was fitted, or a caller without a model.
func (m ModeModel) OrDefault() ModeModel {
	if m == (ModeModel{}) {
		return DefaultModeModel()
	}
	return m
}

// Validate rejects a model that would make evidence meaningless, so a
// corrupt snapshot never replaces a working one.
func (m ModeModel) Validate() error {
	if !finite([]float64{m.Base, m.Shift, m.Contrast, m.Routine, m.Examine, m.ExamineClick, m.NoveltySE}) {
		return errors.New("intent: non-finite mode model")
	}
	if m.NoveltySE < 0 {
		return fmt.Errorf("intent: mode model novelty standard error %v is negative", m.NoveltySE)
	}
	if !(m.ToExploit >= 0 && m.ToExploit < 1) || !(m.ToExplore >= 0 && m.ToExplore < 1) {
		return fmt.Errorf("intent: mode model switch rates %v, %v out of range", m.ToExploit, m.ToExplore)
	}
	if m.Contrast < 0 || !(m.Examine >= 0 && m.Examine <= 1) || !(m.ExamineClick >= 0 && m.ExamineClick <= 1) {
		return fmt.Errorf("intent: mode model contrast %v or continuation rates %v, %v out of range", m.Contrast, m.Examine, m.ExamineClick)
	}
	return nil
}

// logits are the two modes' click logits of an item at relative novelty d
// in a slate of familiarity f.
func (m ModeModel) logits(d, f float64) (explore, exploit float64) {
	return m.Base + (m.Shift+m.Contrast)*d - m.Routine*f, m.Base + (m.Shift-m.Contrast)*d + m.Routine*f
}

// logTransitions is the log of the mode chain's transition matrix, [from][to]
// with 0 explore.
func (m ModeModel) logTransitions() [2][2]float64 {
	return [2][2]float64{
		{math.Log1p(-m.ToExploit), math.Log(m.ToExploit)},
		{math.Log(m.ToExplore), math.Log1p(-m.ToExplore)},
	}
}

// Predict is the probability that the next slate of a session explores,
// given q, the probability that its last one did: one step of the mode
// chain.
func (m ModeModel) Predict(q float64) float64 {
	return q*(1-m.ToExploit) + (1-q)*m.ToExplore
}

// ModeChain is a session's evidence about its mode slate by slate, as the
// forward filter of the mode's chain needs it without knowing the prior of
// the first slate's mode (which is the user propensity, and changes as the
// population prior is refitted): the product D₁·T·D₂·…·T·D_k of each slate's
// likelihoods, D = diag(e^ℓ, 1) for a slate of evidence ℓ, and the chain's
// transitions T between them, scaled so its largest entry is 1. Row z, column
// z' is the likelihood of the slates given that the first was in mode z and
// the last in z' (0 explore). The zero value is a session without slates.
// For a chain that never switches it holds exactly e^(ℓ₁+…+ℓ_k) against 1.
type ModeChain [2][2]float64

// maxSlateEvidence bounds one slate's evidence in a ModeChain so that e^ℓ
// stays far from overflow; no slate of a hundred items reaches it.
const maxSlateEvidence = 30

// Append is c followed by one more slate with evidence l.
func (m ModeModel) Append(c ModeChain, l float64) ModeChain {
	l = min(max(l, -maxSlateEvidence), maxSlateEvidence)
	// D scaled by its larger entry.
	d := [2]float64{1, math.Exp(-l)}
	if l < 0 {
		d = [2]float64{math.Exp(l), 1}
	}
	var out ModeChain
	if c == (ModeChain{}) {
		out = ModeChain{{d[0], 0}, {0, d[1]}}
	} else {
		t := [2][2]float64{{1 - m.ToExploit, m.ToExploit}, {m.ToExplore, 1 - m.ToExplore}}
		for a := range 2 {
			for b := range 2 {
				out[a][b] = (c[a][0]*t[0][b] + c[a][1]*t[1][b]) * d[b]
			}
		}
	}
	top := max(out[0][0], out[0][1], out[1][0], out[1][1])
	for a := range 2 {
		for b := range 2 {
			out[a][b] /= top
		}
	}
	return out
}

// Evidence is the log-likelihood ratio of the session's slates, explore over
// exploit, for the mode its first slate was in: what the session says about
// the user's ρ_u (RhoPosterior.Fold). For a chain that never switches it is
// the sum of the slates' evidence.
func (c ModeChain) Evidence() float64 {
	if c == (ModeChain{}) {
		return 0
	}
	return math.Log(c[0][0]+c[0][1]) - math.Log(c[1][0]+c[1][1])
}

// Posterior is the probability that the session's last slate was in explore
// mode, given the slates and q0, the probability that its first was.
func (c ModeChain) Posterior(q0 float64) float64 {
	if c == (ModeChain{}) {
		return q0
	}
	e := q0*c[0][0] + (1-q0)*c[1][0]
	x := q0*c[0][1] + (1-q0)*c[1][1]
	return min(max(e/(e+x), 1e-9), 1-1e-9)
}

// Valid reports whether c is a chain Append could have made: finite,
// non-negative and scaled, or zero.
func (c ModeChain) Valid() bool {
	if c == (ModeChain{}) {
		return true
	}
	top := 0.0
	for _, row := range c {
		for _, v := range row {
			if !(v >= 0 && v <= 1) {
				return false
			}
			top = max(top, v)
		}
	}
	return top > 0
}

// NovelWorth turns q, the probability that the session explores, into the
// share of the stakes that lie with novel items: q·G / (q·G + (1−q)·L),
// where G is how many more clicks an exploring session gives a novel item
// than a familiar one and L how many fewer an exploiting session gives it
// (the model's click rates half a unit of novelty above and below the
// mean of a half-novel slate). The decisions (the level's target and the hedge's novel
// seats) act on it rather than on q: where the mode matters little, or
// explorers click novel items no more than familiar ones (G ≤ 0), novel
// items earn no seats however likely exploring is. Under a symmetric
// model (Shift 0, the default) G = L and NovelWorth is q itself.
//
// NovelWorth is never more than q: a fitted model may take novel seats
// away, where novelty pays less than the default model assumes, but never
// add them. Its errors are one-sided: to a cold user most items are novel,
// so early traffic makes everyone look fond of novel items (a fitted
// Shift of +0.7 to +1.0 through the HTTP API, which gave a user at q = 0.25
// half the slate novel and cost loyal users clicks), while novelty that
// costs clicks is the failure that matters.
func (m ModeModel) NovelWorth(q float64) float64 {
	g, l := m.gains()
	if g >= l {
		return q
	}
	if g <= 0 {
		return 0
	}
	return q * g / (q*g + (1-q)*l)
}

// NoveltyPays reports whether an exploring session clicks a novel item
// more often than a familiar one under m (G > 0 in NovelWorth), by more
// than NoveltyZ of the fit's standard errors (NoveltySE): where even
// exploring does not favour novel items, no belief earns them seats.
//
// The verdict asks for evidence, not a sign, because the two errors cost
// differently. Where the mode matters, explorers' taste for novelty is
// large and plain (Shift + Contrast 0.8–1.1 in the simulator, about 1.4
// through the HTTP API). Where it barely matters, fits land near zero on
// either side, and a verdict by sign gave novel items seats they did not
// earn: in the simulator's weak mode it cost 0.55 clicks per user against
// this test (docs/evaluation-intent.md).
func (m ModeModel) NoveltyPays() bool {
	// G > 0 exactly when Shift + Contrast > 0: G compares two items of
	// one slate, so Base and Routine cancel in its sign.
	return m.Shift+m.Contrast > NoveltyZ*m.NoveltySE
}

// NoveltyZ is how many of the fit's standard errors above zero explorers'
// taste for novelty must lie for NoveltyPays. The standard error is the
// complete-data one, which takes the slates' modes as known: on planted
// sessions fits spread about 1.7 times as widely as it says, and where the
// mode barely matters they lean toward novelty (0.38 for a planted 0,
// the split between the modes being barely identified). Three of them
// are about two of the real spread.
const NoveltyZ = 3.0

// gains are G and L of NovelWorth: how many more clicks an exploring
// session gives an item half a unit more novel than its slate than one
// half a unit less, and how many fewer an exploiting one gives it.
func (m ModeModel) gains() (g, l float64) {
	e1, x1 := m.logits(0.5, 0.5)
	e0, x0 := m.logits(-0.5, 0.5)
	return sigmoid(e1) - sigmoid(e0), sigmoid(x0) - sigmoid(x1)
}

// ClickEvidence is the log-likelihood ratio, explore over exploit, of a
// click on an item at relative novelty d in a slate of familiarity f.
func (m ModeModel) ClickEvidence(d, f float64) float64 {
	e, x := m.logits(d, f)
	return logSigmoid(e) - logSigmoid(x)
}

// SkipEvidence is the log-likelihood ratio of examining the item and not
// clicking it.
func (m ModeModel) SkipEvidence(d, f float64) float64 {
	e, x := m.logits(d, f)
	return logSigmoid(-e) - logSigmoid(-x)
}

// logSigmoid is log σ(x), stable for large |x|.
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

// SlateEvidence is the evidence of one slate: novelty holds each shown
// item's nov(u,i) in position order, clicked whether it was clicked. It is
// the exact log-likelihood ratio, explore over exploit, under the cascade
// (slateLogLik): the items above the deepest click were examined, and
// whether the user looked further, and passed over what was there, is
// summed over, so a slate without a click counts its top items almost as
// skips and its lower ones less and less.
func (m ModeModel) SlateEvidence(novelty []float64, clicked []bool) float64 {
	n := min(len(novelty), len(clicked))
	if n == 0 {
		return 0
	}
	c := 0.0
	for _, v := range novelty[:n] {
		c += v
	}
	c /= float64(n)
	var buf [16]modeObs
	obs := buf[:0]
	for k := range n {
		obs = append(obs, modeObs{d: float32(novelty[k] - c), f: float32(1 - c), click: clicked[k]})
	}
	var pbuf [32]float64
	p := pbuf[:]
	if 2*n > len(pbuf) {
		p = make([]float64, 2*n)
	}
	pe, px := m.clickProbs(obs, p)
	return m.slateLogLik(obs, pe, nil) - m.slateLogLik(obs, px, nil)
}

// clickProbs returns each item's click probability under either mode,
// σ of its logits, in buf (at least twice as long as obs): the
// exponentials of all of them in one vexp.Exp call, four at a time where
// the CPU allows, each the same double as sigmoid's math.Exp. They were
// one call at a time, two per shown item and decision, 9% of a decision
// over served users.
func (m ModeModel) clickProbs(obs []modeObs, buf []float64) (explore, exploit []float64) {
	n := len(obs)
	z := buf[:2*n]
	for k, o := range obs {
		e, x := m.logits(float64(o.d), float64(o.f))
		z[k], z[n+k] = -e, -x
	}
	vexp.Exp(z, z)
	for k, v := range z {
		z[k] = 1 / (1 + v)
	}
	return z[:n], z[n:]
}

// slateLogLik is the log-likelihood of one slate's clicks under one mode
// and the cascade, p holding each item's click probability under the mode
// (clickProbs): the user examines the top item, and goes on to the next
// with probability Examine after an item they passed over, ExamineClick
// after one they clicked. Items down to the deepest click were examined;
// below it (or in a slate without a click, below the top) the depth is
// summed over. The continuations above the deepest click are the same
// under both modes and left out. When w
// is not nil it receives each item's probability of having been examined
// given the clicks, the E step's weights.
func (m ModeModel) slateLogLik(obs []modeObs, p []float64, w []float64) float64 {
	n := len(obs)
	p = p[:n]
	deepest := -1
	for k := n - 1; k >= 0; k-- {
		if obs[k].click {
			deepest = k
			break
		}
	}
	ll := 0.0
	for k := 0; k <= deepest; k++ {
		if obs[k].click {
			ll += math.Log(p[k])
		} else {
			ll += math.Log1p(-p[k])
		}
		if w != nil {
			w[k] = 1
		}
	}
	// The tail: s[k] is the probability of what was seen from item k on,
	// for a user about to decide whether to look at it: either they stop,
	// or they examine it and pass (with probability 1 − p[k]).
	var sbuf [17]float64
	s := sbuf[:0]
	if n+1 > len(sbuf) {
		s = make([]float64, n+1)
	}
	s = s[:n+1]
	t0 := deepest + 1
	s[n] = 1
	for k := n - 1; k >= t0; k-- {
		s[k] = (1 - m.Examine) + m.Examine*(1-p[k])*s[k+1]
	}
	if t0 >= n {
		return ll
	}
	// Below a click the first step is a continuation after a click; the
	// top item of a slate without a click was examined for certain.
	tail, reach := (1-m.ExamineClick)+m.ExamineClick*(1-p[t0])*s[t0+1], m.ExamineClick
	if deepest < 0 {
		tail, reach = (1-p[0])*s[1], 1
	}
	if w != nil {
		for k := t0; k < n; k++ {
			w[k] = reach * (1 - p[k]) * s[k+1] / tail
			reach *= (1 - p[k]) * m.Examine
		}
	}
	return ll + math.Log(tail)
}

// Grid is the number of points of RhoPosterior.
const Grid = 16

// RhoPosterior is a user's posterior over ρ_u, the probability that a
// session of theirs explores, on Grid points (g+½)/Grid, as unnormalised
// log densities. Each closed session multiplies it by its mixture
// likelihood ρ·L_explore + (1−ρ)·L_exploit ∝ ρ·e^ℓ + 1 − ρ, with ℓ the
// session's evidence: a session is either exploring or exploiting as a
// whole, so ten sessions of one click each are not one session of ten
// clicks (which a Beta count of novel clicks would treat alike), and a
// user who explores in a few sessions and exploits in the rest is read as
// exactly that. The zero value is the flat prior; Fold and Mean take the
// Beta prior separately so that it can be changed without rewriting users.
type RhoPosterior [Grid]float32

// rhoAt is the g-th grid point.
func rhoAt(g int) float64 { return (float64(g) + 0.5) / Grid }

// SessionEvidenceCap bounds one session's evidence in the user posterior:
// a single long session cannot outweigh many short ones.
const SessionEvidenceCap = 6

// Fold multiplies the posterior by the likelihood of one closed session
// with evidence ℓ.
func (r *RhoPosterior) Fold(l float64) {
	l = min(max(l, -SessionEvidenceCap), SessionEvidenceCap)
	if l == 0 {
		return
	}
	for g := range r {
		rho := rhoAt(g)
		// log(ρe^ℓ + 1 − ρ), computed as logaddexp.
		a, b := math.Log(rho)+l, math.Log1p(-rho)
		hi, lo := max(a, b), min(a, b)
		r[g] += float32(hi + math.Log1p(math.Exp(lo-hi)))
	}
	// Keep the values small: only differences matter.
	top := r[0]
	for _, v := range r {
		top = max(top, v)
	}
	for g := range r {
		r[g] -= top
	}
}

// Mean is the posterior mean of ρ under prior p: exactly the prior's mean
// when there is no evidence.
func (r *RhoPosterior) Mean(p Prior) float64 {
	if *r == (RhoPosterior{}) {
		return p.Alpha / (p.Alpha + p.Beta)
	}
	var lw [Grid]float64
	top := math.Inf(-1)
	for g := range r {
		rho := rhoAt(g)
		lw[g] = float64(r[g]) + (p.Alpha-1)*math.Log(rho) + (p.Beta-1)*math.Log1p(-rho)
		top = max(top, lw[g])
	}
	num, den := 0.0, 0.0
	for g, v := range lw {
		w := math.Exp(v - top)
		num += w * rhoAt(g)
		den += w
	}
	return num / den
}

// Valid reports whether every entry is finite.
func (r *RhoPosterior) Valid() bool {
	for _, v := range r {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
