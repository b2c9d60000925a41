package intent

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// ModeLog is a bounded window of logged sessions, each the shown items of
// its slates in order (novelty relative to the slate, whether clicked),
// that Fit fits the mode model and the population prior to. The learner
// feeds it every decision whose outcome is known; it keeps the most recent
// sessions, up to a budget of items, so that its memory is set by
// configuration and the fit follows the traffic as it changes.
type ModeLog struct {
	// FitRoutine makes Fit fit Routine too; otherwise Fit holds it at 0
	// (recommend.LearnerConfig.ModeRoutine). Routine is real in the
	// simulator (an exploring session clicks a familiar slate less) and in
	// an independent HTTP client's traffic (fitted at 1.25); there, fits
	// with it misread the modes only while the service's novelty parted
	// from the client's categories and the fit set the prior too
	// (docs/evaluation-http.md#routine-fitted).
	FitRoutine bool
	// FitSwitch makes Fit fit the switch rates ToExploit and ToExplore;
	// otherwise Fit holds them at 0, a session that keeps its mode
	// (recommend.LearnerConfig.ModeSwitch). Through the HTTP API, on a
	// client whose sessions never switch, fits found a drift toward
	// exploring (0.02 a slate against 0.005 back) that the weak evidence
	// of mostly familiar slates could not hold back: loyal users' exploiting
	// sessions were read as more and more exploring, slate by slate
	// (docs/evaluation-http.md#an-independent-http-client).
	FitSwitch bool

	maxItems int
	items    int
	sessions []modeSession
	open     map[string]int // user\x00session → index in sessions
}

type modeSession struct {
	user, id string
	last     int64 // the latest slate's time, ms
	obs      []modeObs
	// off and slates are Fit's: the session's first item's offset in the
	// window and the range of its slates in Fit's slate list.
	off    int
	slates [2]int
}

// modeObs is one shown item: its novelty relative to its slate's mean, its
// slate's familiarity (1 − the mean), whether it was clicked, and whether it
// starts a slate.
type modeObs struct {
	d, f         float32
	click, first bool
}

// IdleGap splits the slates of a user without a session id into sessions,
// as the service does (recommend.SessionGap): 30 minutes without a slate
// starts a new one.
const IdleGap = 30 * 60 * 1000

// NewModeLog keeps up to maxItems shown items.
func NewModeLog(maxItems int) *ModeLog {
	return &ModeLog{maxItems: max(maxItems, 1), open: map[string]int{}}
}

// Add records one slate of a session: novelty holds each shown item's
// nov(u,i) in position order, clicked whether it was clicked. ts, in ms,
// splits a user's slates into sessions when session is empty.
func (l *ModeLog) Add(user, session string, ts int64, novelty []float64, clicked []bool) {
	n := min(len(novelty), len(clicked))
	if n == 0 {
		return
	}
	c := 0.0
	for _, v := range novelty[:n] {
		c += v
	}
	c /= float64(n)
	key := user + "\x00" + session
	i, ok := l.open[key]
	if ok && session == "" && ts-l.sessions[i].last > IdleGap {
		ok = false
	}
	if !ok {
		i = len(l.sessions)
		l.sessions = append(l.sessions, modeSession{user: user, id: session})
		l.open[key] = i
	}
	s := &l.sessions[i]
	s.last = max(s.last, ts)
	for k := range n {
		s.obs = append(s.obs, modeObs{d: float32(novelty[k] - c), f: float32(1 - c), click: clicked[k], first: k == 0})
	}
	l.items += n
	if l.items > l.maxItems {
		l.trim()
	}
}

// trim drops the oldest sessions until the window holds at most half its
// budget, so that trimming is rare and its cost amortised.
func (l *ModeLog) trim() {
	drop := 0
	for drop < len(l.sessions) && l.items > l.maxItems/2 {
		l.items -= len(l.sessions[drop].obs)
		drop++
	}
	l.sessions = slices.Delete(l.sessions, 0, drop)
	clear(l.open)
	for i, s := range l.sessions {
		l.open[s.user+"\x00"+s.id] = i
	}
}

