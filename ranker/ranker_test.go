package ranker

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// cands makes candidates with the given relevance whose embeddings make
// items with the same index parity identical and the others orthogonal.
func cands(rel ...float64) []Candidate {
	even, odd := []float32{1, 0}, []float32{0, 1}
	cs := make([]Candidate, len(rel))
	for i, r := range rel {
		cs[i] = Candidate{Item: int32(i), Embedding: even}
		if i%2 == 1 {
			cs[i].Embedding = odd
		}
		cs[i].Features[FDot] = r
	}
	return cs
}

// The propensities must describe the draw exactly, sampled at every
// position or mixed with the argmax (Greedy).
func TestSlatePropensitiesDefineADistributionOverSlates(t *testing.T) {
	for _, greedy := range []float64{0, 0.6} {
		t.Run(fmt.Sprint("greedy=", greedy), func(t *testing.T) {
			p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.5}
			cs := cands(0.9, 0.5, 0.4, 0.1)
			rng := rand.New(rand.NewPCG(1, 2))
			var sc Scratch
			seen := map[string]float64{}
			for i := 0; i < 20000; i++ {
				slots := p.Slate(nil, &sc, cs, 2, Knobs{Lambda: 0.3, Greedy: greedy}, rng)
				prob := 1.0
				key := ""
				for _, s := range slots {
					prob *= s.Propensity
					key += fmt.Sprint(s.Candidate, ",")
				}
				if old, ok := seen[key]; ok && math.Abs(old-prob) > 1e-12 {
					t.Fatalf("slate %s logged with probabilities %v and %v", key, old, prob)
				}
				seen[key] = prob
			}
			if len(seen) != 12 {
				t.Fatalf("saw %d distinct slates, want all 12", len(seen))
			}
			total := 0.0
			for _, q := range seen {
				total += q
			}
			if math.Abs(total-1) > 1e-9 {
				t.Fatalf("slate probabilities sum to %v, want 1", total)
			}
		})
	}
}

func TestSlateEmpiricalFrequencyMatchesPropensity(t *testing.T) {
	for _, greedy := range []float64{0, 0.5, 0.9} {
		t.Run(fmt.Sprint("greedy=", greedy), func(t *testing.T) {
			p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.3}
			cs := cands(0.6, 0.5, 0.2)
			rng := rand.New(rand.NewPCG(3, 4))
			var sc Scratch
			counts := make([]int, len(cs))
			props := make([]float64, len(cs))
			const n = 50000
			for i := 0; i < n; i++ {
				s := p.Slate(nil, &sc, cs, 1, Knobs{Greedy: greedy}, rng)[0]
				counts[s.Candidate]++
				props[s.Candidate] = s.Propensity
			}
			for i := range cs {
				freq := float64(counts[i]) / n
				if counts[i] == 0 || math.Abs(freq-props[i]) > 0.01 {
					t.Errorf("item %d drawn with frequency %.4f, logged propensity %.4f", i, freq, props[i])
				}
			}
			// The argmax takes its softmax share and the greedy share.
			if greedy > 0 && props[0] < greedy {
				t.Errorf("argmax logged %.4f, below the greedy share %v", props[0], greedy)
			}
		})
	}
}

func TestSlateDeterministicAndDiverse(t *testing.T) {
	p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.1}
	// Items 0 and 2 are alike (even); 1 is a little less relevant but different.
	cs := cands(0.9, 0.7, 0.85)
	tests := []struct {
		lambda float64
		want   []int
	}{
		{0, []int{0, 2, 1}},
		{0.5, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		var sc Scratch
		slots := p.Slate(nil, &sc, cs, 3, Knobs{Lambda: tc.lambda}, nil)
		for pos, s := range slots {
			if s.Candidate != tc.want[pos] {
				t.Fatalf("λ=%v: slate %v, want %v", tc.lambda, slots, tc.want)
			}
			if !(s.Propensity > 0 && s.Propensity <= 1) {
				t.Fatalf("propensity %v outside (0,1]", s.Propensity)
			}
		}
	}
}

// β lifts novel items only in an unhedged slate; a hedged one gives novel
// items the seats of the explore intent and fills them by relevance.
func TestNoveltyWeightLiftsNovelItemsUnlessHedged(t *testing.T) {
	p := DefaultParams()
	// A familiar item, a slightly novel relevant one, a wholly novel one.
	cs := cands(0.8, 0.3, 0.1)
	cs[1].Novelty, cs[1].Novel = 0.4, true
	cs[2].Novelty, cs[2].Novel = 1, true
	var sc Scratch
	for _, tc := range []struct {
		name                 string
		beta, explore, hedge float64
		top                  int
	}{
		{"no novelty weight", 0, 0, 0, 0},
		{"β lifts the most novel item", 1.2, 0, 0, 2},
		{"hedged, exploit seat: β does not lift novel items", 1.2, 0, 2, 0},
		{"hedged, explore seat: the most relevant novel item", 1.2, 1, 2, 1},
	} {
		kn := Knobs{Beta: tc.beta, Explore: tc.explore, Hedge: tc.hedge}
		if s := p.Slate(nil, &sc, cs, 1, kn, nil); s[0].Candidate != tc.top {
			t.Errorf("%s: top candidate %d, want %d", tc.name, s[0].Candidate, tc.top)
		}
		for i := range cs {
			want := p.Relevance(&cs[i])
			if tc.hedge == 0 {
				want += tc.beta * cs[i].Novelty
			}
			if got := p.Score(&cs[i], kn); got != want {
				t.Errorf("%s: Score(%d) = %v, want %v", tc.name, i, got, want)
			}
		}
	}
}

