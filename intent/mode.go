package intent

import "math"

// ModeModel is the two-mode click model behind the session and user
// propensities: a session either explores or exploits, and an examined item
// is clicked with probability
//
//	P(click | explore) = σ(Base + Contrast·d),  P(click | exploit) = σ(Base − Contrast·d),
//
// where d = nov(u,i) − n̄ is the item's novelty relative to n̄, the mean
// novelty of the slate it was shown in. Centring on the slate is the
// exposure correction: what a click reveals is which kind of item the user
// chose among those offered, so a slate that is all novel (a cold user's,
// to whom everything is new) or all familiar carries no evidence about the
// mode, however much it is clicked, and a policy that shows few novel items
// cannot make a user look like an exploiter. The base rate is shared by the
// two modes for the same reason: a mode is a preference between kinds of
// item, not a propensity to click.
//
// Examine is the cascade's examination rate: a slate that got no click was
// examined to position k with probability Examine^k, so its skips count
// with that weight (items above a click were examined for certain).
//
// The parameters are a generic prior (DefaultModeModel), not fitted to
// logs yet.
type ModeModel struct {
	Base, Contrast, Examine float64
}

// DefaultModeModel keeps the symmetric 0.75/0.25 rates of the policy's
// earlier click model: an item that matches the mode is clicked three times
// as often as one that does not (Contrast = 2·ln 3 over a unit novelty
// difference), at a base rate of one half, and a slate without a click was
// examined to about three positions.
func DefaultModeModel() ModeModel {
	return ModeModel{Base: 0, Contrast: 2 * math.Log(3), Examine: 0.7}
}

// ClickEvidence is the log-likelihood ratio, explore over exploit, of a
// click on an item at relative novelty d.
func (m ModeModel) ClickEvidence(d float64) float64 {
	return logSigmoid(m.Base+m.Contrast*d) - logSigmoid(m.Base-m.Contrast*d)
}

// SkipEvidence is the log-likelihood ratio of examining the item and not
// clicking it.
func (m ModeModel) SkipEvidence(d float64) float64 {
	return logSigmoid(-m.Base-m.Contrast*d) - logSigmoid(-m.Base+m.Contrast*d)
}

// logSigmoid is log σ(x), stable for large |x|.
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

// SlateEvidence is the evidence of one slate: novelty holds each shown
// item's nov(u,i) in position order, clicked whether it was clicked. Items
// above the deepest click were examined; below it nothing is counted (the
// user may have stopped there). A slate with no click counts its skips with
// the examination weights Examine^k.
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
	deepest := -1
	for k := n - 1; k >= 0; k-- {
		if clicked[k] {
			deepest = k
			break
		}
	}
	e := 0.0
	if deepest < 0 {
		w := 1.0
		for k := range n {
			e += w * m.SkipEvidence(novelty[k]-c)
			w *= m.Examine
		}
		return e
	}
	for k := 0; k <= deepest; k++ {
		if clicked[k] {
			e += m.ClickEvidence(novelty[k] - c)
		} else {
			e += m.SkipEvidence(novelty[k] - c)
		}
	}
	return e
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