// MinFitSessions and MinFitUsers are how much a window must hold before
// Fit moves away from the model it starts from.
const (
	MinFitSessions = 300
	MinFitUsers    = 100
)

// FitStats describes one fit.
type FitStats struct {
	Sessions, Users, Items int
	// LogLik is the marginal log-likelihood per session at the end.
	LogLik float64
}

// Fit fits Base, Shift, Contrast, Routine, the switch rates of m and the
// population prior p of ρ_u to the window by EM, starting from m and p (so
// a refit after a little more traffic takes few iterations). The latent
// variables are each slate's mode, a two-state Markov chain within its
// session that starts exploring with probability ρ_u and switches after
// each slate with ToExploit or ToExplore, and each user's ρ_u; the prior of
// ρ_u is a distribution on the RhoPosterior grid (a nonparametric
// maximum-likelihood estimate), of which the returned Beta prior keeps the
// mean and variance. The E step is exact: a session's likelihood given
// its first slate's mode by a backward pass, the user's ρ_u from all their
// sessions, and each slate's mode by the forward pass of the smoother. The
// M step fits the click model by Newton's method, a logistic regression of
// the examined items on (1, d, ±d, ∓f) weighted by their slates' mode
// probabilities, and the continuation and switch rates by expected counts;
// its information gives NoveltySE.
// Fit returns m and p unchanged, and ok false, when the window holds too
// little (MinFitSessions, MinFitUsers).
func (l *ModeLog) Fit(m ModeModel, p Prior, iters int) (ModeModel, Prior, FitStats, bool) {
	byUser := l.groupByUser()
	st := FitStats{Sessions: len(l.sessions), Users: len(byUser), Items: l.items}
	if st.Sessions < MinFitSessions || st.Users < MinFitUsers {
		return m, p, st, false
	}
	if l.FitSwitch {
		// A chain that never switches cannot learn that it does.
		m.ToExploit, m.ToExplore = max(m.ToExploit, minSwitch), max(m.ToExplore, minSwitch)
	} else {
		m.ToExploit, m.ToExplore = 0, 0
	}
	if !l.FitRoutine {
		m.Routine = 0
	}
	pi := p.grid()
	slates := l.slates()
	var (
		le, lx = make([]float64, len(l.sessions)), make([]float64, len(l.sessions))
		// Per slate: its log-likelihood under either mode, the backward
		// log-likelihood of it and the rest of its session given its
		// mode, and its probability of exploring.
		ee, ex = make([]float64, len(slates)), make([]float64, len(slates))
		be, bx = make([]float64, len(slates)), make([]float64, len(slates))
		gamma  = make([]float64, len(slates))
		resp   = make([]float64, l.items)
		we, wx = make([]float64, l.items), make([]float64, l.items)
		post   [Grid]float64
		logRho [Grid][2]float64
		pbuf   = make([]float64, 32) // a slate's click probabilities under either mode
		sc     [3]float64            // Var(Shift), Var(Contrast), Cov(Shift, Contrast)
	)
	for g := range Grid {
		logRho[g] = [2]float64{math.Log(rhoAt(g)), math.Log1p(-rhoAt(g))}
	}
	for range max(iters, 1) {
		// E step: each slate's likelihood under either mode, with the
		// examination probabilities of its items, and each session's
		// given its first slate's mode.
		lt := m.logTransitions()
		for i, s := range l.sessions {
			first, last := s.slates[0], s.slates[1]
			for t := first; t < last; t++ {
				a, b := slates[t].lo, slates[t].hi
				obs := s.obs[a-s.off : b-s.off]
				if 2*len(obs) > len(pbuf) {
					pbuf = make([]float64, 2*len(obs))
				}
				pe, px := m.clickProbs(obs, pbuf)
				ee[t] = m.slateLogLik(obs, pe, we[a:b])
				ex[t] = m.slateLogLik(obs, px, wx[a:b])
			}
			be[last-1], bx[last-1] = ee[last-1], ex[last-1]
			for t := last - 2; t >= first; t-- {
				be[t] = ee[t] + logAddExp(lt[0][0]+be[t+1], lt[0][1]+bx[t+1])
				bx[t] = ex[t] + logAddExp(lt[1][0]+be[t+1], lt[1][1]+bx[t+1])
			}
			le[i], lx[i] = be[first], bx[first]
		}
		var next [Grid]float64
		st.LogLik = 0
		for _, ss := range byUser {
			top := math.Inf(-1)
			for g := range Grid {
				v := math.Log(pi[g])
				for _, i := range ss {
					v += logAddExp(logRho[g][0]+le[i], logRho[g][1]+lx[i])
				}
				post[g] = v
				top = max(top, v)
			}
			sum := 0.0
			for g := range Grid {
				post[g] = math.Exp(post[g] - top)
				sum += post[g]
			}
			st.LogLik += top + math.Log(sum)
			for g := range Grid {
				post[g] /= sum
				next[g] += post[g]
			}
			for _, i := range ss {
				r := 0.0
				for g := range Grid {
					r += post[g] * sigmoid(logRho[g][0]+le[i]-logRho[g][1]-lx[i])
				}
				gamma[l.sessions[i].slates[0]] = r
			}
		}
		st.LogLik /= float64(st.Sessions)
		for g := range Grid {
			pi[g] = max(next[g]/float64(len(byUser)), 1e-6)
		}
		// The forward pass: each later slate's mode given everything,
		// from the first slate's and the backward likelihoods, counting
		// the expected switches on the way.
		var sw [2][2]float64 // expected transitions from mode a to b
		for _, s := range l.sessions {
			first, last := s.slates[0], s.slates[1]
			for t := first; t+1 < last; t++ {
				// P(next mode | this mode, the rest of the session).
				pe := sigmoid(lt[0][0] + be[t+1] - lt[0][1] - bx[t+1])
				px := sigmoid(lt[1][0] + be[t+1] - lt[1][1] - bx[t+1])
				g := gamma[t]
				sw[0][0] += g * pe
				sw[0][1] += g * (1 - pe)
				sw[1][0] += (1 - g) * px
				sw[1][1] += (1 - g) * (1 - px)
				gamma[t+1] = g*pe + (1-g)*px
			}
			for t := first; t < last; t++ {
				for k := slates[t].lo; k < slates[t].hi; k++ {
					resp[k] = gamma[t]
				}
			}
		}
		// M step.
		m, sc = l.newton(m, resp, we, wx)
		m.Examine, m.ExamineClick = l.continuations(m, resp, we, wx)
		if l.FitSwitch {
			m.ToExploit = switchRate(sw[0][1], sw[0][0]+sw[0][1], m.ToExploit)
			m.ToExplore = switchRate(sw[1][0], sw[1][0]+sw[1][1], m.ToExplore)
		}
	}
	if m.Contrast < 0 { // the modes swapped names
		m.Contrast, m.Routine = -m.Contrast, -m.Routine
		m.ToExploit, m.ToExplore = m.ToExplore, m.ToExploit
		slices.Reverse(pi[:])
		sc[2] = -sc[2]
	}
	m.NoveltySE = math.Sqrt(max(sc[0]+sc[1]+2*sc[2], 0))
	return m, momentPrior(pi), st, true
}

