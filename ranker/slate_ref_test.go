package ranker

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// slateRef is Slate as it was before its exponentials were batched
// (vexp.CutExp): one math.Exp per remaining candidate and position. Slate
// must give the same slots, bit for bit, and draw the same numbers.
func (p *Params) slateRef(dst []Slot, sc *Scratch, cands []Candidate, k int, kn Knobs, rng *rand.Rand) []Slot {
	n := len(cands)
	sc.reset(cands)
	for i := range cands {
		sc.base[i] = p.Score(&cands[i], kn)
	}
	tau := p.Temperature
	hedge := kn.Hedge > 0
	var seats [2]int
	for pos := 0; pos < k && pos < n; pos++ {
		rem := sc.rem
		best, bestAdj := -1, math.Inf(-1)
		favourNovel := kn.Explore/float64(2*seats[0]+1) > (1-kn.Explore)/float64(2*seats[1]+1)
		for _, i := range rem {
			a := sc.base[i] - kn.Lambda*sc.maxSim[i]
			if hedge && sc.novel[i] == favourNovel {
				a += kn.Hedge
			}
			sc.adj[i] = a
			if a > bestAdj {
				best, bestAdj = int(i), a
			}
		}
		total := 0.0
		for _, i := range rem {
			z := (sc.adj[i] - bestAdj) / tau
			e := 0.0
			if z > -expCutoff {
				e = math.Exp(z)
			}
			sc.adj[i] = e
			total += e
		}
		choice := best
		g := 0.0
		if rng != nil {
			g = min(max(kn.Greedy, 0), 1)
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
			d := len(cands[choice].Embedding)
			if d > 0 && len(sc.emb) == n*d {
				blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: n, Cols: d, Stride: d, Data: sc.emb},
					blas32.Vector{N: d, Inc: 1, Data: cands[choice].Embedding}, 0, blas32.Vector{N: n, Inc: 1, Data: sc.sim})
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

// randomCands makes n candidates of unit embeddings of dimension d,
// relevance spread by scale, a share of them novel; with nan, every
// seventh has a NaN feature.
func randomCands(r *rand.Rand, n, d int, scale float64, nan bool) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		var e []float32
		if d > 0 {
			e = unitEmbedding(r, d)
		}
		cs[i] = Candidate{Item: int32(i), Embedding: e, Novel: r.IntN(3) == 0, Novelty: r.Float64()}
		cs[i].Features[FDot] = scale * r.NormFloat64()
		cs[i].Features[FBias] = scale * r.NormFloat64() / 4
		cs[i].Features[FPopularity] = r.Float64()
		cs[i].Features[FCollab] = r.Float64() * float64(r.IntN(2))
		if i%5 == 2 && i > 0 { // ties
			cs[i].Features = cs[i-1].Features
			cs[i].Novelty = cs[i-1].Novelty
		}
		if nan && i%7 == 3 {
			cs[i].Features[FBias] = math.NaN()
		}
	}
	return cs
}

func TestSlateMatchesOneExpAtATime(t *testing.T) {
	knobs := []Knobs{
		{Beta: 0.3, Lambda: 0.3, Explore: 0.3, Hedge: 2, Greedy: 0.9},
		{Beta: 0.3, Lambda: 0.3},
		{Lambda: 0.8, Explore: 0.6, Hedge: 0.5},
		{Beta: 1, Greedy: 0.5},
		{},
	}
	var sc, scRef Scratch // reused across cases, as the engine does
	for _, c := range []struct {
		n, d, k int
		scale   float64
		temp    float64
		nan     bool
	}{
		{0, 32, 10, 1, 0.08, false},
		{1, 32, 10, 1, 0.08, false},
		{3, 32, 10, 1, 0.08, false},
		{7, 8, 5, 1, 0.08, false},
		{100, 32, 10, 1, 0.08, false},
		{100, 32, 10, 0.05, 0.08, false},
		{100, 32, 25, 10, 0.08, false}, // many past the cutoff
		{100, 32, 10, 1, 0.5, false},
		{100, 32, 10, 1, 0.001, false},
		{101, 0, 10, 1, 0.08, false}, // no embeddings
		{250, 16, 30, 1, 0.08, false},
		{100, 32, 10, 1, 0.08, true},
		{57, 32, 57, 3, 0.2, false}, // every candidate placed
	} {
		for ki, kn := range knobs {
			for seed := range uint64(4) {
				name := fmt.Sprintf("n=%d/d=%d/k=%d/scale=%g/tau=%g/nan=%v/knobs=%d/seed=%d", c.n, c.d, c.k, c.scale, c.temp, c.nan, ki, seed)
				r := rand.New(rand.NewPCG(seed, 99))
				cs := randomCands(r, c.n, c.d, c.scale, c.nan)
				p := DefaultParams()
				p.Temperature = c.temp
				var rng, rngRef *rand.Rand
				if seed > 0 { // seed 0: deterministic
					rng, rngRef = rand.New(rand.NewPCG(seed, 7)), rand.New(rand.NewPCG(seed, 7))
				}
				got := p.Slate(nil, &sc, cs, c.k, kn, rng)
				want := p.slateRef(nil, &scRef, cs, c.k, kn, rngRef)
				if len(got) != len(want) {
					t.Fatalf("%s: %d slots, the reference %d", name, len(got), len(want))
				}
				for i := range got {
					g, w := got[i], want[i]
					if g.Candidate != w.Candidate || math.Float64bits(g.Score) != math.Float64bits(w.Score) ||
						math.Float64bits(g.Propensity) != math.Float64bits(w.Propensity) {
						t.Fatalf("%s: position %d: %+v, the reference %+v", name, i, g, w)
					}
				}
				if rng != nil && rng.Uint64() != rngRef.Uint64() {
					t.Fatalf("%s: drew other numbers than the reference", name)
				}
			}
		}
	}
}
