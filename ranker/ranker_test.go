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

func TestSlatePropensitiesDefineADistributionOverSlates(t *testing.T) {
	p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.5}
	cs := cands(0.9, 0.5, 0.4, 0.1)
	rng := rand.New(rand.NewPCG(1, 2))
	var sc Scratch
	seen := map[string]float64{}
	for i := 0; i < 20000; i++ {
		slots := p.Slate(nil, &sc, cs, 2, Knobs{Lambda: 0.3}, rng)
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
}

func TestSlateEmpiricalFrequencyMatchesPropensity(t *testing.T) {
	p := Params{Theta: [NumFeatures]float64{1, 0, 0}, Temperature: 0.3}
	cs := cands(0.6, 0.5, 0.2)
	rng := rand.New(rand.NewPCG(3, 4))
	var sc Scratch
	counts := make([]int, len(cs))
	props := make([]float64, len(cs))
	const n = 50000
	for i := 0; i < n; i++ {
		s := p.Slate(nil, &sc, cs, 1, Knobs{}, rng)[0]
		counts[s.Candidate]++
		props[s.Candidate] = s.Propensity
	}
	for i := range cs {
		freq := float64(counts[i]) / n
		if math.Abs(freq-props[i]) > 0.01 {
			t.Errorf("item %d drawn with frequency %.4f, logged propensity %.4f", i, freq, props[i])
		}
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

func TestNoveltyWeightLiftsNovelItems(t *testing.T) {
	p := DefaultParams()
	cs := cands(0.8, 0.1)
	cs[1].Novelty = 1
	var sc Scratch
	for _, tc := range []struct {
		beta float64
		top  int
	}{{0, 0}, {1.2, 1}} {
		s := p.Slate(nil, &sc, cs, 1, Knobs{Beta: tc.beta}, nil)
		if s[0].Candidate != tc.top {
			t.Errorf("β=%v: top candidate %d, want %d", tc.beta, s[0].Candidate, tc.top)
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
