// Package ranker is the low-level policy of novarec: given candidates and the
// knobs of an intent level it scores relevance plus novelty and builds a
// slate greedily against redundancy, sampling position by position
// (Plackett–Luce) so every shown item has a logged propensity. It is pure
// computation shared by serving, replay and the simulator.
package ranker

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/novarec/novarec/internal/vdot"
	"github.com/novarec/novarec/internal/vexp"
)

// Relevance feature indexes of φ(u,i).
const (
	FDot        = iota // ⟨u, v_i⟩: taste vector against item embedding
	FBias              // learned item bias
	FPopularity        // normalised log popularity
	FCollab            // item-to-item collaborative score from the user's recent items, in [0,1]
	NumFeatures
)

// Params are the ranker's learned parameters θ and its sampling temperature.
type Params struct {
	Theta [NumFeatures]float64 `json:"theta"`
	// Temperature τ of the position-wise softmax; smaller is greedier.
	Temperature float64 `json:"temperature"`
}

// DefaultParams weigh the collaborative score first, then taste, with
// popularity as a prior.
func DefaultParams() Params {
	return Params{Theta: [NumFeatures]float64{FDot: 1, FBias: 1, FPopularity: 0.15, FCollab: 2}, Temperature: 0.08}
}

// Validate rejects parameters that would make scores meaningless.
func (p *Params) Validate() error {
	for _, t := range p.Theta {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return errors.New("ranker: non-finite theta")
		}
	}
	if !(p.Temperature > 0) || math.IsInf(p.Temperature, 0) {
		return errors.New("ranker: temperature must be positive and finite")
	}
	return nil
}

// Candidate is one item eligible for the slate.
type Candidate struct {
	Item     int32
	Features [NumFeatures]float64
	// Novelty is nov(u,i) ∈ [0,1]; Novel says whether the item is novel to
	// the user (a topic they never consumed), which the ranker only passes on.
	Novelty float64
	Novel   bool
	// Embedding is the item's unit embedding (a view, not modified); all
	// candidates of one slate share its dimension.
	Embedding []float32
}

// Knobs are what the chosen intent level sets.
type Knobs struct {
	// Beta is the novelty weight β_z. It applies only without hedging
	// (Hedge = 0): a hedged slate's novel items get their lift from the
	// seats the session's belief gives them, and β on top would lift
	// novel items into the seats of the exploit intent too and fill the
	// novel seats by novelty rather than relevance. Measured, a β > 0
	// under hedging cost clicks and did not even raise the novelty shown
	// (docs/evaluation-intent.md).
	Beta   float64
	Lambda float64 // similarity penalty λ_z
	// Explore and Hedge hedge the slate between the session's two
	// intents: with Hedge > 0, each position goes to the intent (explore:
	// novel items, exploit: the others) with the larger Sainte-Laguë
	// quotient P/(2·seats+1), P = Explore for exploring and 1 − Explore
	// for exploiting (the proportional allocation of PM-2, Dang & Croft
	// 2012), and the items of that intent get Hedge added to their score
	// at that position. So a slate holds about Explore·k novel items,
	// interleaved from the top in proportion, whichever level is served;
	// the allocation depends only on the items above, so every
	// position's softmax, and its propensity, stays exact.
	Explore, Hedge float64
	// Greedy is the probability that a sampled position takes the argmax
	// rather than a draw from the softmax; the reported propensity is the
	// mixture's, (1−Greedy)·softmax + Greedy·[argmax]. 0 samples every
	// position.
	Greedy float64
}

// Slot is one position of a built slate.
type Slot struct {
	// Candidate indexes the candidates slice passed to Slate.
	Candidate int
	// Score is the adjusted score s(i) − λ·max sim at the time of choice.
	Score float64
	// Propensity is the probability with which this item was chosen at its
	// position given the items above it.
	Propensity float64
}

const expCutoff = 30

// Relevance is θ·φ(u,i).
func (p *Params) Relevance(c *Candidate) float64 {
	s := 0.0
	for f, t := range p.Theta {
		s += t * c.Features[f]
	}
	return s
}

// Score is s(i|u,z) = θ·φ(u,i) + β_z·nov(u,i), or θ·φ(u,i) alone when the
// slate is hedged (see Knobs.Beta).
func (p *Params) Score(c *Candidate, k Knobs) float64 {
	if k.Hedge > 0 {
		return p.Relevance(c)
	}
	return p.Relevance(c) + k.Beta*c.Novelty
}

