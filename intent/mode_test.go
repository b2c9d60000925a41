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

// TestSlateEvidenceCascade checks the exact cascade likelihood against the
// cases that can be written down: a user who never looks past an item
// (Examine 0) or who always looks at everything (Examine 1), and a
// two-item slate without a click summed by hand.
func TestSlateEvidenceCascade(t *testing.T) {
	mm := DefaultModeModel()
	mm.Routine = 0.8 // the slates' familiarity counts too
	at := func(e float64) ModeModel { m := mm; m.Examine, m.ExamineClick = e, e; return m }
	sigma := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	// The no-click likelihood of a two-item slate under one mode: the top
	// item was passed over, then the user stopped or passed the second.
	twoSkips := func(m ModeModel, explore bool, d0, d1 float64) float64 {
		p := func(d float64) float64 {
			e, x := m.logits(d, 0.5)
			if explore {
				return sigma(e)
			}
			return sigma(x)
		}
		return (1 - p(d0)) * ((1 - m.Examine) + m.Examine*(1-p(d1)))
	}
	m7 := at(0.7)
	tests := []struct {
		name    string
		m       ModeModel
		novelty []float64
		clicked []bool
		want    float64
	}{
		{"nobody looks past a click: the items below do not count", at(0), []float64{0, 1, 0, 1}, []bool{false, true, false, false},
			mm.SkipEvidence(-0.5, 0.5) + mm.ClickEvidence(0.5, 0.5)},
		{"everyone looks at everything: every unclicked item is a skip", at(1), []float64{0, 1, 0, 1}, []bool{false, true, false, false},
			mm.SkipEvidence(-0.5, 0.5) + mm.ClickEvidence(0.5, 0.5) + mm.SkipEvidence(-0.5, 0.5) + mm.SkipEvidence(0.5, 0.5)},
		{"no click, only the top item examined", at(0), []float64{1, 0, 0}, []bool{false, false, false},
			mm.SkipEvidence(1-1.0/3, 1-1.0/3)},
		{"no click, two items, depth summed over", m7, []float64{0, 1}, []bool{false, false},
			math.Log(twoSkips(m7, true, -0.5, 0.5)) - math.Log(twoSkips(m7, false, -0.5, 0.5))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.SlateEvidence(tc.novelty, tc.clicked); math.Abs(got-tc.want) > 1e-6 { // d is kept as float32
				t.Fatalf("evidence %v, want %v", got, tc.want)
			}
		})
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

// TestRoutineEvidence: with Routine, a slate of familiar items tells the
// modes apart even when nothing in it is novel (an exploring session is
// bored by it), while a slate that is all novel, as every slate of a cold
// user is, still carries no evidence however it is clicked.
func TestRoutineEvidence(t *testing.T) {
	mm := ModeModel{Base: -1, Shift: -1, Contrast: 1.5, Routine: 1, Examine: 0.8, ExamineClick: 0.5}
	familiar := []float64{0, 0, 0, 0}
	novel := []float64{1, 1, 1, 1}
	tests := []struct {
		name    string
		m       ModeModel
		novelty []float64
		clicked []bool
		sign    int
	}{
		{"familiar slate passed over: explore", mm, familiar, []bool{false, false, false, false}, 1},
		{"familiar slate clicked: exploit", mm, familiar, []bool{true, false, false, false}, -1},
		{"novel slate passed over: nothing", mm, novel, []bool{false, false, false, false}, 0},
		{"novel slate clicked: nothing", mm, novel, []bool{true, true, false, false}, 0},
		{"without routine a familiar slate says nothing", ModeModel{Base: -1, Contrast: 1.5, Examine: 0.8, ExamineClick: 0.5}, familiar, []bool{true, false, false, false}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.SlateEvidence(tc.novelty, tc.clicked)
			switch {
			case tc.sign == 0 && math.Abs(got) > 1e-9,
				tc.sign > 0 && !(got > 0.1),
				tc.sign < 0 && !(got < -0.1):
				t.Fatalf("evidence %v, want sign %d", got, tc.sign)
			}
		})
	}
}