func TestSlateShorterThanKWhenFewCandidates(t *testing.T) {
	p := DefaultParams()
	var sc Scratch
	if got := len(p.Slate(nil, &sc, cands(0.1, 0.2), 10, Knobs{}, rand.New(rand.NewPCG(1, 1)))); got != 2 {
		t.Fatalf("got %d slots, want 2", got)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{
		{Temperature: 0},
		{Temperature: math.Inf(1)},
		{Theta: [NumFeatures]float64{math.NaN()}, Temperature: 1},
	} {
		if p.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", p)
		}
	}
	d := DefaultParams()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestHedgedSlateFollowsTheIntentPosterior: with hedging, a slate's novel
// share follows Explore (positions by Sainte-Laguë quotients), however the
// relevance favours familiar items, and the whole-slate probabilities
// still match how often each slate is drawn.
func TestHedgedSlateFollowsTheIntentPosterior(t *testing.T) {
	p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.1}
	// Ten familiar items, more relevant than the ten novel ones.
	rel := make([]float64, 20)
	for i := range rel {
		rel[i] = 0.9 - 0.01*float64(i)
		if i >= 10 {
			rel[i] -= 0.5
		}
	}
	cs := cands(rel...)
	for i := 10; i < 20; i++ {
		cs[i].Novel = true
	}
	var sc Scratch
	for _, tc := range []struct {
		explore   float64
		wantNovel int
		firstNov  bool
	}{
		{0, 0, false}, {0.1, 1, false}, {0.3, 3, false}, {0.5, 5, false}, {0.7, 7, true}, {1, 10, true},
	} {
		slots := p.Slate(nil, &sc, cs, 10, Knobs{Explore: tc.explore, Hedge: 2}, nil)
		novel := 0
		for _, s := range slots {
			if cs[s.Candidate].Novel {
				novel++
			}
		}
		if novel != tc.wantNovel || cs[slots[0].Candidate].Novel != tc.firstNov {
			t.Errorf("explore %v: %d novel items (first novel: %v), want %d (%v)", tc.explore, novel, cs[slots[0].Candidate].Novel, tc.wantNovel, tc.firstNov)
		}
	}

	// Sampled: empirical slate frequencies against logged propensities.
	small := cands(0.6, 0.5, 0.4, 0.3)
	small[2].Novel, small[3].Novel = true, true
	p.Temperature = 0.5
	rng := rand.New(rand.NewPCG(5, 6))
	counts, probs := map[string]int{}, map[string]float64{}
	const n = 60000
	for range n {
		slots := p.Slate(nil, &sc, small, 2, Knobs{Explore: 0.4, Hedge: 1}, rng)
		key, prob := "", 1.0
		for _, s := range slots {
			key += fmt.Sprint(s.Candidate, ",")
			prob *= s.Propensity
		}
		counts[key]++
		probs[key] = prob
	}
	for key, c := range counts {
		if freq := float64(c) / n; math.Abs(freq-probs[key]) > 0.01 {
			t.Errorf("slate %s drawn with frequency %.4f, logged probability %.4f", key, freq, probs[key])
		}
	}
}

// BenchmarkSlate builds a slate of 10 from 100 candidates of random unit
// embeddings (d = 32) and relevance, a third of them novel, with the
// default parameters and the knobs of a hedged, greedy-mixed decision: the
// ranker's part of a recommendation.
func BenchmarkSlate(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	cs := make([]Candidate, 100)
	for i := range cs {
		cs[i] = Candidate{Item: int32(i), Embedding: unitEmbedding(r, 32), Novel: i%3 == 0, Novelty: r.Float64()}
		cs[i].Features[FDot] = r.Float64()
		cs[i].Features[FPopularity] = r.Float64()
	}
	p := DefaultParams()
	kn := Knobs{Beta: 0.3, Lambda: 0.3, Explore: 0.3, Hedge: 2, Greedy: 0.9}
	var sc Scratch
	var dst []Slot
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	for b.Loop() {
		dst = p.Slate(dst[:0], &sc, cs, 10, kn, rng)
	}
}

// unitEmbedding draws a random unit vector of dimension d.
func unitEmbedding(r *rand.Rand, d int) []float32 {
	e := make([]float32, d)
	var n float64
	for x := range e {
		e[x] = float32(r.NormFloat64())
		n += float64(e[x] * e[x])
	}
	for x := range e {
		e[x] /= float32(math.Sqrt(n))
	}
	return e
}
