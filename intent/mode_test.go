package intent

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSlateEvidence(t *testing.T) {
	mm := DefaultModeModel()
	tests := []struct {
		name    string
		novelty []float64
		clicked []bool
		sign    int // -1, 0 or +1
	}{
		{"all novel (a cold user's slate): no evidence however clicked", []float64{1, 1, 1, 1}, []bool{true, false, true, false}, 0},
		{"all familiar: no evidence", []float64{0, 0, 0}, []bool{false, true, false}, 0},
		{"click on the novel item of a mixed slate", []float64{0, 0, 1, 0}, []bool{false, false, true, false}, 1},
		{"click on a familiar item of a mixed slate", []float64{1, 0, 1, 0}, []bool{false, true, false, false}, -1},
		{"no click, novel items on top were passed over", []float64{1, 1, 0, 0}, []bool{false, false, false, false}, -1},
		{"no click, familiar items on top were passed over", []float64{0, 0, 1, 1}, []bool{false, false, false, false}, 1},
		{"empty slate", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mm.SlateEvidence(tc.novelty, tc.clicked)
			switch {
			case tc.sign == 0 && math.Abs(e) > 1e-12,
				tc.sign > 0 && !(e > 0),
				tc.sign < 0 && !(e < 0):
				t.Fatalf("evidence %v, want sign %d", e, tc.sign)
			}
		})
	}
}

func TestSlateEvidenceIgnoresItemsBelowTheLastClick(t *testing.T) {
	mm := DefaultModeModel()
	// The same slate; only whether the bottom item was examined differs,
	// which nobody can tell: it must not count either way.
	a := mm.SlateEvidence([]float64{0, 1, 0, 1}, []bool{false, true, false, false})
	want := mm.SkipEvidence(-0.5) + mm.ClickEvidence(0.5)
	if math.Abs(a-want) > 1e-12 {
		t.Fatalf("evidence %v, want the two examined items' %v", a, want)
	}
	// Without a click, the examination weights Examine^k apply.
	b := mm.SlateEvidence([]float64{0, 1}, []bool{false, false})
	want = mm.SkipEvidence(-0.5) + mm.Examine*mm.SkipEvidence(0.5)
	if math.Abs(b-want) > 1e-12 {
		t.Fatalf("no-click evidence %v, want %v", b, want)
	}
}

// TestRhoPosteriorRecoversPlantedRho folds sessions whose modes are drawn
// from a planted ρ, each read with noisy evidence, and checks the posterior
// mean lands near ρ: a mixture over sessions, not a count of clicks.
func TestRhoPosteriorRecoversPlantedRho(t *testing.T) {
	flat := Prior{Alpha: 1, Beta: 1}
	for _, rho := range []float64{0.15, 0.5, 0.85} {
		rng := rand.New(rand.NewPCG(7, uint64(rho*100)))
		var r RhoPosterior
		for range 300 {
			l := -2.0
			if rng.Float64() < rho {
				l = 2
			}
			r.Fold(l + rng.NormFloat64())
		}
		if got := r.Mean(flat); math.Abs(got-rho) > 0.1 {
			t.Errorf("ρ = %v: posterior mean %v", rho, got)
		}
		if !r.Valid() {
			t.Errorf("ρ = %v: posterior not finite", rho)
		}
	}
}

func TestRhoFoldBoundsOneSession(t *testing.T) {
	var capped, huge RhoPosterior
	capped.Fold(SessionEvidenceCap)
	huge.Fold(1e6)
	if capped != huge {
		t.Fatalf("one session's evidence is not capped: %v vs %v", capped, huge)
	}
	var none RhoPosterior
	none.Fold(0)
	if none != (RhoPosterior{}) {
		t.Fatal("a session without evidence changed the posterior")
	}
}