// minSwitch and maxSwitch bound the fitted switch rates: a chain that
// never switches would stay so under EM, and one that switches more often
// than not has no modes to speak of.
const (
	minSwitch = 0.005
	maxSwitch = 0.5
)

// switchRate is the M step's switch rate from expected counts, or old
// when there was no opportunity to switch.
func switchRate(n, of, old float64) float64 {
	if of <= 0 {
		return old
	}
	return min(max(n/of, minSwitch), maxSwitch)
}

// slateSpan is one slate of the window: its items' offsets in the window's
// item order.
type slateSpan struct{ lo, hi int }

// slates lists the window's slates in order and records, in each session,
// its first item's offset and the range of its slates.
func (l *ModeLog) slates() []slateSpan {
	var out []slateSpan
	off := 0
	for i := range l.sessions {
		s := &l.sessions[i]
		s.off = off
		s.slates[0] = len(out)
		for start := 0; start < len(s.obs); {
			end := start + 1
			for end < len(s.obs) && !s.obs[end].first {
				end++
			}
			out = append(out, slateSpan{off + start, off + end})
			start = end
		}
		s.slates[1] = len(out)
		off += len(s.obs)
	}
	return out
}

// groupByUser lists each user's sessions, users in order of first
// appearance (so the fit is deterministic).
func (l *ModeLog) groupByUser() [][]int {
	idx := make(map[string]int)
	var out [][]int
	for i, s := range l.sessions {
		u, ok := idx[s.user]
		if !ok {
			u = len(out)
			idx[s.user] = u
			out = append(out, nil)
		}
		out[u] = append(out[u], i)
	}
	return out
}