// TestModeChain: a session's slates under a chain that never switches add
// up, and under one that does the latest slates weigh most; both against
// the sum over every path of modes.
func TestModeChain(t *testing.T) {
	static := DefaultModeModel()
	switching := static
	switching.ToExploit, switching.ToExplore = 0.1, 0.05
	// brute sums over the 2^k mode paths: the last slate's P(explore)
	// given the first's prior q0, and the evidence about the first's.
	brute := func(m ModeModel, q0 float64, ls []float64) (posterior, evidence float64) {
		tr := [2][2]float64{{1 - m.ToExploit, m.ToExploit}, {m.ToExplore, 1 - m.ToExplore}}
		var byFirst, byLast [2]float64
		for path := range 1 << len(ls) {
			p := 1.0
			for t, l := range ls {
				z := path >> t & 1 // 0 explore
				if z == 0 {
					p *= math.Exp(l)
				}
				if t > 0 {
					p *= tr[path>>(t-1)&1][z]
				}
			}
			byFirst[path&1] += p
			byLast[path>>(len(ls)-1)&1] += p * [2]float64{q0, 1 - q0}[path&1]
		}
		return byLast[0] / (byLast[0] + byLast[1]), math.Log(byFirst[0] / byFirst[1])
	}
	tests := []struct {
		name string
		m    ModeModel
		ls   []float64
	}{
		{"static: the evidence adds up", static, []float64{1, -0.5, 2}},
		{"static: opposite slates cancel", static, []float64{5, -5}},
		{"switching: explore, then exploit", switching, []float64{8, -8}},
		{"switching: a long exploring session", switching, []float64{3, 3, 3, 3, 3}},
		{"switching: weak and mixed", switching, []float64{0.4, -1, 0, 2, -0.3, 0.7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c ModeChain
			for _, l := range tc.ls {
				c = tc.m.Append(c, l)
			}
			if !c.Valid() {
				t.Fatalf("invalid chain %v", c)
			}
			for _, q0 := range []float64{0.1, 0.5, 0.8} {
				wantP, wantE := brute(tc.m, q0, tc.ls)
				if got := c.Posterior(q0); math.Abs(got-wantP) > 1e-9 {
					t.Errorf("q0 %v: posterior %v, want %v", q0, got, wantP)
				}
				if got := c.Evidence(); math.Abs(got-wantE) > 1e-9 {
					t.Errorf("evidence %v, want %v", got, wantE)
				}
			}
		})
	}
	if got := (ModeChain{}).Posterior(0.3); got != 0.3 {
		t.Errorf("no slates: posterior %v, want the prior", got)
	}
	if got := switching.Predict(1); math.Abs(got-0.9) > 1e-12 {
		t.Errorf("a certain explorer explores the next slate with %v, want 0.9", got)
	}
	// The last slate's mode follows the latest evidence.
	var c ModeChain
	for _, l := range []float64{8, -8} {
		c = switching.Append(c, l)
	}
	if got := c.Posterior(0.5); got > 0.01 {
		t.Errorf("explore, then exploit: P(explore) %v at the end", got)
	}
}