// Scratch holds buffers reused across slates to keep the hot path free of
// allocations. The zero value is ready; it is not safe for concurrent use.
type Scratch struct {
	base, maxSim, adj []float64
	// rem lists the candidates not yet placed, in order: the loops of a
	// position visit only those, in the order a scan of all candidates
	// skipping the placed would (so the sums add up in the same order).
	rem      []int32
	novel    []bool
	emb, sim []float32
	// z holds a position's adjusted scores, in rem's order, then their
	// exponentials.
	z []float64
}

func (s *Scratch) reset(cands []Candidate) {
	n := len(cands)
	s.base, s.maxSim, s.adj = grow(s.base, n), grow(s.maxSim, n), grow(s.adj, n)
	s.novel = grow(s.novel, n)
	clear(s.maxSim)
	s.rem = s.rem[:0]
	s.emb, s.sim = s.emb[:0], grow(s.sim, n)
	s.z = grow(s.z, n)
	for i := range cands {
		s.rem = append(s.rem, int32(i))
		s.novel[i] = cands[i].Novel
		s.emb = append(s.emb, cands[i].Embedding...)
	}
}

// grow returns b with length n, reallocated only when too small.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// Slate builds a slate of up to k items from cands, appending to dst. At each
// position the adjusted score s(i) − λ·max_{j∈slate} cos(v_i,v_j) of every
// remaining candidate goes through softmax(·/τ) and one item is drawn with
// rng. With rng nil the argmax is taken (deterministic mode) and its softmax
// probability is still reported, so logs from both modes stay comparable.
func (p *Params) Slate(dst []Slot, sc *Scratch, cands []Candidate, k int, kn Knobs, rng *rand.Rand) []Slot {
	n := len(cands)
	sc.reset(cands)
	for i := range cands {
		sc.base[i] = p.Score(&cands[i], kn)
	}
	tau := p.Temperature
	hedge := kn.Hedge > 0
	var seats [2]int // novel, familiar items placed so far
	for pos := 0; pos < k && pos < n; pos++ {
		rem := sc.rem
		best, bestAdj := -1, math.Inf(-1)
		favourNovel := kn.Explore/float64(2*seats[0]+1) > (1-kn.Explore)/float64(2*seats[1]+1)
		z := sc.z[:len(rem)]
		for j, i := range rem {
			a := sc.base[i] - kn.Lambda*sc.maxSim[i]
			if hedge && sc.novel[i] == favourNovel {
				a += kn.Hedge
			}
			z[j] = a
			if a > bestAdj {
				best, bestAdj = int(i), a
			}
		}
		// Softmax over remaining candidates, stabilised by the max. A
		// candidate more than expCutoff temperatures below the best has
		// probability < e^-30 ≈ 1e-13 and is taken as 0, which saves
		// most of the exponentials at no measurable cost to the logged
		// propensities. The exponentials are taken all at once
		// (vexp.Softmax: bit for bit math.Exp((a-bestAdj)/tau), several
		// at a time), then summed in rem's order.
		vexp.Softmax(z, z, bestAdj, tau, -expCutoff)
		total := 0.0
		for j, i := range rem {
			e := z[j]
			sc.adj[i] = e
			total += e
		}
		choice := best
		g := 0.0
		if rng != nil {
			g = min(max(kn.Greedy, 0), 1)
			// One draw serves both the mixture's coin and the softmax:
			// below g it is the argmax, above it rescales to [0, total).
			if u := rng.Float64(); u >= g {
				u = (u - g) / (1 - g) * total
				acc := 0.0
				for _, i := range rem {
					if sc.adj[i] == 0 {
						continue
					}
					acc += sc.adj[i]
					choice = int(i)
					if u < acc {
						break
					}
				}
			}
		}
		prob := (1 - g) * sc.adj[choice] / total
		if choice == best {
			prob += g
		}
		score := sc.base[choice] - kn.Lambda*sc.maxSim[choice]
		j := slices.Index(rem, int32(choice))
		sc.rem = slices.Delete(rem, j, j+1)
		if cands[choice].Novel {
			seats[0]++
		} else {
			seats[1]++
		}
		dst = append(dst, Slot{Candidate: choice, Score: score, Propensity: prob})
		if kn.Lambda != 0 && pos+1 < k && n > 0 {
			// One matrix-vector product gives every candidate's cosine
			// with the chosen item (embeddings are unit length).
			d := len(cands[choice].Embedding)
			if d > 0 && len(sc.emb) == n*d {
				vdot.MulRows(sc.sim[:n], sc.emb, cands[choice].Embedding)
				for _, i := range sc.rem {
					if s := float64(sc.sim[i]); s > sc.maxSim[i] {
						sc.maxSim[i] = s
					}
				}
			}
		}
	}
	return dst
}