// fitBound bounds Shift, |Contrast| and |Routine| (and Base to [−2·fitBound,
// fitBound]): a unit of relative novelty moves a mode's click odds at most
// e⁴ ≈ 55-fold. A window that asks for more is not one the two-mode model
// describes: through the HTTP API, a scripted client whose clicks followed
// the response's own novel flag drove the shift to 7.7 (2,000-fold) after
// 6,000 requests, and the policy then took most users for explorers.
const fitBound = 4

// fitRidge is the weight of a weak pull of the click model's parameters
// towards zero: about one observation's worth, so that a window in which
// a parameter is not identified (no slate mixes novel and familiar items)
// leaves it finite.
const fitRidge = 1

// newton takes one Newton step on the M step's weighted logistic
// likelihood (a generalised EM: the step raises the likelihood without
// maximising it, and the next iteration's E step follows anyway):
// each item counts under the explore logit Base + (Shift+Contrast)·d −
// Routine·f with weight r·we (its slate's probability of exploring times
// its probability of having been examined if so) and under the exploit one
// with (1−r)·wx.
func (l *ModeLog) newton(m ModeModel, resp, we, wx []float64) (ModeModel, [3]float64) {
	const np = 4
	theta := [np]float64{m.Base, m.Shift, m.Contrast, m.Routine}
	var (
		g  [np]float64
		hh [np][np]float64
	)
	off := 0
	for _, s := range l.sessions {
		for k, o := range s.obs {
			d, f := float64(o.d), float64(o.f)
			y := 0.0
			if o.click {
				y = 1
			}
			for mode, sign := range [2]float64{1, -1} {
				w := resp[off+k] * we[off+k]
				if mode == 1 {
					w = (1 - resp[off+k]) * wx[off+k]
				}
				if w == 0 {
					continue
				}
				x := [np]float64{1, d, sign * d, -sign * f}
				if !l.FitRoutine {
					x[3] = 0 // its gradient is then the ridge's alone: Routine stays 0
				}
				q := sigmoid(theta[0] + theta[1]*x[1] + theta[2]*x[2] + theta[3]*x[3])
				for a := range np {
					g[a] += w * (y - q) * x[a]
					for b := a; b < np; b++ {
						hh[a][b] += w * q * (1 - q) * x[a] * x[b]
					}
				}
			}
		}
		off += len(s.obs)
	}
	h := mat.NewSymDense(np, nil)
	for a := range np {
		g[a] -= fitRidge * theta[a]
		hh[a][a] += fitRidge
		for b := a; b < np; b++ {
			h.SetSym(a, b, hh[a][b])
		}
	}
	var step mat.VecDense
	if err := step.SolveVec(h, mat.NewVecDense(np, g[:])); err != nil {
		return m, [3]float64{} // singular: no item varies in d
	}
	// The variances of Shift and Contrast and their covariance (Fit turns
	// them into NoveltySE), from the inverse of the weighted information
	// at this step's start: the complete-data information, which takes the
	// E step's mode probabilities as given.
	var cov mat.Dense
	var sc [3]float64
	if err := cov.Inverse(h); err == nil {
		sc = [3]float64{cov.At(1, 1), cov.At(2, 2), cov.At(1, 2)}
	}
	for a := range np {
		// A bounded step: the likelihood is concave, but a first
		// step from far away can overshoot.
		theta[a] += min(max(step.AtVec(a), -2), 2)
	}
	theta[0] = min(max(theta[0], -2*fitBound), fitBound)
	for a := 1; a < np; a++ {
		theta[a] = min(max(theta[a], -fitBound), fitBound)
	}
	m.Base, m.Shift, m.Contrast, m.Routine = theta[0], theta[1], theta[2], theta[3]
	return m, sc
}