// TestNoveltyPays checks the verdict's test: a model no fit set (its
// standard error zero) goes by the sign of explorers' taste for novelty,
// a fitted one only by a taste more than NoveltyZ standard errors above
// zero.
func TestNoveltyPays(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ModeModel
		want bool
	}{
		{"the default", DefaultModeModel(), true},
		{"unfitted, explorers shun novelty", ModeModel{Base: -1, Shift: -1, Contrast: 0.5}, false},
		{"fitted, plain taste", ModeModel{Base: -1.7, Shift: -0.8, Contrast: 2.2, NoveltySE: 0.1}, true},
		{"fitted, within noise of none", ModeModel{Base: -1.1, Shift: -0.8, Contrast: 1.1, NoveltySE: 0.2}, false},
		{"fitted, just past the test", ModeModel{Base: -1.1, Shift: -0.8, Contrast: 1.41, NoveltySE: 0.2}, true},
		{"fitted, explorers shun novelty", ModeModel{Base: -1.1, Shift: -0.9, Contrast: 0.6, NoveltySE: 0.2}, false},
	} {
		if got := tc.m.NoveltyPays(); got != tc.want {
			t.Errorf("%s: NoveltyPays() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNovelWorth checks the share of the stakes a session's belief puts on
// novel items: the belief itself under a symmetric model, less where novel
// items cost exploiters more than they gain explorers, none where explorers
// gain nothing, and never more than the belief, however much a fitted
// model says novel items pay.
func TestNovelWorth(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ModeModel
		q    float64
		want func(got, q float64) bool
	}{
		{"symmetric default", DefaultModeModel(), 0.3, func(got, q float64) bool { return math.Abs(got-q) < 1e-12 }},
		{"novelty costs everyone", ModeModel{Base: -1.5, Shift: -1, Contrast: 2.2}, 0.4, func(got, q float64) bool { return got > 0 && got < q }},
		{"explorers gain nothing (weak mode)", ModeModel{Base: -1.4, Shift: -1, Contrast: 0.6}, 0.9, func(got, q float64) bool { return got == 0 }},
		{"novelty pays everyone: held at the belief", ModeModel{Base: -1.8, Shift: 0.8, Contrast: 1.9}, 0.25, func(got, q float64) bool { return got == q }},
		{"certain exploit", ModeModel{Base: -1.5, Shift: -1, Contrast: 2.2}, 0, func(got, q float64) bool { return got == 0 }},
		{"certain explore", ModeModel{Base: -1.5, Shift: -1, Contrast: 2.2}, 1, func(got, q float64) bool { return got == 1 }},
	} {
		got := tc.m.NovelWorth(tc.q)
		if !tc.want(got, tc.q) {
			t.Errorf("%s: NovelWorth(%v) = %v", tc.name, tc.q, got)
		}
		// NoveltyPays is NovelWorth's verdict: no seats at any belief short
		// of certainty exactly when it is false.
		if pays := tc.m.NoveltyPays(); pays != (tc.m.NovelWorth(0.5) > 0) {
			t.Errorf("%s: NoveltyPays %v, NovelWorth(0.5) = %v", tc.name, pays, tc.m.NovelWorth(0.5))
		}
	}
}

// slateLogLikOneExpAtATime is slateLogLik as it was before clickProbs: each
// item's click probability computed where it is used, sigmoid and
// math.Exp one value at a time. TestSlateLogLikMatchesOneExpAtATime keeps
// the batched version to it bit for bit.
func (m ModeModel) slateLogLikOneExpAtATime(obs []modeObs, explore bool, w []float64) float64 {
	n := len(obs)
	deepest := -1
	for k := n - 1; k >= 0; k-- {
		if obs[k].click {
			deepest = k
			break
		}
	}
	p := func(k int) float64 {
		e, x := m.logits(float64(obs[k].d), float64(obs[k].f))
		if explore {
			return sigmoid(e)
		}
		return sigmoid(x)
	}
	ll := 0.0
	for k := 0; k <= deepest; k++ {
		if obs[k].click {
			ll += math.Log(p(k))
		} else {
			ll += math.Log1p(-p(k))
		}
		if w != nil {
			w[k] = 1
		}
	}
	s := make([]float64, n+1)
	q := make([]float64, 0, 16)
	t0 := deepest + 1
	for k := t0; k < n; k++ {
		q = append(q, 1-p(k))
	}
	s[n] = 1
	for k := n - 1; k >= t0; k-- {
		s[k] = (1 - m.Examine) + m.Examine*q[k-t0]*s[k+1]
	}
	if t0 >= n {
		return ll
	}
	tail, reach := (1-m.ExamineClick)+m.ExamineClick*q[0]*s[t0+1], m.ExamineClick
	if deepest < 0 {
		tail, reach = q[0]*s[1], 1
	}
	if w != nil {
		for k := t0; k < n; k++ {
			w[k] = reach * q[k-t0] * s[k+1] / tail
			reach *= q[k-t0] * m.Examine
		}
	}
	return ll + math.Log(tail)
}

// TestSlateLogLikMatchesOneExpAtATime compares the slate likelihoods, the
// E step's weights and SlateEvidence with the sigmoids batched (clickProbs)
// against one math.Exp at a time, bit for bit: the decisions and the fit
// must not move.
func TestSlateLogLikMatchesOneExpAtATime(t *testing.T) {
	models := []struct {
		name string
		m    ModeModel
	}{
		{"default", DefaultModeModel()},
		{"fitted, with routine and switches", ModeModel{Base: -1.7, Shift: -0.4, Contrast: 1.3, Routine: 0.6, ToExploit: 0.1, ToExplore: 0.05, Examine: 0.62, ExamineClick: 0.81}},
		{"steep (logits past the kernel's range)", ModeModel{Base: 350, Shift: 300, Contrast: 400, Routine: 200, Examine: 0.9, ExamineClick: 0.5}},
		{"never looks further", ModeModel{Base: 0.3, Contrast: 2, Examine: 0, ExamineClick: 0}},
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, mc := range models {
		t.Run(mc.name, func(t *testing.T) {
			for trial := range 400 {
				n := 1 + trial%23 // past the 16 kept on the stack too
				nov := make([]float64, n)
				clicked := make([]bool, n)
				for k := range nov {
					nov[k] = r.Float64()
					if trial%3 == 0 {
						nov[k] = float64(r.IntN(2))
					}
					clicked[k] = trial%4 != 0 && r.IntN(5) == 0
				}
				c := 0.0
				for _, v := range nov {
					c += v
				}
				c /= float64(n)
				obs := make([]modeObs, n)
				for k := range obs {
					obs[k] = modeObs{d: float32(nov[k] - c), f: float32(1 - c), click: clicked[k]}
				}
				pe, px := mc.m.clickProbs(obs, make([]float64, 2*n))
				for _, mode := range []struct {
					explore bool
					p       []float64
				}{{true, pe}, {false, px}} {
					w, wantW := make([]float64, n), make([]float64, n)
					got := mc.m.slateLogLik(obs, mode.p, w)
					want := mc.m.slateLogLikOneExpAtATime(obs, mode.explore, wantW)
					if math.Float64bits(got) != math.Float64bits(want) {
						t.Fatalf("trial %d, explore %v: log-likelihood %v, one exp at a time %v", trial, mode.explore, got, want)
					}
					for k := range w {
						if math.Float64bits(w[k]) != math.Float64bits(wantW[k]) {
							t.Fatalf("trial %d, explore %v: weight %d %v, one exp at a time %v", trial, mode.explore, k, w[k], wantW[k])
						}
					}
				}
				got := mc.m.SlateEvidence(nov, clicked)
				want := mc.m.slateLogLikOneExpAtATime(obs, true, nil) - mc.m.slateLogLikOneExpAtATime(obs, false, nil)
				if math.Float64bits(got) != math.Float64bits(want) {
					t.Fatalf("trial %d: evidence %v, one exp at a time %v", trial, got, want)
				}
			}
		})
	}
}

// BenchmarkSlateEvidence is the evidence of one slate of 10 without a
// click, as a decision takes it for each slate shown since the last
// feedback (a served session holds up to 27).
func BenchmarkSlateEvidence(b *testing.B) {
	mm := DefaultModeModel()
	nov := []float64{0.9, 0.1, 0.35, 1, 0, 0.62, 0.2, 0.05, 0.8, 0.44}
	none := make([]bool, len(nov))
	for b.Loop() {
		mm.SlateEvidence(nov, none)
	}
}