// continuations are the M step's continuation rates: each is the expected
// number of times a user went on to the next item over the expected number
// of times they could have, after a skip and after a click, counted over
// the items' examination probabilities under either mode weighted by the
// slate's mode probability. A rate without any opportunity keeps m's.
func (l *ModeLog) continuations(m ModeModel, resp, we, wx []float64) (skip, click float64) {
	var sGo, sAt, cGo, cAt float64
	off := 0
	for _, s := range l.sessions {
		obs := s.obs
		for start := 0; start < len(obs); {
			end := start + 1
			for end < len(obs) && !obs[end].first {
				end++
			}
			for mode, r := range [2]float64{resp[off+start], 1 - resp[off+start]} {
				w := we[off+start : off+end]
				if mode == 1 {
					w = wx[off+start : off+end]
				}
				// After each examined item but the last one, the user
				// decided whether to go on; they went on as far as the
				// next item was examined.
				for k := start; k < end-1; k++ {
					at, next := w[k-start], w[k+1-start]
					if obs[k].click {
						cAt, cGo = cAt+r*at, cGo+r*next
					} else {
						sAt, sGo = sAt+r*at, sGo+r*next
					}
				}
			}
			start = end
		}
		off += len(obs)
	}
	skip, click = m.Examine, m.ExamineClick
	if sAt > 0 {
		skip = min(max(sGo/sAt, 0.01), 0.99)
	}
	if cAt > 0 {
		click = min(max(cGo/cAt, 0.01), 0.99)
	}
	return skip, click
}

// grid is the prior's density on the RhoPosterior grid, normalised.
func (p Prior) grid() [Grid]float64 {
	var pi [Grid]float64
	sum := 0.0
	for g := range Grid {
		rho := rhoAt(g)
		pi[g] = math.Exp((p.Alpha-1)*math.Log(rho) + (p.Beta-1)*math.Log1p(-rho))
		sum += pi[g]
	}
	for g := range pi {
		pi[g] /= sum
	}
	return pi
}

// momentPrior is the Beta prior with the mean and variance of the grid
// distribution pi, its concentration α+β kept within [0.5, 200].
func momentPrior(pi [Grid]float64) Prior {
	mean, sum := 0.0, 0.0
	for g, w := range pi {
		mean += w * rhoAt(g)
		sum += w
	}
	mean /= sum
	v := 0.0
	for g, w := range pi {
		v += w / sum * (rhoAt(g) - mean) * (rhoAt(g) - mean)
	}
	conc := 200.0
	if v > 0 {
		conc = min(max(mean*(1-mean)/v-1, 0.5), 200)
	}
	return Prior{Alpha: mean * conc, Beta: (1 - mean) * conc}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// logAddExp is log(e^a + e^b).
func logAddExp(a, b float64) float64 {
	hi, lo := max(a, b), min(a, b)
	return hi + math.Log1p(math.Exp(lo-hi))
}
